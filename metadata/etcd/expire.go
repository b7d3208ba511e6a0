package etcd

// Lifecycle removals conditioned on what they were planned from.
//
// Invariants:
//   - An Expire removes only the version it was planned on, named by its
//     internal version id, never by its S3 id (which "null" reuses).
//   - The plan is run again (Expiry.Still) on the bucket and the key's
//     versions read at one revision, and the transaction compares what
//     that decision read: the bucket, the current key, the newest
//     maxExpireCompares history keys (a deletion of one of them fails the
//     compare), the key just newer than the target (its age counts from
//     it) and that no newer history key appeared.
//   - Known gap: for a version deeper than maxExpireCompares, a client's
//     deletion of a kept version between the compared ones and the target
//     can change a NewerNoncurrentVersions count (when the compared newest
//     entries are delete markers or outside the rule's filter) unseen.

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

// maxExpireCompares bounds the history keys an Expire compares (S3's
// NewerNoncurrentVersions is at most 100).
const maxExpireCompares = 101

// Expire implements metadata.Store.
func (s *Store) Expire(ctx context.Context, bucket, key string, x metadata.Expiry) (metadata.Removal, error) {
	if x.VersionID == "" {
		return metadata.Removal{}, fmt.Errorf("expire %s/%s: no version: %w", bucket, key, metadata.ErrInvalid)
	}
	if x.Current {
		return s.deleteCurrent(ctx, bucket, key, metadata.Precondition{}, &x, nil)
	}
	return s.deleteVersion(ctx, bucket, key, "", false, &x, nil)
}

// expiryState reads the key's versions at st.readRev (st.hist gets all
// history keys), runs x.Still on them and returns the versions and the
// compares that keep the decision true.
func (s *Store) expiryState(ctx context.Context, st *keyState, bucket, key string, x metadata.Expiry) ([]metadata.Object, []clientv3.Cmp, error) {
	hp := s.verKeyPrefix(bucket, key)
	resp, err := s.kv.Get(ctx, hp, clientv3.WithPrefix(), clientv3.WithRev(st.readRev))
	if err != nil {
		return nil, nil, err
	}
	st.hist = st.hist[:0]
	var versions []metadata.Object
	if st.cur != nil {
		c := *st.cur
		c.Segments = nil
		versions = append(versions, c)
	}
	cmps := []clientv3.Cmp{
		// nothing newer in the history appeared meanwhile
		clientv3.Compare(clientv3.ModRevision(hp), "<", st.readRev+1).WithPrefix(),
	}
	if st.cur != nil {
		cmps = append(cmps, modRev(s.objKey(bucket, key), st.curRev))
	} else {
		cmps = append(cmps, absent(s.objKey(bucket, key)))
	}
	for i, kv := range resp.Kvs {
		seq, id, ok := parseHistKey(string(kv.Key[len(hp):]))
		if !ok {
			return nil, nil, fmt.Errorf("malformed version key %q", kv.Key)
		}
		var o metadata.Object
		if err := json.Unmarshal(kv.Value, &o); err != nil {
			return nil, nil, fmt.Errorf("decode %q: %w", kv.Key, err)
		}
		o.Segments = nil
		versions = append(versions, o)
		st.hist = append(st.hist, histEntry{key: string(kv.Key), seq: seq, id: id, rev: kv.ModRevision})
		if i < maxExpireCompares {
			cmps = append(cmps, modRev(string(kv.Key), kv.ModRevision))
		}
	}
	if x.Still != nil && !x.Still(st.bucket, versions) {
		return nil, nil, fmt.Errorf("the rule no longer applies: %w", metadata.ErrPreconditionFailed)
	}
	if x.Fence.Name != "" {
		cmps = append(cmps, s.fenceCmp(x.Fence))
	}
	return versions, cmps, nil
}

// checkCurrentExpiry checks an expiry of the current version.
func (s *Store) checkCurrentExpiry(ctx context.Context, st *keyState, bucket, key string, x metadata.Expiry) ([]clientv3.Cmp, error) {
	if st.cur == nil || st.cur.VersionID != x.VersionID {
		return nil, fmt.Errorf("version %s is no longer current: %w", x.VersionID, metadata.ErrPreconditionFailed)
	}
	_, cmps, err := s.expiryState(ctx, st, bucket, key, x)
	return cmps, err
}

// checkExpiry checks a removal of version x.VersionID and returns its S3
// version id as of the revision read (the compares keep it so).
func (s *Store) checkExpiry(ctx context.Context, st *keyState, bucket, key string, x metadata.Expiry) (string, []clientv3.Cmp, error) {
	versions, cmps, err := s.expiryState(ctx, st, bucket, key, x)
	if err != nil {
		return "", nil, err
	}
	off := 0
	if st.cur != nil {
		off = 1
	}
	for j, v := range versions {
		if v.VersionID == x.VersionID {
			// A noncurrent version's age counts from the version just
			// newer than it: that one must still be there, however deep.
			if h := j - off; h >= 1 && h > maxExpireCompares {
				cmps = append(cmps, modRev(st.hist[h-1].key, st.hist[h-1].rev))
			}
			return v.S3Version(), cmps, nil
		}
	}
	return "", nil, fmt.Errorf("version %s is gone: %w", x.VersionID, metadata.ErrPreconditionFailed)
}

// fenceLost tells, after a failed transaction of x, whether it failed
// because x's fence is no longer held (ErrClaimLost; otherwise nil: the
// caller retries).
func (s *Store) fenceLost(ctx context.Context, x *metadata.Expiry) error {
	if x == nil || x.Fence.Name == "" {
		return nil
	}
	if held, err := s.fenceHeld(ctx, x.Fence); err == nil && !held {
		return metadata.ErrClaimLost
	}
	return nil
}
