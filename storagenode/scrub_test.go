package storagenode_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sherdstore/sherd/storagenode"
	"github.com/sherdstore/sherd/storagenode/storetest"
)

// TestScrubQuarantinesRot: a pass verifies every shard; files with a
// flipped bit in a block, a truncated tail, or a whole block rewritten with
// a matching block hash (only the whole-file hash can tell) are
// quarantined (out of the index and the Merkle leaves), reported, and the
// store checks clean afterwards; healthy shards are untouched.
func TestScrubQuarantinesRot(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	var ids []storagenode.ShardID
	for i := range 20 {
		id := storetest.ID(uint32(i*5000), i, i%6)
		if _, err := s.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(uint64(i), 20000+i))); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	file := func(id storagenode.ShardID) string {
		return filepath.Join(s.Dir(), "shards", fmt.Sprintf("%03x", id.Partition()), id.String())
	}
	// Bit flip inside a block.
	b, _ := os.ReadFile(file(ids[3]))
	b[100] ^= 1
	os.WriteFile(file(ids[3]), b, 0o644)
	// Truncated.
	os.Truncate(file(ids[7]), 5000)
	// A valid shard file, but another one than the index recorded.
	os.WriteFile(file(ids[11]), storetest.MakeShard(999, 20011), 0o644)

	var reported []storagenode.ShardID
	sc := storagenode.NewScrubber(s, storagenode.ScrubConfig{OnCorrupt: func(_ context.Context, id storagenode.ShardID) { reported = append(reported, id) }})
	if err := sc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	want := []storagenode.ShardID{ids[3], ids[7], ids[11]}
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
