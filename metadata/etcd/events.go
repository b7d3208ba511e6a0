package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

// Notification events wait under events/<id>, ids time-ordered.

func (s *Store) eventKey(id string) string { return s.prefix + "events/" + id }

// eventOps are the puts that queue events in a commit.
func (s *Store) eventOps(events []metadata.Event) []clientv3.Op {
	ops := make([]clientv3.Op, 0, len(events))
	for _, e := range events {
		e.V = metadata.Version
		ops = append(ops, clientv3.OpPut(s.eventKey(e.ID), mustJSON(e)))
	}
	return ops
}

// ListEvents implements metadata.Store.
func (s *Store) ListEvents(ctx context.Context, limit int) ([]metadata.Event, error) {
	resp, err := s.kv.Get(ctx, s.prefix+"events/", clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	out := make([]metadata.Event, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e metadata.Event
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("list events: %s: %w", kv.Key, err)
		}
		e.Rev = kv.ModRevision
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
	k := s.eventKey(e.ID)
	e.V = metadata.Version
	resp, err := s.kv.Txn(ctx).If(modRev(k, e.Rev), exists(k)).Then(clientv3.OpPut(k, mustJSON(e))).Commit()
	if err != nil {
		return e, false, fmt.Errorf("update event %s: %w", e.ID, err)
	}
	if resp.Succeeded {
		e.Rev = resp.Header.Revision
	}
	return e, resp.Succeeded, nil
}

// DeleteEvent implements metadata.Store.
func (s *Store) DeleteEvent(ctx context.Context, e metadata.Event) error {
	if err := validEventID(e.ID); err != nil {
		return err
	}
	k := s.eventKey(e.ID)
	if _, err := s.kv.Txn(ctx).If(modRev(k, e.Rev)).Then(clientv3.OpDelete(k)).Commit(); err != nil {
		return fmt.Errorf("delete event %s: %w", e.ID, err)
	}
	return nil
}
