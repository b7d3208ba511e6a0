package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/etcd"
)

// hookKV runs before() once just before the next commit transaction (one
// writing an objects/ key) is sent; with lose set, that commit is then
// not sent at all and answers a timeout (a request lost on the way: the
// writer cannot know it did not apply).
type hookKV struct {
	clientv3.KV
	before func()
	lose   bool
}

func (h *hookKV) Txn(ctx context.Context) clientv3.Txn { return &hookTxn{Txn: h.KV.Txn(ctx), kv: h} }

type hookTxn struct {
	clientv3.Txn
	kv     *hookKV
	commit bool
}

func (t *hookTxn) If(c ...clientv3.Cmp) clientv3.Txn  { t.Txn = t.Txn.If(c...); return t }
func (t *hookTxn) Else(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(o...); return t }
func (t *hookTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		if op.IsPut() && strings.Contains(string(op.KeyBytes()), "/objects/") {
			t.commit = true
		}
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *hookTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.commit && t.kv.before != nil {
		f := t.kv.before
		t.kv.before = nil
		f()
		if t.kv.lose {
			t.kv.lose = false
			return nil, fmt.Errorf("etcdserver: request timed out: %w", context.DeadlineExceeded)
		}
	}
	return t.Txn.Commit()
}

// bigUpload creates an upload of n parts (each its own indexed segment).
func bigUpload(t *testing.T, s *etcd.Store, key string, n int) (metadata.Upload, []metadata.Part) {
	t.Helper()
	u := metadata.Upload{Bucket: "b", Key: key, UploadID: etcd.NewID(), Initiated: time.Now()}
	if err := s.CreateUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	parts := make([]metadata.Part, n)
	for i := range parts {
		parts[i] = metadata.Part{Number: i + 1, Size: 5 << 20, ETag: "e", Segment: seg(i)}
		if err := s.PutPart(ctx, u, parts[i]); err != nil {
			t.Fatal(err)
		}
	}
	return u, parts
}

func onePending(t *testing.T, s *etcd.Store) metadata.PendingChunks {
	t.Helper()
	ps, err := s.ListPendingChunks(ctx, 10)
	if err != nil || len(ps) != 1 {
		t.Fatalf("pending lists %+v, %v; want one", ps, err)
	}
	return ps[0]
}

// TestUncommittedListsReleased: a commit lost on the way leaves its
// out-of-line segment list marked pending; releasing it sends a PutObject's
// segments to gc (they were indexed for it alone) but only deletes a
// CompleteUpload's list (its segments are the open upload's parts, which a
// retried completion then commits).
func TestUncommittedListsReleased(t *testing.T) {
	prefix := "/test/" + t.Name() + "/"
	kv := &hookKV{KV: cli.KV}
	s := etcd.New(cli, etcd.Options{Prefix: prefix, KV: kv})
	mustBucket(t, s, "b")
	count := func(p string) int64 {
		resp, err := cli.Get(ctx, prefix+p, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}

	// PutObject of 40 segments, commit lost.
	segs := make([]metadata.Segment, 40)
	for i := range segs {
		segs[i] = seg(i)
	}
	kv.before, kv.lose = func() {}, true
	if _, err := s.PutObject(ctx, obj("b", "put", "e", segs...), metadata.Precondition{}); !errors.Is(err, metadata.ErrUnknownOutcome) {
		t.Fatalf("lost commit: %v", err)
	}
	p := onePending(t, s)
	if !p.Indexed || p.Bucket != "b" || p.Key != "put" || count("segidx/") != 40 {
		t.Fatalf("pending %+v with %d indexed segments", p, count("segidx/"))
	}
	if ok, err := s.ReleasePendingChunks(ctx, p); !ok || err != nil {
		t.Fatalf("release: %v %v", ok, err)
	}
	if ok, _ := s.ReleasePendingChunks(ctx, p); ok {
		t.Fatal("released twice")
	}
	gc, _ := s.ListGC(ctx, 10)
	if len(gc) != 1 || gc[0].Kind != metadata.GCObjectSegments || gc[0].VersionID != p.VersionID {
		t.Fatalf("gc %+v", gc)
	}
	got, err := s.GCSegments(ctx, gc[0])
	if err != nil || len(got) != 40 {
		t.Fatalf("gc releases %d segments, %v", len(got), err)
	}
	if err := s.FinishGC(ctx, gc[0], got); err != nil {
		t.Fatal(err)
	}
	if n := count("segidx/") + count("objsegs/") + count("objsegpending/") + count("gc/"); n != 0 {
		t.Fatalf("%d keys left after gc", n)
	}

	// CompleteUpload of 40 parts, commit lost: releasing deletes only the list.
	u, parts := bigUpload(t, s, "mp", 40)
	kv.before, kv.lose = func() {}, true
	if _, err := s.CompleteUpload(ctx, u, parts, obj("b", "mp", "e-40"), metadata.Precondition{}); !errors.Is(err, metadata.ErrUnknownOutcome) {
		t.Fatalf("lost completion: %v", err)
	}
	p = onePending(t, s)
	if p.Indexed {
		t.Fatalf("a completion's list marked indexed: %+v", p)
	}
	if ok, err := s.ReleasePendingChunks(ctx, p); !ok || err != nil {
		t.Fatalf("release: %v %v", ok, err)
	}
	if gc, _ := s.ListGC(ctx, 10); len(gc) != 0 || count("objsegs/") != 0 || count("segidx/") != 40 {
		t.Fatalf("gc %+v, %d list keys, %d segments indexed (want none, 0, the parts' 40)", gc, count("objsegs/"), count("segidx/"))
	}
	if _, err := s.CompleteUpload(ctx, u, parts, obj("b", "mp", "e-40"), metadata.Precondition{}); err != nil {
		t.Fatalf("retried completion: %v", err)
	}
	o, err := s.GetObject(ctx, "b", "mp")
	if err != nil || len(o.Segments) != 40 || count("objsegpending/") != 0 {
		t.Fatalf("completed object: %d segments, %v, %d pending", len(o.Segments), err, count("objsegpending/"))
	}
}

// TestReleasedListCannotCommit: a list released while its commit is on the
// way (a writer slower than the grace period) makes that commit fail
// definitely, so nothing can refer to what was released.
func TestReleasedListCannotCommit(t *testing.T) {
	prefix := "/test/" + t.Name() + "/"
	kv := &hookKV{KV: cli.KV}
	s := etcd.New(cli, etcd.Options{Prefix: prefix, KV: kv})
	plain := etcd.New(cli, etcd.Options{Prefix: prefix})
	mustBucket(t, s, "b")
	release := func() {
		ps, err := plain.ListPendingChunks(ctx, 10)
		if err != nil || len(ps) != 1 {
			t.Errorf("pending %+v %v", ps, err)
			return
		}
		if ok, err := plain.ReleasePendingChunks(ctx, ps[0]); !ok || err != nil {
			t.Errorf("release: %v %v", ok, err)
		}
	}
	segs := make([]metadata.Segment, 40)
	for i := range segs {
		segs[i] = seg(i)
	}
	kv.before = release
	_, err := s.PutObject(ctx, obj("b", "put", "e", segs...), metadata.Precondition{})
	if !errors.Is(err, metadata.ErrConflict) || errors.Is(err, metadata.ErrUnknownOutcome) {
		t.Fatalf("commit after release: %v, want a definite conflict", err)
	}
	if _, err := s.GetObject(ctx, "b", "put"); !errors.Is(err, metadata.ErrNoSuchKey) {
		t.Fatalf("object committed after its list was released: %v", err)
	}

	u, parts := bigUpload(t, s, "mp", 40)
	kv.before = release
	_, err = s.CompleteUpload(ctx, u, parts, obj("b", "mp", "e-40"), metadata.Precondition{})
	if !errors.Is(err, metadata.ErrConflict) || errors.Is(err, metadata.ErrUnknownOutcome) {
		t.Fatalf("completion after release: %v, want a definite conflict", err)
	}
	if _, err := s.GetObject(ctx, "b", "mp"); !errors.Is(err, metadata.ErrNoSuchKey) {
		t.Fatalf("object committed after its list was released: %v", err)
	}
	if _, err := s.CompleteUpload(ctx, u, parts, obj("b", "mp", "e-40"), metadata.Precondition{}); err != nil {
		t.Fatalf("retried completion: %v", err)
	}
}
