package repair

import (
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/sherdstore/sherd/metadata"
)

func TestPlanSegment(t *testing.T) {
	seg := metadata.Segment{ID: "s", Profile: metadata.ECProfile{K: 4, M: 2},
		Nodes:       []string{"a", "b", "c", "d", "e", "f"},
		ShardHashes: []string{"h0", "h1", "h2", "h3", "h4", "h5"}}
	node := func(id string, live bool, st metadata.NodeState) metadata.Node {
		return metadata.Node{ID: id, Live: live, State: st}
	}
	allUp := func() map[string]metadata.Node {
		m := map[string]metadata.Node{}
		for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
			m[id] = node(id, true, metadata.NodeActive)
		}
		return m
	}
	with := func(m map[string]metadata.Node, n metadata.Node) map[string]metadata.Node {
		m[n.ID] = n
		return m
	}
	without := func(m map[string]metadata.Node, id string) map[string]metadata.Node {
		delete(m, id)
		return m
	}
	H, M, C, U := Healthy, Missing, Corrupt, Unknown
	order := []string{"c", "g", "a", "h", "b", "d", "e", "f"}
	noHash := seg
	noHash.ShardHashes = []string{"h0", "", "h2", "h3", "h4", "h5"}
	for _, tc := range []struct {
		name     string
		seg      metadata.Segment
		states   []ShardState
		reported []int
		nodes    map[string]metadata.Node
		rebuild  map[int]string
		wait     []int
		healthy  int
		full     []string
	}{
		{"all healthy", seg, []ShardState{H, H, H, H, H, H}, nil, allUp(), map[int]string{}, nil, 6, nil},
		{"missing on a live home", seg, []ShardState{H, M, H, H, H, H}, nil, allUp(), map[int]string{1: "b"}, nil, 5, nil},
		{"corrupt on a live home", seg, []ShardState{H, H, H, C, H, H}, nil, allUp(), map[int]string{3: "d"}, nil, 5, nil},
		{"home down: wait for it", seg, []ShardState{H, M, H, H, H, H}, nil, with(allUp(), node("b", false, metadata.NodeActive)), map[int]string{}, []int{1}, 5, nil},
		{"home removed: first spare in ring order", seg, []ShardState{H, M, H, H, H, H}, nil, with(allUp(), node("b", true, metadata.NodeRemoved)), map[int]string{1: "g"}, nil, 5, nil},
		{"home gone from the members", seg, []ShardState{H, M, H, H, H, H}, nil, without(allUp(), "b"), map[int]string{1: "g"}, nil, 5, nil},
		{"two removed: distinct spares", seg, []ShardState{M, M, H, H, H, H}, nil,
			with(with(allUp(), node("a", true, metadata.NodeRemoved)), node("b", true, metadata.NodeRemoved)), map[int]string{0: "g", 1: "h"}, nil, 4, nil},
		{"spare down or draining is skipped", seg, []ShardState{H, M, H, H, H, H}, nil,
			with(with(with(allUp(), node("b", true, metadata.NodeRemoved)), node("g", false, metadata.NodeActive)), node("h", true, metadata.NodeDraining)), map[int]string{}, []int{1}, 5, nil},
		{"draining home: drain moves it", seg, []ShardState{H, M, H, H, H, H}, nil, with(allUp(), node("b", true, metadata.NodeDraining)), map[int]string{}, []int{1}, 5, nil},
		{"fewer than k healthy: nothing to rebuild from", seg, []ShardState{M, M, C, H, H, H}, nil, allUp(), map[int]string{}, []int{0, 1, 2}, 3, nil},
		{"exactly k healthy", seg, []ShardState{M, C, H, H, H, H}, nil, allUp(), map[int]string{0: "a", 1: "b"}, nil, 4, nil},
		{"reported shard on a down node waits", seg, []ShardState{H, U, H, H, H, H}, []int{1}, allUp(), map[int]string{}, []int{1}, 5, nil},
		{"reported but healthy on its node: rebuilt (the node cannot see rot)", seg, []ShardState{H, H, H, H, H, H}, []int{0}, allUp(), map[int]string{0: "a"}, nil, 5, nil},
		{"unreported unknown is not our business", seg, []ShardState{H, U, H, H, H, H}, nil, allUp(), map[int]string{}, nil, 5, nil},
		{"never written and unknown waits", noHash, []ShardState{H, U, H, H, H, H}, nil, allUp(), map[int]string{}, []int{1}, 5, nil},
		{"home full: first spare with room", seg, []ShardState{H, M, H, H, H, H}, nil, allUp(), map[int]string{1: "h"}, nil, 5, []string{"b", "g"}},
		{"home full, no spare with room: wait", seg, []ShardState{H, M, H, H, H, H}, nil, allUp(), map[int]string{}, []int{1}, 5, []string{"b", "g", "h"}},
		{"home removed, spare full skipped", seg, []ShardState{H, M, H, H, H, H}, nil, with(allUp(), node("b", true, metadata.NodeRemoved)), map[int]string{1: "h"}, nil, 5, []string{"g"}},
		{"full node's healthy shard stays", seg, []ShardState{H, H, H, H, H, H}, nil, allUp(), map[int]string{}, nil, 6, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanSegment(tc.seg, tc.states, tc.reported, tc.nodes, order, func(id string) bool { return slices.Contains(tc.full, id) })
			if !maps.Equal(p.Rebuild, tc.rebuild) || !slices.Equal(p.Wait, tc.wait) || p.Healthy != tc.healthy {
				t.Fatalf("got rebuild %v wait %v healthy %d, want %v %v %d", p.Rebuild, p.Wait, p.Healthy, tc.rebuild, tc.wait, tc.healthy)
			}
			if p.Done() != (len(tc.rebuild) == 0 && len(tc.wait) == 0) {
				t.Fatal("Done disagrees")
			}
		})
	}
}

func TestByRisk(t *testing.T) {
	plans := []Plan{
		{Segment: metadata.Segment{ID: "5a"}, Healthy: 5, Rebuild: map[int]string{1: "x"}},
		{Segment: metadata.Segment{ID: "4a"}, Healthy: 4, Rebuild: map[int]string{1: "x"}},
		{Segment: metadata.Segment{ID: "4b"}, Healthy: 4, Rebuild: map[int]string{1: "x", 2: "y"}},
		{Segment: metadata.Segment{ID: "6"}, Healthy: 6},
	}
	ByRisk(plans)
	var got []string
	for _, p := range plans {
		got = append(got, p.Segment.ID)
	}
	if want := []string{"4b", "4a", "5a", "6"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestRecordedHealthy(t *testing.T) {
	seg := metadata.Segment{Nodes: []string{"a", "b", "c", "d", "e", "f"}, ShardHashes: []string{"h", "", "h", "h", "h", "h"}}
	up := func(down ...string) func(string) bool {
		return func(n string) bool { return !slices.Contains(down, n) }
	}
	for _, tc := range []struct {
		live func(string) bool
		want int
	}{{up(), 5}, {up("b"), 5}, {up("a"), 4}, {up("a", "c", "d"), 2}} {
		if got := RecordedHealthy(seg, tc.live); got != tc.want {
			t.Errorf("got %d, want %d", got, tc.want)
		}
	}
}

func TestMargin(t *testing.T) {
	seg := func(hashes ...string) metadata.Segment {
		return metadata.Segment{ID: "s", Profile: metadata.ECProfile{K: 4, M: 2}, Nodes: []string{"a", "b", "c", "d", "e", "f"}, ShardHashes: hashes}
	}
	full, five := seg("h", "h", "h", "h", "h", "h"), seg("h", "h", "h", "h", "h", "")
	up := func(down ...string) func(string) bool {
		return func(n string) bool { return !slices.Contains(down, n) }
	}
	tests := []struct {
		name string
		segs []metadata.Segment
		up   func(string) bool
		want int
	}{
		{"all up", []metadata.Segment{full}, up(), 2},
		{"two down", []metadata.Segment{full}, up("a", "b"), 0},
		{"three down", []metadata.Segment{full}, up("a", "b", "c"), -1},
		{"five recorded, two others down", []metadata.Segment{five}, up("a", "b"), -1},
		{"five recorded, its missing node down", []metadata.Segment{five}, up("f"), 1},
		{"worst segment counts", []metadata.Segment{full, five, full}, up("c"), 0},
		{"empty object", nil, up("a", "b", "c"), math.MaxInt},
		{"empty part skipped", []metadata.Segment{{}, full}, up(), 2},
	}
	for _, tt := range tests {
		if got := Margin(tt.segs, tt.up); got != tt.want {
			t.Errorf("%s: margin %d, want %d", tt.name, got, tt.want)
		}
	}
}
