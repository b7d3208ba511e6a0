package etcd

// Claims: named, exclusive keys (claims/<name>) under one lease per
// claimer.
//
// Invariants:
//   - A claim key exists only under a live lease of the claimer that
//     wrote it; a lapsed lease (etcd unreachable past the TTL, a stalled
//     process, a revoke) takes every claim of that lease with it, on
//     etcd's clock.
//   - A claimer never stays without a lease while it is open: when its
//     session ends it makes a new one, with capped, jittered backoff,
//     until Close. While it has none, Claim answers ErrNoLease.
//   - Work done under a claim is recorded only by a transaction that
//     compares the claim key's lease with the Fence the claim returned, so
//     a holder whose lease lapsed mid-work cannot record it, even if it
//     got a new lease since.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sherdstore/sherd/internal/backoff"
	"github.com/sherdstore/sherd/metadata"
)

// claimer holds claims/<name> keys under one etcd session's lease,
// renewed by its own goroutine (run) until Close.
type claimer struct {
	s     *Store
	owner string
	ttl   int

	mu     sync.Mutex
	sess   *concurrency.Session // nil while there is no live lease
	health metadata.LeaseHealth

	cancel context.CancelFunc
	done   chan struct{}
}

// claimBackoff is the renewal backoff: the first retry after a lapse is
// immediate, then 200 ms doubling with each failure up to 10 s, spread
// to [d/2, d). (Before internal/backoff the code doubled the already
// spread wait: ×1.5 a failure on average, and no growth at all when the
// random draw was low.)
var claimBackoff = backoff.Policy{Min: 200 * time.Millisecond, Max: 10 * time.Second}

// NewClaimer returns a Claimer whose claims live under a lease of ttl
// (at least 1 s), kept alive and made again after a lapse until Close or
// until ctx ends. owner is stored in each claim, for operators. The first
// lease is made before it returns (its error is returned).
func (s *Store) NewClaimer(ctx context.Context, owner string, ttl time.Duration) (metadata.Claimer, error) {
	c := &claimer{s: s, owner: owner, ttl: max(int(ttl/time.Second), 1), done: make(chan struct{})}
	rctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	sess, err := c.newSession(rctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("claimer: %w", err)
	}
	c.health = metadata.LeaseHealth{Live: true, Since: time.Now()}
	c.sess = sess
	go c.run(rctx, sess)
	return c, nil
}

// newSession grants a lease (bounded by the TTL, so a dead etcd does not
// hold a renewal forever) and keeps it alive under ctx.
func (c *claimer) newSession(ctx context.Context) (*concurrency.Session, error) {
	gctx, cancel := context.WithTimeout(ctx, time.Duration(c.ttl)*time.Second+5*time.Second)
	defer cancel()
	lease, err := c.s.cli.Grant(gctx, int64(c.ttl))
	if err != nil {
		return nil, err
	}
	return concurrency.NewSession(c.s.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(c.ttl), concurrency.WithContext(ctx))
}

// run owns the session: when it ends (lease lapsed or revoked) and the
// claimer is still open, it makes a new one, backing off between tries.
func (c *claimer) run(ctx context.Context, sess *concurrency.Session) {
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
		case <-sess.Done():
		}
		if ctx.Err() != nil {
			c.mu.Lock()
			c.sess = nil
			c.mu.Unlock()
			// Revoke: the claims go at once. (Session.Close would revoke
			// under the cancelled ctx, i.e. not at all.)
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			c.s.cli.Revoke(rctx, sess.Lease())
			cancel()
			return
		}
		c.mu.Lock()
		c.sess = nil
		c.health = metadata.LeaseHealth{Live: false, Since: time.Now(), Lapses: c.health.Lapses + 1, Err: "lease lapsed"}
		c.mu.Unlock()
		c.s.logger.Warn("claimer lost its lease; making a new one", "owner", c.owner)
		wait, failures := time.Duration(0), 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			if c.s.cli.Ctx().Err() != nil {
				return // the client is closed: no lease can be had again
			}
			next, err := c.newSession(ctx)
			if err == nil {
				sess = next
				break
			}
			c.mu.Lock()
			c.health.Err = err.Error()
			c.mu.Unlock()
			failures++
			wait = backoff.Spread(claimBackoff.Delay(failures), rand.Float64)
		}
		c.mu.Lock()
		c.sess = sess
		c.health = metadata.LeaseHealth{Live: true, Since: time.Now(), Lapses: c.health.Lapses}
		c.mu.Unlock()
		c.s.logger.Info("claimer has a lease again", "owner", c.owner)
	}
}

// lease returns the live lease, or ErrNoLease.
func (c *claimer) lease() (clientv3.LeaseID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return 0, metadata.ErrNoLease
	}
	select {
	case <-c.sess.Done(): // lapsed; run has not noticed yet
		return 0, metadata.ErrNoLease
	default:
	}
	return c.sess.Lease(), nil
}

func (c *claimer) key(name string) string { return c.s.claimKey(name) }

func (s *Store) claimKey(name string) string { return s.prefix + "claims/" + name }

// fenceCmp is the compare a fenced write adds to its transaction.
func (s *Store) fenceCmp(f metadata.Fence) clientv3.Cmp {
	return clientv3.Compare(clientv3.LeaseValue(s.claimKey(f.Name)), "=", clientv3.LeaseID(f.Token))
}

// fenceHeld reads whether f is still held (after a fenced transaction
// failed: tells ErrClaimLost from the write's own conflict).
func (s *Store) fenceHeld(ctx context.Context, f metadata.Fence) (bool, error) {
	resp, err := s.kv.Get(ctx, s.claimKey(f.Name))
	if err != nil {
		return false, err
	}
	return len(resp.Kvs) > 0 && resp.Kvs[0].Lease == f.Token, nil
}

// Claim implements metadata.Claimer.
func (c *claimer) Claim(ctx context.Context, name string) (metadata.Fence, bool, error) {
	lease, err := c.lease()
	if err != nil {
		return metadata.Fence{}, false, fmt.Errorf("claim %s: %w", name, err)
	}
	k := c.key(name)
	resp, err := c.s.kv.Txn(ctx).If(absent(k)).Then(clientv3.OpPut(k, c.owner, clientv3.WithLease(lease))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		if isLeaseNotFound(err) {
			return metadata.Fence{}, false, fmt.Errorf("claim %s: %w", name, metadata.ErrNoLease)
		}
		return metadata.Fence{}, false, fmt.Errorf("claim %s: %w", name, err)
	}
	f := metadata.Fence{Name: name, Token: int64(lease)}
	if resp.Succeeded {
		return f, true, nil
	}
	// Ours already (a retried claim)?
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) > 0 && clientv3.LeaseID(kvs[0].Lease) == lease {
		return f, true, nil
	}
	return metadata.Fence{}, false, nil
}

// isLeaseNotFound: etcd refused a put under a lease it no longer has.
func isLeaseNotFound(err error) bool {
	return err != nil && (errors.Is(err, rpctypes.ErrLeaseNotFound) || strings.Contains(err.Error(), "requested lease not found"))
}

// Release implements metadata.Claimer.
func (c *claimer) Release(ctx context.Context, name string) error {
	lease, err := c.lease()
	if err != nil {
		return nil // the lapsed lease took the claim with it
	}
	k := c.key(name)
	_, err = c.s.kv.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(k), "=", lease)).Then(clientv3.OpDelete(k)).Commit()
	if err != nil {
		return fmt.Errorf("release %s: %w", name, err)
	}
	return nil
}

// Health implements metadata.Claimer.
func (c *claimer) Health() metadata.LeaseHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.health
	if h.Live && c.sess != nil {
		select {
		case <-c.sess.Done():
			h.Live, h.Err = false, "lease lapsed"
		default:
		}
	}
	return h
}

// Close implements metadata.Claimer.
func (c *claimer) Close() error {
	c.cancel()
	<-c.done
	return nil
}
