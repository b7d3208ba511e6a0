// Package storetest is the conformance suite every shard.Store implementation must pass.
package storetest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/shard"
)

// Profile is the erasure profile shard files are made with here: small
// blocks, so that files have several records.
var profile = erasure.Profile{K: 2, M: 1, BlockSize: 4096}

// BlockLen is the full shard block length of the files MakeShard returns.
func BlockLen() int { return profile.FullShardBlock() }

// MakeShard returns a valid shard file (shard 0 of a segment of size bytes
// made from seed).
func MakeShard(seed uint64, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	c, _ := erasure.New(profile)
	var b bytes.Buffer
	c.Encode(bytes.NewReader(data), []io.Writer{&b, io.Discard, io.Discard}, 1)
	return b.Bytes()
}

// Hash is the whole-file hash of a shard file, hex (shard.Info.Hash).
func Hash(file []byte) string {
	h := erasure.NewShardHasher()
	h.Write(file)
	sum := h.Sum128().Bytes()
	return hex.EncodeToString(sum[:])
}

// ID returns a shard id whose segment starts with the given 5-hex-digit leaf.
func ID(leaf uint32, n int, index int) shard.ID {
	return shard.ID{Segment: fmt.Sprintf("%05x%027x", leaf, n), Index: index}
}

func readAll(t *testing.T, s shard.Store, id shard.ID, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := s.Open(context.Background(), id, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Run runs the suite; newStore returns an empty store for one subtest.
func Run(t *testing.T, newStore func(t *testing.T) shard.Store) {
	ctx := context.Background()
	t.Run("PutOpenStat", func(t *testing.T) {
		s := newStore(t)
		for i, size := range []int{0, 1, 4096, 3*4096 + 5} {
			id := ID(0xabcde, i, 1)
			file := MakeShard(uint64(i), size)
			info, err := s.Put(ctx, id, BlockLen(), bytes.NewReader(file))
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			h := erasure.NewShardHasher()
			h.Write(file)
			sum := h.Sum128().Bytes()
			want := fmt.Sprintf("%x", sum[:])
			if info.ID != id.String() || info.Size != int64(len(file)) || info.Hash != want || info.BlockLen != BlockLen() {
				t.Fatalf("size %d: info %+v, want size %d hash %s", size, info, len(file), want)
			}
			st, err := s.Stat(ctx, id)
			if err != nil || st.Size != info.Size || st.Hash != info.Hash || st.BlockLen != info.BlockLen {
				t.Fatalf("stat %+v err %v, put said %+v", st, err, info)
			}
			got, err := readAll(t, s, id, 0, -1)
			if err != nil || !bytes.Equal(got, file) {
				t.Fatalf("size %d: read back err %v equal %v", size, err, bytes.Equal(got, file))
			}
		}
	})
	t.Run("RangeReads", func(t *testing.T) {
		s := newStore(t)
		id := ID(1, 1, 0)
		file := MakeShard(9, 5*4096)
		if _, err := s.Put(ctx, id, BlockLen(), bytes.NewReader(file)); err != nil {
			t.Fatal(err)
		}
		L := int64(len(file))
		for _, r := range []struct{ off, n int64 }{{0, 1}, {0, L}, {L - 1, 1}, {100, 2000}, {2000, -1}, {L, 0}, {5, 0}} {
			got, err := readAll(t, s, id, r.off, r.n)
			end := L
			if r.n >= 0 {
				end = r.off + r.n
			}
			if err != nil || !bytes.Equal(got, file[r.off:end]) {
				t.Fatalf("range %+v: err %v len %d", r, err, len(got))
			}
		}
		for _, r := range []struct{ off, n int64 }{{L, 1}, {L - 1, 2}, {L + 5, -1}} {
			if _, err := readAll(t, s, id, r.off, r.n); !errors.Is(err, shard.ErrInvalid) {
				t.Fatalf("range %+v: err %v, want ErrInvalid", r, err)
			}
		}
	})
	t.Run("OverwriteAndDelete", func(t *testing.T) {
		s := newStore(t)
		id := ID(2, 2, 3)
		a, b := MakeShard(1, 10000), MakeShard(2, 777)
		first, err := s.Put(ctx, id, BlockLen(), bytes.NewReader(a))
		if err != nil {
			t.Fatal(err)
		}
		// Put never replaces a different shard; the same one again is fine
		// and changes nothing (the stored Info is returned).
		if _, err := s.Put(ctx, id, BlockLen(), bytes.NewReader(b)); !errors.Is(err, shard.ErrExists) {
			t.Fatalf("put over a different shard: err %v, want ErrExists", err)
		}
		if again, err := s.Put(ctx, id, BlockLen(), bytes.NewReader(a)); err != nil || !again.ModTime.Equal(first.ModTime) || again.Hash != first.Hash {
			t.Fatalf("put of the same shard again: %+v %v, want the stored %+v", again, err, first)
		}
		if got, err := readAll(t, s, id, 0, -1); err != nil || !bytes.Equal(got, a) {
			t.Fatalf("after refused put: err %v", err)
		}
		// Replace (a repair) must produce the content it expects.
		hb := erasure.NewShardHasher()
		hb.Write(b)
		sumB := hb.Sum128().Bytes()
		wantB := hex.EncodeToString(sumB[:])
		if _, err := s.Replace(ctx, id, BlockLen(), bytes.NewReader(b), strings.Repeat("0", len(wantB))); !errors.Is(err, shard.ErrCorrupt) {
			t.Fatalf("replace with the wrong expected hash: err %v, want ErrCorrupt", err)
		}
		if got, err := readAll(t, s, id, 0, -1); err != nil || !bytes.Equal(got, a) {
			t.Fatalf("after refused replace: err %v", err)
		}
		if info, err := s.Replace(ctx, id, BlockLen(), bytes.NewReader(b), wantB); err != nil || info.Hash != wantB {
			t.Fatalf("replace: %+v %v", info, err)
		}
		if got, err := readAll(t, s, id, 0, -1); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("after overwrite: err %v", err)
		}
		if infos, err := s.Leaf(ctx, id.Leaf()); err != nil || len(infos) != 1 || infos[0].Size != int64(len(b)) {
			t.Fatalf("leaf after overwrite: %+v %v", infos, err)
		}
		if err := s.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, s, id, 0, -1); !errors.Is(err, shard.ErrNotFound) {
			t.Fatalf("open after delete: %v", err)
		}
		if _, err := s.Stat(ctx, id); !errors.Is(err, shard.ErrNotFound) {
			t.Fatalf("stat after delete: %v", err)
		}
		if err := s.Delete(ctx, id); !errors.Is(err, shard.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
	t.Run("CorruptRejectedNothingStored", func(t *testing.T) {
		s := newStore(t)
		id := ID(3, 3, 0)
		good := MakeShard(3, 9000)
		if _, err := s.Put(ctx, id, BlockLen(), bytes.NewReader(good)); err != nil {
			t.Fatal(err)
		}
		for name, bad := range map[string][]byte{
			"flipped": func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 1; return b }(),
			"torn":    good[:erasure.HashSize+BlockLen()+7],
		} {
			if _, err := s.Put(ctx, id, BlockLen(), bytes.NewReader(bad)); !errors.Is(err, shard.ErrCorrupt) {
				t.Fatalf("%s: err %v, want ErrCorrupt", name, err)
			}
			if got, err := readAll(t, s, id, 0, -1); err != nil || !bytes.Equal(got, good) {
				t.Fatalf("%s: old shard damaged: %v", name, err)
			}
			other := ID(3, 4, 0)
			if _, err := s.Put(ctx, other, BlockLen(), bytes.NewReader(bad)); !errors.Is(err, shard.ErrCorrupt) {
				t.Fatalf("%s new: err %v", name, err)
			}
			if _, err := s.Stat(ctx, other); !errors.Is(err, shard.ErrNotFound) {
				t.Fatalf("%s: corrupt shard stored: %v", name, err)
			}
		}
	})
	t.Run("InvalidIDs", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []shard.ID{
			{Segment: "../../../../etc/passwd", Index: 0},
			{Segment: "ABCDEF0123456789ABCDEF0123456789", Index: 0},
			{Segment: "abc", Index: 0},
			{Segment: ID(0, 0, 0).Segment, Index: 256},
			{Segment: ID(0, 0, 0).Segment, Index: -1},
		} {
			if _, err := s.Put(ctx, id, BlockLen(), bytes.NewReader(MakeShard(1, 10))); !errors.Is(err, shard.ErrInvalid) {
				t.Fatalf("put %q: %v", id, err)
			}
			if _, err := s.Open(ctx, id, 0, -1); !errors.Is(err, shard.ErrInvalid) {
				t.Fatalf("open %q: %v", id, err)
			}
		}
		if _, err := s.Put(ctx, ID(0, 0, 0), 0, bytes.NewReader(nil)); !errors.Is(err, shard.ErrInvalid) {
			t.Fatalf("block length 0: %v", err)
		}
	})
	t.Run("MerkleInventory", func(t *testing.T) {
		s := newStore(t)
		rootOf := func() [merkle.Fanout]merkle.Digest {
			ch, err := s.Children(ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			return ch
		}
		empty := rootOf()
		if empty != ([merkle.Fanout]merkle.Digest{}) {
			t.Fatalf("empty store has digests %v", empty)
		}
		want := map[uint32]merkle.Digest{}
		var ids []shard.ID
		for i, leaf := range []uint32{0, 0, 17, 0xfffff, 0x12345, 0x12345} {
			id := ID(leaf, i, i%3)
			info, err := s.Put(ctx, id, BlockLen(), bytes.NewReader(MakeShard(uint64(i), 100*i)))
			if err != nil {
				t.Fatal(err)
			}
			want[leaf] = want[leaf].Xor(info.EntryDigest())
			ids = append(ids, id)
		}
		ref := merkle.Build(want)
		// Every interior node on the paths to the leaves matches the reference.
		for leaf := range want {
			for level := 0; level < merkle.Depth; level++ {
				idx := leaf >> (4 * (merkle.Depth - level))
				got, err := s.Children(ctx, level, idx)
				wantCh, _ := ref.Children(level, idx)
				if err != nil || got != wantCh {
					t.Fatalf("node %d/%d: err %v\n got %v\nwant %v", level, idx, err, got, wantCh)
				}
			}
			infos, err := s.Leaf(ctx, leaf)
			if err != nil {
				t.Fatal(err)
			}
			var d merkle.Digest
			for _, in := range infos {
				d = d.Xor(in.EntryDigest())
			}
			if d != want[leaf] {
				t.Fatalf("leaf %x inventory digest mismatch", leaf)
			}
		}
		if _, err := s.Children(ctx, merkle.Depth, 0); !errors.Is(err, shard.ErrInvalid) {
			t.Fatalf("children of a leaf: %v", err)
		}
		for _, id := range ids {
			if err := s.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if rootOf() != empty {
			t.Fatal("digests not back to empty after deleting everything")
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 8 {
					id := ID(uint32(g*8+i), i, 0)
					shared := ID(0x77777, 0, 0)
					if _, err := s.Put(ctx, id, BlockLen(), bytes.NewReader(MakeShard(uint64(g), 5000))); err != nil {
						errs <- err
					}
					// Concurrent replaces of one id, and puts of one content.
					if _, err := s.Replace(ctx, shared, BlockLen(), bytes.NewReader(MakeShard(uint64(g), 5000)), ""); err != nil {
						errs <- err
					}
					if _, err := s.Put(ctx, ID(0x66666, 0, 0), BlockLen(), bytes.NewReader(MakeShard(99, 5000))); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		infos, err := s.Leaf(ctx, 0x77777)
		if err != nil || len(infos) != 1 {
			t.Fatalf("shared shard: %d records, err %v", len(infos), err)
		}
	})
}
