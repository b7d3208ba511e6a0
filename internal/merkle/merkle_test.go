package merkle

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// countingSource counts Children calls.
type countingSource struct {
	*Tree
	calls int
}

func (c *countingSource) Children(level int, idx uint32) ([Fanout]Digest, error) {
	c.calls++
	return c.Tree.Children(level, idx)
}

// leavesFrom builds leaf digests the way a node does: XOR of entry digests.
func leavesFrom(entries map[string]uint32) map[uint32]Digest {
	leaves := map[uint32]Digest{}
	for id, leaf := range entries {
		leaves[leaf] = leaves[leaf].Xor(EntryDigest(id, 100, []byte("h")))
	}
	return leaves
}

// TestDiffEqualsSetDifference checks Diff against the plain reference: the
// leaves holding an entry in the symmetric difference of the two sets.
func TestDiffEqualsSetDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := range 30 {
		n := rng.IntN(2000)
		a := map[string]uint32{}
		for i := range n {
			a[fmt.Sprintf("s%d-%d", trial, i)] = rng.Uint32N(Leaves)
		}
		b := map[string]uint32{}
		for id, l := range a {
			if rng.IntN(50) != 0 { // drop ~2%
				b[id] = l
			}
		}
		for i := range rng.IntN(20) { // add a few
			b[fmt.Sprintf("extra%d-%d", trial, i)] = rng.Uint32N(Leaves)
		}
		wantSet := map[uint32]bool{}
		for id, l := range a {
			if _, ok := b[id]; !ok {
				wantSet[l] = true
			}
		}
		for id, l := range b {
			if _, ok := a[id]; !ok {
				wantSet[l] = true
			}
		}
		var want []uint32
		for l := range wantSet {
			want = append(want, l)
		}
		slices.Sort(want)
		ta, tb := &countingSource{Tree: Build(leavesFrom(a))}, &countingSource{Tree: Build(leavesFrom(b))}
		got, err := Diff(ta, tb)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: diff %v, want %v", trial, got, want)
		}
		if (ta.Root() == tb.Root()) != (len(want) == 0) {
			t.Fatalf("trial %d: roots equal=%v with %d differing leaves", trial, ta.Root() == tb.Root(), len(want))
		}
		// Descends only into differing subtrees: at most one call per
		// differing interior node on the path to each differing leaf.
		if max := 1 + len(want)*(Depth-1); ta.calls > max {
			t.Fatalf("trial %d: %d Children calls for %d differing leaves (max %d)", trial, ta.calls, len(want), max)
		}
	}
}

func TestIdenticalTreesNoDescent(t *testing.T) {
	entries := map[string]uint32{"a": 1, "b": 99999, "c": Leaves - 1}
	a, b := &countingSource{Tree: Build(leavesFrom(entries))}, &countingSource{Tree: Build(leavesFrom(entries))}
	got, err := Diff(a, b)
	if err != nil || len(got) != 0 || a.calls != 1 {
		t.Fatalf("diff %v err %v calls %d", got, err, a.calls)
	}
}

func TestXorLeafIsOrderIndependentAndRemovable(t *testing.T) {
	d1, d2 := EntryDigest("x.0", 10, []byte{1}), EntryDigest("y.1", 10, []byte{2})
	if d1.Xor(d2) != d2.Xor(d1) || d1.Xor(d2).Xor(d2) != d1 {
		t.Fatal("xor not commutative/removable")
	}
	if EntryDigest("x.0", 10, []byte{1}) == EntryDigest("x.0", 11, []byte{1}) {
		t.Fatal("length not in entry digest")
	}
}

func TestLeafOf(t *testing.T) {
	tests := []struct {
		id   string
		want uint32
		ok   bool
	}{
		{"00000abc", 0, true},
		{"fffff", Leaves - 1, true},
		{"abcde0123", 0xabcde, true},
		{"abc", 0, false},
		{"ABCDE", 0, false},
		{"../..", 0, false},
	}
	for _, tt := range tests {
		got, err := LeafOf(tt.id)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("LeafOf(%q) = %x, %v", tt.id, got, err)
		}
	}
	if l, _ := LeafOf("abcde"); l/LeavesPerPartition != 0xabc {
		t.Errorf("partition of abcde = %x", l/LeavesPerPartition)
	}
}
