package repair

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// FindingKind is what anti-entropy found wrong with one shard on one node.
type FindingKind int

// Finding kinds.
const (
	// MissingShard: the record puts the shard on the node; the node lacks it.
	MissingShard FindingKind = iota + 1
	// WrongContent: the node holds the shard with another length or hash
	// than the record's, or the record has no hash for it yet.
	WrongContent
	// UnexpectedShard: the node holds a shard no record puts there (an
	// orphan, or a shard moved elsewhere since).
	UnexpectedShard
)

func (k FindingKind) String() string {
	switch k {
	case MissingShard:
		return "missing"
	case WrongContent:
		return "wrong"
	case UnexpectedShard:
		return "unexpected"
	}
	return fmt.Sprintf("FindingKind(%d)", int(k))
}

// Finding is one difference between a node and the segment records.
type Finding struct {
	Kind    FindingKind
	Node    string
	Segment string     // segment id
	Index   int        // shard index
	Have    shard.Info // what the node holds (WrongContent, UnexpectedShard)
}

// ShardID is the finding's shard id as the node names it.
func (f Finding) ShardID() string { return fmt.Sprintf("%s.%d", f.Segment, f.Index) }

// ShardFileSize is the length of every shard file of seg (hash || block
// records, as a node stores it).
func ShardFileSize(seg metadata.Segment) int64 {
	return erasure.Layout{Profile: cluster.Profile(seg.Profile), Size: seg.Size}.ShardSize()
}

// expectedEntry is what a node should hold for one shard.
type expectedEntry struct {
	seg   string
	index int
	size  int64
	hash  string // "" when the record has none yet
}

// expectedOn lists what records put on node, by shard id.
func expectedOn(node string, records []metadata.Segment) map[string]expectedEntry {
	out := map[string]expectedEntry{}
	for _, seg := range records {
		size := ShardFileSize(seg)
		for i, n := range seg.Nodes {
			if n != node {
				continue
			}
			h := ""
			if i < len(seg.ShardHashes) {
				h = seg.ShardHashes[i]
			}
			out[fmt.Sprintf("%s.%d", seg.ID, i)] = expectedEntry{seg: seg.ID, index: i, size: size, hash: h}
		}
	}
	return out
}

// ClassifyLeaf compares what node should hold (the records of one leaf)
// with what it holds (its inventory of that leaf) and returns every
// difference, sorted by shard id. Pure.
func ClassifyLeaf(node string, records []metadata.Segment, have []shard.Info) []Finding {
	want := expectedOn(node, records)
	var out []Finding
	held := map[string]bool{}
	for _, info := range have {
		held[info.ID] = true
		e, ok := want[info.ID]
		if !ok {
			id, err := shard.ParseID(info.ID)
			if err != nil {
				continue // a node never lists such an id
			}
			out = append(out, Finding{Kind: UnexpectedShard, Node: node, Segment: id.Segment, Index: id.Index, Have: info})
			continue
		}
		if e.hash == "" || e.hash != info.Hash || e.size != info.Size {
			out = append(out, Finding{Kind: WrongContent, Node: node, Segment: e.seg, Index: e.index, Have: info})
		}
	}
	for id, e := range want {
		if !held[id] {
			out = append(out, Finding{Kind: MissingShard, Node: node, Segment: e.seg, Index: e.index})
		}
	}
	slices.SortFunc(out, func(a, b Finding) int {
		if a.Segment != b.Segment {
			if a.Segment < b.Segment {
				return -1
			}
			return 1
		}
		return a.Index - b.Index
	})
	return out
}

// Expected is, for every node, the Merkle tree of the shards the segment
// records put there, kept current one record change at a time (Apply).
// Shards recorded without a hash are not in the trees (their digest is
// unknown); Unhashed lists their segments instead. Safe for concurrent use.
type Expected struct {
	mu       sync.Mutex
	trees    map[string]*merkle.Incremental
	unhashed map[string]metadata.Segment
	segments int
	// groups counts the segments by where their recorded shards are (the
	// sorted nodes holding a hashed shard) and profile: few groups, as
	// placement makes few distinct node sets, so health by liveness is
	// cheap to count.
	groups map[string]*group
}

type group struct {
	nodes []string
	k, n  int
	count int
}

// NewExpected returns an empty Expected.
func NewExpected() *Expected {
	return &Expected{trees: map[string]*merkle.Incremental{}, unhashed: map[string]metadata.Segment{}, groups: map[string]*group{}}
}

// Health is a class of segments: Healthy of Shards shards on live nodes
// (recorded with a hash), K needed to read.
type Health struct{ Healthy, K, Shards int }

// Health counts the segments by recorded shards on nodes live says are up.
func (e *Expected) Health(live func(node string) bool) map[Health]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[Health]int{}
	for _, g := range e.groups {
		h := 0
		for _, id := range g.nodes {
			if live(id) {
				h++
			}
		}
		out[Health{h, g.k, g.n}] += g.count
	}
	return out
}

func (e *Expected) group(seg *metadata.Segment, delta int) {
	var nodes []string
	for i, node := range seg.Nodes {
		if i < len(seg.ShardHashes) && seg.ShardHashes[i] != "" {
			nodes = append(nodes, node)
		}
	}
	slices.Sort(nodes)
	key := fmt.Sprintf("%s/%d/%d", strings.Join(nodes, ","), seg.Profile.K, len(seg.Nodes))
	g := e.groups[key]
	if g == nil {
		g = &group{nodes: nodes, k: seg.Profile.K, n: len(seg.Nodes)}
		e.groups[key] = g
	}
	if g.count += delta; g.count <= 0 {
		delete(e.groups, key)
	}
}

// Apply changes the trees from record old to record new (nil: none).
func (e *Expected) Apply(old, new *metadata.Segment) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, seg := range []*metadata.Segment{old, new} {
		if seg == nil || seg.ID == "" {
			continue
		}
		leaf, err := merkle.LeafOf(seg.ID)
		if err != nil {
			continue // no node could hold it under this id either
		}
		if seg == old {
			e.segments--
			delete(e.unhashed, seg.ID)
			e.group(seg, -1)
		} else {
			e.segments++
			e.group(seg, 1)
		}
		size := ShardFileSize(*seg)
		for i, node := range seg.Nodes {
			if i >= len(seg.ShardHashes) || seg.ShardHashes[i] == "" {
				if seg == new {
					e.unhashed[seg.ID] = *seg
				}
				continue
			}
			h, err := hex.DecodeString(seg.ShardHashes[i])
			if err != nil {
				continue
			}
			t := e.trees[node]
			if t == nil {
				t = merkle.NewIncremental()
				e.trees[node] = t
			}
			t.Xor(leaf, merkle.EntryDigest(fmt.Sprintf("%s.%d", seg.ID, i), size, h))
		}
	}
}

var emptyTree = merkle.NewIncremental()

// Tree is the expected tree of node (empty when nothing should be there).
func (e *Expected) Tree(node string) merkle.Source {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.trees[node]; t != nil {
		return t
	}
	return emptyTree
}

// Unhashed returns the segments with shards recorded without a hash.
func (e *Expected) Unhashed() []metadata.Segment {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]metadata.Segment, 0, len(e.unhashed))
	for _, s := range e.unhashed {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b metadata.Segment) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return out
}

// Segments is the number of records applied.
func (e *Expected) Segments() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.segments
}
