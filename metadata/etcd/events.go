package etcd

import (
	"context"
	"encoding/json"
	"fmt"
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
func (s *Store) ListEvents(ctx context.Context, now time.Time, limit int) ([]metadata.Event, error) {
	items, err := s.queueDue(ctx, queueEvents, now, limit)
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
