// Package erasure is Sherd's stripe codec: k+m Reed-Solomon over fixed-size blocks, each shard block carrying a bitrot hash.
package erasure

import (
	"errors"
	"fmt"

	"github.com/zeebo/xxh3"
)

// HashSize is the size in bytes of the bitrot hash that precedes every shard block.
const HashSize = 16

// HashXXH3 identifies XXH3-128, the default (and so far only) bitrot hash.
// The id is stored with every segment so that the algorithm can change.
const HashXXH3 = 1

// DefaultBlockSize is the default stripe block size (1 MiB).
const DefaultBlockSize = 1 << 20

// MaxShards bounds k+m; shard indexes must fit in a byte.
const MaxShards = 256

// ErrTooFewShards means fewer than k shards were healthy for some stripe:
// the requested data cannot be reconstructed.
var ErrTooFewShards = errors.New("erasure: too few healthy shards")

// Profile is an erasure-coding profile: K data shards, M parity shards and
// the number of object bytes per stripe (BlockSize).
type Profile struct {
	K         int `json:"k"`
	M         int `json:"m"`
	BlockSize int `json:"bs"`
}

// DefaultProfile is 4+2 with 1 MiB blocks.
func DefaultProfile() Profile { return Profile{K: 4, M: 2, BlockSize: DefaultBlockSize} }

// Shards is K+M.
func (p Profile) Shards() int { return p.K + p.M }

// Validate reports whether the profile is usable.
func (p Profile) Validate() error {
	switch {
	case p.K < 1:
		return fmt.Errorf("erasure: k=%d must be at least 1", p.K)
	case p.M < 0:
		return fmt.Errorf("erasure: m=%d must not be negative", p.M)
	case p.K+p.M > MaxShards:
		return fmt.Errorf("erasure: k+m=%d exceeds %d", p.K+p.M, MaxShards)
	case p.BlockSize < p.K:
		return fmt.Errorf("erasure: block size %d smaller than k=%d", p.BlockSize, p.K)
	}
	return nil
}

// Layout describes where the bytes of a segment of Size bytes encoded with
// Profile lie. Every stripe but the last holds BlockSize bytes; the last
// holds the rest. A stripe of n bytes has shard blocks of ceil(n/K) bytes, so
// every shard file is a sequence of (hash || block) records of known length.
type Layout struct {
	Profile
	Size int64
}

// Stripes is the number of stripes (0 for an empty segment).
func (l Layout) Stripes() int64 {
	return (l.Size + int64(l.BlockSize) - 1) / int64(l.BlockSize)
}

// StripeData is the number of object bytes in stripe s.
func (l Layout) StripeData(s int64) int {
	if rest := l.Size - s*int64(l.BlockSize); rest < int64(l.BlockSize) {
		return int(rest)
	}
	return l.BlockSize
}

// ShardBlock is the length of one shard block (without its hash) in stripe s.
func (l Layout) ShardBlock(s int64) int { return ceilDiv(l.StripeData(s), l.K) }

// RecordOffset is the offset in a shard file where stripe s's record
// (hash || block) begins; RecordOffset(Stripes()) is the shard file's size.
func (l Layout) RecordOffset(s int64) int64 {
	full := int64(HashSize + ceilDiv(l.BlockSize, l.K))
	if n := l.Stripes(); s >= n && n > 0 {
		return (n-1)*full + int64(HashSize+l.ShardBlock(n-1))
	}
	return s * full
}

// ShardSize is the size of every shard file of the segment.
func (l Layout) ShardSize() int64 { return l.RecordOffset(l.Stripes()) }

// FullShardBlock is the shard block length of a full stripe: what a storage
// node needs to walk a shard file's records without knowing the segment.
func (p Profile) FullShardBlock() int { return ceilDiv(p.BlockSize, p.K) }

// BlockHash is the bitrot hash of one shard block.
func BlockHash(b []byte) [HashSize]byte { return xxh3.Hash128(b).Bytes() }

// NewShardHasher returns the hash that identifies a whole shard file's
// content (XXH3-128 over all its bytes); storage nodes compute the same.
func NewShardHasher() *xxh3.Hasher128 { return xxh3.New128() }

func ceilDiv(a, b int) int { return (a + b - 1) / b }
