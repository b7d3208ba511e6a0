package etcd

// The work queues: repair, gc and events are one queue type.
//
// Invariants:
//   - An item is the key queue/<name>/<due>/<id>: due is the time before
//     which nobody takes it, as 16 hex digits of Unix microseconds, so keys
//     sort by due time. A reader asks for the range of keys due by now and
//     never reads an item that is not due: no backlog of those can hold
//     back the items behind them.
//   - Claiming an item (a deliverer taking it for a while) and scheduling
//     a retry are the same move: one transaction, compared on the
//     revision the item was read at, deletes its key and writes it under
//     its new due time. If the claimer dies, the item is due again when its
//     claim runs out.
//   - Acknowledging is a delete compared on that revision, so an item
//     changed since it was read (re-queued, claimed by another) is kept.
//   - Items are written inside the transactions that create the work (a
//     commit queues its events and gc entries atomically).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

// Queue names.
const (
	queueRepair = "repair"
	queueGC     = "gc"
	queueEvents = "events"
)

func (s *Store) queuePrefix(name string) string { return s.prefix + "queue/" + name + "/" }

// queueKey is the key of item id of queue name, due at due.
func (s *Store) queueKey(name string, due time.Time, id string) string {
	us := due.UnixMicro()
	if us < 0 {
		us = 0
	}
	return fmt.Sprintf("%s%016x/%s", s.queuePrefix(name), us, id)
}

// queuePut is the operation that queues v as item id, due at due.
func (s *Store) queuePut(name string, due time.Time, id string, v any) clientv3.Op {
	return clientv3.OpPut(s.queueKey(name, due, id), mustJSON(v))
}

// queued is an item as read.
type queued struct {
	key   string
	rev   int64
	value []byte
}

// queueDue returns up to limit items of queue name due by now, earliest first.
func (s *Store) queueDue(ctx context.Context, name string, now time.Time, limit int) ([]queued, error) {
	end := s.queueKey(name, now.Add(time.Microsecond), "")
	resp, err := s.kv.Get(ctx, s.queuePrefix(name), clientv3.WithRange(end), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", name, err)
	}
	out := make([]queued, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = queued{key: string(kv.Key), rev: kv.ModRevision, value: kv.Value}
	}
	return out, nil
}

// queueMove re-queues the item read at (key, rev) as id due at due with
// value v, if it is unchanged; it returns the new key and revision.
func (s *Store) queueMove(ctx context.Context, key string, rev int64, name string, due time.Time, id string, v any) (string, int64, bool, error) {
	to := s.queueKey(name, due, id)
	ops := []clientv3.Op{clientv3.OpPut(to, mustJSON(v))}
	if to != key {
		ops = append([]clientv3.Op{clientv3.OpDelete(key)}, ops...)
	}
	resp, err := s.kv.Txn(ctx).If(modRev(key, rev)).Then(ops...).Commit()
	if err != nil {
		return "", 0, false, err
	}
	return to, resp.Header.Revision, resp.Succeeded, nil
}

// queueAck deletes the item read at (key, rev) if it is unchanged.
func (s *Store) queueAck(ctx context.Context, key string, rev int64) (bool, error) {
	if !strings.HasPrefix(key, s.prefix+"queue/") {
		return false, fmt.Errorf("ack %q: %w", key, metadata.ErrInvalid)
	}
	resp, err := s.kv.Txn(ctx).If(modRev(key, rev)).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// QueueLength implements metadata.Store.
func (s *Store) QueueLength(ctx context.Context, name string, now time.Time) (total, due int, err error) {
	resp, err := s.kv.Get(ctx, s.queuePrefix(name), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, 0, fmt.Errorf("queue %s: %w", name, err)
	}
	end := s.queueKey(name, now.Add(time.Microsecond), "")
	dresp, err := s.kv.Get(ctx, s.queuePrefix(name), clientv3.WithRange(end), clientv3.WithCountOnly())
	if err != nil {
		return 0, 0, fmt.Errorf("queue %s: %w", name, err)
	}
	return int(resp.Count), int(dresp.Count), nil
}

// MigrateQueues moves the items of the queues of earlier versions
// (repair/<segment>, gc/<id>, events/<id>) into queue/, each in a
// transaction compared on its revision, so concurrent migrations and
// writers lose nothing. Idempotent; daemons run it at start.
func (s *Store) MigrateQueues(ctx context.Context) error {
	type mover func(v []byte) (name string, due time.Time, id string, err error)
	olds := map[string]mover{
		"repair/": func(v []byte) (string, time.Time, string, error) {
			var e metadata.RepairEntry
			err := json.Unmarshal(v, &e)
			return queueRepair, e.Time, e.Segment.ID + "-" + NewID(), err
		},
		"gc/": func(v []byte) (string, time.Time, string, error) {
			var e metadata.GCEntry
			err := json.Unmarshal(v, &e)
			return queueGC, e.Time, e.ID, err
		},
		"events/": func(v []byte) (string, time.Time, string, error) {
			var e metadata.Event
			err := json.Unmarshal(v, &e)
			due := e.NextTry
			if due.IsZero() {
				due = e.Time
			}
			return queueEvents, due, e.ID, err
		},
	}
	for old, move := range olds {
		for {
			resp, err := s.kv.Get(ctx, s.prefix+old, clientv3.WithPrefix(), clientv3.WithLimit(100))
			if err != nil {
				return fmt.Errorf("migrate %s: %w", old, err)
			}
			for _, kv := range resp.Kvs {
				name, due, id, err := move(kv.Value)
				if err != nil {
					return fmt.Errorf("migrate %s: %w", kv.Key, err)
				}
				if _, err := s.kv.Txn(ctx).If(modRev(string(kv.Key), kv.ModRevision)).
					Then(clientv3.OpDelete(string(kv.Key)), clientv3.OpPut(s.queueKey(name, due, id), string(kv.Value))).Commit(); err != nil {
					return fmt.Errorf("migrate %s: %w", kv.Key, err)
				}
			}
			if !resp.More {
				break
			}
		}
	}
	return nil
}
