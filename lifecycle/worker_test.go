package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/internal/etcdserver"
	"github.com/sherdstore/sherd/lifecycle"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/etcd"
)

var cli *clientv3.Client

func TestMain(m *testing.M) {
	c, stop, err := etcdserver.ForTests()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cli = c
	code := m.Run()
	stop()
	os.Exit(code)
}

// clock is a settable clock shared by the store and the workers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time    { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time)   { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func day(n int) time.Time          { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).AddDate(0, 0, n) }
func seg(i int) []metadata.Segment { return []metadata.Segment{{ID: fmt.Sprintf("%032x", i), Size: 1}} }
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// countingStore counts the deletes the workers make.
type countingStore struct {
	*etcd.Store
	deletes atomic.Int64
}

func (c *countingStore) Expire(ctx context.Context, b, k string, x metadata.Expiry) (metadata.Removal, error) {
	c.deletes.Add(1)
	return c.Store.Expire(ctx, b, k, x)
}

// TestWorkers: two workers with an injected clock carry out expiration,
// noncurrent-version expiration, lone delete marker removal and upload
// aborts, each bucket's pass made by one of them per window (no double
// work), skipping a version object lock protects.
func TestWorkers(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: day(0)}
	st := etcd.New(cli, etcd.Options{Prefix: "/lifecycle-test/", Now: clk.now})
	cs := &countingStore{Store: st}
	put := func(bucket, key string, i int, lock *metadata.Lock) string {
		t.Helper()
		vid, err := st.PutObject(ctx, metadata.Object{Bucket: bucket, Key: key, VersionID: etcd.NewID(), ETag: fmt.Sprint("e", i), Size: 1, Segments: seg(i), Lock: lock}, metadata.Precondition{})
		noErr(t, err)
		return vid
	}
	noErr(t, st.CreateBucket(ctx, metadata.Bucket{Name: "plain", Lifecycle: []metadata.LifecycleRule{
		{ID: "tmp", Enabled: true, ExpireDays: 1, Filter: metadata.LifecycleFilter{Prefix: "tmp/"}},
		{ID: "abort", Enabled: true, AbortDays: 3}}}))
	noErr(t, st.CreateBucket(ctx, metadata.Bucket{Name: "vers", Versioning: metadata.VersioningEnabled, Lifecycle: []metadata.LifecycleRule{
		{ID: "nc", Enabled: true, NoncurrentDays: 5},
		{ID: "dm", Enabled: true, ExpiredDeleteMarker: true}}}))
	noErr(t, st.CreateBucket(ctx, metadata.Bucket{Name: "none"}))

	put("plain", "tmp/a", 1, nil)
	put("plain", "keep", 2, nil)
	put("none", "tmp/a", 3, nil)
	noErr(t, st.CreateUpload(ctx, metadata.Upload{Bucket: "plain", Key: "big", UploadID: "u1", Initiated: day(0)}))
	old := put("vers", "doc", 4, nil)
	locked := put("vers", "doc", 5, &metadata.Lock{Mode: metadata.LockCompliance, RetainUntil: day(100)})
	current := put("vers", "doc", 6, nil)
	put("vers", "gone", 7, nil)
	_, err := st.DeleteObject(ctx, "vers", "gone", metadata.Precondition{})
	noErr(t, err)

	workers := make([]*lifecycle.Worker, 2)
	for i := range workers {
		claims, err := st.NewClaimer(ctx, fmt.Sprint("worker-", i), 10*time.Second)
		noErr(t, err)
		defer claims.Close()
		workers[i] = &lifecycle.Worker{Store: cs, Claims: claims, Now: clk.now, Interval: 24 * time.Hour}
	}
	passAll := func() {
		t.Helper()
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Add(1)
			go func() { defer wg.Done(); noErr(t, w.Pass(ctx)) }()
		}
		wg.Wait()
	}
	passes := func() int { return workers[0].Report().Passes + workers[1].Report().Passes }

	clk.set(day(2))
	passAll()
	if passes() != 2 {
		t.Fatalf("day 2: %d bucket passes by the two workers, want 2 (one per bucket with rules)", passes())
	}
	if _, err := st.GetObject(ctx, "plain", "tmp/a"); !errors.Is(err, metadata.ErrNoSuchKey) {
		t.Fatalf("tmp/a not expired: %v", err)
	}
	for _, k := range [][2]string{{"plain", "keep"}, {"none", "tmp/a"}} {
		if _, err := st.GetObject(ctx, k[0], k[1]); err != nil {
			t.Fatalf("%s/%s expired: %v", k[0], k[1], err)
		}
	}
	if _, err := st.GetObjectVersion(ctx, "vers", "gone", ""); err != nil {
		t.Fatalf("the delete marker of gone has a version behind it and stays: %v", err)
	}
	// The same window again: nothing is done twice.
	before := cs.deletes.Load()
	passAll()
	if passes() != 2 || cs.deletes.Load() != before {
		t.Fatalf("same window: %d passes, %d deletes more", passes(), cs.deletes.Load()-before)
	}

	clk.set(day(4))
	passAll()
	if _, err := st.GetUpload(ctx, "plain", "big", "u1"); !errors.Is(err, metadata.ErrNoSuchUpload) {
		t.Fatalf("upload not aborted: %v", err)
	}

	clk.set(day(9))
	passAll() // noncurrent versions 5 days after they became noncurrent; the lone delete marker's version too
	if _, err := st.GetObjectVersion(ctx, "vers", "doc", old); !errors.Is(err, metadata.ErrNoSuchVersion) {
		t.Fatalf("old noncurrent version kept: %v", err)
	}
	for _, vid := range []string{locked, current} {
		if _, err := st.GetObjectVersion(ctx, "vers", "doc", vid); err != nil {
			t.Fatalf("version %s removed: %v", vid, err)
		}
	}
	if r := workers[0].Report().Skipped + workers[1].Report().Skipped; r == 0 {
		t.Fatal("the locked version was not even tried")
	}
	clk.set(day(10))
	passAll() // now the delete marker of gone is alone
	if _, err := st.GetObjectVersion(ctx, "vers", "gone", ""); !errors.Is(err, metadata.ErrNoSuchKey) {
		t.Fatalf("lone delete marker kept: %v", err)
	}
	if passes() != 8 {
		t.Fatalf("%d passes over 4 windows, want 8", passes())
	}
}
