package etcd_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/etcd"
)

// TestLockedBucketStaysVersioned: no update, whatever its function
// checked, leaves an object-locked bucket with versioning other than
// Enabled; racing a lock configuration against a suspension, one of the
// two fails. (Before the fix, the gateway checked the lock on a read made
// before the body, so a slow Suspended request racing
// PutObjectLockConfiguration left a bucket both Suspended and locked.)
func TestLockedBucketStaysVersioned(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "locked")
	enable := func(b *metadata.Bucket) error { b.Versioning = metadata.VersioningEnabled; return nil }
	if err := s.UpdateBucket(ctx, "locked", enable); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateBucket(ctx, "locked", func(b *metadata.Bucket) error { b.ObjectLock = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{metadata.VersioningSuspended, ""} {
		err := s.UpdateBucket(ctx, "locked", func(b *metadata.Bucket) error { b.Versioning = mode; return nil })
		if !errors.Is(err, metadata.ErrBucketState) {
			t.Fatalf("versioning %q on a locked bucket: %v, want ErrBucketState", mode, err)
		}
	}
	// The race, many times: suspend (checking the lock on a stale read,
	// as the old handler did) against turning the lock on.
	for i := range 20 {
		name := fmt.Sprintf("race%d", i)
		mustBucket(t, s, name)
		if err := s.UpdateBucket(ctx, name, enable); err != nil {
			t.Fatal(err)
		}
		stale, err := s.GetBucket(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			s.UpdateBucket(ctx, name, func(b *metadata.Bucket) error {
				if stale.ObjectLock { // the check made on the stale read
					return metadata.ErrBucketState
				}
				b.Versioning = metadata.VersioningSuspended
				return nil
			})
		}()
		go func() {
			defer wg.Done()
			s.UpdateBucket(ctx, name, func(b *metadata.Bucket) error {
				if b.Versioning != metadata.VersioningEnabled {
					return metadata.ErrBucketState
				}
				b.ObjectLock = true
				return nil
			})
		}()
		wg.Wait()
		b, err := s.GetBucket(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if b.ObjectLock && b.Versioning != metadata.VersioningEnabled {
			t.Fatalf("%s: locked and %q", name, b.Versioning)
		}
	}
}

// TestLockedVersionNeverReleased: no path removes a protected version for
// good, including a write that replaces the null version or an
// unversioned object and a plain DELETE that replaces the null version
// with a delete marker. The buckets are in states the store no longer
// lets an update make (locked and Suspended, or never versioned, as data
// from before the fix or a restore can be); their versions carry locks.
// Before the fix, a plain PUT replaced a COMPLIANCE-locked null version
// (ListObjectVersions then showed only the new one).
func TestLockedVersionNeverReleased(t *testing.T) {
	s, _, prefix := newStore(t)
	future := time.Now().Add(time.Hour)
	locks := map[string]metadata.Lock{
		"compliance": {Mode: metadata.LockCompliance, RetainUntil: future},
		"governance": {Mode: metadata.LockGovernance, RetainUntil: future},
		"legal-hold": {LegalHold: true},
	}
	// A bucket state written directly, as the old code could leave it.
	rawBucket := func(name, versioning string) {
		b := metadata.Bucket{V: metadata.Version, Name: name, Versioning: versioning, ObjectLock: versioning != ""}
		if _, err := cli.Put(ctx, prefix+"buckets/"+name, mustJSON(t, b)); err != nil {
			t.Fatal(err)
		}
	}
	put := func(bucket, key string, lock *metadata.Lock, i int) error {
		o := obj(bucket, key, "e", seg(i))
		o.VersionID, o.Lock = etcd.NewID(), lock
		_, err := s.PutObject(ctx, o, metadata.Precondition{})
		return err
	}
	i := 0
	for name, lock := range locks {
		for _, tc := range []struct {
			what       string
			versioning string
			setup      func(bucket, key string) // leaves a protected version
			act        func(bucket, key string) error
		}{
			{"PUT over a locked null version", metadata.VersioningSuspended,
				func(b, k string) { i++; noFail(t, put(b, k, &lock, i)) },
				func(b, k string) error { i++; return put(b, k, nil, i) }},
			{"DELETE over a locked null version", metadata.VersioningSuspended,
				func(b, k string) { i++; noFail(t, put(b, k, &lock, i)) },
				func(b, k string) error { _, err := s.DeleteObject(ctx, b, k, metadata.Precondition{}); return err }},
			{"PUT over a locked null version in the history", metadata.VersioningSuspended,
				func(b, k string) {
					i++
					noFail(t, put(b, k, &lock, i))
					// An Enabled write moves the null version into the history.
					rawBucket(b, metadata.VersioningEnabled)
					i++
					noFail(t, put(b, k, nil, i))
					rawBucket(b, metadata.VersioningSuspended)
				},
				func(b, k string) error { i++; return put(b, k, nil, i) }},
			{"PUT over a locked unversioned object", "",
				func(b, k string) { i++; noFail(t, put(b, k, &lock, i)) },
				func(b, k string) error { i++; return put(b, k, nil, i) }},
			{"DELETE of a locked unversioned object", "",
				func(b, k string) { i++; noFail(t, put(b, k, &lock, i)) },
				func(b, k string) error { _, err := s.DeleteObject(ctx, b, k, metadata.Precondition{}); return err }},
		} {
			bucket := fmt.Sprintf("b%d", i)
			rawBucket(bucket, tc.versioning)
			tc.setup(bucket, "k")
			before, err := s.ListObjectVersions(ctx, bucket, metadata.VersionListOptions{MaxKeys: 100})
			noFail(t, err)
			if err := tc.act(bucket, "k"); !errors.Is(err, metadata.ErrLocked) {
				t.Errorf("%s (%s): %v, want ErrLocked", tc.what, name, err)
			}
			after, err := s.ListObjectVersions(ctx, bucket, metadata.VersionListOptions{MaxKeys: 100})
			noFail(t, err)
			if len(before.Versions) != len(after.Versions) {
				t.Errorf("%s (%s): %d versions before, %d after", tc.what, name, len(before.Versions), len(after.Versions))
			}
		}
	}
}

func noFail(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
