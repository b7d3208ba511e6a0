// Package memstore is a shard.Store in memory: what tests of the layers
// above (cluster, repair, gateway) use in place of a disk store, and the
// simple reference the disk store is checked against (shard/storetest).
//
// Invariants:
//   - A stored shard's bytes passed every block hash when they were put;
//     its Info.Hash is the whole-file hash of those bytes. Damage changes
//     the bytes and not the Info, as bitrot does on a disk: a whole read
//     then ends in shard.ErrCorrupt, a ranged read returns the damage.
//   - The Merkle tree is the XOR of every stored shard's entry digest in
//     its leaf, updated and read under the same lock as the map.
//   - A Put of the content already stored changes nothing and returns
//     the stored Info (as the disk store does).
package memstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/shard"
)

// Store is a shard.Store in memory. The zero value is not usable: New.
type Store struct {
	now func() time.Time

	mu     sync.Mutex // guards shards and tree's updates
	shards map[shard.ID]*entry
	tree   *merkle.Incremental
}

type entry struct {
	data []byte // never modified in place once stored (Damage copies)
	info shard.Info
}

// New returns an empty store; now stamps ModTime and Verified (nil:
// time.Now).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{now: now, shards: map[shard.ID]*entry{}, tree: merkle.NewIncremental()}
}

var _ shard.Store = (*Store)(nil)

// Put implements shard.Store.
func (s *Store) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	return s.put(ctx, id, blockLen, r, false, "")
}

// Replace implements shard.Store.
func (s *Store) Replace(ctx context.Context, id shard.ID, blockLen int, r io.Reader, want string) (shard.Info, error) {
	return s.put(ctx, id, blockLen, r, true, want)
}

func (s *Store) put(ctx context.Context, id shard.ID, blockLen int, r io.Reader, replace bool, want string) (shard.Info, error) {
	if _, err := shard.ParseID(id.String()); err != nil {
		return shard.Info{}, err
	}
	if blockLen < 1 || blockLen > 1<<30 {
		return shard.Info{}, fmt.Errorf("put %s: block length %d: %w", id, blockLen, shard.ErrInvalid)
	}
	h := erasure.NewShardHasher()
	grow := func(b []byte, n int) []byte { return slices.Grow(b, n) }
	data, _, err := erasure.AppendRecords(nil, ctxReader{ctx, r}, blockLen, math.MaxInt64, h, grow)
	if errors.Is(err, erasure.ErrCorrupt) {
		return shard.Info{}, fmt.Errorf("put %s: %w: %w", id, shard.ErrCorrupt, err)
	}
	if err != nil {
		return shard.Info{}, fmt.Errorf("put %s: %w", id, err)
	}
	sum := h.Sum128().Bytes()
	now := s.now()
	info := shard.Info{ID: id.String(), Size: int64(len(data)), Hash: hex.EncodeToString(sum[:]), BlockLen: blockLen, ModTime: now, Verified: now}
	if want != "" && info.Hash != want {
		return shard.Info{}, fmt.Errorf("replace %s: content hashes to %s, want %s: %w", id, info.Hash, want, shard.ErrCorrupt)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.shards[id]; ok {
		if !replace {
			if old.info.Hash != info.Hash {
				return shard.Info{}, fmt.Errorf("put %s: %w", id, shard.ErrExists)
			}
			return old.info, nil // a retried write: what is stored stays, as on disk
		}
		s.tree.Xor(id.Leaf(), old.info.EntryDigest())
	}
	s.shards[id] = &entry{data: data, info: info}
	s.tree.Xor(id.Leaf(), info.EntryDigest())
	return info, nil
}

// Open implements shard.Store.
func (s *Store) Open(ctx context.Context, id shard.ID, off, n int64) (io.ReadCloser, error) {
	if _, err := shard.ParseID(id.String()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	e, ok := s.shards[id]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("open %s: %w", id, shard.ErrNotFound)
	}
	size := int64(len(e.data))
	if n < 0 {
		n = size - off
	}
	if off < 0 || n < 0 || off > size || off+n > size {
		return nil, fmt.Errorf("open %s: range %d+%d of %d bytes: %w", id, off, n, size, shard.ErrInvalid)
	}
	var tail error
	if off == 0 && n == size {
		h := erasure.NewShardHasher()
		h.Write(e.data)
		sum := h.Sum128().Bytes()
		if hex.EncodeToString(sum[:]) != e.info.Hash {
			tail = fmt.Errorf("open %s: whole-file hash differs from the index: %w", id, shard.ErrCorrupt)
		}
	}
	return io.NopCloser(&tailReader{r: bytes.NewReader(e.data[off : off+n]), tail: tail}), nil
}

// tailReader returns tail in place of io.EOF, when set.
type tailReader struct {
	r    io.Reader
	tail error
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err == io.EOF && t.tail != nil {
		err = t.tail
	}
	return n, err
}

// Stat implements shard.Store.
func (s *Store) Stat(ctx context.Context, id shard.ID) (shard.Info, error) {
	if _, err := shard.ParseID(id.String()); err != nil {
		return shard.Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.shards[id]
	if !ok {
		return shard.Info{}, fmt.Errorf("stat %s: %w", id, shard.ErrNotFound)
	}
	return e.info, nil
}

// Delete implements shard.Store.
func (s *Store) Delete(ctx context.Context, id shard.ID) error {
	if _, err := shard.ParseID(id.String()); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.shards[id]
	if !ok {
		return fmt.Errorf("delete %s: %w", id, shard.ErrNotFound)
	}
	s.tree.Xor(id.Leaf(), e.info.EntryDigest())
	delete(s.shards, id)
	return nil
}

// Leaf implements shard.Store.
func (s *Store) Leaf(ctx context.Context, leaf uint32) ([]shard.Info, error) {
	if leaf >= merkle.Leaves {
		return nil, fmt.Errorf("leaf %d: %w", leaf, shard.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []shard.Info
	for id, e := range s.shards {
		if id.Leaf() == leaf {
			out = append(out, e.info)
		}
	}
	slices.SortFunc(out, func(a, b shard.Info) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Children implements shard.Store.
func (s *Store) Children(ctx context.Context, level int, idx uint32) ([merkle.Fanout]merkle.Digest, error) {
	s.mu.Lock() // a Replace's two XORs are seen together or not at all
	defer s.mu.Unlock()
	ch, err := s.tree.Children(level, idx)
	if err != nil {
		return ch, fmt.Errorf("%w: %w", shard.ErrInvalid, err)
	}
	return ch, nil
}

// Damage flips the bits of mask in byte off of the stored shard id, as
// bitrot would: the Info stays. Errors: shard.ErrNotFound,
// shard.ErrInvalid (off outside the shard).
func (s *Store) Damage(id shard.ID, off int64, mask byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.shards[id]
	if !ok {
		return fmt.Errorf("damage %s: %w", id, shard.ErrNotFound)
	}
	if off < 0 || off >= int64(len(e.data)) {
		return fmt.Errorf("damage %s at %d: %w", id, off, shard.ErrInvalid)
	}
	data := bytes.Clone(e.data) // readers hold the old slice
	data[off] ^= mask
	s.shards[id] = &entry{data: data, info: e.info}
	return nil
}

// Len is the number of stored shards.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shards)
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
