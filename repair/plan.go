// Package repair is anti-entropy's driver: it finds the shards of segments that are missing or corrupt and rebuilds them from the others, most-at-risk first (DESIGN.md §7).
package repair

import (
	"math"
	"slices"

	"github.com/sherdstore/sherd/metadata"
)

// ShardState is what is known of one shard of a segment.
type ShardState int

// Shard states.
const (
	Unknown ShardState = iota // its node is down or did not answer
	Healthy                   // present with the recorded hash
	Missing                   // its node answered: not there
	Corrupt                   // present with another hash than the record's
)

func (s ShardState) String() string {
	return [...]string{"unknown", "healthy", "missing", "corrupt"}[s]
}

// Plan is what to do about one segment.
type Plan struct {
	Segment metadata.Segment
	Healthy int            // shards known healthy
	Rebuild map[int]string // shard index → node to write it to
	Wait    []int          // bad shards that cannot be rebuilt now (their node is down, no spare node, too few healthy shards)
}

// Done says whether nothing is left to do for the segment.
func (p Plan) Done() bool { return len(p.Rebuild) == 0 && len(p.Wait) == 0 }

// PlanSegment decides, from the record and the state of each shard, which
// shards to rebuild where. A bad shard goes back to the node that should
// hold it while that node is a live, active member that accepts shards
// (full says which do not: their disk is full); a shard whose node was
// removed (or is no member any more), or is full, goes to the first node
// of order (the segment's ring order) that is live, active, not full and
// holds no other shard of the segment (a full node's shard waits if there
// is none). A shard whose node is merely down waits: the node may come
// back with it; so does a reported shard (in reported, or recorded with no
// hash) whose state is unknown. A reported shard that its node calls
// healthy is rebuilt all the same. Nothing is rebuilt from fewer than k
// healthy shards. Pure.
func PlanSegment(seg metadata.Segment, states []ShardState, reported []int, nodes map[string]metadata.Node, order []string, full func(node string) bool) Plan {
	p := Plan{Segment: seg, Rebuild: map[int]string{}}
	// A reported shard its node calls healthy is still suspect: a reader
	// found its content bad, which the node's index cannot see (until its
	// scrubber does). Rebuilding is idempotent: rebuild it.
	states = slices.Clone(states)
	for _, i := range reported {
		if i >= 0 && i < len(states) && states[i] == Healthy {
			states[i] = Corrupt
		}
	}
	for _, s := range states {
		if s == Healthy {
			p.Healthy++
		}
	}
	used := map[string]bool{}
	for _, id := range seg.Nodes {
		used[id] = true
	}
	usable := func(n metadata.Node, ok bool) bool {
		return ok && n.Live && (n.State == metadata.NodeActive || n.State == "")
	}
	for i, s := range states {
		if s == Unknown && (slices.Contains(reported, i) || seg.ShardHashes[i] == "") {
			p.Wait = append(p.Wait, i)
			continue
		}
		if s != Missing && s != Corrupt {
			continue
		}
		if p.Healthy < seg.Profile.K {
			p.Wait = append(p.Wait, i)
			continue
		}
		home, member := nodes[seg.Nodes[i]]
		switch {
		case usable(home, member) && !full(home.ID):
			p.Rebuild[i] = home.ID
		case member && home.State != metadata.NodeRemoved && !(usable(home, member) && full(home.ID)):
			p.Wait = append(p.Wait, i) // down, or draining (drain moves it)
		default:
			j := slices.IndexFunc(order, func(id string) bool {
				n, ok := nodes[id]
				return !used[id] && usable(n, ok) && !full(id)
			})
			if j < 0 {
				p.Wait = append(p.Wait, i)
				continue
			}
			used[order[j]] = true
			p.Rebuild[i] = order[j]
		}
	}
	return p
}

// ByRisk orders plans most-at-risk first: fewest healthy shards, then the
// most shards to rebuild.
func ByRisk(plans []Plan) {
	slices.SortStableFunc(plans, func(a, b Plan) int {
		if a.Healthy != b.Healthy {
			return a.Healthy - b.Healthy
		}
		return len(b.Rebuild) - len(a.Rebuild)
	})
}

// RecordedHealthy counts the shards of seg that are recorded (written
// with a hash) and on a node live says is up: what metadata alone says of
// the segment's health, without asking any node. Pure.
func RecordedHealthy(seg metadata.Segment, live func(node string) bool) int {
	n := 0
	for i, node := range seg.Nodes {
		if i < len(seg.ShardHashes) && seg.ShardHashes[i] != "" && live(node) {
			n++
		}
	}
	return n
}

// Margin is how many shards above k the most exposed of segs keeps when
// only the nodes available says are up hold shards, from the records
// alone (see RecordedHealthy): negative means unreadable, 0 means at the
// edge. An object without segments (empty) is never at risk: math.MaxInt.
// Pure.
func Margin(segs []metadata.Segment, available func(node string) bool) int {
	m := math.MaxInt
	for _, seg := range segs {
		if seg.ID == "" {
			continue
		}
		m = min(m, RecordedHealthy(seg, available)-seg.Profile.K)
	}
	return m
}

// Members indexes nodes by id and counts the active ones (the members the
// placement ring is made of). Pure.
func Members(nodes []metadata.Node) (byID map[string]metadata.Node, active int) {
	byID = make(map[string]metadata.Node, len(nodes))
	for _, n := range nodes {
		byID[n.ID] = n
		if n.State == metadata.NodeActive || n.State == "" {
			active++
		}
	}
	return byID, active
}
