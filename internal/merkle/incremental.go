package merkle

import (
	"fmt"
	"sync"
)

// Incremental is a Merkle tree maintained one leaf change at a time, for a
// side that changes while it is compared (a node's shards, the expected
// shards computed from segment records).
//
// Invariants:
//   - leaves holds every non-zero leaf digest.
//   - An interior node is either in cache (its digest, absent when zero)
//     and correct, or marked dirty; every ancestor of a dirty node or of a
//     changed leaf is dirty. Xor marks the path (Depth map writes);
//     Children recomputes only dirty nodes below the one asked for, each
//     from its 16 children, once. So a comparison walk costs O(fan-out ×
//     depth) per differing leaf, never a pass over every leaf.
//
// Safe for concurrent use.
type Incremental struct {
	mu         sync.Mutex
	leaves     map[uint32]Digest
	cache      [Depth]map[uint32]Digest
	dirty      [Depth]map[uint32]struct{}
	recomputed int
}

// NewIncremental returns an empty tree.
func NewIncremental() *Incremental {
	t := &Incremental{leaves: map[uint32]Digest{}}
	for l := range Depth {
		t.cache[l] = map[uint32]Digest{}
		t.dirty[l] = map[uint32]struct{}{}
	}
	return t
}

// Xor changes leaf by XOR with d: adding an entry and removing it are the
// same call. Leaves out of range are a programming error and panic.
func (t *Incremental) Xor(leaf uint32, d Digest) {
	if leaf >= Leaves {
		panic(fmt.Sprintf("merkle: leaf %d out of range", leaf))
	}
	if d.IsZero() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if nd := t.leaves[leaf].Xor(d); nd.IsZero() {
		delete(t.leaves, leaf)
	} else {
		t.leaves[leaf] = nd
	}
	idx := leaf
	for l := Depth - 1; l >= 0; l-- {
		idx /= Fanout
		t.dirty[l][idx] = struct{}{}
	}
}

// Leaf is the digest of leaf idx.
func (t *Incremental) Leaf(idx uint32) Digest {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.leaves[idx]
}

// LeafCount is the number of non-empty leaves.
func (t *Incremental) LeafCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.leaves)
}

// Root is the root digest.
func (t *Incremental) Root() Digest {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.node(0, 0)
}

// Children has the contract of Tree.Children.
func (t *Incremental) Children(level int, idx uint32) ([Fanout]Digest, error) {
	var ch [Fanout]Digest
	if level < 0 || level >= Depth || idx >= NodeCount(level) {
		return ch, fmt.Errorf("merkle: no interior node %d at level %d", idx, level)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for j := range ch {
		ch[j] = t.node(level+1, idx*Fanout+uint32(j))
	}
	return ch, nil
}

// Recomputed is the number of interior digests computed so far (tests use
// it to check that unchanged subtrees are not recomputed).
func (t *Incremental) Recomputed() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recomputed
}

// node returns the digest of (level, idx), recomputing it if dirty. t.mu is held.
func (t *Incremental) node(level int, idx uint32) Digest {
	if level == Depth {
		return t.leaves[idx]
	}
	if _, ok := t.dirty[level][idx]; !ok {
		return t.cache[level][idx]
	}
	var ch [Fanout]Digest
	for j := range ch {
		ch[j] = t.node(level+1, idx*Fanout+uint32(j))
	}
	d := combine(&ch)
	t.recomputed++
	delete(t.dirty[level], idx)
	if d.IsZero() {
		delete(t.cache[level], idx)
	} else {
		t.cache[level][idx] = d
	}
	return d
}
