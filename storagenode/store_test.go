package storagenode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/shard/storetest"
	"github.com/sherdstore/sherd/storagenode"
)

func openStore(t *testing.T, dir string) *storagenode.Store {
	t.Helper()
	return openStoreWith(t, dir, storagenode.Options{})
}

func openStoreWith(t *testing.T, dir string, opts storagenode.Options) *storagenode.Store {
	t.Helper()
	s, err := storagenode.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The suite runs with the default inline threshold (the suite's shards
// are small: inline), with every shard a file, and with a threshold
// that splits its shards between the two.
func TestStoreConformance(t *testing.T) {
	for _, tc := range []struct {
		name               string
		inlineMax, packMax int64
	}{{"default", 0, 0}, {"files", -1, -1}, {"packs", -1, 0}, {"mixed", 3000, 6000}} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) shard.Store {
				s := openStoreWith(t, t.TempDir(), storagenode.Options{InlineMax: tc.inlineMax, PackMax: tc.packMax})
				t.Cleanup(func() {
					rep, err := s.Check(context.Background())
					if err != nil || !rep.OK() {
						t.Errorf("check after test: %+v %v", rep, err)
					}
				})
				return s
			})
		})
	}
}

// TestReconcileInlineLeftoverFile: a crash after an inline shard replaced
// a file (InlineMax raised) but before the file was removed leaves both;
// Open quarantines the file and keeps the inline shard.
func TestReconcileInlineLeftoverFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	id := storetest.ID(9, 9, 0)
	shard := storetest.MakeShard(7, 5000)
	if _, err := s.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(shard)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	p := filepath.Join(dir, "shards", fmt.Sprintf("%03x", id.Partition()), id.String())
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, storetest.MakeShard(8, 5000), 0o644)
	s = openStore(t, dir)
	if rep, err := s.Check(ctx); err != nil || !rep.OK() || rep.Shards != 1 {
		t.Fatalf("after reconcile: %+v %v", rep, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("leftover file still in shards/: %v", err)
	}
	rc, err := s.Open(ctx, id, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, shard) {
		t.Fatalf("inline shard after reconcile: %v, %d bytes", err, len(got))
	}
	if q, _ := os.ReadDir(filepath.Join(dir, "quarantine")); len(q) != 1 {
		t.Fatalf("%d files in quarantine, want 1", len(q))
	}
}

// TestReconcileCrashStates builds by hand each state a crash can leave and
// checks Open repairs the index: a file the index does not know (crash
// between rename and commit), a record without a file (crash between unlink
// and commit), and a torn temp file.
func TestReconcileCrashStates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	files := storagenode.Options{InlineMax: -1, PackMax: -1}
	s := openStoreWith(t, dir, files)
	keep, orphan, gone := storetest.ID(1, 1, 0), storetest.ID(2, 2, 0), storetest.ID(3, 3, 0)
	for _, id := range []shard.ID{keep, gone} {
		if _, err := s.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(7, 5000))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := func(id shard.ID) string {
		return filepath.Join(dir, "shards", fmt.Sprintf("%03x", id.Partition()), id.String())
	}
	os.MkdirAll(filepath.Dir(path(orphan)), 0o755)
	os.WriteFile(path(orphan), storetest.MakeShard(8, 100), 0o644)
	os.Remove(path(gone))
	os.WriteFile(filepath.Join(dir, "tmp", "torn"), []byte("half a shard"), 0o644)
	os.WriteFile(filepath.Join(filepath.Dir(path(keep)), "not-a-shard"), nil, 0o644)

	s = openStoreWith(t, dir, files)
	rep, err := s.Check(ctx)
	if err != nil || !rep.OK() || rep.Shards != 1 {
		t.Fatalf("after reconcile: %+v %v", rep, err)
	}
	if _, err := s.Stat(ctx, keep); err != nil {
		t.Fatal(err)
	}
	for _, id := range []shard.ID{orphan, gone} {
		if _, err := s.Stat(ctx, id); !errors.Is(err, shard.ErrNotFound) {
			t.Fatalf("%s: %v", id, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Fatalf("tmp not emptied: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "quarantine")); len(ents) != 2 {
		t.Fatalf("quarantine holds %d files, want the orphan and the stray", len(ents))
	}
}

// TestFullReadChecksWholeFileHash swaps a shard's file for another shard
// whose every block is valid: ranged reads cannot tell, a whole read must.
// Shards as files and in packs; inline: TestScrubQuarantinesRot.
func TestFullReadChecksWholeFileHash(t *testing.T) {
	for name, opts := range map[string]storagenode.Options{"files": {InlineMax: -1, PackMax: -1}, "packs": {InlineMax: -1}} {
		t.Run(name, func(t *testing.T) { testFullReadChecksWholeFileHash(t, opts) })
	}
}

func testFullReadChecksWholeFileHash(t *testing.T, opts storagenode.Options) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStoreWith(t, dir, opts)
	id := storetest.ID(4, 4, 1)
	if _, err := s.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(1, 9000))); err != nil {
		t.Fatal(err)
	}
	p, off, err := s.Locate(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAt(p, off, storetest.MakeShard(2, 9000)); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Open(ctx, id, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, shard.ErrCorrupt) {
		t.Fatalf("whole read of a swapped file: err %v, want shard.ErrCorrupt", err)
	}
	rc, err = s.Open(ctx, id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err != nil {
		t.Fatalf("ranged read: %v", err)
	}
	rc.Close()
}

// noSpaceFS is the OS's file system where writes to new files fail with
// ENOSPC while full is set.
type noSpaceFS struct {
	storagenode.OSFS
	full bool
}

type noSpaceFile struct {
	storagenode.File
	fs *noSpaceFS
}

func (f noSpaceFile) Write(p []byte) (int, error) {
	if f.fs.full {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func (f noSpaceFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.full {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(p, off)
}

func (fs *noSpaceFS) OpenFile(name string) (storagenode.File, error) {
	f, err := fs.OSFS.OpenFile(name)
	if err != nil {
		return nil, err
	}
	return noSpaceFile{f, fs}, nil
}

func (fs *noSpaceFS) Punch(f storagenode.File, off, n int64) error {
	return fs.OSFS.Punch(f.(noSpaceFile).File, off, n)
}

func (fs *noSpaceFS) CreateTempDirect(dir, pattern string, buf []byte) (storagenode.File, error) {
	f, err := fs.OSFS.CreateTempDirect(dir, pattern, buf)
	if err != nil {
		return nil, err
	}
	return noSpaceFile{f, fs}, nil
}

func (fs *noSpaceFS) CreateTemp(dir, pattern string) (storagenode.File, error) {
	f, err := fs.OSFS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return noSpaceFile{f, fs}, nil
}

// TestNoSpaceIsErrFull: a write that meets ENOSPC fails with shard.ErrFull and
// leaves nothing behind; the store takes shards again once there is room.
func TestNoSpaceIsErrFull(t *testing.T) {
	t.Run("files", func(t *testing.T) { testNoSpace(t, storagenode.Options{InlineMax: -1, PackMax: -1}) })
	t.Run("packs", func(t *testing.T) { testNoSpace(t, storagenode.Options{InlineMax: -1}) })
}

func testNoSpace(t *testing.T, opts storagenode.Options) {
	ctx := context.Background()
	fsys := &noSpaceFS{full: true}
	dir := t.TempDir()
	opts.FS = fsys
	s, err := storagenode.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id := storetest.ID(3, 3, 0)
	if _, err := s.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(3, 5000))); !errors.Is(err, shard.ErrFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("put on a full disk: %v, want shard.ErrFull (ENOSPC)", err)
	}
	if _, err := s.Stat(ctx, id); !errors.Is(err, shard.ErrNotFound) {
		t.Fatalf("stat after a failed put: %v", err)
	}
	fsys.full = false
	if _, err := s.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(3, 5000))); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Check(ctx); err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep, err)
	}
}

// The in-process face of the API (Server.Local) passes the suite too.
func TestLocalConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) shard.Store {
		return storagenode.NewServer(openStore(t, t.TempDir()), []byte("k"), nil, nil).Local()
	})
}

// writeAt overwrites len(b) bytes of the file at path at off (damage).
func writeAt(path string, off int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(b, off)
	return err
}
