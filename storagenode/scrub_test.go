package storagenode_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/shard/storetest"
	"github.com/sherdstore/sherd/storagenode"
)

// TestScrubQuarantinesRot: a pass verifies every shard; files with a
// flipped bit in a block, a truncated tail, or a whole block rewritten with
// a matching block hash (only the whole-file hash can tell) are
// quarantined (out of the index and the Merkle leaves), reported, and the
// store checks clean afterwards; healthy shards are untouched.
// Every way a shard is stored: files, packs, and inline in the index.
func TestScrubQuarantinesRot(t *testing.T) {
	t.Run("files", func(t *testing.T) { testScrubQuarantinesRot(t, storagenode.Options{InlineMax: -1, PackMax: -1}) })
	t.Run("packs", func(t *testing.T) { testScrubQuarantinesRot(t, storagenode.Options{InlineMax: -1}) })
	t.Run("inline", func(t *testing.T) { testScrubQuarantinesRot(t, storagenode.Options{}) })
}

func testScrubQuarantinesRot(t *testing.T, opts storagenode.Options) {
	ctx := context.Background()
	s := openStoreWith(t, t.TempDir(), opts)
	var ids []shard.ID
	for i := range 20 {
		id := storetest.ID(uint32(i*5000), i, i%6)
		if _, err := s.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(uint64(i), 20000+i))); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// rot rewrites a shard's stored bytes, inline, in a pack (a shorter
	// result zeroes the rest of the range) or a file.
	rot := func(id shard.ID, f func([]byte) []byte) {
		t.Helper()
		if inline, err := storagenode.RotInline(s, id, f); err != nil || inline != (opts.InlineMax >= 0) {
			t.Fatalf("rot inline: %v %v", inline, err)
		} else if inline {
			return
		}
		file, off, err := s.Locate(id)
		if err != nil {
			t.Fatal(err)
		}
		if opts.PackMax >= 0 {
			info, _ := s.Stat(ctx, id)
			b := make([]byte, info.Size)
			pf, err := os.OpenFile(file, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer pf.Close()
			pf.ReadAt(b, off)
			nb := f(b)
			if len(nb) < len(b) {
				nb = append(nb, make([]byte, len(b)-len(nb))...)
			}
			if _, err := pf.WriteAt(nb[:len(b)], off); err != nil {
				t.Fatal(err)
			}
			return
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, f(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Bit flip inside a block.
	rot(ids[3], func(b []byte) []byte { b[100] ^= 1; return b })
	// Truncated.
	rot(ids[7], func(b []byte) []byte { return b[:5000] })
	// A valid shard file, but another one than the index recorded.
	rot(ids[11], func([]byte) []byte { return storetest.MakeShard(999, 20011) })

	var reported []shard.ID
	sc := storagenode.NewScrubber(s, storagenode.ScrubConfig{OnCorrupt: func(_ context.Context, id shard.ID) { reported = append(reported, id) }})
	if err := sc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	want := []shard.ID{ids[3], ids[7], ids[11]}
	if !slices.Equal(reported, want) {
		t.Fatalf("reported %v, want %v", reported, want)
	}
	p := sc.Progress()
	if p.Passes != 1 || p.LastShards != 20 || p.LastCorrupt != 3 || p.Running || p.Fraction != 1 {
		t.Fatalf("progress %+v", p)
	}
	for i, id := range ids {
		_, err := s.Stat(ctx, id)
		if gone := slices.Contains(want, id); gone != (err != nil) {
			t.Errorf("shard %d: stat %v", i, err)
		}
	}
	if rep, err := s.Check(ctx); err != nil || !rep.OK() {
		t.Fatalf("check after scrub: %+v %v", rep, err)
	}
	q, _ := os.ReadDir(filepath.Join(s.Dir(), "quarantine"))
	if len(q) != 3 {
		t.Fatalf("%d files in quarantine, want 3", len(q))
	}
	// A second pass finds nothing.
	reported = nil
	if err := sc.Pass(ctx); err != nil || len(reported) != 0 || sc.Progress().LastShards != 17 {
		t.Fatalf("second pass: %v %v %+v", err, reported, sc.Progress())
	}
}
