package storagenode_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/shard/storetest"
	"github.com/sherdstore/sherd/storagenode"
	"github.com/sherdstore/sherd/storagenode/crashfs"
)

// TestCrashLosesNoAcknowledgedShard runs writes, overwrites (Replace) and
// deletes from 4 goroutines on a store over crashfs, crashes it at a
// random point (everything not fsynced is lost, unlike a SIGKILL, which
// keeps the page cache), reopens it, and checks: every shard acknowledged
// before the crash reads back as acknowledged (or as the one operation on
// it that was in flight), nothing else appeared, and the index matches
// the files. 12 crashes, chained on the same store. Shards as files, and
// in packs (inline shards live in the index, on the OS's file system).
func TestCrashLosesNoAcknowledgedShard(t *testing.T) {
	t.Run("files", func(t *testing.T) { testCrash(t, storagenode.Options{InlineMax: -1, PackMax: -1}) })
	t.Run("packs", func(t *testing.T) { testCrash(t, storagenode.Options{InlineMax: -1}) })
}

func testCrash(t *testing.T, opts storagenode.Options) {
	ctx := context.Background()
	indexDir := t.TempDir()
	fsys := crashfs.New()
	// The node's data directory exists (the daemon creates it); the store
	// makes what it creates under it durable itself.
	if err := fsys.MkdirAll("/data"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	open := func(f *crashfs.FS) *storagenode.Store {
		o := opts
		o.FS, o.IndexDir = f, indexDir
		s, err := storagenode.Open("/data/shards", o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open(fsys)
	// state: shard id → its acknowledged hash ("" = deleted / absent);
	// inflight: the hash (or "" for a delete) of the operation in flight
	// at the crash.
	state := map[string]string{}
	rng := rand.New(rand.NewPCG(7, 7))
	for crash := range 12 {
		var mu sync.Mutex
		crashed := false
		inflight := map[string]string{}
		acks := 0
		target := 20 + rng.IntN(200)
		reached := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			seed := rng.Uint64()
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, uint64(w)))
				for i := 0; ; i++ {
					id := storetest.ID(r.Uint32N(1<<16), w<<16|r.IntN(40), 0) // 40 ids per worker: reused
					data := storetest.MakeShard(r.Uint64(), r.IntN(12000))
					want := storetest.Hash(data)
					mu.Lock()
					if crashed {
						mu.Unlock()
						return
					}
					cur := state[id.String()]
					mu.Unlock()
					var err error
					switch op := r.IntN(10); {
					case op < 5 && cur == "":
						_, err = s.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(data))
					case op < 8:
						_, err = s.Replace(ctx, id, storetest.BlockLen(), bytes.NewReader(data), want)
					default:
						want = ""
						err = s.Delete(ctx, id)
						if errors.Is(err, shard.ErrNotFound) {
							err = nil
						}
					}
					mu.Lock()
					if crashed {
						inflight[id.String()] = want
						mu.Unlock()
						return
					}
					if err != nil {
						mu.Unlock()
						t.Errorf("%s before the crash: %v", id, err)
						return
					}
					state[id.String()] = want
					if acks++; acks == target {
						close(reached)
					}
					mu.Unlock()
				}
			}()
		}
		<-reached
		mu.Lock()
		crashed = true
		fsys = fsys.Crash()
		mu.Unlock()
		wg.Wait()
		s.Close()

		s = open(fsys)
		for id, want := range state {
			sid, _ := shard.ParseID(id)
			info, err := s.Stat(ctx, sid)
			got := info.Hash
			if errors.Is(err, shard.ErrNotFound) {
				got = ""
			} else if err != nil {
				t.Fatal(err)
			}
			if alt, ok := inflight[id]; got != want && !(ok && got == alt) {
				t.Fatalf("crash %d: %s is %q, acknowledged %q (in flight: %q)", crash, id, got, want, inflight[id])
			}
			state[id] = got
		}
		for id, alt := range inflight {
			if _, known := state[id]; !known {
				state[id] = ""
				sid, _ := shard.ParseID(id)
				if info, err := s.Stat(ctx, sid); err == nil {
					if info.Hash != alt {
						t.Fatalf("crash %d: %s appeared with %q", crash, id, info.Hash)
					}
					state[id] = info.Hash
				}
			}
		}
		rep, err := s.Check(ctx)
		if err != nil || !rep.OK() {
			t.Fatalf("crash %d: check after reopening: %+v %v", crash, rep, err)
		}
		t.Logf("crash %d after %d acknowledged operations: %d shards, %d in flight, recovery clean", crash, acks, rep.Shards, len(inflight))
	}
	s.Close()
}

// TestStoreOnCrashFSConformance runs the shard store conformance suite on
// a store whose files are in crashfs (so the model is the one the crash
// test relies on).
func TestStoreOnCrashFSConformance(t *testing.T) {
	t.Run("files", func(t *testing.T) { testCrashFSConformance(t, storagenode.Options{InlineMax: -1, PackMax: -1}) })
	t.Run("packs", func(t *testing.T) { testCrashFSConformance(t, storagenode.Options{InlineMax: -1}) })
}

func testCrashFSConformance(t *testing.T, opts storagenode.Options) {
	storetest.Run(t, func(t *testing.T) shard.Store {
		f := crashfs.New()
		f.MkdirAll("/data")
		o := opts
		o.FS, o.IndexDir = f, t.TempDir()
		s, err := storagenode.Open("/data/shards", o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			rep, err := s.Check(context.Background())
			if err != nil || !rep.OK() {
				t.Errorf("check after test: %+v %v", rep, err)
			}
			s.Close()
		})
		return s
	})
}
