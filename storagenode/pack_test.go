package storagenode_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/shard/storetest"
	"github.com/sherdstore/sherd/storagenode"
)

var packsOnly = storagenode.Options{InlineMax: -1}

func putShard(t *testing.T, s *storagenode.Store, id shard.ID, data []byte) {
	t.Helper()
	if _, err := s.Put(context.Background(), id, storetest.BlockLen(), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func readShard(t *testing.T, s *storagenode.Store, id shard.ID) ([]byte, error) {
	t.Helper()
	rc, err := s.Open(context.Background(), id, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func readRaw(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func zeros(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }

// A deleted pack shard's range is punched (reads as zeros) only after its
// last reader closed; a reader opened before the delete reads the shard.
func TestPackPunchWaitsForReaders(t *testing.T) {
	ctx := context.Background()
	s := openStoreWith(t, t.TempDir(), packsOnly)
	a, b := storetest.ID(1, 1, 0), storetest.ID(2, 2, 0)
	da, db := storetest.MakeShard(1, 9000), storetest.MakeShard(2, 7000)
	putShard(t, s, a, da)
	putShard(t, s, b, db)
	path, off, err := s.Locate(a)
	if err != nil || path == "" || filepath.Ext(path) != ".pack" {
		t.Fatalf("locate: %q %v", path, err)
	}
	rc, err := s.Open(ctx, a, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if raw := readRaw(t, path, off, len(da)); !bytes.Equal(raw, da) {
		t.Fatal("range punched while a reader has it open")
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, da) {
		t.Fatalf("reader opened before the delete: %v, %d bytes", err, len(got))
	}
	rc.Close()
	if raw := readRaw(t, path, off, len(da)); !zeros(raw) {
		t.Fatal("range not punched after its last reader closed")
	}
	if got, err := readShard(t, s, b); err != nil || !bytes.Equal(got, db) {
		t.Fatalf("neighbour shard: %v", err)
	}
	if rep, err := s.Check(ctx); err != nil || !rep.OK() || rep.Shards != 1 {
		t.Fatalf("check: %+v %v", rep, err)
	}
}

// TestReconcilePacks builds by hand what a crash can leave in packs/ and
// checks Open: bytes no record names are punched (a write cut before its
// commit), a record whose bytes are missing (pack truncated) is dropped,
// a pack no record names is removed, a stray file is quarantined; once
// the last shard of a pack from an earlier process is deleted, its file
// goes.
func TestReconcilePacks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStoreWith(t, dir, packsOnly)
	keep, cut := storetest.ID(1, 1, 0), storetest.ID(2, 2, 0)
	dk := storetest.MakeShard(1, 9000)
	putShard(t, s, keep, dk)
	putShard(t, s, cut, storetest.MakeShard(2, 9000))
	path, _, _ := s.Locate(keep)
	_, cutOff, _ := s.Locate(cut)
	s.Close()

	// cut loses all but its first 100 bytes (which no record names then).
	if err := os.Truncate(path, cutOff+100); err != nil {
		t.Fatal(err)
	}
	packs := filepath.Dir(path)
	os.WriteFile(filepath.Join(packs, "00000099.pack"), []byte("no record names me"), 0o644)
	os.WriteFile(filepath.Join(packs, "junk"), nil, 0o644)

	s = openStoreWith(t, dir, packsOnly)
	rep, err := s.Check(ctx)
	if err != nil || !rep.OK() || rep.Shards != 1 {
		t.Fatalf("after reconcile: %+v %v", rep, err)
	}
	if _, err := s.Stat(ctx, cut); !errors.Is(err, shard.ErrNotFound) {
		t.Fatalf("record of truncated bytes: %v", err)
	}
	if got, err := readShard(t, s, keep); err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("kept shard: %v", err)
	}
	if raw := readRaw(t, path, cutOff, 100); !zeros(raw) {
		t.Fatal("unnamed bytes not punched")
	}
	if _, err := os.Stat(filepath.Join(packs, "00000099.pack")); !os.IsNotExist(err) {
		t.Fatalf("pack without records kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "quarantine", "junk")); err != nil {
		t.Fatalf("stray file not quarantined: %v", err)
	}
	// A new write goes to a new pack; the old one goes with its last shard.
	next := storetest.ID(3, 3, 0)
	putShard(t, s, next, storetest.MakeShard(3, 4000))
	if p, _, _ := s.Locate(next); p == path {
		t.Fatal("a new process appended to an old pack")
	}
	if err := s.Delete(ctx, keep); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("empty old pack kept: %v", err)
	}
	if rep, err := s.Check(ctx); err != nil || !rep.OK() || rep.Shards != 1 {
		t.Fatalf("check: %+v %v", rep, err)
	}
}

// Replacing a pack shard frees its old range; quarantining one copies its
// bytes to quarantine/.
func TestPackReplaceAndQuarantine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStoreWith(t, dir, packsOnly)
	id := storetest.ID(5, 5, 0)
	old, repl := storetest.MakeShard(5, 8000), storetest.MakeShard(6, 8000)
	putShard(t, s, id, old)
	path, off, _ := s.Locate(id)
	if _, err := s.Replace(ctx, id, storetest.BlockLen(), bytes.NewReader(repl), storetest.Hash(repl)); err != nil {
		t.Fatal(err)
	}
	if raw := readRaw(t, path, off, len(old)); !zeros(raw) {
		t.Fatal("replaced range not punched")
	}
	if got, err := readShard(t, s, id); err != nil || !bytes.Equal(got, repl) {
		t.Fatalf("after replace: %v", err)
	}
	if err := s.Quarantine(id); err != nil {
		t.Fatal(err)
	}
	q, _ := os.ReadDir(filepath.Join(dir, "quarantine"))
	if len(q) != 1 {
		t.Fatalf("%d files in quarantine", len(q))
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "quarantine", q[0].Name())); !bytes.Equal(b, repl) {
		t.Fatal("quarantined bytes differ")
	}
	if rep, err := s.Check(ctx); err != nil || !rep.OK() || rep.Shards != 0 {
		t.Fatalf("check: %+v %v", rep, err)
	}
}

// Reads racing deletes of pack shards see the shard or shard.ErrNotFound, never
// a punched (zeroed) range.
func TestPackReadRacingDelete(t *testing.T) {
	ctx := context.Background()
	s := openStoreWith(t, t.TempDir(), packsOnly)
	data := storetest.MakeShard(4, 6000)
	for i := range 200 {
		id := storetest.ID(uint32(i), i, 0)
		putShard(t, s, id, data)
		done := make(chan error)
		go func() {
			for {
				got, err := readShard(t, s, id)
				switch {
				case errors.Is(err, shard.ErrNotFound):
					done <- nil
					return
				case err != nil:
					done <- err
					return
				case !bytes.Equal(got, data):
					done <- errors.New("read other bytes than the shard's")
					return
				}
			}
		}()
		if err := s.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}
