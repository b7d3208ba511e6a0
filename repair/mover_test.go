package repair

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sherdstore/sherd/metadata"
)

func members(states map[string]metadata.NodeState, down ...string) map[string]metadata.Node {
	out := map[string]metadata.Node{}
	for id, st := range states {
		out[id] = metadata.Node{ID: id, State: st, Live: !slices.Contains(down, id)}
	}
	return out
}

func TestPlanMoves(t *testing.T) {
	A, D, R := metadata.NodeActive, metadata.NodeDraining, metadata.NodeRemoved
	seg := metadata.Segment{ID: "s", Nodes: []string{"n1", "n2", "n3"}, ShardHashes: []string{"h", "h", "h"}}
	for _, tc := range []struct {
		name      string
		nodes     map[string]metadata.Node
		order     []string
		rebalance bool
		want      []Move
	}{
		{"all active, no rebalance", members(map[string]metadata.NodeState{"n1": A, "n2": A, "n3": A, "n4": A}), []string{"n4", "n1", "n2", "n3"}, false, nil},
		{"draining node copied to first free of order", members(map[string]metadata.NodeState{"n1": A, "n2": D, "n3": A, "n4": A, "n5": A}), []string{"n1", "n5", "n3", "n4"}, false,
			[]Move{{Index: 1, From: "n2", To: "n5", Copy: true}}},
		{"draining and down: rebuilt", members(map[string]metadata.NodeState{"n1": A, "n2": D, "n3": A, "n4": A}, "n2"), []string{"n1", "n3", "n4"}, false,
			[]Move{{Index: 1, From: "n2", To: "n4", Copy: false}}},
		{"removed: rebuilt", members(map[string]metadata.NodeState{"n1": R, "n2": A, "n3": A, "n4": A}), []string{"n2", "n3", "n4"}, false,
			[]Move{{Index: 0, From: "n1", To: "n4", Copy: false}}},
		{"unknown node: rebuilt", members(map[string]metadata.NodeState{"n2": A, "n3": A, "n4": A}), []string{"n2", "n3", "n4"}, false,
			[]Move{{Index: 0, From: "n1", To: "n4", Copy: false}}},
		{"no free target: waits", members(map[string]metadata.NodeState{"n1": D, "n2": A, "n3": A}), []string{"n2", "n3"}, false, nil},
		{"down target skipped", members(map[string]metadata.NodeState{"n1": D, "n2": A, "n3": A, "n4": A, "n5": A}, "n4"), []string{"n4", "n5", "n2", "n3"}, false,
			[]Move{{Index: 0, From: "n1", To: "n5", Copy: true}}},
		{"rebalance: to the ring's choice only", members(map[string]metadata.NodeState{"n1": A, "n2": A, "n3": A, "n4": A}), []string{"n4", "n2", "n3", "n1"}, true,
			[]Move{{Index: 0, From: "n1", To: "n4", Copy: true}}},
		{"rebalance: nothing when placed", members(map[string]metadata.NodeState{"n1": A, "n2": A, "n3": A, "n4": A}), []string{"n3", "n1", "n2", "n4"}, true, nil},
		{"rebalance: desired target down waits", members(map[string]metadata.NodeState{"n1": A, "n2": A, "n3": A, "n4": A}, "n4"), []string{"n4", "n2", "n3", "n1"}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanMoves(seg, tc.nodes, tc.order, tc.rebalance)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestPlanMovesProperties checks PlanMoves on random clusters against
// what must hold whatever it chooses: after the moves no shard is on a
// draining, removed or unknown node unless no target existed, no two
// shards of a segment share a node, every target is live and active, and
// with rebalance every node the ring chose holds a shard when enough of
// them are usable.
func TestPlanMovesProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	states := []metadata.NodeState{metadata.NodeActive, metadata.NodeActive, metadata.NodeActive, metadata.NodeDraining, metadata.NodeRemoved}
	for iter := range 5000 {
		n := 3 + rng.IntN(4)
		total := n + rng.IntN(5)
		nodes := map[string]metadata.Node{}
		var all []string
		for j := range total {
			id := fmt.Sprintf("n%d", j)
			all = append(all, id)
			nodes[id] = metadata.Node{ID: id, State: states[rng.IntN(len(states))], Live: rng.IntN(6) > 0}
		}
		perm := rng.Perm(total)
		seg := metadata.Segment{ID: "s"}
		for i := range n {
			seg.Nodes = append(seg.Nodes, all[perm[i]])
			seg.ShardHashes = append(seg.ShardHashes, "h")
		}
		var order []string
		for _, j := range rng.Perm(total) {
			if st := nodes[all[j]].State; st == metadata.NodeActive {
				order = append(order, all[j])
			}
		}
		rebalance := rng.IntN(2) == 0
		moves := PlanMoves(seg, nodes, order, rebalance)
		after := slices.Clone(seg.Nodes)
		for _, mv := range moves {
			if after[mv.Index] != mv.From {
				t.Fatalf("%d: move %+v from a node that does not hold the shard", iter, mv)
			}
			to := nodes[mv.To]
			if !to.Live || to.State != metadata.NodeActive {
				t.Fatalf("%d: move %+v to an unusable node %+v", iter, mv, to)
			}
			after[mv.Index] = mv.To
		}
		seen := map[string]bool{}
		for _, id := range after {
			if seen[id] {
				t.Fatalf("%d: two shards on %s after %+v (from %v)", iter, id, moves, seg.Nodes)
			}
			seen[id] = true
		}
		free := 0
		for _, id := range order {
			if !slices.Contains(seg.Nodes, id) && nodes[id].Live {
				free++
			}
		}
		leaving := 0
		for _, id := range seg.Nodes {
			if Leaving(id, nodes, nil, false) != "" {
				leaving++
			}
		}
		if moved := len(moves); !rebalance && moved != min(leaving, free) {
			t.Fatalf("%d: %d leaving, %d free targets, %d moves %+v", iter, leaving, free, moved, moves)
		}
	}
}
