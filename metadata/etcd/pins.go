package etcd

// Read pins: a long GET keeps the segments it reads from the collector.
//
// Invariants:
//   - A pin is a set of keys pins/<lease>/<n> under one etcd lease, each
//     value a newline-separated list of at most pinChunk segment ids. The
//     keys are written in one transaction, so a pin is seen whole or not
//     at all, and they vanish with the lease: a gateway that dies leaks
//     nothing for longer than the pin's TTL.
//   - The collector reads every pin after it decided which gc entries are
//     due and before it deletes their shards; a pin written before that
//     read (linearizable) keeps its segments. A reader that pins within
//     the grace of its start is therefore never cut by collection: the
//     entry of a segment it reads was first seen after the read began.
//   - Renew only extends the lease; Unpin revokes it. Both are idempotent.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

// pinChunk is how many segment ids one pin key holds (~33 bytes each).
const pinChunk = 1000

func (s *Store) pinPrefix() string { return s.prefix + "pins/" }

// Pin keeps the shards of segs from collection for ttl (at least 5 s),
// until Renew extends it or Unpin ends it; the id names the pin. Errors: metadata.ErrInvalid for
// an empty list; etcd's.
func (s *Store) Pin(ctx context.Context, segs []string, ttl time.Duration) (int64, error) {
	if len(segs) == 0 {
		return 0, fmt.Errorf("pin: no segments: %w", metadata.ErrInvalid)
	}
	secs := max(int64(ttl/time.Second), 5)
	lease, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return 0, fmt.Errorf("pin: %w", err)
	}
	base := s.pinPrefix() + strconv.FormatInt(int64(lease.ID), 16) + "/"
	var ops []clientv3.Op
	for i := 0; i < len(segs); i += pinChunk {
		chunk := segs[i:min(i+pinChunk, len(segs))]
		ops = append(ops, clientv3.OpPut(base+strconv.Itoa(i/pinChunk), strings.Join(chunk, "\n"), clientv3.WithLease(lease.ID)))
	}
	if _, err := s.kv.Txn(ctx).Then(ops...).Commit(); err != nil {
		s.cli.Revoke(context.WithoutCancel(ctx), lease.ID)
		return 0, fmt.Errorf("pin: %w", err)
	}
	return int64(lease.ID), nil
}

// Renew restarts a pin's TTL. Errors: etcd's (a lapsed pin's lease is
// not found: the segments are no longer kept).
func (s *Store) Renew(ctx context.Context, id int64) error {
	if _, err := s.cli.KeepAliveOnce(ctx, clientv3.LeaseID(id)); err != nil {
		return fmt.Errorf("renew pin: %w", err)
	}
	return nil
}

// Unpin ends a pin.
func (s *Store) Unpin(ctx context.Context, id int64) error {
	if _, err := s.cli.Revoke(ctx, clientv3.LeaseID(id)); err != nil && !strings.Contains(err.Error(), "lease not found") {
		return fmt.Errorf("unpin: %w", err)
	}
	return nil
}

// Pinned returns the ids of every segment some pin keeps now.
func (s *Store) Pinned(ctx context.Context) (map[string]bool, error) {
	resp, err := s.kv.Get(ctx, s.pinPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("pins: %w", err)
	}
	out := map[string]bool{}
	for _, kv := range resp.Kvs {
		for _, id := range strings.Split(string(kv.Value), "\n") {
			if id != "" {
				out[id] = true
			}
		}
	}
	return out, nil
}
