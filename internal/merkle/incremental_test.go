package merkle

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestIncrementalMatchesBuild: after any sequence of adds and removes, every
// interior node of the incremental tree equals the reference tree built
// from scratch (Build) over the same entries, whichever nodes were read in
// between.
func TestIncrementalMatchesBuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	inc := NewIncremental()
	live := map[string]uint32{}
	var ids []string
	check := func(step int) {
		ref := Build(leavesFrom(live))
		if inc.Root() != ref.Root() {
			t.Fatalf("step %d: root %s, want %s", step, inc.Root(), ref.Root())
		}
		// Walk a few random paths down to the leaves.
		for range 8 {
			leaf := rng.Uint32N(Leaves)
			if len(ids) > 0 && rng.IntN(2) == 0 {
				leaf = live[ids[rng.IntN(len(ids))]]
			}
			for l := range Depth {
				idx := leaf >> (4 * (Depth - l))
				got, _ := inc.Children(l, idx)
				want, _ := ref.Children(l, idx)
				if got != want {
					t.Fatalf("step %d: children of %d/%d differ", step, l, idx)
				}
			}
		}
	}
	for step := range 3000 {
		if len(ids) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(ids))
			id := ids[i]
			inc.Xor(live[id], EntryDigest(id, 100, []byte("h")))
			delete(live, id)
			ids = slices.Delete(ids, i, i+1)
		} else {
			id := fmt.Sprintf("s%d", step)
			leaf := rng.Uint32N(Leaves)
			if rng.IntN(4) == 0 && len(ids) > 0 { // crowd a leaf
				leaf = live[ids[0]]
			}
			live[id] = leaf
			ids = append(ids, id)
			inc.Xor(leaf, EntryDigest(id, 100, []byte("h")))
		}
		if step%97 == 0 {
			check(step)
		}
	}
	check(-1)
	for _, id := range ids { // remove everything: back to the empty tree
		inc.Xor(live[id], EntryDigest(id, 100, []byte("h")))
	}
	if !inc.Root().IsZero() || inc.LeafCount() != 0 {
		t.Fatalf("empty tree has root %s and %d leaves", inc.Root(), inc.LeafCount())
	}
}

// TestIncrementalRecomputesOnlyChangedPaths: after the first read, one
// changed leaf costs Depth interior recomputations, not a pass over the
// 100,000 leaves.
func TestIncrementalRecomputesOnlyChangedPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inc := NewIncremental()
	for i := range 100_000 {
		inc.Xor(rng.Uint32N(Leaves), EntryDigest(fmt.Sprint(i), 1, nil))
	}
	inc.Root()
	before := inc.Recomputed()
	inc.Xor(12345, EntryDigest("new", 1, nil))
	inc.Root()
	if got := inc.Recomputed() - before; got != Depth {
		t.Fatalf("one changed leaf recomputed %d interior nodes, want %d", got, Depth)
	}
	inc.Root()
	if got := inc.Recomputed() - before; got != Depth {
		t.Fatalf("an unchanged tree recomputed %d more", got-Depth)
	}
}

// TestDiffBelowMatchesDiff: descending from the partitions gives the same
// leaves as a full diff restricted to those partitions.
func TestDiffBelowMatchesDiff(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a, b := map[string]uint32{}, map[string]uint32{}
	for i := range 5000 {
		id, leaf := fmt.Sprint(i), rng.Uint32N(Leaves)
		a[id] = leaf
		if rng.IntN(40) != 0 {
			b[id] = leaf
		}
	}
	ta, tb := Build(leavesFrom(a)), Build(leavesFrom(b))
	all, err := Diff(ta, tb)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := DiffBelow(ta, tb, 0, 0, PartitionLevel)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, p := range parts {
		leaves, err := DiffBelow(ta, tb, PartitionLevel, p, Depth)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, leaves...)
	}
	if !slices.Equal(got, all) {
		t.Fatalf("by partition %d leaves, full diff %d", len(got), len(all))
	}
	if _, err := DiffBelow(ta, tb, 2, 0, 2); err == nil {
		t.Fatal("empty level range accepted")
	}
}
