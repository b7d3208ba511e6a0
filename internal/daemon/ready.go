package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sherdstore/sherd/metadata"
)

// readiness answers /_sherd/ready from one check at a time whose result
// is reused for ttl: any number of callers (anonymous ones included)
// cost at most one check per ttl, and a caller waits for a check in
// flight rather than starting another.
type readiness struct {
	check func(context.Context) error
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	at      time.Time
	last    error
	running chan struct{} // closed when the check in flight ends; nil when none
}

func newReadiness(check func(context.Context) error, ttl time.Duration, now func() time.Time) *readiness {
	if now == nil {
		now = time.Now
	}
	return &readiness{check: check, ttl: ttl, now: now}
}

// Ready returns the last result if fresh, else waits for the check in
// flight or makes one itself (bounded by its ctx, and by 5 s).
func (r *readiness) Ready(ctx context.Context) error {
	r.mu.Lock()
	if !r.at.IsZero() && r.now().Sub(r.at) < r.ttl {
		err := r.last
		r.mu.Unlock()
		return err
	}
	if wait := r.running; wait != nil {
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return errors.New("readiness check timed out")
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.last
	}
	done := make(chan struct{})
	r.running = done
	r.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := r.check(cctx)
	cancel()
	r.mu.Lock()
	r.last, r.at, r.running = err, r.now(), nil
	if ctx.Err() != nil {
		r.at = time.Time{} // this caller gave up: not a result to keep
	}
	r.mu.Unlock()
	close(done)
	return err
}

// pinger is a metadata store with a cheap liveness read.
type pinger interface {
	Ping(ctx context.Context) error
}

// pingStore checks that the metadata store answers: Ping when it has
// one, else a bucket listing.
func pingStore(ctx context.Context, store metadata.Store) error {
	if p, ok := store.(pinger); ok {
		return p.Ping(ctx)
	}
	_, err := store.ListBuckets(ctx)
	return err
}

// leasesErr: the workers of h and extra that hold no lease.
func leasesErr(h *Healer, extra *Leases) error {
	var errs []error
	if h != nil {
		errs = append(errs, h.Leases.Err())
	}
	if extra != nil {
		errs = append(errs, extra.Err())
	}
	return errors.Join(errs...)
}
