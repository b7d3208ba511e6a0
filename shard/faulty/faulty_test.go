package faulty_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/shard/faulty"
	"github.com/sherdstore/sherd/shard/memstore"
	"github.com/sherdstore/sherd/shard/storetest"
)

// TestConformance: with no fault set, the wrapper is the store.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) shard.Store { return faulty.Wrap(memstore.New(nil)) })
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	f := faulty.Wrap(memstore.New(nil))
	id := storetest.ID(3, 1, 0)
	file := storetest.MakeShard(5, 5000)
	boom := errors.New("disk on fire")

	// Fail, then clear.
	f.Fail(faulty.Put, boom)
	if _, err := f.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(file)); !errors.Is(err, boom) {
		t.Fatalf("failed put: %v", err)
	}
	if _, err := f.Stat(ctx, id); !errors.Is(err, shard.ErrNotFound) {
		t.Fatalf("a failed put stored: %v", err)
	}
	f.Fail(faulty.Put, nil)
	if _, err := f.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}

	// Stall: a call ended by its context did nothing; a released one runs.
	release := f.Stall(faulty.Delete)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := f.Delete(cctx, id)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled delete: %v", err)
	}
	if _, err := f.Stat(ctx, id); err != nil {
		t.Fatalf("a stalled delete that timed out deleted: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Delete(ctx, id) }()
	select {
	case err := <-done:
		t.Fatalf("stalled delete returned before release: %v", err)
	case <-time.After(20 * time.Millisecond): // it is still waiting (no fault returns this early)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("released delete: %v", err)
	}
	release() // twice is harmless
	if n := f.Calls(faulty.Delete); n != 2 {
		t.Fatalf("%d delete calls counted, want 2", n)
	}

	// Corrupt reads: the bytes differ, the store's do not.
	if _, err := f.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	f.CorruptReads(true)
	rc, err := f.Open(ctx, id, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	if bytes.Equal(got, file) {
		t.Fatal("corrupt reads returned the stored bytes")
	}
	f.CorruptReads(false)
	rc, _ = f.Open(ctx, id, 0, -1)
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, file) {
		t.Fatalf("after corrupt reads off: %v", err)
	}
}
