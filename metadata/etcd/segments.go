package etcd

import (
	"context"
	"encoding/json"
	"errors"
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
func (s *Store) UpdateSegment(ctx context.Context, seg metadata.Segment, rev int64, fence metadata.Fence) error {
	if len(seg.ID) < 3 || rev <= 0 {
		return fmt.Errorf("update segment %q: %w", seg.ID, metadata.ErrInvalid)
	}
	key := s.segidxKey(seg)
	cmps := []clientv3.Cmp{modRev(key, rev)}
	if fence.Name != "" {
		cmps = append(cmps, s.fenceCmp(fence))
	}
	resp, err := s.kv.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, mustJSON(seg))).Commit()
	if err != nil {
		return fmt.Errorf("update segment %s: %w", seg.ID, err)
	}
	if !resp.Succeeded {
		if fence.Name != "" {
			if held, err := s.fenceHeld(ctx, fence); err == nil && !held {
				return fmt.Errorf("update segment %s: %w", seg.ID, metadata.ErrClaimLost)
			}
		}
		return fmt.Errorf("update segment %s: %w", seg.ID, metadata.ErrConflict)
	}
	return nil
}

// LeafSegments implements metadata.Store.
func (s *Store) LeafSegments(ctx context.Context, leaf uint32) ([]metadata.Segment, error) {
	if leaf >= 1<<20 {
		return nil, fmt.Errorf("leaf segments %d: %w", leaf, metadata.ErrInvalid)
	}
	out, err := s.segmentsUnder(ctx, fmt.Sprintf("%ssegidx/%03x/%05x", s.prefix, leaf>>8, leaf))
	if err != nil {
		return nil, fmt.Errorf("leaf segments %05x: %w", leaf, err)
	}
	return out, nil
}

// segmentsUnder reads the segment records whose keys start with prefix.
func (s *Store) segmentsUnder(ctx context.Context, prefix string) ([]metadata.Segment, error) {
	resp, err := s.kv.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]metadata.Segment, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var seg metadata.Segment
		if err := json.Unmarshal(kv.Value, &seg); err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		out = append(out, seg)
	}
	return out, nil
}

// scanPage is the number of records ScanSegments reads per request.
const scanPage = 1000

// ScanSegments implements metadata.Store: pages of scanPage records, all
// read at the revision of the first page.
func (s *Store) ScanSegments(ctx context.Context, f func(metadata.Segment) error) (int64, error) {
	prefix := s.prefix + "segidx/"
	end := clientv3.GetPrefixRangeEnd(prefix)
	from, rev := prefix, int64(0)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(scanPage)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.kv.Get(ctx, from, opts...)
		if err != nil {
			return 0, fmt.Errorf("scan segments: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			var seg metadata.Segment
			if err := json.Unmarshal(kv.Value, &seg); err != nil {
				return 0, fmt.Errorf("scan segments: %s: %w", kv.Key, err)
			}
			if err := f(seg); err != nil {
				return 0, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// errNoPrevious: a watch event lacks the record's previous value.
var errNoPrevious = errors.New("segment change without its previous value")

// WatchSegments implements metadata.Store.
func (s *Store) WatchSegments(ctx context.Context, rev int64, f func([]metadata.SegmentChange)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, s.prefix+"segidx/", clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
	decode := func(v []byte) (*metadata.Segment, error) {
		var seg metadata.Segment
		if err := json.Unmarshal(v, &seg); err != nil {
			return nil, err
		}
		return &seg, nil
	}
	for wr := range wch {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("watch segments: %w", err)
		}
		changes := make([]metadata.SegmentChange, 0, len(wr.Events))
		for _, ev := range wr.Events {
			var c metadata.SegmentChange
			var err error
			if ev.PrevKv != nil {
				if c.Old, err = decode(ev.PrevKv.Value); err != nil {
					return fmt.Errorf("watch segments: %s: %w", ev.Kv.Key, err)
				}
			} else if ev.Type == clientv3.EventTypeDelete || ev.Kv.Version > 1 {
				return fmt.Errorf("watch segments: %s: %w", ev.Kv.Key, errNoPrevious)
			}
			if ev.Type == clientv3.EventTypePut {
				if c.New, err = decode(ev.Kv.Value); err != nil {
					return fmt.Errorf("watch segments: %s: %w", ev.Kv.Key, err)
				}
			}
			changes = append(changes, c)
		}
		f(changes)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("watch segments: %w", errors.New("watch closed"))
}
