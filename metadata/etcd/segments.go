package etcd

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

func (s *Store) segidxKeyID(id string) string {
	return s.segidxKey(metadata.Segment{ID: id})
}

// GetSegment implements metadata.Store.
func (s *Store) GetSegment(ctx context.Context, id string) (metadata.Segment, int64, error) {
	var seg metadata.Segment
	if len(id) < 3 {
		return seg, 0, fmt.Errorf("get segment %q: %w", id, metadata.ErrNoSuchSegment)
	}
	rev, ok, err := s.getJSON(ctx, s.segidxKeyID(id), &seg)
	if err != nil {
		return seg, 0, fmt.Errorf("get segment %s: %w", id, err)
	}
	if !ok {
		return seg, 0, fmt.Errorf("get segment %s: %w", id, metadata.ErrNoSuchSegment)
	}
	return seg, rev, nil
}

// UpdateSegment implements metadata.Store.
func (s *Store) UpdateSegment(ctx context.Context, seg metadata.Segment, rev int64) error {
	if len(seg.ID) < 3 || rev <= 0 {
		return fmt.Errorf("update segment %q: %w", seg.ID, metadata.ErrInvalid)
	}
	key := s.segidxKey(seg)
	resp, err := s.kv.Txn(ctx).If(modRev(key, rev)).Then(clientv3.OpPut(key, mustJSON(seg))).Commit()
	if err != nil {
		return fmt.Errorf("update segment %s: %w", seg.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("update segment %s: %w", seg.ID, metadata.ErrConflict)
	}
	return nil
}
