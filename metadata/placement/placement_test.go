package placement

import (
	"errors"
	"fmt"
	"testing"
)

func members(n, zones int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("node-%03d", i), Zone: fmt.Sprintf("z%d", i%zones), Weight: 1}
	}
	return ms
}

func segID(i int) string { return fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15) }

const segments = 60000

// loadRatio places many segments of 6 shards and returns max/mean shards per node.
func loadRatio(t *testing.T, r *Ring, n int) (float64, map[string]int) {
	counts := map[string]int{}
	for i := range segments {
		p, err := r.Place(segID(i), n)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, id := range p {
			if seen[id] {
				t.Fatalf("segment %d: node %s twice in %v", i, id, p)
			}
			seen[id] = true
			counts[id]++
		}
	}
	maxc := 0
	for _, c := range counts {
		maxc = max(maxc, c)
	}
	mean := float64(segments*n) / float64(len(r.Members()))
	return float64(maxc) / mean, counts
}

func TestLoadSpread(t *testing.T) {
	for _, tt := range []struct {
		nodes    int
		maxRatio float64
	}{{6, 1.0}, {12, 1.15}, {100, 1.35}} {
		r, err := New(members(tt.nodes, 1), 0)
		if err != nil {
			t.Fatal(err)
		}
		ratio, _ := loadRatio(t, r, 6)
		t.Logf("%3d nodes: max/mean shards per node = %.3f", tt.nodes, ratio)
		if ratio > tt.maxRatio+1e-9 {
			t.Errorf("%d nodes: max/mean %.3f > %.2f", tt.nodes, ratio, tt.maxRatio)
		}
	}
}

// TestWeightedByCapacity uses 60 nodes: with few nodes, distinct placement
// saturates (6 shards on 12 nodes puts a node in half the segments already,
// so double weight cannot mean double shards).
func TestWeightedByCapacity(t *testing.T) {
	ms := members(60, 1)
	ms[0].Weight = 2
	r, _ := New(ms, 0)
	_, counts := loadRatio(t, r, 6)
	mean := 0.0
	for _, m := range ms[1:] {
		mean += float64(counts[m.ID])
	}
	mean /= float64(len(ms) - 1)
	ratio := float64(counts[ms[0].ID]) / mean
	t.Logf("weight-2 node holds %.2fx the shards of a weight-1 node", ratio)
	if ratio < 1.6 || ratio > 2.2 {
		t.Errorf("weight 2 node ratio %.2f", ratio)
	}
}

func TestMovementOnJoin(t *testing.T) {
	for _, n := range []int{6, 12, 100} {
		before, _ := New(members(n, 1), 0)
		after, _ := New(members(n+1, 1), 0)
		moved, total := 0, 0
		for i := range segments / 2 {
			a, _ := before.Place(segID(i), 6)
			b, _ := after.Place(segID(i), 6)
			inB := map[string]bool{}
			for _, id := range b {
				inB[id] = true
			}
			for _, id := range a {
				total++
				if !inB[id] {
					moved++
				}
			}
		}
		frac, ideal := float64(moved)/float64(total), 1/float64(n+1)
		t.Logf("%3d→%d nodes: %.4f of shards move (ideal 1/N = %.4f)", n, n+1, frac, ideal)
		if frac < ideal*0.7 || frac > ideal*1.3 {
			t.Errorf("%d nodes: moved fraction %.4f, ideal %.4f", n, frac, ideal)
		}
	}
}

func TestZoneSpread(t *testing.T) {
	r, _ := New(members(9, 3), 0)
	for i := range 5000 {
		p, _ := r.Place(segID(i), 6)
		zones := map[string]int{}
		for _, id := range p {
			for _, m := range r.Members() {
				if m.ID == id {
					zones[m.Zone]++
				}
			}
		}
		for z, c := range zones {
			if c != 2 {
				t.Fatalf("segment %d: zone %s holds %d of 6 shards: %v", i, z, c, p)
			}
		}
	}
	// Unequal zones: 4 nodes in one zone, 1 each in two others → still 6 distinct nodes.
	ms := []Member{{ID: "a", Zone: "x"}, {ID: "b", Zone: "x"}, {ID: "c", Zone: "x"}, {ID: "d", Zone: "x"}, {ID: "e", Zone: "y"}, {ID: "f", Zone: "z"}}
	r, _ = New(ms, 0)
	p, err := r.Place(segID(1), 6)
	if err != nil || len(p) != 6 {
		t.Fatalf("unequal zones: %v %v", p, err)
	}
}

func TestDeterministicAndErrors(t *testing.T) {
	ms := members(8, 2)
	r1, _ := New(ms, 0)
	rev := make([]Member, len(ms))
	for i := range ms {
		rev[len(ms)-1-i] = ms[i]
	}
	r2, _ := New(rev, 0)
	for i := range 100 {
		a, _ := r1.Place(segID(i), 6)
		b, _ := r2.Place(segID(i), 6)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("member order changes placement: %v vs %v", a, b)
		}
	}
	if _, err := r1.Place(segID(0), 9); !errors.Is(err, ErrNotEnoughNodes) {
		t.Fatalf("9 of 8: %v", err)
	}
	if _, err := New([]Member{{ID: "a"}, {ID: "a"}}, 0); err == nil {
		t.Fatal("duplicate accepted")
	}
}
