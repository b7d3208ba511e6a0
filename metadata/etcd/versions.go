package etcd

// Object versions.
//
// Key layout: objects/<bucket>/<key> holds the current version, the only
// one ListObjects reads; every other version of a versioned bucket (a
// noncurrent version, a delete marker) is in
// versions/<bucket>/<key>\x00<16 hex digits: MaxInt64-seq><S3 version id>,
// so a key's history sorts newest first, right after the key, and a
// version is found by its id with a keys-only scan of its key's history.
//
// Invariants:
//   - A current version is newer (higher Seq) than every entry of its
//     key's history: a write moves the current version into the history
//     in the transaction that replaces it.
//   - Seq is unique per key: a version gets 1 + the highest Seq of its key
//     (current or history), and the commit compares that no history key
//     with that Seq exists, besides the current key's ModRevision.
//   - Every change of a key's versions is one transaction that compares
//     the bucket's ModRevision (so the versioning state it decided by still
//     holds), the current key's, and the history keys it read or moves.
//   - The null version (S3 id "null") is at most one per key: a write in
//     a suspended bucket replaces it wherever it is.
//   - Moving a version keeps its segments and out-of-line segment list;
//     only a version removed for good sends them to gc.
//   - No version its Lock protects is removed for good by any path (a
//     write replacing the null version or an unversioned object, a plain
//     DELETE, a delete by version id): the check is on the value the
//     transaction compares, so a racing retention change cannot slip by.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

func (s *Store) verPrefix(b string) string       { return s.prefix + "versions/" + b + "/" }
func (s *Store) verKeyPrefix(b, k string) string { return s.verPrefix(b) + k + "\x00" }

// seqKey is the history key part of seq: newer sorts first.
func seqKey(seq int64) string { return fmt.Sprintf("%016x", math.MaxInt64-seq) }

func (s *Store) verKey(o metadata.Object) string {
	return s.verKeyPrefix(o.Bucket, o.Key) + seqKey(o.Seq) + o.S3Version()
}

// histEntry is one version in a key's history, as its key names it.
type histEntry struct {
	key string
	seq int64
	id  string // S3 version id
	rev int64  // ModRevision
}

// parseHistKey splits the part of a history key after "<key>\x00".
func parseHistKey(suffix string) (seq int64, id string, ok bool) {
	if len(suffix) < 17 {
		return 0, "", false
	}
	inv, err := strconv.ParseInt(suffix[:16], 16, 64)
	if err != nil {
		return 0, "", false
	}
	return math.MaxInt64 - inv, suffix[16:], true
}

// history lists a key's history keys (newest first) at revision rev (0:
// now); limit 0 is all of them. It returns the revision read.
func (s *Store) history(ctx context.Context, bucket, key string, rev int64, limit int64) ([]histEntry, int64, error) {
	p := s.verKeyPrefix(bucket, key)
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(limit))
	}
	resp, err := s.kv.Get(ctx, p, opts...)
	if err != nil {
		return nil, 0, err
	}
	out := make([]histEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		seq, id, ok := parseHistKey(strings.TrimPrefix(string(kv.Key), p))
		if !ok {
			return nil, 0, fmt.Errorf("malformed version key %q", kv.Key)
		}
		out = append(out, histEntry{key: string(kv.Key), seq: seq, id: id, rev: kv.ModRevision})
	}
	return out, resp.Header.Revision, nil
}

// getVersion reads the history entry e at revision rev.
func (s *Store) getVersion(ctx context.Context, e histEntry, rev int64) (metadata.Object, error) {
	var o metadata.Object
	resp, err := s.kv.Get(ctx, e.key, clientv3.WithRev(rev))
	if err != nil {
		return o, err
	}
	if len(resp.Kvs) == 0 {
		return o, fmt.Errorf("version %s: %w", e.id, metadata.ErrConflict)
	}
	return o, json.Unmarshal(resp.Kvs[0].Value, &o)
}

// keyState is what a change of a key's versions is decided on.
type keyState struct {
	bucket  metadata.Bucket
	mode    string // the bucket's versioning
	cur     *metadata.Object
	curRev  int64
	hist    []histEntry // newest first: all of them, or only the newest
	readRev int64
}

// nextSeq is the Seq of a new version of the key.
func (k keyState) nextSeq() int64 {
	seq := int64(0)
	if k.cur != nil {
		seq = k.cur.Seq
	}
	if len(k.hist) > 0 {
		seq = max(seq, k.hist[0].seq)
	}
	return seq + 1
}

// nullInHistory is the history entry of the null version, if any.
func (k keyState) nullInHistory() *histEntry {
	for i := range k.hist {
		if k.hist[i].id == "null" {
			return &k.hist[i]
		}
	}
	return nil
}

// versionPlan is what adding a version (or a delete marker) does.
type versionPlan struct {
	seq         int64
	null        bool
	moveCur     bool       // the current version goes into the history
	releaseCur  bool       // the current version is removed for good
	dropNull    *histEntry // the former null version, removed for good
	seqTaken    string     // history key prefix that must not exist (Seq uniqueness)
	unversioned bool       // the bucket was never versioned: no Seq, no history
}

// planVersion decides, from the key's state, what adding a version does:
// a pure function of the bucket's versioning, the current version and the
// history's keys.
func planVersion(k keyState, histPrefix string) versionPlan {
	switch k.mode {
	case metadata.VersioningEnabled, metadata.VersioningSuspended:
	default:
		return versionPlan{unversioned: true, releaseCur: k.cur != nil}
	}
	p := versionPlan{seq: k.nextSeq(), null: k.mode == metadata.VersioningSuspended}
	p.seqTaken = histPrefix + seqKey(p.seq)
	if k.cur != nil {
		if p.null && k.cur.S3Version() == "null" {
			p.releaseCur = true
		} else {
			p.moveCur = true
		}
	}
	if p.null && !p.releaseCur {
		p.dropNull = k.nullInHistory()
	}
	return p
}

// readKeyState reads the bucket and the current version in one read and,
// in a versioned bucket, as much of the history as a new version needs:
// all its keys when suspended (to find the null version), the newest when
// there is no current version (for Seq), none otherwise.
func (s *Store) readKeyState(ctx context.Context, bucket, key string) (keyState, int64, error) {
	var st keyState
	k, bk := s.objKey(bucket, key), s.bucketKey(bucket)
	resp, err := s.kv.Txn(ctx).Then(clientv3.OpGet(k), clientv3.OpGet(bk)).Commit()
	if err != nil {
		return st, 0, err
	}
	bkv := resp.Responses[1].GetResponseRange().Kvs
	if len(bkv) == 0 {
		return st, 0, metadata.ErrNoSuchBucket
	}
	var b metadata.Bucket
	if err := json.Unmarshal(bkv[0].Value, &b); err != nil {
		return st, 0, fmt.Errorf("decode bucket %s: %w", bucket, err)
	}
	st.bucket, st.mode, st.readRev = b, b.Versioning, resp.Header.Revision
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		var cur metadata.Object
		if err := json.Unmarshal(kvs[0].Value, &cur); err != nil {
			return st, 0, fmt.Errorf("decode %s: %w", k, err)
		}
		st.cur, st.curRev = &cur, kvs[0].ModRevision
	}
	var limit int64
	switch {
	case st.mode == metadata.VersioningSuspended:
		limit = 0
	case st.mode == metadata.VersioningEnabled && st.cur == nil:
		limit = 1
	default:
		return st, bkv[0].ModRevision, nil
	}
	if st.hist, _, err = s.history(ctx, bucket, key, st.readRev, limit); err != nil {
		return st, 0, err
	}
	return st, bkv[0].ModRevision, nil
}

// applyPlan adds to a transaction the compares and operations of plan for
// a key in state st (the new version itself is the caller's).
func (s *Store) applyPlan(ctx context.Context, st keyState, p versionPlan, k string) ([]clientv3.Cmp, []clientv3.Op, error) {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	if st.cur != nil {
		cmps = append(cmps, modRev(k, st.curRev))
	} else {
		cmps = append(cmps, absent(k))
	}
	if p.seqTaken != "" {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(p.seqTaken), "=", 0).WithPrefix())
	}
	now := s.now()
	switch {
	case p.moveCur:
		ops = append(ops, clientv3.OpPut(s.verKey(*st.cur), mustJSON(*st.cur)))
	case p.releaseCur:
		// No path removes a protected version: the lock read here is
		// the one the transaction compares (the current key's revision).
		if st.cur.Lock != nil && st.cur.Lock.Protects(now, false) {
			return nil, nil, fmt.Errorf("version %s replaced: %w", st.cur.S3Version(), metadata.ErrLocked)
		}
		ops = append(ops, s.releaseOps(st.cur, now)...)
	}
	if p.dropNull != nil {
		old, err := s.getVersion(ctx, *p.dropNull, st.readRev)
		if err != nil {
			return nil, nil, err
		}
		if old.Lock != nil && old.Lock.Protects(now, false) {
			return nil, nil, fmt.Errorf("null version replaced: %w", metadata.ErrLocked)
		}
		cmps = append(cmps, modRev(p.dropNull.key, p.dropNull.rev))
		ops = append(ops, clientv3.OpDelete(p.dropNull.key))
		if !old.DeleteMarker {
			ops = append(ops, s.releaseOps(&old, now)...)
		}
	}
	return cmps, ops, nil
}

// GetObjectVersion implements metadata.Store.
func (s *Store) GetObjectVersion(ctx context.Context, bucket, key, vid string) (metadata.Object, error) {
	var o metadata.Object
	if validBucket(bucket) != nil || validKey(key) != nil {
		return o, fmt.Errorf("get object version: %w", metadata.ErrNoSuchKey)
	}
	cur, err := s.GetObject(ctx, bucket, key)
	switch {
	case err == nil && (vid == "" || cur.S3Version() == vid):
		return cur, nil
	case err != nil && !errors.Is(err, metadata.ErrNoSuchKey):
		return o, err
	}
	limit := int64(0)
	if vid == "" {
		limit = 1
	}
	hist, rev, err := s.history(ctx, bucket, key, 0, limit)
	if err != nil {
		return o, fmt.Errorf("get object %s/%s version %s: %w", bucket, key, vid, err)
	}
	for _, e := range hist {
		if vid != "" && e.id != vid {
			continue
		}
		o, err := s.getVersion(ctx, e, rev)
		if err != nil {
			return o, fmt.Errorf("get object %s/%s version %s: %w", bucket, key, vid, err)
		}
		if o.SegmentChunks > 0 {
			if o.Segments, err = s.readChunks(ctx, o.VersionID, rev); err != nil {
				return o, fmt.Errorf("get object %s/%s version %s: %w", bucket, key, vid, err)
			}
		}
		return o, nil
	}
	if vid == "" {
		return o, fmt.Errorf("get object %s/%s: %w", bucket, key, metadata.ErrNoSuchKey)
	}
	return o, fmt.Errorf("get object %s/%s version %s: %w", bucket, key, vid, metadata.ErrNoSuchVersion)
}

// DeleteObjectVersion implements metadata.Store.
func (s *Store) DeleteObjectVersion(ctx context.Context, bucket, key, vid string, bypassGovernance bool, events ...metadata.Event) (metadata.Removal, error) {
	return s.deleteVersion(ctx, bucket, key, vid, bypassGovernance, nil, events)
}

// deleteVersion removes version vid of key; x, when set, names the
// version by its internal id instead (vid is ignored) and must still hold
// on what the transaction reads (Expire).
func (s *Store) deleteVersion(ctx context.Context, bucket, key, vid string, bypassGovernance bool, x *metadata.Expiry, events []metadata.Event) (metadata.Removal, error) {
	if validBucket(bucket) != nil || validKey(key) != nil {
		return metadata.Removal{}, fmt.Errorf("delete object version: %w", metadata.ErrNoSuchVersion)
	}
	k := s.objKey(bucket, key)
	for attempt := range maxRetries {
		pause(ctx, attempt)
		st, brev, err := s.readKeyState(ctx, bucket, key)
		if err != nil {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s version %s: %w", bucket, key, vid, err)
		}
		var xcmps []clientv3.Cmp
		if x != nil {
			if vid, xcmps, err = s.checkExpiry(ctx, &st, bucket, key, *x); err != nil {
				return metadata.Removal{}, fmt.Errorf("lifecycle: remove %s/%s version %s: %w", bucket, key, x.VersionID, err)
			}
		} else if st.hist, _, err = s.history(ctx, bucket, key, st.readRev, 0); err != nil {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s version %s: %w", bucket, key, vid, err)
		}
		cmps := append([]clientv3.Cmp{modRev(s.bucketKey(bucket), brev)}, xcmps...)
		var ops []clientv3.Op
		var gone metadata.Object
		now := s.now()
		promote := -1 // history index of the version that becomes current
		deleteCur := false
		switch {
		case st.cur != nil && st.cur.S3Version() == vid:
			gone = *st.cur
			cmps = append(cmps, modRev(k, st.curRev))
			deleteCur, promote = true, 0
		default:
			i := -1
			for j, e := range st.hist {
				if e.id == vid {
					i = j
				}
			}
			if i < 0 {
				return metadata.Removal{}, fmt.Errorf("delete object %s/%s version %s: %w", bucket, key, vid, metadata.ErrNoSuchVersion)
			}
			e := st.hist[i]
			if gone, err = s.getVersion(ctx, e, st.readRev); err != nil {
				return metadata.Removal{}, fmt.Errorf("delete object %s/%s version %s: %w", bucket, key, vid, err)
			}
			cmps = append(cmps, modRev(e.key, e.rev),
				// nothing newer than it appeared meanwhile
				clientv3.Compare(clientv3.ModRevision(s.verKeyPrefix(bucket, key)), "<", st.readRev+1).WithRange(e.key))
			ops = append(ops, clientv3.OpDelete(e.key))
			if st.cur != nil {
				cmps = append(cmps, modRev(k, st.curRev))
			} else {
				cmps = append(cmps, absent(k))
				if i == 0 {
					promote = 1 // the latest was removed: the one before it may become current
				}
			}
		}
		if promote >= 0 && promote < len(st.hist) && st.hist[promote].id != vid {
			e := st.hist[promote]
			next, err := s.getVersion(ctx, e, st.readRev)
			if err != nil {
				return metadata.Removal{}, fmt.Errorf("delete object %s/%s version %s: %w", bucket, key, vid, err)
			}
			if !next.DeleteMarker {
				cmps = append(cmps, modRev(e.key, e.rev))
				ops = append(ops, clientv3.OpDelete(e.key), clientv3.OpPut(k, mustJSON(next)))
				deleteCur = false // replaced by the put
			}
		}
		if deleteCur {
			ops = append(ops, clientv3.OpDelete(k))
		}
		if gone.Lock != nil && gone.Lock.Protects(now, bypassGovernance) {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s version %s: %w", bucket, key, vid, metadata.ErrLocked)
		}
		if !gone.DeleteMarker {
			ops = append(ops, s.releaseOps(&gone, now)...)
		}
		ops = append(ops, s.eventOps(events)...)
		resp, err := s.kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s version %s: %w", bucket, key, vid, err)
		}
		if resp.Succeeded {
			return metadata.Removal{VersionID: vid, DeleteMarker: gone.DeleteMarker}, nil
		}
		if err := s.fenceLost(ctx, x); err != nil {
			return metadata.Removal{}, fmt.Errorf("delete object %s/%s version %s: %w", bucket, key, vid, err)
		}
	}
	return metadata.Removal{}, fmt.Errorf("delete object %s/%s version %s: %w", bucket, key, vid, metadata.ErrConflict)
}

// rangeCursor reads the keys of [next, end) with their values, in
// batches, all at one revision (that of its first read, or the one given).
type rangeCursor struct {
	s         *Store
	next, end string
	batch     int64
	buf       []*mvccpb.KeyValue
	done      bool
	rev       *int64
}

// peek returns the next key-value, or nil at the end.
func (c *rangeCursor) peek(ctx context.Context) (*mvccpb.KeyValue, error) {
	if len(c.buf) == 0 && !c.done {
		if c.next >= c.end {
			c.done = true
			return nil, nil
		}
		opts := []clientv3.OpOption{clientv3.WithRange(c.end), clientv3.WithLimit(c.batch)}
		if *c.rev > 0 {
			opts = append(opts, clientv3.WithRev(*c.rev))
		}
		resp, err := c.s.kv.Get(ctx, c.next, opts...)
		if err != nil {
			return nil, err
		}
		if *c.rev == 0 {
			*c.rev = resp.Header.Revision
		}
		c.buf, c.done = resp.Kvs, !resp.More
		if len(c.buf) > 0 {
			c.next = string(c.buf[len(c.buf)-1].Key) + "\x00"
		}
	}
	if len(c.buf) == 0 {
		return nil, nil
	}
	return c.buf[0], nil
}

func (c *rangeCursor) pop() { c.buf = c.buf[1:] }

// seek moves the cursor forward to start.
func (c *rangeCursor) seek(start string) {
	for len(c.buf) > 0 && string(c.buf[0].Key) < start {
		c.buf = c.buf[1:]
	}
	if len(c.buf) == 0 && start > c.next {
		c.next = start
	}
}

// ListObjectVersions implements metadata.Store: current versions
// (objects/) and the history (versions/) are read side by side and
// merged in key order, each key's current version first; a common prefix
// is skipped in both by restarting them after it.
func (s *Store) ListObjectVersions(ctx context.Context, bucket string, o metadata.VersionListOptions) (metadata.VersionListResult, error) {
	var res metadata.VersionListResult
	if _, err := s.GetBucket(ctx, bucket); err != nil {
		return res, fmt.Errorf("list object versions: %w", err)
	}
	if o.MaxKeys <= 0 {
		return res, nil
	}
	ob, vb := s.objPrefix(bucket), s.verPrefix(bucket)
	ostart, vstart := ob+o.Prefix, vb+o.Prefix
	resumeKey := "" // a key whose remaining versions are not its latest
	if k := o.KeyMarker; k != "" && k >= o.Prefix {
		switch {
		case o.Delimiter != "" && commonPrefix(k, o.Prefix, o.Delimiter) == k:
			ostart, vstart = clientv3.GetPrefixRangeEnd(ob+k), clientv3.GetPrefixRangeEnd(vb+k)
		case o.VersionIDMarker == "":
			ostart, vstart = ob+k+"\x00", vb+k+"\x00\xff"
		default:
			ostart, vstart, resumeKey = ob+k+"\x00", vb+k+"\x00\xff", k
			cur, err := s.GetObject(ctx, bucket, k)
			if err == nil && cur.S3Version() == o.VersionIDMarker {
				vstart = vb + k + "\x00"
			} else if hist, _, err := s.history(ctx, bucket, k, 0, 0); err == nil {
				for _, e := range hist {
					if e.id == o.VersionIDMarker {
						vstart = e.key + "\x00"
					}
				}
			}
		}
	}
	var rev int64
	batch := int64(min(o.MaxKeys+2, 1000))
	oc := &rangeCursor{s: s, next: ostart, end: clientv3.GetPrefixRangeEnd(ob + o.Prefix), batch: batch, rev: &rev}
	vc := &rangeCursor{s: s, next: vstart, end: clientv3.GetPrefixRangeEnd(vb + o.Prefix), batch: batch, rev: &rev}
	prevKey := resumeKey
	count := 0
	for {
		a, err := oc.peek(ctx)
		if err != nil {
			return res, fmt.Errorf("list object versions %s: %w", bucket, err)
		}
		b, err := vc.peek(ctx)
		if err != nil {
			return res, fmt.Errorf("list object versions %s: %w", bucket, err)
		}
		if a == nil && b == nil {
			return res, nil
		}
		if count == o.MaxKeys {
			res.IsTruncated = true
			return res, nil
		}
		var akey, bkey string
		if a != nil {
			akey = strings.TrimPrefix(string(a.Key), ob)
		}
		if b != nil {
			bkey, _, _ = strings.Cut(strings.TrimPrefix(string(b.Key), vb), "\x00")
		}
		fromCur := b == nil || (a != nil && akey <= bkey)
		key, kv := bkey, b
		if fromCur {
			key, kv = akey, a
		}
		if cp := commonPrefix(key, o.Prefix, o.Delimiter); cp != "" {
			res.CommonPrefixes = append(res.CommonPrefixes, cp)
			res.NextKeyMarker, res.NextVersionIDMarker = cp, ""
			count++
			oc.seek(clientv3.GetPrefixRangeEnd(ob + cp))
			vc.seek(clientv3.GetPrefixRangeEnd(vb + cp))
			continue
		}
		var v metadata.Object
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return res, fmt.Errorf("list object versions %s: decode %q: %w", bucket, kv.Key, err)
		}
		v.Segments, v.IsLatest = nil, fromCur || key != prevKey
		if fromCur {
			oc.pop()
		} else {
			vc.pop()
		}
		prevKey = key
		res.Versions = append(res.Versions, v)
		res.NextKeyMarker, res.NextVersionIDMarker = key, v.S3Version()
		count++
	}
}
