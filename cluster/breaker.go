package cluster

// Circuit breakers (DESIGN.md §9): a node that stalls or keeps failing is
// skipped until a probe of its health endpoint succeeds.
//
// Invariants:
//   - One stall (a shard stream with no progress for the stall timeout)
//     opens the breaker at once: it cost a caller seconds. So does a
//     refused connection: nothing listens there. Other node
//     faults (refused connections, 5xx) open it after three in a row. An
//     answer that is the caller's fault or the shard's (not found,
//     corrupt, invalid) and a caller cancelling are not node faults.
//   - While open, writes place no shard on the node unless that is the
//     only way to reach the write quorum, and reads try its shards last.
//   - A node that answers "disk full" (shard.ErrFull) is not faulty:
//     it still reads. It is marked full for fullFor, during which writes
//     and repairs place no new shard on it.
//   - At most one probe per node is in flight; a failed probe doubles the
//     wait before the next (1 s up to 30 s). The first success closes it.

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/internal/backoff"
	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/shard"
)

const (
	breakerFaults = 3
	// fullFor is how long a node that answered ErrFull gets no new shard.
	fullFor = 30 * time.Second
)

// breakerBackoff is the wait before the next probe of an open breaker:
// 1 s after it opened, doubling with each failed probe, at most 30 s.
var breakerBackoff = backoff.Policy{Min: time.Second, Max: 30 * time.Second}

// BreakerState is a node's circuit breaker as seen from one process.
type BreakerState struct {
	Open   bool
	Faults int       // node faults in a row
	Retry  time.Time // when open: the next probe
	Opened int64     // times it opened
}

// breaker is one node's circuit breaker. The caller passes the time.
type breaker struct {
	mu      sync.Mutex
	s       BreakerState
	failed  int // probes failed since it opened, plus one
	probing bool
	full    time.Time // until when the node is taken as full
}

// markFull records an ErrFull answer.
func (b *breaker) markFull(now time.Time) {
	b.mu.Lock()
	b.full = now.Add(fullFor)
	b.mu.Unlock()
}

// isFull says whether the node answered ErrFull within fullFor.
func (b *breaker) isFull(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return now.Before(b.full)
}

// allow says whether the node may be called.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.s.Open
}

// result records a call's outcome: stalled, a node fault, or fine.
func (b *breaker) result(now time.Time, stalled, fault bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !stalled && !fault {
		b.s.Faults = 0
		return
	}
	b.s.Faults++
	if !b.s.Open && (stalled || b.s.Faults >= breakerFaults) {
		b.s.Open = true
		b.s.Opened++
		b.failed = 1
		b.s.Retry = now.Add(breakerBackoff.Delay(b.failed))
	}
}

// probeDue says whether a probe should start now, and if so marks it in
// flight; the caller reports it to probed.
func (b *breaker) probeDue(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.s.Open || b.probing || now.Before(b.s.Retry) {
		return false
	}
	b.probing = true
	return true
}

// probed records a probe's outcome.
func (b *breaker) probed(now time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if ok {
		b.s = BreakerState{Opened: b.s.Opened}
		return
	}
	b.failed++
	b.s.Retry = now.Add(breakerBackoff.Delay(b.failed))
}

func (b *breaker) state() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.s
}

// nodeFault says whether err from a call made with ctx is the node's
// fault, and whether it was a stall. Cancellation by the caller is not.
func nodeFault(ctx context.Context, err error) (fault, stalled bool) {
	if err == nil {
		return false, false
	}
	if errors.Is(err, erasure.ErrStalled) || errors.Is(context.Cause(ctx), erasure.ErrStalled) {
		return true, true
	}
	if ctx.Err() != nil {
		return false, false
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true, true // nothing listens: down for sure, not worth three tries
	}
	for _, s := range []error{shard.ErrNotFound, shard.ErrInvalid, shard.ErrCorrupt, shard.ErrExists, shard.ErrFull, io.ErrUnexpectedEOF} {
		if errors.Is(err, s) {
			return false, false
		}
	}
	return true, false
}

// Pinger is what a shard store that can be probed also does (the HTTP
// client: the node's health endpoint). A store without it is probed by
// waiting out the backoff.
type Pinger interface {
	Health(ctx context.Context) error
}

// guarded wraps a node's shard store: every call's outcome feeds the
// node's breaker, and calls that do not stream get a deadline (stream
// calls are bounded by progress, by their callers).
type guarded struct {
	shard.Store
	b       *breaker
	now     func() time.Time
	timeout time.Duration
}

func (g *guarded) record(ctx context.Context, err error) {
	if errors.Is(err, shard.ErrFull) {
		g.b.markFull(g.now())
	}
	fault, stalled := nodeFault(ctx, err)
	g.b.result(g.now(), stalled, fault)
}

func (g *guarded) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	info, err := g.Store.Put(ctx, id, blockLen, r)
	g.record(ctx, err)
	return info, err
}

func (g *guarded) Replace(ctx context.Context, id shard.ID, blockLen int, r io.Reader, want string) (shard.Info, error) {
	info, err := g.Store.Replace(ctx, id, blockLen, r, want)
	g.record(ctx, err)
	return info, err
}

func (g *guarded) Open(ctx context.Context, id shard.ID, off, n int64) (io.ReadCloser, error) {
	rc, err := g.Store.Open(ctx, id, off, n)
	g.record(ctx, err)
	if err != nil {
		return nil, err
	}
	return &guardedReader{ReadCloser: rc, g: g, ctx: ctx}, nil
}

// guardedReader reports a read that failed for the node's fault.
type guardedReader struct {
	io.ReadCloser
	g    *guarded
	ctx  context.Context
	done bool
}

func (r *guardedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF && !r.done {
		r.done = true
		r.g.record(r.ctx, err)
	}
	return n, err
}

func (g *guarded) Stat(ctx context.Context, id shard.ID) (shard.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	info, err := g.Store.Stat(ctx, id)
	g.record(ctx, err)
	return info, err
}

func (g *guarded) Delete(ctx context.Context, id shard.ID) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	err := g.Store.Delete(ctx, id)
	g.record(ctx, err)
	return err
}

func (g *guarded) Leaf(ctx context.Context, leaf uint32) ([]shard.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	out, err := g.Store.Leaf(ctx, leaf)
	g.record(ctx, err)
	return out, err
}

func (g *guarded) Children(ctx context.Context, level int, idx uint32) ([merkle.Fanout]merkle.Digest, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	out, err := g.Store.Children(ctx, level, idx)
	g.record(ctx, err)
	return out, err
}

// Unwrap returns the store the guard wraps (for optional interfaces such
// as the HTTP client's Verify).
func (g *guarded) Unwrap() shard.Store { return g.Store }
