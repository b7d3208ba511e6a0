package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
		if _, err := s.kv.Delete(ctx, s.prefix+"objsegs/"+e.VersionID+"/", clientv3.WithPrefix()); err != nil {
			return fmt.Errorf("finish gc %s: %w", e.ID, err)
		}
	case metadata.GCAbortedUpload, metadata.GCCompletedUpload:
		if _, err := s.kv.Delete(ctx, s.partPrefix(e.UploadID), clientv3.WithPrefix()); err != nil {
			return fmt.Errorf("finish gc %s: %w", e.ID, err)
		}
	}
	if _, err := s.kv.Delete(ctx, s.gcKey(e.ID)); err != nil {
		return fmt.Errorf("finish gc %s: %w", e.ID, err)
	}
	return nil
}
