// Package placement is the consistent-hash ring that chooses which storage nodes hold a segment's shards.
package placement

// Invariants:
//   - Place is a pure function of (members, segment id, n): every gateway with
//     the same membership chooses the same nodes, in the same order.
//   - The n nodes are distinct; shards spread over zones as evenly as the
//     zones allow (at most ceil(n/zones) per zone while any zone has room).
//   - A member's share of placements is proportional to its weight (virtual
//     nodes per member ∝ weight), and a member joining moves about 1/N of
//     the shards.

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/zeebo/xxh3"
)

// DefaultVNodes is the number of virtual nodes of a member of average weight.
const DefaultVNodes = 256

// ErrNotEnoughNodes means the ring has fewer members than shards to place.
var ErrNotEnoughNodes = errors.New("placement: not enough nodes")

// Member is a node eligible for new shards.
type Member struct {
	ID     string
	Zone   string  // failure domain; "" is a zone of its own name
	Weight float64 // relative capacity; <= 0 means 1
}

type point struct {
	hash   uint64
	member int
}

// Ring is an immutable consistent-hash ring.
type Ring struct {
	members []Member
	zones   int
	points  []point
}

// New builds a ring; vnodes is the number of virtual nodes of a member of
// mean weight (0 means DefaultVNodes). Member ids must be unique.
func New(members []Member, vnodes int) (*Ring, error) {
	if vnodes <= 0 {
		vnodes = DefaultVNodes
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return cmpString(a.ID, b.ID) })
	total := 0.0
	zones := map[string]bool{}
	for i := range ms {
		if i > 0 && ms[i].ID == ms[i-1].ID {
			return nil, fmt.Errorf("placement: duplicate member %q", ms[i].ID)
		}
		if ms[i].Weight <= 0 {
			ms[i].Weight = 1
		}
		total += ms[i].Weight
		zones[ms[i].Zone] = true
	}
	r := &Ring{members: ms, zones: len(zones)}
	for i, m := range ms {
		count := max(1, int(math.Round(float64(vnodes)*m.Weight*float64(len(ms))/total)))
		for v := range count {
			r.points = append(r.points, point{hash: xxh3.HashString(m.ID + "#" + strconv.Itoa(v)), member: i})
		}
	}
	sort.Slice(r.points, func(a, b int) bool { return r.points[a].hash < r.points[b].hash })
	return r, nil
}

// Members returns the ring's members sorted by id.
func (r *Ring) Members() []Member { return slices.Clone(r.members) }

// Place returns n distinct member ids for segmentID, the node for shard i at
// index i. It returns ErrNotEnoughNodes when the ring has fewer than n members.
func (r *Ring) Place(segmentID string, n int) ([]string, error) {
	if n > len(r.members) {
		return nil, fmt.Errorf("placement: %d shards on %d nodes: %w", n, len(r.members), ErrNotEnoughNodes)
	}
	start := sort.Search(len(r.points), func(i int) bool { return r.points[i].hash >= xxh3.HashString(segmentID) })
	chosen := make([]bool, len(r.members))
	perZone := map[string]int{}
	maxPerZone := (n + r.zones - 1) / r.zones
	out := make([]string, 0, n)
	// First walk honours the zone cap; a second walk (zones of unequal size)
	// fills what is left with any member not chosen yet.
	for pass := 0; pass < 2 && len(out) < n; pass++ {
		for j := 0; j < len(r.points) && len(out) < n; j++ {
			m := r.points[(start+j)%len(r.points)].member
			if chosen[m] {
				continue
			}
			z := r.members[m].Zone
			if pass == 0 && perZone[z] >= maxPerZone {
				continue
			}
			chosen[m] = true
			perZone[z]++
			out = append(out, r.members[m].ID)
		}
	}
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
