package etcd

// Node membership: nodes/<id>/info is the member record (persistent, so a
// node that is down stays in placement and its shards are repaired rather
// than silently forgotten); nodes/<id>/live is the same record under the
// node's lease (liveness). One watch on nodes/ sees both.

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

type registration struct {
	cancel context.CancelFunc
	done   chan struct{}
	s      *Store
	mu     sync.Mutex
	lease  clientv3.LeaseID
}

func (r *registration) Close() error {
	r.cancel()
	<-r.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	_, err := r.s.cli.Revoke(ctx, lease)
	return err
}

// RegisterNode implements metadata.Store.
func (s *Store) RegisterNode(ctx context.Context, n metadata.Node, ttl time.Duration) (metadata.Registration, error) {
	if n.ID == "" || strings.ContainsAny(n.ID, "/\x00") {
		return nil, fmt.Errorf("register node %q: %w", n.ID, metadata.ErrInvalid)
	}
	n.V = metadata.Version
	if n.State == "" {
		n.State = metadata.NodeActive
	}
	secs := max(1, int64(ttl/time.Second))
	kctx, cancel := context.WithCancel(ctx)
	r := &registration{cancel: cancel, done: make(chan struct{}), s: s}
	ch, err := s.live(kctx, r, n, secs)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("register node %s: %w", n.ID, err)
	}
	go func() {
		defer close(r.done)
		for kctx.Err() == nil {
			for range ch { // drain keepalive answers while the lease lives
			}
			// The keepalive stream ended: the lease expired or etcd was
			// unreachable for too long. Register again until it works.
			for kctx.Err() == nil {
				if ch, err = s.live(kctx, r, n, secs); err == nil {
					break
				}
				select {
				case <-time.After(time.Second):
				case <-kctx.Done():
				}
			}
		}
	}()
	return r, nil
}

// live grants a lease and writes the member and live keys under it.
func (s *Store) live(ctx context.Context, r *registration, n metadata.Node, secs int64) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	lease, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return nil, err
	}
	// Keep an operator's state (draining, removed) across restarts and
	// lease losses: the info key is written only over the revision whose
	// state was read.
	info := s.nodeKey(n.ID, "info")
	for {
		var cur metadata.Node
		rev, found, err := s.getJSON(ctx, info, &cur)
		if err != nil {
			return nil, err
		}
		if found && cur.State != "" {
			n.State = cur.State
		}
		v := mustJSON(n)
		resp, err := s.kv.Txn(ctx).If(modRev(info, rev)).Then(
			clientv3.OpPut(info, v),
			clientv3.OpPut(s.nodeKey(n.ID, "live"), v, clientv3.WithLease(lease.ID)),
		).Commit()
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			break
		}
	}
	r.mu.Lock()
	r.lease = lease.ID
	r.mu.Unlock()
	return s.cli.KeepAlive(ctx, lease.ID)
}

// SetNodeState changes a member's administrative state.
func (s *Store) SetNodeState(ctx context.Context, id string, state metadata.NodeState) error {
	var n metadata.Node
	rev, found, err := s.getJSON(ctx, s.nodeKey(id, "info"), &n)
	if err != nil {
		return fmt.Errorf("node %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("node %s: %w", id, metadata.ErrInvalid)
	}
	n.State = state
	resp, err := s.kv.Txn(ctx).If(modRev(s.nodeKey(id, "info"), rev)).Then(clientv3.OpPut(s.nodeKey(id, "info"), mustJSON(n))).Commit()
	if err != nil {
		return fmt.Errorf("node %s: %w", id, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("node %s: %w", id, metadata.ErrConflict)
	}
	return nil
}

// ListNodes implements metadata.Store.
func (s *Store) ListNodes(ctx context.Context) ([]metadata.Node, error) {
	nodes, _, err := s.listNodes(ctx)
	return nodes, err
}

func (s *Store) listNodes(ctx context.Context) ([]metadata.Node, int64, error) {
	p := s.prefix + "nodes/"
	resp, err := s.kv.Get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list nodes: %w", err)
	}
	byID := map[string]*metadata.Node{}
	live := map[string]bool{}
	for _, kv := range resp.Kvs {
		id, part, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), p), "/")
		switch part {
		case "live":
			live[id] = true
		case "info":
			var n metadata.Node
			if err := json.Unmarshal(kv.Value, &n); err != nil {
				return nil, 0, fmt.Errorf("list nodes: %s: %w", kv.Key, err)
			}
			byID[id] = &n
		}
	}
	out := make([]metadata.Node, 0, len(byID))
	for id, n := range byID {
		n.Live = live[id]
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, resp.Header.Revision, nil
}

// WatchNodes implements metadata.Store. After a watch error (compaction,
// lost connection) it re-lists and watches again.
func (s *Store) WatchNodes(ctx context.Context) (<-chan []metadata.Node, error) {
	nodes, rev, err := s.listNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan []metadata.Node, 1)
	out <- nodes
	send := func(nodes []metadata.Node) bool {
		select {
		case out <- nodes:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), s.prefix+"nodes/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
			for wr := range wch {
				if wr.Err() != nil {
					break
				}
				rev = wr.Header.Revision
				if nodes, _, err = s.listNodes(ctx); err == nil && !send(nodes) {
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			if nodes, rev, err = s.listNodes(ctx); err == nil {
				if !send(nodes) {
					return
				}
			} else {
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
			}
		}
	}()
	return out, nil
}

// Repairs: the repair queue (queue.go), one item per report.

// QueueRepair implements metadata.Store.
func (s *Store) QueueRepair(ctx context.Context, e metadata.RepairEntry) error {
	if e.Segment.ID == "" || strings.ContainsAny(e.Segment.ID, "/\x00") {
		return fmt.Errorf("queue repair: %w", metadata.ErrInvalid)
	}
	e.V = metadata.Version
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	if _, err := s.kv.Txn(ctx).Then(s.queuePut(queueRepair, e.Time, e.Segment.ID+"-"+NewID(), e)).Commit(); err != nil {
		return fmt.Errorf("queue repair %s: %w", e.Segment.ID, err)
	}
	return nil
}

// ListRepairs implements metadata.Store.
func (s *Store) ListRepairs(ctx context.Context, limit int) ([]metadata.RepairEntry, error) {
	items, err := s.queueDue(ctx, queueRepair, s.now(), limit)
	if err != nil {
		return nil, fmt.Errorf("list repairs: %w", err)
	}
	out := make([]metadata.RepairEntry, 0, len(items))
	for _, it := range items {
		var e metadata.RepairEntry
		if err := json.Unmarshal(it.value, &e); err != nil {
			return nil, fmt.Errorf("list repairs: %w", err)
		}
		e.Rev, e.QueueKey = it.rev, it.key
		out = append(out, e)
	}
	return out, nil
}

// DoneRepair implements metadata.Store: a delete compared on the revision
// the entry was read at.
func (s *Store) DoneRepair(ctx context.Context, e metadata.RepairEntry) (bool, error) {
	ok, err := s.queueAck(ctx, e.QueueKey, e.Rev)
	if err != nil {
		return false, fmt.Errorf("done repair %s: %w", e.Segment.ID, err)
	}
	return ok, nil
}

// DeferRepair implements metadata.Store.
func (s *Store) DeferRepair(ctx context.Context, e metadata.RepairEntry, until time.Time) (bool, error) {
	id := e.QueueKey[strings.LastIndexByte(e.QueueKey, '/')+1:]
	_, _, ok, err := s.queueMove(ctx, e.QueueKey, e.Rev, queueRepair, until, id, e)
	if err != nil {
		return false, fmt.Errorf("defer repair %s: %w", e.Segment.ID, err)
	}
	return ok, nil
}
