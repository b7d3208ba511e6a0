package etcd

// Read pins: long GETs keep the segments (or the out-of-line segment list
// of the version) they read from the collector.
//
// Invariants:
//   - A pin is a key pins/<lease>/<name> under its gateway's one pin
//     lease; the value is a newline-separated list of at most PinMaxIDs
//     names (segment ids, or metadata.VersionPin of a version whose
//     segment list is out of line). A gateway writes and deletes its pins
//     in batches of at most PinMaxOps keys per transaction, so what one
//     gateway keeps in etcd is bounded by its reads in flight, and a
//     gateway that dies leaks nothing for longer than the lease's TTL.
//   - The collector reads every pin after it decided which gc entries are
//     due and before it deletes their shards; a pin written before that
//     read (linearizable) keeps what it names.
//   - Renewing a lapsed lease fails: the caller must write its pins again
//     under a new lease.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

// PinMaxOps is the most pins one SetPins call writes and deletes
// (etcd refuses transactions of more than 128 operations by default).
const PinMaxOps = 100

// PinMaxIDs is the most names one pin holds.
const PinMaxIDs = 64

func (s *Store) pinPrefix() string { return s.prefix + "pins/" }

func (s *Store) pinKey(lease int64, name string) string {
	return s.pinPrefix() + strconv.FormatInt(lease, 16) + "/" + name
}

// PinLease returns a new lease for a gateway's pins, alive for ttl (at
// least 5 s) unless renewed. Errors: etcd's.
func (s *Store) PinLease(ctx context.Context, ttl time.Duration) (int64, error) {
	lease, err := s.cli.Grant(ctx, max(int64(ttl/time.Second), 5))
	if err != nil {
		return 0, fmt.Errorf("pin lease: %w", err)
	}
	return int64(lease.ID), nil
}

// RenewPinLease restarts the lease's TTL. Errors: etcd's; a lapsed lease
// is not found (its pins are gone).
func (s *Store) RenewPinLease(ctx context.Context, lease int64) error {
	if _, err := s.cli.KeepAliveOnce(ctx, clientv3.LeaseID(lease)); err != nil {
		return fmt.Errorf("renew pin lease: %w", err)
	}
	return nil
}

// SetPins writes the pins in put (pin name → the names it keeps) and
// deletes those in del, under lease, in one transaction. Errors:
// metadata.ErrInvalid for more than PinMaxOps pins, a pin of more than
// PinMaxIDs names or an empty name; etcd's (a lapsed lease among them).
func (s *Store) SetPins(ctx context.Context, lease int64, put map[string][]string, del []string) error {
	if len(put)+len(del) > PinMaxOps {
		return fmt.Errorf("set pins: %d pins in one call: %w", len(put)+len(del), metadata.ErrInvalid)
	}
	ops := make([]clientv3.Op, 0, len(put)+len(del))
	for name, ids := range put {
		if name == "" || len(ids) == 0 || len(ids) > PinMaxIDs {
			return fmt.Errorf("set pins: pin %q of %d names: %w", name, len(ids), metadata.ErrInvalid)
		}
		ops = append(ops, clientv3.OpPut(s.pinKey(lease, name), strings.Join(ids, "\n"), clientv3.WithLease(clientv3.LeaseID(lease))))
	}
	for _, name := range del {
		ops = append(ops, clientv3.OpDelete(s.pinKey(lease, name)))
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := s.kv.Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("set pins: %w", err)
	}
	return nil
}

// Pinned returns every name some pin keeps now.
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
