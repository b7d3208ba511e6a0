package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sherdstore/sherd/lifecycle"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/etcd"
)

// racingStore runs a client's change once, between the worker's listing
// and its first action: fault injection by wrapping the store.
type racingStore struct {
	*etcd.Store
	once   sync.Once
	client func()
}

func (r *racingStore) Expire(ctx context.Context, b, k string, x metadata.Expiry) (metadata.Removal, error) {
	r.once.Do(r.client)
	return r.Store.Expire(ctx, b, k, x)
}

// TestRacesBetweenListingAndAction: a client changes a key after the
// worker listed it and before it acts; the worker must not remove what it
// did not plan on. Before the fix (actions named versions by S3 id or
// ETag, with no "still noncurrent" condition), each of these removed the
// wrong version: the fresh null version, the same-content re-upload, and
// the version a rollback made current (the key vanished).
func TestRacesBetweenListingAndAction(t *testing.T) {
	ctx := context.Background()
	for i, tc := range []struct {
		name string
		// setup writes the key's history (the clock at day 0..) and
		// returns the client's racing change; check verifies after.
		rules []metadata.LifecycleRule
		setup func(t *testing.T, st *etcd.Store, clk *clock, bucket string) (client func(), check func())
	}{
		{"a fresh null version in a Suspended bucket", []metadata.LifecycleRule{{ID: "nc", Enabled: true, NoncurrentDays: 5}},
			func(t *testing.T, st *etcd.Store, clk *clock, bucket string) (func(), func()) {
				put(t, st, bucket, "k", 1) // the null version (unversioned then)
				setVersioning(t, st, bucket, metadata.VersioningEnabled)
				clk.set(day(1))
				put(t, st, bucket, "k", 2) // the null version becomes noncurrent
				setVersioning(t, st, bucket, metadata.VersioningSuspended)
				clk.set(day(10))
				var fresh string
				return func() { fresh = put(t, st, bucket, "k", 3) }, func() {
					cur, err := st.GetObject(ctx, bucket, "k")
					noErr(t, err)
					if cur.VersionID != fresh || cur.S3Version() != "null" {
						t.Fatalf("current version %s (%s), want the fresh null version %s", cur.VersionID, cur.S3Version(), fresh)
					}
				}
			}},
		{"a same-content re-upload", []metadata.LifecycleRule{{ID: "3d", Enabled: true, ExpireDays: 3}},
			func(t *testing.T, st *etcd.Store, clk *clock, bucket string) (func(), func()) {
				put(t, st, bucket, "k", 1)
				clk.set(day(5))
				var fresh string
				return func() { fresh = put(t, st, bucket, "k", 1) }, func() { // same ETag
					cur, err := st.GetObject(ctx, bucket, "k")
					if err != nil || cur.VersionID != fresh {
						t.Fatalf("the re-upload was expired: %+v %v", cur, err)
					}
				}
			}},
		{"a rollback makes the noncurrent version current", []metadata.LifecycleRule{{ID: "nc", Enabled: true, NoncurrentDays: 5}},
			func(t *testing.T, st *etcd.Store, clk *clock, bucket string) (func(), func()) {
				setVersioning(t, st, bucket, metadata.VersioningEnabled)
				first := put(t, st, bucket, "k", 1)
				clk.set(day(1))
				second := put(t, st, bucket, "k", 2)
				clk.set(day(10))
				return func() {
						_, err := st.DeleteObjectVersion(ctx, bucket, "k", second, false)
						noErr(t, err)
					}, func() {
						cur, err := st.GetObject(ctx, bucket, "k")
						if err != nil || cur.VersionID != first {
							t.Fatalf("the restored version was removed: %+v %v", cur, err)
						}
					}
			}},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			clk := &clock{t: day(0)}
			st := etcd.New(cli, etcd.Options{Prefix: fmt.Sprintf("/lifecycle-race-%d-%d/", i, time.Now().UnixNano()), Now: clk.now})
			bucket := "race"
			noErr(t, st.CreateBucket(ctx, metadata.Bucket{Name: bucket, Lifecycle: tc.rules}))
			client, check := tc.setup(t, st, clk, bucket)
			claims, err := st.NewClaimer(ctx, "worker", 10*time.Second)
			noErr(t, err)
			defer claims.Close()
			rs := &racingStore{Store: st, client: client}
			w := &lifecycle.Worker{Store: rs, Claims: claims, Now: clk.now, Interval: 24 * time.Hour}
			noErr(t, w.Pass(ctx))
			ran := false
			rs.once.Do(func() { ran = true })
			if ran {
				t.Fatalf("%s: the worker planned nothing (the race never ran)", tc.name)
			}
			check()
			if r := w.Report(); r.Skipped == 0 {
				t.Fatalf("%s: nothing skipped: %+v", tc.name, r)
			}
		})
	}
}

func put(t *testing.T, st *etcd.Store, bucket, key string, i int) string {
	t.Helper()
	o := metadata.Object{Bucket: bucket, Key: key, VersionID: etcd.NewID(), ETag: fmt.Sprint("e", i), Size: 1, Segments: seg(int(time.Now().UnixNano() % 1e9))}
	_, err := st.PutObject(context.Background(), o, metadata.Precondition{})
	noErr(t, err)
	return o.VersionID
}

func setVersioning(t *testing.T, st *etcd.Store, bucket, mode string) {
	t.Helper()
	noErr(t, st.UpdateBucket(context.Background(), bucket, func(b *metadata.Bucket) error { b.Versioning = mode; return nil }))
}

var _ = errors.Is
