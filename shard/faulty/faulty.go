// Package faulty wraps a shard.Store with faults injected on command:
// an operation that fails, one that stalls until released (or its context
// ends), and reads that return flipped bits. Tests of the layers above use
// it to play a failing disk, a hung node or bitrot in transit.
//
// Invariants:
//   - With no fault set, every call goes to the wrapped store unchanged
//     (the wrapper passes shard/storetest).
//   - A stalled call has not reached the wrapped store: when released it
//     runs; when its context ends first it returns ctx.Err() and nothing
//     happened.
package faulty

import (
	"context"
	"io"
	"sync"

	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/shard"
)

// Op names an operation of shard.Store.
type Op string

// The operations of shard.Store.
const (
	Put      Op = "put"
	Replace  Op = "replace"
	Open     Op = "open"
	Stat     Op = "stat"
	Delete   Op = "delete"
	Leaf     Op = "leaf"
	Children Op = "children"
)

// Store is a shard.Store with faults. Safe for concurrent use.
type Store struct {
	inner shard.Store

	mu      sync.Mutex // guards the fields below
	fail    map[Op]error
	stall   map[Op]chan struct{}
	corrupt bool
	calls   map[Op]int
}

// Wrap returns inner with no fault set.
func Wrap(inner shard.Store) *Store {
	return &Store{inner: inner, fail: map[Op]error{}, stall: map[Op]chan struct{}{}, calls: map[Op]int{}}
}

var _ shard.Store = (*Store)(nil)

// Fail makes every later call of op return err (nil: calls go through
// again).
func (f *Store) Fail(op Op, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, op)
	} else {
		f.fail[op] = err
	}
}

// Stall makes later calls of op wait until release is called (or their
// context ends). Calling release again does nothing.
func (f *Store) Stall(op Op) (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.stall[op] = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.stall[op] == ch {
				delete(f.stall, op)
			}
			f.mu.Unlock()
			close(ch)
		})
	}
}

// CorruptReads makes readers from Open flip the low bit of the first byte
// of every Read (on: true) or stop doing so.
func (f *Store) CorruptReads(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.corrupt = on
}

// Calls is how many calls of op were made (including failed and stalled
// ones).
func (f *Store) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// enter counts a call of op, waits out a stall and returns the fault to
// return, if any.
func (f *Store) enter(ctx context.Context, op Op) error {
	f.mu.Lock()
	f.calls[op]++
	ch := f.stall[op]
	f.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[op]
}

// Put implements shard.Store.
func (f *Store) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	if err := f.enter(ctx, Put); err != nil {
		return shard.Info{}, err
	}
	return f.inner.Put(ctx, id, blockLen, r)
}

// Replace implements shard.Store.
func (f *Store) Replace(ctx context.Context, id shard.ID, blockLen int, r io.Reader, want string) (shard.Info, error) {
	if err := f.enter(ctx, Replace); err != nil {
		return shard.Info{}, err
	}
	return f.inner.Replace(ctx, id, blockLen, r, want)
}

// Open implements shard.Store.
func (f *Store) Open(ctx context.Context, id shard.ID, off, n int64) (io.ReadCloser, error) {
	if err := f.enter(ctx, Open); err != nil {
		return nil, err
	}
	rc, err := f.inner.Open(ctx, id, off, n)
	if err != nil {
		return nil, err
	}
	return &reader{ReadCloser: rc, f: f}, nil
}

// reader flips bits while the store's CorruptReads is on.
type reader struct {
	io.ReadCloser
	f *Store
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.f.mu.Lock()
	corrupt := r.f.corrupt
	r.f.mu.Unlock()
	if corrupt && n > 0 {
		p[0] ^= 1
	}
	return n, err
}

// Stat implements shard.Store.
func (f *Store) Stat(ctx context.Context, id shard.ID) (shard.Info, error) {
	if err := f.enter(ctx, Stat); err != nil {
		return shard.Info{}, err
	}
	return f.inner.Stat(ctx, id)
}

// Delete implements shard.Store.
func (f *Store) Delete(ctx context.Context, id shard.ID) error {
	if err := f.enter(ctx, Delete); err != nil {
		return err
	}
	return f.inner.Delete(ctx, id)
}

// Leaf implements shard.Store.
func (f *Store) Leaf(ctx context.Context, leaf uint32) ([]shard.Info, error) {
	if err := f.enter(ctx, Leaf); err != nil {
		return nil, err
	}
	return f.inner.Leaf(ctx, leaf)
}

// Children implements shard.Store.
func (f *Store) Children(ctx context.Context, level int, idx uint32) ([merkle.Fanout]merkle.Digest, error) {
	if err := f.enter(ctx, Children); err != nil {
		return [merkle.Fanout]merkle.Digest{}, err
	}
	return f.inner.Children(ctx, level, idx)
}
