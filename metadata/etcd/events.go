package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

// Notification events wait in the events queue (queue.go), due at NextTry.

func eventDue(e metadata.Event) time.Time {
	if e.NextTry.IsZero() {
		return e.Time
	}
	return e.NextTry
}

// eventOps are the puts that queue events in a commit.
func (s *Store) eventOps(events []metadata.Event) []clientv3.Op {
	ops := make([]clientv3.Op, 0, len(events))
	for _, e := range events {
		e.V = metadata.Version
		ops = append(ops, s.queuePut(queueEvents, eventDue(e), e.ID, e))
	}
	return ops
}

// ListEvents implements metadata.Store.
func (s *Store) ListEvents(ctx context.Context, now time.Time, after string, limit int) ([]metadata.Event, error) {
	if after != "" && !strings.HasPrefix(after, s.queuePrefix(queueEvents)) {
		return nil, fmt.Errorf("list events after %q: %w", after, metadata.ErrInvalid)
	}
	items, err := s.queueDueAfter(ctx, queueEvents, now, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	out := make([]metadata.Event, 0, len(items))
	for _, it := range items {
		var e metadata.Event
		if err := json.Unmarshal(it.value, &e); err != nil {
			return nil, fmt.Errorf("list events: %s: %w", it.key, err)
		}
		e.Rev, e.QueueKey = it.rev, it.key
		out = append(out, e)
	}
	return out, nil
}

// queueDueAfter is queueDue from the key following after ("": from the
// earliest), for readers that page past items they leave due.
func (s *Store) queueDueAfter(ctx context.Context, name string, now time.Time, after string, limit int) ([]queued, error) {
	if after == "" {
		return s.queueDue(ctx, name, now, limit)
	}
	from, end := after+"\x00", s.queueKey(name, now.Add(time.Microsecond), "")
	if from >= end {
		return nil, nil // nothing due follows it
	}
	resp, err := s.kv.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", name, err)
	}
	out := make([]queued, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = queued{key: string(kv.Key), rev: kv.ModRevision, value: kv.Value}
	}
	return out, nil
}

func validEventID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("event %q: %w", id, metadata.ErrInvalid)
	}
	return nil
}

// UpdateEvent implements metadata.Store.
func (s *Store) UpdateEvent(ctx context.Context, e metadata.Event) (metadata.Event, bool, error) {
	if err := validEventID(e.ID); err != nil {
		return e, false, err
	}
	e.V = metadata.Version
	key, rev, ok, err := s.queueMove(ctx, e.QueueKey, e.Rev, queueEvents, eventDue(e), e.ID, e)
	if err != nil {
		return e, false, fmt.Errorf("update event %s: %w", e.ID, err)
	}
	if ok {
		e.QueueKey, e.Rev = key, rev
	}
	return e, ok, nil
}

// DeleteEvent implements metadata.Store.
func (s *Store) DeleteEvent(ctx context.Context, e metadata.Event) error {
	if err := validEventID(e.ID); err != nil {
		return err
	}
	if _, err := s.queueAck(ctx, e.QueueKey, e.Rev); err != nil {
		return fmt.Errorf("delete event %s: %w", e.ID, err)
	}
	return nil
}

// The dead-letter list of events: deadletter/events/<died>/<id> (died as
// 16 hex digits of Unix microseconds, so the oldest sort first), and the
// number of entries dropped from the full list, deadletter-dropped/events.
//
// Invariants:
//   - An event leaves the queue for the list in one transaction compared
//     on the revision it was read at: it is never both delivered and dead,
//     nor dead twice.
//   - The list holds at most max entries once a move returns: the oldest
//     are deleted in transactions that compare each deleted key and the
//     counter, and add exactly the number deleted to the counter.

func (s *Store) deadPrefix() string     { return s.prefix + "deadletter/events/" }
func (s *Store) deadDroppedKey() string { return s.prefix + "deadletter-dropped/events" }

func (s *Store) deadKey(d metadata.DeadEvent) string {
	us := d.Died.UnixMicro()
	if us < 0 {
		us = 0
	}
	return fmt.Sprintf("%s%016x/%s", s.deadPrefix(), us, d.ID)
}

// maxTrim bounds the deletes of one trimming transaction (etcd takes 128
// operations in one).
const maxTrim = 100

// DeadLetterEvent implements metadata.Store.
func (s *Store) DeadLetterEvent(ctx context.Context, d metadata.DeadEvent, max int) (bool, error) {
	if err := validEventID(d.ID); err != nil {
		return false, err
	}
	if !strings.HasPrefix(d.QueueKey, s.queuePrefix(queueEvents)) {
		return false, fmt.Errorf("dead letter %s: not read from the queue: %w", d.ID, metadata.ErrInvalid)
	}
	if max < 1 {
		max = 1
	}
	d.V = metadata.Version
	resp, err := s.kv.Txn(ctx).If(modRev(d.QueueKey, d.Rev)).
		Then(clientv3.OpDelete(d.QueueKey), clientv3.OpPut(s.deadKey(d), mustJSON(d))).Commit()
	if err != nil {
		return false, fmt.Errorf("dead letter %s: %w", d.ID, err)
	}
	if !resp.Succeeded {
		return false, nil
	}
	return true, s.trimDeadEvents(ctx, max)
}

// trimDeadEvents drops the oldest dead letters past max, counting them.
// The count, the oldest keys and the counter are read in one snapshot: a
// count read before another trimmer's delete, with the keys and counter
// read after it, would drop one too many.
func (s *Store) trimDeadEvents(ctx context.Context, max int) error {
	for tries := 0; tries < 20; tries++ {
		snap, err := s.kv.Txn(ctx).Then(
			clientv3.OpGet(s.deadPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly()),
			clientv3.OpGet(s.deadPrefix(), clientv3.WithPrefix(), clientv3.WithLimit(maxTrim),
				clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)),
			clientv3.OpGet(s.deadDroppedKey())).Commit()
		if err != nil {
			return fmt.Errorf("trim dead letters: %w", err)
		}
		over := int(snap.Responses[0].GetResponseRange().Count) - max
		if over <= 0 {
			return nil
		}
		oldest := snap.Responses[1].GetResponseRange().Kvs
		oldest = oldest[:min(over, len(oldest))]
		var dropped, counterRev int64
		if kvs := snap.Responses[2].GetResponseRange().Kvs; len(kvs) == 1 {
			dropped, _ = strconv.ParseInt(string(kvs[0].Value), 10, 64)
			counterRev = kvs[0].ModRevision
		}
		cmps := []clientv3.Cmp{modRev(s.deadDroppedKey(), counterRev)}
		var ops []clientv3.Op
		for _, kv := range oldest {
			cmps = append(cmps, modRev(string(kv.Key), kv.ModRevision))
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		}
		ops = append(ops, clientv3.OpPut(s.deadDroppedKey(), strconv.FormatInt(dropped+int64(len(oldest)), 10)))
		if _, err := s.kv.Txn(ctx).If(cmps...).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("trim dead letters: %w", err)
		}
		// Succeeded or not (another trimmer won), look again.
	}
	return fmt.Errorf("trim dead letters: too much contention")
}

// ListDeadEvents implements metadata.Store.
func (s *Store) ListDeadEvents(ctx context.Context, limit int) ([]metadata.DeadEvent, error) {
	resp, err := s.kv.Get(ctx, s.deadPrefix(), clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out := make([]metadata.DeadEvent, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var d metadata.DeadEvent
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			return nil, fmt.Errorf("list dead letters: %s: %w", kv.Key, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// DeadEventCount implements metadata.Store.
func (s *Store) DeadEventCount(ctx context.Context) (int, int64, error) {
	resp, err := s.kv.Txn(ctx).Then(
		clientv3.OpGet(s.deadPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(s.deadDroppedKey())).Commit()
	if err != nil {
		return 0, 0, fmt.Errorf("count dead letters: %w", err)
	}
	count := resp.Responses[0].GetResponseRange().Count
	var dropped int64
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) == 1 {
		dropped, _ = strconv.ParseInt(string(kvs[0].Value), 10, 64)
	}
	return int(count), dropped, nil
}
