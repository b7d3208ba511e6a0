package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

// GCSegments implements metadata.Store.
func (s *Store) GCSegments(ctx context.Context, e metadata.GCEntry) ([]metadata.Segment, error) {
	var segs []metadata.Segment
	switch e.Kind {
	case metadata.GCSegment:
		if e.Segment != nil {
			segs = []metadata.Segment{*e.Segment}
		}
	case metadata.GCObjectSegments:
		all, err := s.readChunks(ctx, e.VersionID, 0)
		if err != nil {
			return nil, fmt.Errorf("gc %s: %w", e.ID, err)
		}
		segs = all
	case metadata.GCAbortedUpload, metadata.GCCompletedUpload:
		parts, err := s.allParts(ctx, e.UploadID)
		if err != nil {
			return nil, fmt.Errorf("gc %s: %w", e.ID, err)
		}
		for _, p := range parts {
			if e.Kind == metadata.GCCompletedUpload && slices.Contains(e.UsedParts, p.Number) {
				continue // the completed object refers to it
			}
			segs = append(segs, p.Segment)
		}
	default:
		return nil, fmt.Errorf("gc %s: kind %q: %w", e.ID, e.Kind, metadata.ErrInvalid)
	}
	segs = slices.DeleteFunc(segs, func(seg metadata.Segment) bool { return seg.ID == "" })
	// The segment record, not the copy in the entry, says where the shards
	// are now (repair and drain move them).
	for i, seg := range segs {
		rec, _, err := s.GetSegment(ctx, seg.ID)
		switch {
		case err == nil:
			segs[i] = rec
		case !errors.Is(err, metadata.ErrNoSuchSegment):
			return nil, fmt.Errorf("gc %s: %w", e.ID, err)
		}
	}
	return segs, nil
}

// FinishGC implements metadata.Store.
func (s *Store) FinishGC(ctx context.Context, e metadata.GCEntry, segs []metadata.Segment) error {
	for a := 0; a < len(segs); a += maxTxnOps {
		var ops []clientv3.Op
		for _, seg := range segs[a:min(a+maxTxnOps, len(segs))] {
			ops = append(ops, clientv3.OpDelete(s.segidxKey(seg)))
		}
		if _, err := s.kv.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("finish gc %s: %w", e.ID, err)
		}
	}
	switch e.Kind {
	case metadata.GCObjectSegments:
		if _, err := s.kv.Txn(ctx).Then(clientv3.OpDelete(s.prefix+"objsegs/"+e.VersionID+"/", clientv3.WithPrefix()),
			clientv3.OpDelete(s.pendingKey(e.VersionID))).Commit(); err != nil {
			return fmt.Errorf("finish gc %s: %w", e.ID, err)
		}
	case metadata.GCAbortedUpload, metadata.GCCompletedUpload:
		if _, err := s.kv.Delete(ctx, s.partPrefix(e.UploadID), clientv3.WithPrefix()); err != nil {
			return fmt.Errorf("finish gc %s: %w", e.ID, err)
		}
	}
	if !strings.HasPrefix(e.QueueKey, s.queuePrefix(queueGC)) {
		return fmt.Errorf("finish gc %s: not a listed entry: %w", e.ID, metadata.ErrInvalid)
	}
	if _, err := s.kv.Delete(ctx, e.QueueKey); err != nil {
		return fmt.Errorf("finish gc %s: %w", e.ID, err)
	}
	return nil
}

// Deferred deletes: gcnode/<node>/<segment>.<index>.

func (s *Store) gcnodePrefix(node string) string { return s.prefix + "gcnode/" + node + "/" }
func (s *Store) gcnodeKey(r metadata.ShardRef) string {
	return fmt.Sprintf("%s%s.%d", s.gcnodePrefix(r.Node), r.Segment, r.Index)
}

func validRef(r metadata.ShardRef) bool {
	return r.Node != "" && r.Segment != "" && !strings.ContainsAny(r.Node, "/\x00") && !strings.ContainsAny(r.Segment, "/\x00.") && r.Index >= 0
}

// DeferDeletes implements metadata.Store.
func (s *Store) DeferDeletes(ctx context.Context, refs []metadata.ShardRef) error {
	for a := 0; a < len(refs); a += maxTxnOps {
		var ops []clientv3.Op
		for _, r := range refs[a:min(a+maxTxnOps, len(refs))] {
			if !validRef(r) {
				return fmt.Errorf("defer delete %+v: %w", r, metadata.ErrInvalid)
			}
			ops = append(ops, clientv3.OpPut(s.gcnodeKey(r), mustJSON(r)))
		}
		if _, err := s.kv.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("defer deletes: %w", err)
		}
	}
	return nil
}

// ListDeferredDeletes implements metadata.Store.
func (s *Store) ListDeferredDeletes(ctx context.Context, node string, limit int) ([]metadata.ShardRef, error) {
	resp, err := s.kv.Get(ctx, s.gcnodePrefix(node), clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list deferred deletes of %s: %w", node, err)
	}
	out := make([]metadata.ShardRef, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r metadata.ShardRef
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("list deferred deletes of %s: %w", node, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// DeferredDeleteNodes implements metadata.Store: one key-only range read
// per node found, each skipping past that node's keys.
func (s *Store) DeferredDeleteNodes(ctx context.Context) ([]string, error) {
	base := s.prefix + "gcnode/"
	end := clientv3.GetPrefixRangeEnd(base)
	var nodes []string
	for start := base; start < end; {
		resp, err := s.kv.Get(ctx, start, clientv3.WithRange(end), clientv3.WithLimit(1), clientv3.WithKeysOnly())
		if err != nil {
			return nil, fmt.Errorf("deferred delete nodes: %w", err)
		}
		if len(resp.Kvs) == 0 {
			break
		}
		node, _, _ := strings.Cut(strings.TrimPrefix(string(resp.Kvs[0].Key), base), "/")
		nodes = append(nodes, node)
		start = clientv3.GetPrefixRangeEnd(s.gcnodePrefix(node))
	}
	return nodes, nil
}

// DropDeferredDeletes implements metadata.Store.
func (s *Store) DropDeferredDeletes(ctx context.Context, refs []metadata.ShardRef) error {
	for a := 0; a < len(refs); a += maxTxnOps {
		var ops []clientv3.Op
		for _, r := range refs[a:min(a+maxTxnOps, len(refs))] {
			ops = append(ops, clientv3.OpDelete(s.gcnodeKey(r)))
		}
		if _, err := s.kv.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("drop deferred deletes: %w", err)
		}
	}
	return nil
}
