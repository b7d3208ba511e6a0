package storagenode

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Concurrent updates share commits; each writer returns after its change
// committed; a failing change fails only its own writer.
func TestGroupCommit(t *testing.T) {
	db := openTestDB(t)
	c := &committer{db: db}
	const writers = 50
	const bad = 17
	errBad := errors.New("bad change")
	release := make(chan struct{})
	errs := make([]error, writers)
	var wg sync.WaitGroup
	put := func(i int) {
		defer wg.Done()
		errs[i] = c.update(nil, func(tx *bolt.Tx) error {
			if i == 0 {
				<-release // hold the first commit while the others queue
			}
			if i == bad {
				return errBad
			}
			return tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%02d", i), []byte("v"))
		})
	}
	wg.Add(1)
	go put(0)
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.leading && len(c.queue) == 0 })
	for i := 1; i < writers; i++ {
		wg.Add(1)
		go put(i)
	}
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.queue) == writers-1 })
	close(release)
	wg.Wait()
	for i, err := range errs {
		if (i == bad) != errors.Is(err, errBad) || (i != bad && err != nil) {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	db.View(func(tx *bolt.Tx) error {
		for i := range writers {
			if got := tx.Bucket([]byte("b")).Get(fmt.Appendf(nil, "k%02d", i)); (got != nil) == (i == bad) {
				t.Errorf("key %d stored: %v", i, got != nil)
			}
		}
		return nil
	})
	if b, n := c.stats(); b != 2 || n != writers {
		t.Fatalf("%d commits for %d changes, want 2 (the held one, then all the others)", b, n)
	}
	// A lone writer commits at once, alone.
	if err := c.update(nil, func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("z"), nil) }); err != nil {
		t.Fatal(err)
	}
	if b, _ := c.stats(); b != 3 {
		t.Fatalf("%d commits", b)
	}
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// countingSyncer counts its syncs and fails them on command.
type countingSyncer struct {
	mu    sync.Mutex
	syncs int
	err   error
}

func (s *countingSyncer) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	return s.err
}

// The changes of a batch that name a syncer have it synced once, before
// the commit; when that sync fails, those changes fail and are not
// committed, and the others commit.
func TestGroupCommitSyncs(t *testing.T) {
	db := openTestDB(t)
	c := &committer{db: db}
	good, bad := &countingSyncer{}, &countingSyncer{err: errors.New("EIO")}
	release := make(chan struct{})
	const writers = 30
	errs := make([]error, writers)
	var wg sync.WaitGroup
	put := func(i int, s syncer) {
		defer wg.Done()
		errs[i] = c.update(s, func(tx *bolt.Tx) error {
			if i == 0 {
				<-release
			}
			return tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%02d", i), []byte("v"))
		})
	}
	wg.Add(1)
	go put(0, nil)
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.leading && len(c.queue) == 0 })
	syncerOf := func(i int) syncer {
		switch i % 3 {
		case 1:
			return good
		case 2:
			return bad
		}
		return nil
	}
	for i := 1; i < writers; i++ {
		wg.Add(1)
		go put(i, syncerOf(i))
	}
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.queue) == writers-1 })
	close(release)
	wg.Wait()
	db.View(func(tx *bolt.Tx) error {
		for i := range writers {
			failed := i%3 == 2
			if (errs[i] != nil) != failed {
				t.Errorf("writer %d: %v", i, errs[i])
			}
			if got := tx.Bucket([]byte("b")).Get(fmt.Appendf(nil, "k%02d", i)); (got != nil) == failed {
				t.Errorf("key %d stored: %v", i, got != nil)
			}
		}
		return nil
	})
	if good.syncs != 1 || bad.syncs != 1 {
		t.Fatalf("syncs: good %d, bad %d; want one each for the whole batch", good.syncs, bad.syncs)
	}
}

// openTestDB opens a bbolt file with one bucket, "b", closed at cleanup.
func openTestDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	return db
}
