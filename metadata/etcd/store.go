// Package etcd is the metadata.Store on etcd: one transaction per atomic mutation, leases for node liveness, watches for membership.
package etcd

// Design of the etcd store (key layout in ../../shared/DESIGN.md §4).
//
// Invariants:
//   - Every mutation a client can observe is one etcd transaction; its
//     preconditions are compares in that transaction (optimistic: read,
//     check in Go, commit comparing the ModRevision read, retry on conflict).
//   - A transaction has at most maxTxnOps operations whatever the object:
//     segment lists longer than inlineSegments are written out of line in
//     objsegs/<versionID>/<n> chunks (each well under 1.5 MiB) before the
//     commit, which then only points at them.
//   - segidx/<partition>/<segment> exists exactly while a segment's shards
//     should exist: written with the commit (simple PUT) or the part, kept
//     while the segment waits in gc/, removed by the collector with it.
//   - Releasing data never happens in place: the commit that unreferences
//     segments writes one gc/ entry that names them (a segment, an objsegs
//     list, or an upload's parts), so commits stay O(1) in the number of parts.
//   - Cleanup after a failed commit happens only when the failure is
//     definite (a compare failed, a precondition, no bucket). An error of
//     the commit transaction itself is ambiguous: the key is re-read, and if
//     the outcome stays unknown nothing is released (ErrUnknownOutcome);
//     the pieces are the orphan sweep's.
//   - Keys are data: bucket names never contain '/', and object keys are
//     followed by NUL where another component follows them.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

const (
	// DefaultPrefix is the default key prefix.
	DefaultPrefix = "/sherd/"
	// inlineSegments is the most segments kept inside an object's value.
	inlineSegments = 32
	// chunkSegments is the number of segments per objsegs chunk (~0.4 MiB).
	chunkSegments = 1000
	// maxTxnOps stays under etcd's default --max-txn-ops of 128.
	maxTxnOps = 100
	// maxRetries bounds optimistic-concurrency retries.
	maxRetries = 20
)

// Options configures a Store.
type Options struct {
	Prefix string           // key prefix; default DefaultPrefix
	KV     clientv3.KV      // KV to use instead of the client's (tests wrap it to count reads)
	Now    func() time.Time // clock; default time.Now
	Log    *slog.Logger     // where lease losses are told; default none
}

// Store implements metadata.Store on etcd.
type Store struct {
	cli    *clientv3.Client
	kv     clientv3.KV
	prefix string
	now    func() time.Time
	logger *slog.Logger
}

var _ metadata.Store = (*Store)(nil)

// New returns a Store using cli. The caller closes cli after the Store's last use.
func New(cli *clientv3.Client, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.KV == nil {
		opts.KV = cli.KV
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Store{cli: cli, kv: classifyingKV{opts.KV}, prefix: opts.Prefix, now: opts.Now, logger: opts.Log}
}

// Keys.

func (s *Store) bucketKey(b string) string { return s.prefix + "buckets/" + b }
func (s *Store) objPrefix(b string) string { return s.prefix + "objects/" + b + "/" }
func (s *Store) objKey(b, k string) string { return s.objPrefix(b) + k }
func (s *Store) objsegKey(vid string, n int) string {
	return fmt.Sprintf("%sobjsegs/%s/%06d", s.prefix, vid, n)
}
func (s *Store) uploadPrefix(b string) string     { return s.prefix + "uploads/" + b + "/" }
func (s *Store) uploadKey(b, k, id string) string { return s.uploadPrefix(b) + k + "\x00" + id }
func (s *Store) partPrefix(id string) string      { return s.prefix + "parts/" + id + "/" }
func (s *Store) partKey(id string, n int) string  { return fmt.Sprintf("%s%05d", s.partPrefix(id), n) }
func (s *Store) segidxKey(seg metadata.Segment) string {
	return fmt.Sprintf("%ssegidx/%03x/%s", s.prefix, seg.Partition(), seg.ID)
}

// gcPut queues gc entry e, in order of its release time (queue.go).
func (s *Store) gcPut(e metadata.GCEntry) clientv3.Op { return s.queuePut(queueGC, e.Time, e.ID, e) }
func (s *Store) nodeKey(id, part string) string       { return s.prefix + "nodes/" + id + "/" + part }

// NewID returns 128 random bits in hex: segment, version and upload ids.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validBucket(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("bucket name %q: %w", name, metadata.ErrInvalid)
	}
	return nil
}

func validKey(key string) error {
	if key == "" || strings.Contains(key, "\x00") {
		return fmt.Errorf("object key %q: %w", key, metadata.ErrInvalid)
	}
	return nil
}

// pause waits before attempt n (from 1) of an optimistic transaction that
// lost a race: a random time growing with n up to 64 ms, so writers of one
// key stop colliding instead of retrying in lockstep.
func pause(ctx context.Context, n int) {
	if n == 0 {
		return
	}
	t := time.NewTimer(time.Duration(mrand.Int64N(int64(time.Millisecond) << min(n, 6))))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("metadata: marshal %T: %v", v, err)) // only plain structs are marshalled
	}
	return string(b)
}

func (s *Store) getJSON(ctx context.Context, key string, v any) (rev int64, found bool, err error) {
	resp, err := s.kv.Get(ctx, key)
	if err != nil {
		return 0, false, err
	}
	if len(resp.Kvs) == 0 {
		return 0, false, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return 0, false, fmt.Errorf("decode %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, true, nil
}

func exists(key string) clientv3.Cmp { return clientv3.Compare(clientv3.CreateRevision(key), ">", 0) }
func absent(key string) clientv3.Cmp { return clientv3.Compare(clientv3.CreateRevision(key), "=", 0) }
func modRev(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}

// Buckets.

// CreateBucket implements metadata.Store.
func (s *Store) CreateBucket(ctx context.Context, b metadata.Bucket) error {
	if err := validBucket(b.Name); err != nil {
		return err
	}
	b.V = metadata.Version
	k := s.bucketKey(b.Name)
	resp, err := s.kv.Txn(ctx).If(absent(k)).Then(clientv3.OpPut(k, mustJSON(b))).Commit()
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", b.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("create bucket %s: %w", b.Name, metadata.ErrBucketExists)
	}
	return nil
}

// GetBucket implements metadata.Store.
func (s *Store) GetBucket(ctx context.Context, name string) (metadata.Bucket, error) {
	var b metadata.Bucket
	if err := validBucket(name); err != nil {
		return b, fmt.Errorf("get bucket: %w", metadata.ErrNoSuchBucket)
	}
	_, ok, err := s.getJSON(ctx, s.bucketKey(name), &b)
	if err != nil {
		return b, fmt.Errorf("get bucket %s: %w", name, err)
	}
	if !ok {
		return b, fmt.Errorf("get bucket %s: %w", name, metadata.ErrNoSuchBucket)
	}
	return b, nil
}

// UpdateBucket implements metadata.Store.
func (s *Store) UpdateBucket(ctx context.Context, name string, f func(*metadata.Bucket) error) error {
	for range maxRetries {
		var b metadata.Bucket
		rev, ok, err := s.getJSON(ctx, s.bucketKey(name), &b)
		if err != nil {
			return fmt.Errorf("update bucket %s: %w", name, err)
		}
		if !ok {
			return fmt.Errorf("update bucket %s: %w", name, metadata.ErrNoSuchBucket)
		}
		if err := f(&b); err != nil {
			return err
		}
		if b.ObjectLock && b.Versioning != metadata.VersioningEnabled {
			// Checked on the value the transaction writes over (its
			// revision is compared), so no racing pair of updates can
			// leave a locked bucket unversioned.
			return fmt.Errorf("update bucket %s: object lock needs versioning Enabled: %w", name, metadata.ErrBucketState)
		}
		b.Name, b.V = name, metadata.Version
		k := s.bucketKey(name)
		resp, err := s.kv.Txn(ctx).If(modRev(k, rev)).Then(clientv3.OpPut(k, mustJSON(b))).Commit()
		if err != nil {
			return fmt.Errorf("update bucket %s: %w", name, err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("update bucket %s: %w", name, metadata.ErrConflict)
}

// DeleteBucket implements metadata.Store. The emptiness checks are range
// compares in the delete transaction, so a concurrent PUT either lands
// first (and the delete fails) or fails on the missing bucket.
func (s *Store) DeleteBucket(ctx context.Context, name string) error {
	if err := validBucket(name); err != nil {
		return fmt.Errorf("delete bucket: %w", metadata.ErrNoSuchBucket)
	}
	k := s.bucketKey(name)
	op, up, vp := s.objPrefix(name), s.uploadPrefix(name), s.verPrefix(name)
	resp, err := s.kv.Txn(ctx).If(
		exists(k),
		clientv3.Compare(clientv3.CreateRevision(op), "=", 0).WithPrefix(),
		clientv3.Compare(clientv3.CreateRevision(up), "=", 0).WithPrefix(),
		clientv3.Compare(clientv3.CreateRevision(vp), "=", 0).WithPrefix(),
	).Then(clientv3.OpDelete(k)).Else(clientv3.OpGet(k, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return fmt.Errorf("delete bucket %s: %w", name, err)
	}
	if resp.Succeeded {
		return nil
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return fmt.Errorf("delete bucket %s: %w", name, metadata.ErrNoSuchBucket)
	}
	return fmt.Errorf("delete bucket %s: %w", name, metadata.ErrBucketNotEmpty)
}

// ListBuckets implements metadata.Store.
func (s *Store) ListBuckets(ctx context.Context) ([]metadata.Bucket, error) {
	resp, err := s.kv.Get(ctx, s.prefix+"buckets/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list buckets: %w", err)
	}
	out := make([]metadata.Bucket, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var b metadata.Bucket
		if err := json.Unmarshal(kv.Value, &b); err != nil {
			return nil, fmt.Errorf("list buckets: decode %s: %w", kv.Key, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Objects.

// checkPrecondition evaluates pre against the current version (nil: none).
// If-Match on a key with no version is ErrNoSuchKey (AWS: 404 NoSuchKey),
// any other failure ErrPreconditionFailed.
func checkPrecondition(cur *metadata.Object, pre metadata.Precondition) error {
	if pre.IfMatch != "" && cur == nil {
		return fmt.Errorf("if-match: %w", metadata.ErrNoSuchKey)
	}
	switch {
	case pre.IfNoneMatch == "*" && cur != nil,
		pre.IfNoneMatch != "" && pre.IfNoneMatch != "*" && cur != nil && cur.ETag == pre.IfNoneMatch,
		pre.IfMatch != "" && pre.IfMatch != "*" && cur.ETag != pre.IfMatch:
		return metadata.ErrPreconditionFailed
	}
	return nil
}

// releaseOps are the operations that send a replaced or deleted version's
// segments to gc: one gc entry per inline segment, or one for the chunks.
func (s *Store) releaseOps(old *metadata.Object, now time.Time) []clientv3.Op {
	if old == nil {
		return nil
	}
	if old.SegmentChunks > 0 {
		e := metadata.GCEntry{V: metadata.Version, ID: old.VersionID, Kind: metadata.GCObjectSegments, Time: now, VersionID: old.VersionID, Chunks: old.SegmentChunks}
		return []clientv3.Op{s.gcPut(e)}
	}
	ops := make([]clientv3.Op, 0, len(old.Segments))
	for i := range old.Segments {
		seg := old.Segments[i]
		if seg.ID == "" { // an empty part holds no data
			continue
		}
		e := metadata.GCEntry{V: metadata.Version, ID: seg.ID, Kind: metadata.GCSegment, Time: now, Segment: &seg}
		ops = append(ops, s.gcPut(e))
	}
	return ops
}

func (s *Store) pendingKey(vid string) string { return s.prefix + "objsegpending/" + vid }

// writeChunks stores segs out of line under objsegs/<vid>/ (and indexes
// them when index is set), in transactions of bounded size, and returns the
// number of chunks. Nothing refers to them until the commit; first it
// writes objsegpending/<vid>, which the commit must find and deletes.
func (s *Store) writeChunks(ctx context.Context, obj metadata.Object, segs []metadata.Segment, index bool) (int, error) {
	vid := obj.VersionID
	p := metadata.PendingChunks{V: metadata.Version, VersionID: vid, Bucket: obj.Bucket, Key: obj.Key, Indexed: index, Time: s.now()}
	if _, err := s.kv.Put(ctx, s.pendingKey(vid), mustJSON(p)); err != nil {
		return 0, err
	}
	n := 0
	for lo := 0; lo < len(segs); lo += chunkSegments {
		chunk := segs[lo:min(lo+chunkSegments, len(segs))]
		if _, err := s.kv.Put(ctx, s.objsegKey(vid, n), mustJSON(chunk)); err != nil {
			return n, err
		}
		n++
		if !index {
			continue
		}
		for a := 0; a < len(chunk); a += maxTxnOps {
			var ops []clientv3.Op
			for _, seg := range chunk[a:min(a+maxTxnOps, len(chunk))] {
				if seg.ID != "" {
					ops = append(ops, clientv3.OpPut(s.segidxKey(seg), mustJSON(seg)))
				}
			}
			if _, err := s.kv.Txn(ctx).Then(ops...).Commit(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// PutObject implements metadata.Store.
func (s *Store) PutObject(ctx context.Context, obj metadata.Object, pre metadata.Precondition, events ...metadata.Event) (string, error) {
	if err := validBucket(obj.Bucket); err != nil {
		return "", fmt.Errorf("put object: %w", err)
	}
	if err := validKey(obj.Key); err != nil {
		return "", fmt.Errorf("put object: %w", err)
	}
	obj.V = metadata.Version
	if obj.VersionID == "" {
		obj.VersionID = NewID()
	}
	segs := obj.Segments
	var indexOps []clientv3.Op
	if len(segs) > inlineSegments {
		n, err := s.writeChunks(ctx, obj, segs, true)
		if err != nil {
			s.releaseUncommitted(ctx, obj.VersionID, n) // the commit was never sent
			return "", fmt.Errorf("put object %s/%s: segments: %w", obj.Bucket, obj.Key, err)
		}
		obj.Segments, obj.SegmentChunks = nil, n
	} else {
		for _, seg := range segs {
			if seg.ID != "" {
				indexOps = append(indexOps, clientv3.OpPut(s.segidxKey(seg), mustJSON(seg)))
			}
		}
	}
	extra, cmps := append(indexOps, s.eventOps(events)...), []clientv3.Cmp(nil)
	var onFail func(*clientv3.TxnResponse) error
	if obj.SegmentChunks > 0 {
		extra, cmps, onFail = s.pendingFence(ctx, obj, extra)
	}
	vid, err := s.commitObject(ctx, obj, pre, extra, cmps, onFail)
	if err != nil && obj.SegmentChunks > 0 && !errors.Is(err, metadata.ErrUnknownOutcome) && !errors.Is(err, errPendingGone) {
		s.releaseUncommitted(ctx, obj.VersionID, obj.SegmentChunks)
	}
	return vid, err
}

// errPendingGone: the orphan sweep released the version's out-of-line
// segment list before its commit (which then fails; nothing is left to
// clean up).
var errPendingGone = fmt.Errorf("its segment list was released as an orphan: %w", metadata.ErrConflict)

// pendingFence adds to a commit of obj (whose segment list is out of line)
// the delete of its pending mark and the compare that the mark exists,
// and returns the onFail that tells a released list from a race.
func (s *Store) pendingFence(ctx context.Context, obj metadata.Object, extra []clientv3.Op) ([]clientv3.Op, []clientv3.Cmp, func(*clientv3.TxnResponse) error) {
	pk := s.pendingKey(obj.VersionID)
	return append(extra, clientv3.OpDelete(pk)), []clientv3.Cmp{exists(pk)}, func(*clientv3.TxnResponse) error {
		resp, err := s.kv.Get(ctx, pk, clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		if resp.Count == 0 {
			return fmt.Errorf("put object %s/%s: %w", obj.Bucket, obj.Key, errPendingGone)
		}
		return nil
	}
}

// cleanupTimeout bounds the best-effort cleanup after a failed commit; it
// runs even when the request's context has ended.
const cleanupTimeout = 10 * time.Second

// releaseUncommitted sends out-of-line segments of a version whose commit
// definitely failed to gc (their segidx entries were written), best
// effort: what a failed Put leaves is the orphan sweep's. Never call it
// after ErrUnknownOutcome: the version may be committed.
func (s *Store) releaseUncommitted(ctx context.Context, vid string, chunks int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	e := metadata.GCEntry{V: metadata.Version, ID: vid, Kind: metadata.GCObjectSegments, Time: s.now(), VersionID: vid, Chunks: chunks}
	s.kv.Txn(ctx).Then(s.gcPut(e)).Commit()
}

// resolveCommit is called when the commit transaction of obj returned an
// error: the transaction may or may not have applied (a timeout, a leader
// change, a context cancelled after it was sent). It re-reads the key, even
// if ctx has ended: if the key holds obj's version the commit applied and
// the answer is success. Otherwise the outcome stays unknown (the
// transaction may still be in flight, or applied and already replaced) and
// the error wraps metadata.ErrUnknownOutcome, so nobody releases what obj
// refers to.
func (s *Store) resolveCommit(ctx context.Context, obj metadata.Object, txnErr error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var cur metadata.Object
	_, found, err := s.getJSON(rctx, s.objKey(obj.Bucket, obj.Key), &cur)
	if err == nil && found && cur.VersionID == obj.VersionID {
		return nil
	}
	return fmt.Errorf("put object %s/%s: %w: %w", obj.Bucket, obj.Key, metadata.ErrUnknownOutcome, txnErr)
}

// commitObject is the commit transaction of a version: the bucket is as
// read (so is its versioning), the precondition holds (as a ModRevision
// compare on what was read), the key points at obj, the replaced version
// goes to gc or into the history (versions.go), plus extra compares and
// operations (segidx entries, ending an upload). It retries on races and
// returns obj's S3 version id ("" in an unversioned bucket). Every error
// it returns is definite (nothing was committed) except one wrapping
// metadata.ErrUnknownOutcome (see resolveCommit).
func (s *Store) commitObject(ctx context.Context, obj metadata.Object, pre metadata.Precondition, extra []clientv3.Op, extraCmp []clientv3.Cmp, onFail func(*clientv3.TxnResponse) error) (string, error) {
	k, bk := s.objKey(obj.Bucket, obj.Key), s.bucketKey(obj.Bucket)
	for attempt := range maxRetries {
		pause(ctx, attempt)
		st, brev, err := s.readKeyState(ctx, obj.Bucket, obj.Key)
		if err != nil {
			return "", fmt.Errorf("put object %s/%s: %w", obj.Bucket, obj.Key, err)
		}
		if err := checkPrecondition(st.cur, pre); err != nil {
			return "", fmt.Errorf("put object %s/%s: %w", obj.Bucket, obj.Key, err)
		}
		now := s.now()
		if obj.ModTime.IsZero() {
			obj.ModTime = now.UTC()
		}
		plan := planVersion(st, s.verKeyPrefix(obj.Bucket, obj.Key))
		obj.Seq, obj.Null, obj.DeleteMarker = plan.seq, plan.null, false
		cmps, ops, err := s.applyPlan(ctx, st, plan, k)
		if err != nil {
			return "", fmt.Errorf("put object %s/%s: %w", obj.Bucket, obj.Key, err)
		}
		ops = append(append([]clientv3.Op{clientv3.OpPut(k, mustJSON(obj))}, extra...), ops...)
		cmps = append(append([]clientv3.Cmp{modRev(bk, brev)}, cmps...), extraCmp...)
		resp, err := s.kv.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(bk, clientv3.WithCountOnly())).Commit()
		if err != nil {
			return s.s3Version(obj, plan), s.resolveCommit(ctx, obj, err)
		}
		if resp.Succeeded {
			return s.s3Version(obj, plan), nil
		}
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return "", fmt.Errorf("put object %s/%s: %w", obj.Bucket, obj.Key, metadata.ErrNoSuchBucket)
		}
		if onFail != nil {
			if err := onFail(resp); err != nil {
				return "", err
			}
		}
	}
	return "", fmt.Errorf("put object %s/%s: %w", obj.Bucket, obj.Key, metadata.ErrConflict)
}

// s3Version is the version id a write answers: none in an unversioned bucket.
func (s *Store) s3Version(obj metadata.Object, p versionPlan) string {
	if p.unversioned {
		return ""
	}
	return obj.S3Version()
}

// GetObject implements metadata.Store.
func (s *Store) GetObject(ctx context.Context, bucket, key string) (metadata.Object, error) {
	var obj metadata.Object
	if validBucket(bucket) != nil || validKey(key) != nil {
		return obj, fmt.Errorf("get object: %w", metadata.ErrNoSuchKey)
	}
	// One read answers both "no such key" and "no such bucket".
	resp, err := s.kv.Txn(ctx).Then(clientv3.OpGet(s.objKey(bucket, key)), clientv3.OpGet(s.bucketKey(bucket), clientv3.WithCountOnly())).Commit()
	if err != nil {
		return obj, fmt.Errorf("get object %s/%s: %w", bucket, key, err)
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if err := json.Unmarshal(kvs[0].Value, &obj); err != nil {
			return obj, fmt.Errorf("get object %s/%s: %w", bucket, key, err)
		}
	} else if resp.Responses[1].GetResponseRange().Count == 0 {
		return obj, fmt.Errorf("get object %s/%s: %w", bucket, key, metadata.ErrNoSuchBucket)
	} else {
		return obj, fmt.Errorf("get object %s/%s: %w", bucket, key, metadata.ErrNoSuchKey)
	}
	if obj.SegmentChunks > 0 {
		segs, err := s.readChunks(ctx, obj.VersionID, resp.Header.Revision)
		if err != nil {
			return obj, fmt.Errorf("get object %s/%s: %w", bucket, key, err)
		}
		obj.Segments = segs
	}
	return obj, nil
}

// readChunks reads an out-of-line segment list at revision rev (the
// revision the object was read at, so a concurrent collector cannot tear it).
func (s *Store) readChunks(ctx context.Context, vid string, rev int64) ([]metadata.Segment, error) {
	resp, err := s.kv.Get(ctx, s.prefix+"objsegs/"+vid+"/", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return nil, err
	}
	var out []metadata.Segment
	for _, kv := range resp.Kvs {
		var chunk []metadata.Segment
		if err := json.Unmarshal(kv.Value, &chunk); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, chunk...)
	}
	return out, nil
}

// UpdateObject implements metadata.Store. The version's value is
// rewritten only if unchanged since read; out-of-line segment lists stay
// where they are (the value only points at them).
func (s *Store) UpdateObject(ctx context.Context, bucket, key, vid string, f func(*metadata.Object) error) error {
	if validBucket(bucket) != nil || validKey(key) != nil {
		return fmt.Errorf("update object: %w", metadata.ErrNoSuchKey)
	}
	for attempt := range maxRetries {
		pause(ctx, attempt)
		k, rev, cur, err := s.findVersion(ctx, bucket, key, vid)
		if err != nil {
			return fmt.Errorf("update object %s/%s: %w", bucket, key, err)
		}
		if cur.DeleteMarker {
			return fmt.Errorf("update object %s/%s version %s is a delete marker: %w", bucket, key, vid, metadata.ErrInvalid)
		}
		next := cur
		if err := f(&next); err != nil {
			return err
		}
		keepData(&next, cur)
		resp, err := s.kv.Txn(ctx).If(modRev(k, rev)).Then(clientv3.OpPut(k, mustJSON(next))).Commit()
		if err != nil {
			return fmt.Errorf("update object %s/%s: %w", bucket, key, err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("update object %s/%s: %w", bucket, key, metadata.ErrConflict)
}

// findVersion reads version vid of key ("": the current one) as stored
// (segments out of line stay so): its etcd key and ModRevision.
func (s *Store) findVersion(ctx context.Context, bucket, key, vid string) (string, int64, metadata.Object, error) {
	var cur metadata.Object
	k := s.objKey(bucket, key)
	rev, found, err := s.getJSON(ctx, k, &cur)
	if err != nil {
		return "", 0, cur, err
	}
	if found && (vid == "" || cur.S3Version() == vid) {
		return k, rev, cur, nil
	}
	if _, err := s.GetBucket(ctx, bucket); err != nil {
		return "", 0, cur, err
	}
	if vid == "" {
		return "", 0, cur, metadata.ErrNoSuchKey
	}
	hist, hrev, err := s.history(ctx, bucket, key, 0, 0)
	if err != nil {
		return "", 0, cur, err
	}
	for _, e := range hist {
		if e.id == vid {
			o, err := s.getVersion(ctx, e, hrev)
			return e.key, e.rev, o, err
		}
	}
	return "", 0, cur, metadata.ErrNoSuchVersion
}

// keepData restores in o what identifies a version and its data, as cur has it.
func keepData(o *metadata.Object, cur metadata.Object) {
	o.V, o.Bucket, o.Key, o.VersionID, o.Seq, o.Null, o.DeleteMarker = cur.V, cur.Bucket, cur.Key, cur.VersionID, cur.Seq, cur.Null, cur.DeleteMarker
	o.Size, o.ETag, o.Checksums, o.ChecksumType, o.PartCount = cur.Size, cur.ETag, cur.Checksums, cur.ChecksumType, cur.PartCount
	o.Segments, o.SegmentChunks = cur.Segments, cur.SegmentChunks
}

// DeleteObject implements metadata.Store.
func (s *Store) DeleteObject(ctx context.Context, bucket, key string, pre metadata.Precondition, events ...metadata.Event) (metadata.Removal, error) {
	return s.deleteCurrent(ctx, bucket, key, pre, nil, events)
}

// deleteCurrent deletes key as DeleteObject does; x, when set, must still
// hold on what the transaction reads (Expire).
func (s *Store) deleteCurrent(ctx context.Context, bucket, key string, pre metadata.Precondition, x *metadata.Expiry, events []metadata.Event) (metadata.Removal, error) {
	if validBucket(bucket) != nil || validKey(key) != nil {
		return metadata.Removal{}, fmt.Errorf("delete object: %w", metadata.ErrNoSuchKey)
	}
	k := s.objKey(bucket, key)
	for attempt := range maxRetries {
		pause(ctx, attempt)
		st, brev, err := s.readKeyState(ctx, bucket, key)
		if err != nil {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s: %w", bucket, key, err)
		}
		if st.cur == nil && st.mode == "" {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s: %w", bucket, key, metadata.ErrNoSuchKey)
		}
		if err := checkPrecondition(st.cur, pre); err != nil {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s: %w", bucket, key, err)
		}
		var xcmps []clientv3.Cmp
		if x != nil {
			if xcmps, err = s.checkCurrentExpiry(ctx, &st, bucket, key, *x); err != nil {
				return metadata.Removal{}, fmt.Errorf("lifecycle: expire %s/%s: %w", bucket, key, err)
			}
		}
		plan := planVersion(st, s.verKeyPrefix(bucket, key))
		cmps, ops, err := s.applyPlan(ctx, st, plan, k)
		if err != nil {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s: %w", bucket, key, err)
		}
		cmps = append(append(cmps, modRev(s.bucketKey(bucket), brev)), xcmps...)
		var res metadata.Removal
		if st.cur != nil {
			ops = append(ops, clientv3.OpDelete(k))
		}
		if !plan.unversioned {
			dm := metadata.Object{V: metadata.Version, Bucket: bucket, Key: key, VersionID: NewID(), ModTime: s.now().UTC(),
				Seq: plan.seq, Null: plan.null, DeleteMarker: true}
			ops = append(ops, clientv3.OpPut(s.verKey(dm), mustJSON(dm)))
			res = metadata.Removal{VersionID: dm.S3Version(), DeleteMarker: true}
		}
		ops = append(ops, s.eventOps(events)...)
		resp, err := s.kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s: %w", bucket, key, err)
		}
		if resp.Succeeded {
			return res, nil
		}
		if err := s.fenceLost(ctx, x); err != nil {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s: %w", bucket, key, err)
		}
	}
	return metadata.Removal{}, fmt.Errorf("delete object %s/%s: %w", bucket, key, metadata.ErrConflict)
}

// ListObjects implements metadata.Store. With a delimiter, a common prefix
// is skipped by restarting the range after it, never by reading its keys:
// a page costs about one range read per common prefix plus one.
func (s *Store) ListObjects(ctx context.Context, bucket string, o metadata.ListOptions) (metadata.ListResult, error) {
	var res metadata.ListResult
	if _, err := s.GetBucket(ctx, bucket); err != nil {
		return res, fmt.Errorf("list objects: %w", err)
	}
	if o.MaxKeys <= 0 {
		return res, nil
	}
	base := s.objPrefix(bucket)
	end := clientv3.GetPrefixRangeEnd(base + o.Prefix)
	start := base + o.Prefix
	if o.StartAfter != "" && o.StartAfter >= o.Prefix {
		start = base + o.StartAfter + "\x00"
		// A common prefix returned earlier: resume after all its keys.
		if cp := commonPrefix(o.StartAfter, o.Prefix, o.Delimiter); cp == o.StartAfter {
			start = clientv3.GetPrefixRangeEnd(base + cp)
		}
	}
	var rollup func(string) string
	if o.Delimiter != "" {
		rollup = func(rel string) string { return commonPrefix(rel, o.Prefix, o.Delimiter) }
	}
	page, truncated, err := s.listPage(ctx, base, start, end, o.MaxKeys, rollup)
	if err != nil {
		return res, fmt.Errorf("list objects %s: %w", bucket, err)
	}
	res.IsTruncated = truncated
	for _, e := range page {
		if e.prefix != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, e.prefix)
			res.NextMarker = e.prefix
			continue
		}
		var obj metadata.Object
		if err := json.Unmarshal(e.value, &obj); err != nil {
			return res, fmt.Errorf("list objects %s: decode %q: %w", bucket, e.rel, err)
		}
		obj.Segments = nil
		res.Objects = append(res.Objects, obj)
		res.NextMarker = e.rel
	}
	return res, nil
}

// commonPrefix is the common prefix key rolls up into, or "".
func commonPrefix(key, prefix, delim string) string {
	if delim == "" || !strings.HasPrefix(key, prefix) {
		return ""
	}
	if i := strings.Index(key[len(prefix):], delim); i >= 0 {
		return key[:len(prefix)+i+len(delim)]
	}
	return ""
}

// Ping reads one key (count only): whether etcd answers, for readiness.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.kv.Get(ctx, s.prefix+"ping", clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}
