package etcd

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sherdstore/sherd/metadata"
)

// claimer holds claims/<name> keys under one etcd session's lease.
type claimer struct {
	s     *Store
	sess  *concurrency.Session
	owner string
}

// NewClaimer returns a Claimer whose claims live under a lease of ttl
// (at least 1 s), kept alive until Close or until ctx ends. owner is
// stored in each claim, for operators.
func (s *Store) NewClaimer(ctx context.Context, owner string, ttl time.Duration) (metadata.Claimer, error) {
	secs := max(int(ttl/time.Second), 1)
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(secs), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("claimer: %w", err)
	}
	return &claimer{s: s, sess: sess, owner: owner}, nil
}

func (c *claimer) key(name string) string { return c.s.prefix + "claims/" + name }

// Claim implements metadata.Claimer.
func (c *claimer) Claim(ctx context.Context, name string) (bool, error) {
	k := c.key(name)
	resp, err := c.s.kv.Txn(ctx).If(absent(k)).Then(clientv3.OpPut(k, c.owner, clientv3.WithLease(c.sess.Lease()))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", name, err)
	}
	if resp.Succeeded {
		return true, nil
	}
	// Ours already (a retried claim)?
	kvs := resp.Responses[0].GetResponseRange().Kvs
	return len(kvs) > 0 && clientv3.LeaseID(kvs[0].Lease) == c.sess.Lease(), nil
}

// Release implements metadata.Claimer.
func (c *claimer) Release(ctx context.Context, name string) error {
	k := c.key(name)
	_, err := c.s.kv.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(k), "=", c.sess.Lease())).Then(clientv3.OpDelete(k)).Commit()
	if err != nil {
		return fmt.Errorf("release %s: %w", name, err)
	}
	return nil
}

// Close implements metadata.Claimer.
func (c *claimer) Close() error { return c.sess.Close() }
