package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

// CreateUpload implements metadata.Store.
func (s *Store) CreateUpload(ctx context.Context, u metadata.Upload) error {
	if err := validBucket(u.Bucket); err != nil {
		return fmt.Errorf("create upload: %w", err)
	}
	if err := validKey(u.Key); err != nil {
		return fmt.Errorf("create upload: %w", err)
	}
	if u.UploadID == "" || strings.ContainsAny(u.UploadID, "/\x00") {
		return fmt.Errorf("create upload: upload id %q: %w", u.UploadID, metadata.ErrInvalid)
	}
	u.V = metadata.Version
	k, bk := s.uploadKey(u.Bucket, u.Key, u.UploadID), s.bucketKey(u.Bucket)
	resp, err := s.kv.Txn(ctx).If(exists(bk), absent(k)).Then(clientv3.OpPut(k, mustJSON(u))).Commit()
	if err != nil {
		return fmt.Errorf("create upload %s/%s: %w", u.Bucket, u.Key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("create upload %s/%s: %w", u.Bucket, u.Key, metadata.ErrNoSuchBucket)
	}
	return nil
}

// GetUpload implements metadata.Store.
func (s *Store) GetUpload(ctx context.Context, bucket, key, uploadID string) (metadata.Upload, error) {
	var u metadata.Upload
	_, ok, err := s.getJSON(ctx, s.uploadKey(bucket, key, uploadID), &u)
	if err != nil {
		return u, fmt.Errorf("get upload %s: %w", uploadID, err)
	}
	if !ok {
		return u, fmt.Errorf("get upload %s: %w", uploadID, metadata.ErrNoSuchUpload)
	}
	return u, nil
}

// PutPart implements metadata.Store. The transaction also rewrites the
// upload's key (same value), so that a CompleteUpload that read the parts
// before this one landed fails its compare and retries, instead of
// committing a part whose segment this transaction sends to gc.
func (s *Store) PutPart(ctx context.Context, u metadata.Upload, p metadata.Part) error {
	if p.Number < 1 || p.Number > 10000 {
		return fmt.Errorf("put part %d: %w", p.Number, metadata.ErrInvalid)
	}
	p.V, p.UploadID = metadata.Version, u.UploadID
	uk, pk := s.uploadKey(u.Bucket, u.Key, u.UploadID), s.partKey(u.UploadID, p.Number)
	for range maxRetries {
		resp, err := s.kv.Txn(ctx).Then(clientv3.OpGet(uk), clientv3.OpGet(pk)).Commit()
		if err != nil {
			return fmt.Errorf("put part %d: %w", p.Number, err)
		}
		ukvs, pkvs := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
		if len(ukvs) == 0 {
			return fmt.Errorf("put part %d of %s: %w", p.Number, u.UploadID, metadata.ErrNoSuchUpload)
		}
		ops := []clientv3.Op{clientv3.OpPut(pk, mustJSON(p)), clientv3.OpPut(uk, string(ukvs[0].Value))}
		if p.Segment.ID != "" { // an empty part holds no data
			ops = append(ops, clientv3.OpPut(s.segidxKey(p.Segment), mustJSON(p.Segment)))
		}
		var partRev int64
		if len(pkvs) > 0 {
			partRev = pkvs[0].ModRevision
			var old metadata.Part
			if err := json.Unmarshal(pkvs[0].Value, &old); err != nil {
				return fmt.Errorf("put part %d: %w", p.Number, err)
			}
			if old.Segment.ID != p.Segment.ID && old.Segment.ID != "" {
				seg := old.Segment
				e := metadata.GCEntry{V: metadata.Version, ID: seg.ID, Kind: metadata.GCSegment, Time: s.now(), Segment: &seg}
				ops = append(ops, s.gcPut(e))
			}
		}
		tr, err := s.kv.Txn(ctx).If(exists(uk), modRev(pk, partRev)).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("put part %d: %w", p.Number, err)
		}
		if tr.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("put part %d: %w", p.Number, metadata.ErrConflict)
}

// ListParts implements metadata.Store.
func (s *Store) ListParts(ctx context.Context, uploadID string, after, max int) ([]metadata.Part, bool, error) {
	if max <= 0 {
		return nil, false, nil
	}
	start := s.partKey(uploadID, after+1)
	resp, err := s.kv.Get(ctx, start, clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.partPrefix(uploadID))), clientv3.WithLimit(int64(max)))
	if err != nil {
		return nil, false, fmt.Errorf("list parts %s: %w", uploadID, err)
	}
	out := make([]metadata.Part, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var p metadata.Part
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return nil, false, fmt.Errorf("list parts %s: %w", uploadID, err)
		}
		out = append(out, p)
	}
	return out, resp.More, nil
}

// allParts reads every part of an upload, paging through them.
func (s *Store) allParts(ctx context.Context, uploadID string) ([]metadata.Part, error) {
	var out []metadata.Part
	after := 0
	for {
		page, more, err := s.ListParts(ctx, uploadID, after, 1000)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if !more || len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1].Number
	}
}

// ListUploads implements metadata.Store: uploads sorted by key, then by
// initiation order of the upload id as stored.
func (s *Store) ListUploads(ctx context.Context, bucket string, o metadata.UploadListOptions) (metadata.UploadListResult, error) {
	var res metadata.UploadListResult
	if _, err := s.GetBucket(ctx, bucket); err != nil {
		return res, fmt.Errorf("list uploads: %w", err)
	}
	if o.MaxUploads <= 0 {
		return res, nil
	}
	base := s.uploadPrefix(bucket)
	start := base + o.Prefix
	if o.KeyMarker != "" && o.KeyMarker >= o.Prefix {
		switch {
		case commonPrefix(o.KeyMarker, o.Prefix, o.Delimiter) == o.KeyMarker:
			start = clientv3.GetPrefixRangeEnd(base + o.KeyMarker) // a common prefix returned earlier
		case o.UploadIDMarker != "":
			start = base + o.KeyMarker + "\x00" + o.UploadIDMarker + "\x00"
		default:
			start = base + o.KeyMarker + "\x01" // after every upload of KeyMarker
		}
	}
	var rollup func(string) string
	if o.Delimiter != "" {
		rollup = func(rel string) string {
			key, _, _ := strings.Cut(rel, "\x00")
			return commonPrefix(key, o.Prefix, o.Delimiter)
		}
	}
	page, truncated, err := s.listPage(ctx, base, start, clientv3.GetPrefixRangeEnd(base+o.Prefix), o.MaxUploads, rollup)
	if err != nil {
		return res, fmt.Errorf("list uploads %s: %w", bucket, err)
	}
	res.IsTruncated = truncated
	for _, e := range page {
		if e.prefix != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, e.prefix)
			res.NextKeyMarker, res.NextUploadIDMarker = e.prefix, ""
			continue
		}
		var u metadata.Upload
		if err := json.Unmarshal(e.value, &u); err != nil {
			return res, fmt.Errorf("list uploads %s: %w", bucket, err)
		}
		res.Uploads = append(res.Uploads, u)
		res.NextKeyMarker, res.NextUploadIDMarker = u.Key, u.UploadID
	}
	return res, nil
}

// AbortUpload implements metadata.Store: one transaction deletes the upload
// and writes one gc entry that releases all its parts.
func (s *Store) AbortUpload(ctx context.Context, bucket, key, uploadID string) error {
	uk := s.uploadKey(bucket, key, uploadID)
	e := metadata.GCEntry{V: metadata.Version, ID: uploadID, Kind: metadata.GCAbortedUpload, Time: s.now(), UploadID: uploadID}
	resp, err := s.kv.Txn(ctx).If(exists(uk)).Then(clientv3.OpDelete(uk), s.gcPut(e)).Commit()
	if err != nil {
		return fmt.Errorf("abort upload %s: %w", uploadID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("abort upload %s: %w", uploadID, metadata.ErrNoSuchUpload)
	}
	return nil
}

// CompleteUpload implements metadata.Store. The chosen parts' segments are
// copied out of line (objsegs, before the commit) unless they fit inline;
// the commit compares the upload key's revision (so no part changed since
// the caller read them), deletes it, and writes one gc entry that releases
// the parts not chosen and the part keys.
func (s *Store) CompleteUpload(ctx context.Context, u metadata.Upload, parts []metadata.Part, obj metadata.Object, pre metadata.Precondition, events ...metadata.Event) (string, error) {
	uk := s.uploadKey(u.Bucket, u.Key, u.UploadID)
	var cur metadata.Upload
	urev, ok, err := s.getJSON(ctx, uk, &cur)
	if err != nil {
		return "", fmt.Errorf("complete upload %s: %w", u.UploadID, err)
	}
	if !ok {
		return "", fmt.Errorf("complete upload %s: %w", u.UploadID, metadata.ErrNoSuchUpload)
	}
	// The parts the caller chose must still be the stored ones.
	stored, err := s.allParts(ctx, u.UploadID)
	if err != nil {
		return "", fmt.Errorf("complete upload %s: %w", u.UploadID, err)
	}
	byNum := map[int]metadata.Part{}
	for _, p := range stored {
		byNum[p.Number] = p
	}
	segs := make([]metadata.Segment, 0, len(parts))
	used := make([]int, 0, len(parts))
	for _, p := range parts {
		if sp, ok := byNum[p.Number]; !ok || sp.Segment.ID != p.Segment.ID {
			return "", fmt.Errorf("complete upload %s: part %d changed: %w", u.UploadID, p.Number, metadata.ErrConflict)
		}
		segs = append(segs, p.Segment)
		used = append(used, p.Number)
	}
	obj.V, obj.Bucket, obj.Key, obj.PartCount = metadata.Version, u.Bucket, u.Key, len(parts)
	if obj.VersionID == "" {
		obj.VersionID = NewID()
	}
	obj.Segments, obj.SegmentChunks = segs, 0
	if len(segs) > inlineSegments {
		n, err := s.writeChunks(ctx, obj, segs, false) // parts indexed their segments
		if err != nil {
			return "", fmt.Errorf("complete upload %s: %w", u.UploadID, err)
		}
		obj.Segments, obj.SegmentChunks = nil, n
	}
	e := metadata.GCEntry{V: metadata.Version, ID: u.UploadID, Kind: metadata.GCCompletedUpload, Time: s.now(), UploadID: u.UploadID, UsedParts: used}
	extra := append([]clientv3.Op{clientv3.OpDelete(uk), s.gcPut(e)}, s.eventOps(events)...)
	uploadGone := func(*clientv3.TxnResponse) error {
		var now metadata.Upload
		rev, ok, err := s.getJSON(ctx, uk, &now)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("complete upload %s: %w", u.UploadID, metadata.ErrNoSuchUpload)
		case rev != urev:
			return fmt.Errorf("complete upload %s: a part changed: %w", u.UploadID, metadata.ErrConflict)
		}
		return nil
	}
	cmps, onFail := []clientv3.Cmp{modRev(uk, urev)}, uploadGone
	if obj.SegmentChunks > 0 {
		var fence []clientv3.Cmp
		var pendingGone func(*clientv3.TxnResponse) error
		extra, fence, pendingGone = s.pendingFence(ctx, obj, extra)
		cmps = append(cmps, fence...)
		onFail = func(r *clientv3.TxnResponse) error {
			if err := uploadGone(r); err != nil {
				return err
			}
			return pendingGone(r)
		}
	}
	vid, err := s.commitObject(ctx, obj, pre, extra, cmps, onFail)
	if err != nil && obj.SegmentChunks > 0 && !errors.Is(err, metadata.ErrUnknownOutcome) && !errors.Is(err, errPendingGone) {
		// Definitely not committed: nothing refers to the chunks.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		s.kv.Txn(cctx).Then(clientv3.OpDelete(s.prefix+"objsegs/"+obj.VersionID+"/", clientv3.WithPrefix()),
			clientv3.OpDelete(s.pendingKey(obj.VersionID))).Commit()
	}
	return vid, err
}

// PartitionSegments implements metadata.Store.
func (s *Store) PartitionSegments(ctx context.Context, partition uint32) ([]metadata.Segment, error) {
	out, err := s.segmentsUnder(ctx, fmt.Sprintf("%ssegidx/%03x/", s.prefix, partition))
	if err != nil {
		return nil, fmt.Errorf("partition %03x: %w", partition, err)
	}
	return out, nil
}

// ListGC implements metadata.Store.
func (s *Store) ListGC(ctx context.Context, limit int) ([]metadata.GCEntry, error) {
	resp, err := s.kv.Get(ctx, s.queuePrefix(queueGC), clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list gc: %w", err)
	}
	out := make([]metadata.GCEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e metadata.GCEntry
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("list gc: %w", err)
		}
		e.QueueKey = string(kv.Key)
		out = append(out, e)
	}
	return out, nil
}

// ListPendingChunks implements metadata.Store.
func (s *Store) ListPendingChunks(ctx context.Context, limit int) ([]metadata.PendingChunks, error) {
	resp, err := s.kv.Get(ctx, s.prefix+"objsegpending/", clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list pending chunks: %w", err)
	}
	out := make([]metadata.PendingChunks, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var p metadata.PendingChunks
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return nil, fmt.Errorf("list pending chunks: %s: %w", kv.Key, err)
		}
		p.Rev = kv.ModRevision
		out = append(out, p)
	}
	return out, nil
}

// ReleasePendingChunks implements metadata.Store.
func (s *Store) ReleasePendingChunks(ctx context.Context, p metadata.PendingChunks) (bool, error) {
	if p.VersionID == "" || strings.ContainsAny(p.VersionID, "/\x00") || p.Rev <= 0 {
		return false, fmt.Errorf("release pending chunks: %w", metadata.ErrInvalid)
	}
	pk := s.pendingKey(p.VersionID)
	ops := []clientv3.Op{clientv3.OpDelete(pk)}
	if p.Indexed {
		// Its segments were indexed for it alone: gc releases them, then
		// the list (FinishGC).
		resp, err := s.kv.Get(ctx, s.prefix+"objsegs/"+p.VersionID+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return false, fmt.Errorf("release pending chunks %s: %w", p.VersionID, err)
		}
		e := metadata.GCEntry{V: metadata.Version, ID: p.VersionID, Kind: metadata.GCObjectSegments, Time: s.now(), VersionID: p.VersionID, Chunks: int(resp.Count)}
		ops = append(ops, s.gcPut(e))
	} else {
		ops = append(ops, clientv3.OpDelete(s.prefix+"objsegs/"+p.VersionID+"/", clientv3.WithPrefix()))
	}
	resp, err := s.kv.Txn(ctx).If(modRev(pk, p.Rev)).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("release pending chunks %s: %w", p.VersionID, err)
	}
	return resp.Succeeded, nil
}
