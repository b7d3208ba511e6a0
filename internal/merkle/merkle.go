// Package merkle is the fixed-shape Merkle tree over hash-partitioned shard sets that anti-entropy compares.
package merkle

// The tree has a fixed shape so two sides can be compared without agreeing
// on anything but this file: 2^20 leaves indexed by the first 20 bits of a
// segment id (12 bits of partition, 8 bits of leaf within the partition),
// fan-out 16, so 5 interior levels: level 0 is the root, level 3 holds the
// 4096 partition roots, level 5 the leaves.
//
// A leaf digest is the XOR of its entries' digests (order-independent and
// updatable in place: add and remove are the same XOR). An interior digest
// is a hash of its 16 children, or zero when they are all zero, so empty
// subtrees cost nothing and are never stored.

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/zeebo/xxh3"
)

const (
	// Fanout is the number of children of an interior node.
	Fanout = 16
	// Depth is the level of the leaves (the root is level 0).
	Depth = 5
	// LeafBits is the number of segment-id bits that choose a leaf.
	LeafBits = 4 * Depth
	// Leaves is the number of leaves.
	Leaves = 1 << LeafBits
	// PartitionLevel is the level whose nodes are the 4096 partitions.
	PartitionLevel = 3
	// Partitions is the number of partitions.
	Partitions = 1 << (4 * PartitionLevel)
	// LeavesPerPartition is the number of leaves under one partition.
	LeavesPerPartition = Leaves / Partitions
)

// Digest is a 128-bit node digest; the zero Digest means "empty".
type Digest [16]byte

// IsZero reports whether d is the empty digest.
func (d Digest) IsZero() bool { return d == Digest{} }

// Xor returns d ^ o.
func (d Digest) Xor(o Digest) Digest {
	for i := range d {
		d[i] ^= o[i]
	}
	return d
}

// String is the digest in hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// EntryDigest is the digest of one shard in a leaf: H(shard id, length, content hash).
func EntryDigest(shardID string, length int64, contentHash []byte) Digest {
	buf := make([]byte, 0, len(shardID)+9+len(contentHash))
	buf = append(buf, shardID...)
	buf = append(buf, 0)
	buf = binary.BigEndian.AppendUint64(buf, uint64(length))
	buf = append(buf, contentHash...)
	return Digest(xxh3.Hash128(buf).Bytes())
}

// LeafOf returns the leaf index of a segment id given as hex (at least 5
// hex digits); the partition is LeafOf(id) / LeavesPerPartition.
func LeafOf(segmentIDHex string) (uint32, error) {
	if len(segmentIDHex) < LeafBits/4 {
		return 0, fmt.Errorf("merkle: segment id %q too short", segmentIDHex)
	}
	var v uint32
	for _, c := range []byte(segmentIDHex[:LeafBits/4]) {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, fmt.Errorf("merkle: segment id %q is not lowercase hex", segmentIDHex)
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}

// NodeCount is the number of nodes at a level.
func NodeCount(level int) uint32 { return 1 << (4 * level) }

// combine is the digest of an interior node from its children.
func combine(children *[Fanout]Digest) Digest {
	var zero [Fanout]Digest
	if *children == zero {
		return Digest{}
	}
	var buf [Fanout * len(Digest{})]byte
	for i := range children {
		copy(buf[i*len(Digest{}):], children[i][:])
	}
	return Digest(xxh3.Hash128(buf[:]).Bytes())
}

// Tree is a Merkle tree built from sparse leaves. Only non-empty nodes are
// stored. A Tree is immutable once built.
type Tree struct {
	levels [Depth + 1]map[uint32]Digest
}

// Build computes all interior nodes from the non-zero leaves (leaf index →
// digest). Zero digests in the map are ignored.
func Build(leaves map[uint32]Digest) *Tree {
	t := &Tree{}
	t.levels[Depth] = make(map[uint32]Digest, len(leaves))
	for i, d := range leaves {
		if !d.IsZero() {
			t.levels[Depth][i] = d
		}
	}
	for l := Depth - 1; l >= 0; l-- {
		parents := map[uint32]struct{}{}
		for i := range t.levels[l+1] {
			parents[i/Fanout] = struct{}{}
		}
		t.levels[l] = make(map[uint32]Digest, len(parents))
		for p := range parents {
			ch := t.children(l, p)
			if d := combine(&ch); !d.IsZero() {
				t.levels[l][p] = d
			}
		}
	}
	return t
}

func (t *Tree) children(level int, idx uint32) [Fanout]Digest {
	var ch [Fanout]Digest
	for j := range ch {
		ch[j] = t.levels[level+1][idx*Fanout+uint32(j)]
	}
	return ch
}

// Root is the root digest.
func (t *Tree) Root() Digest { return t.levels[0][0] }

// Node is the digest of node idx at level.
func (t *Tree) Node(level int, idx uint32) Digest { return t.levels[level][idx] }

// Children returns the 16 child digests of interior node idx at level (< Depth).
func (t *Tree) Children(level int, idx uint32) ([Fanout]Digest, error) {
	if level < 0 || level >= Depth || idx >= NodeCount(level) {
		return [Fanout]Digest{}, fmt.Errorf("merkle: no interior node %d at level %d", idx, level)
	}
	return t.children(level, idx), nil
}

// Source is one side of a comparison: a tree that may live elsewhere (a
// storage node's API). Children has the contract of Tree.Children.
type Source interface {
	Children(level int, idx uint32) ([Fanout]Digest, error)
}

// Diff returns, sorted, the leaves whose digests differ between a and b. It
// descends only into subtrees whose digests differ, starting from the
// children of the root; it asks each side for at most one Children call per
// differing interior node.
func Diff(a, b Source) ([]uint32, error) { return DiffBelow(a, b, 0, 0, Depth) }

// DiffBelow returns, sorted, the nodes at level to (level < to ≤ Depth)
// under interior node idx at level whose digests differ between a and b,
// with the calls of Diff: one Children call per side and differing
// interior node between level and to.
func DiffBelow(a, b Source, level int, idx uint32, to int) ([]uint32, error) {
	if level < 0 || to <= level || to > Depth {
		return nil, fmt.Errorf("merkle: diff from level %d to %d", level, to)
	}
	var out []uint32
	var walk func(level int, idx uint32) error
	walk = func(level int, idx uint32) error {
		ca, err := a.Children(level, idx)
		if err != nil {
			return err
		}
		cb, err := b.Children(level, idx)
		if err != nil {
			return err
		}
		for j := range ca {
			if ca[j] == cb[j] {
				continue
			}
			child := idx*Fanout + uint32(j)
			if level+1 == to {
				out = append(out, child)
				continue
			}
			if err := walk(level+1, child); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(level, idx); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}
