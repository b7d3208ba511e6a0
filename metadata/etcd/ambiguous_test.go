package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/etcd"
)

// ambiguousKV wraps a KV: the next commit transactions (those that write an
// objects/ key) apply in etcd and then report a timeout, as a request that
// timed out, lost its leader or had its context cancelled after it went
// out does. failReads more range reads fail after such a commit (etcd
// unreachable for a moment).
type ambiguousKV struct {
	clientv3.KV
	failCommits atomic.Int32
	failReads   atomic.Int32
	readsAfter  int32
}

var errTimeout = context.DeadlineExceeded

func (a *ambiguousKV) Txn(ctx context.Context) clientv3.Txn {
	return &ambiguousTxn{Txn: a.KV.Txn(ctx), kv: a}
}

func (a *ambiguousKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if a.failReads.Add(-1) >= 0 {
		return nil, errTimeout
	}
	return a.KV.Get(ctx, key, opts...)
}

type ambiguousTxn struct {
	clientv3.Txn
	kv     *ambiguousKV
	commit bool
}

func (t *ambiguousTxn) If(c ...clientv3.Cmp) clientv3.Txn  { t.Txn = t.Txn.If(c...); return t }
func (t *ambiguousTxn) Else(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(o...); return t }
func (t *ambiguousTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		if op.IsPut() && strings.Contains(string(op.KeyBytes()), "/objects/") {
			t.commit = true
		}
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *ambiguousTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	if err == nil && t.commit && resp.Succeeded && t.kv.failCommits.Add(-1) >= 0 {
		t.kv.failReads.Store(t.kv.readsAfter)
		return nil, fmt.Errorf("etcdserver: request timed out: %w", errTimeout)
	}
	return resp, err
}

// TestAmbiguousCommitKeepsData: a commit that applied but answered an
// error must never release what the committed object refers to. Either the
// store finds out that it applied (and reports success), or it reports
// ErrUnknownOutcome and leaves the pieces (objsegs chunks, segidx) for the
// orphan sweep. Before the fix, CompleteUpload deleted the objsegs chunks of
// the committed object and PutObject sent its segments to gc.
func TestAmbiguousCommitKeepsData(t *testing.T) {
	const nparts = 40 // more than inlineSegments: the list goes out of line
	for _, tc := range []struct {
		name      string
		failReads int32 // reads that fail after the ambiguous commit
		wantErr   error // nil: the store found out the commit applied
	}{
		{"reread-finds-commit", 0, nil},
		{"etcd-unreachable-after", 1000, metadata.ErrUnknownOutcome},
	} {
		for _, op := range []string{"complete", "put"} {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				prefix := "/test/" + strings.ReplaceAll(t.Name(), "/", "_") + "/"
				kv := &ambiguousKV{KV: cli.KV, readsAfter: tc.failReads}
				s := etcd.New(cli, etcd.Options{Prefix: prefix, KV: kv})
				plain := etcd.New(cli, etcd.Options{Prefix: prefix}) // reads what is really stored
				mustBucket(t, plain, "b")
				segs := make([]metadata.Segment, nparts)
				for i := range segs {
					segs[i] = seg(i)
				}
				var err error
				kv.failCommits.Store(1)
				switch op {
				case "complete":
					u := metadata.Upload{Bucket: "b", Key: "big", UploadID: etcd.NewID(), Initiated: time.Now()}
					if err := plain.CreateUpload(ctx, u); err != nil {
						t.Fatal(err)
					}
					parts := make([]metadata.Part, nparts)
					for i := range parts {
						parts[i] = metadata.Part{Number: i + 1, Size: 5 << 20, ETag: "e", Segment: segs[i]}
						if err := plain.PutPart(ctx, u, parts[i]); err != nil {
							t.Fatal(err)
						}
					}
					_, err = s.CompleteUpload(ctx, u, parts, obj("b", "big", "etag-40"), metadata.Precondition{})
				case "put":
					_, err = s.PutObject(ctx, obj("b", "big", "etag-40", segs...), metadata.Precondition{})
				}
				kv.failReads.Store(0)
				got, gerr := plain.GetObject(ctx, "b", "big")
				if gerr != nil {
					t.Fatalf("the commit applied, yet: %v", gerr)
				}
				if len(got.Segments) != nparts {
					t.Fatalf("committed object has %d segments, want %d: its segment list was released", len(got.Segments), nparts)
				}
				for i := range segs {
					if got.Segments[i].ID != segs[i].ID {
						t.Fatalf("segment %d: %s, want %s", i, got.Segments[i].ID, segs[i].ID)
					}
				}
				// Nothing of the committed version may be waiting for the collector.
				gc, lerr := plain.ListGC(ctx, 1000)
				if lerr != nil {
					t.Fatal(lerr)
				}
				for _, e := range gc {
					if e.Kind == metadata.GCObjectSegments && e.VersionID == got.VersionID {
						t.Fatalf("gc entry %+v releases the committed version's segments", e)
					}
					if e.Kind == metadata.GCSegment && e.Segment != nil {
						for _, sg := range segs {
							if sg.ID == e.Segment.ID {
								t.Fatalf("gc entry releases committed segment %s", sg.ID)
							}
						}
					}
				}
				if tc.wantErr == nil && err != nil {
					t.Fatalf("commit applied and etcd answers again, but the store reported %v", err)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
			})
		}
	}
}

// TestDefiniteFailureCleansUp: a commit that definitely did not apply (a
// precondition failed) leaves no out-of-line chunks behind.
func TestDefiniteFailureCleansUp(t *testing.T) {
	s, _, prefix := newStore(t)
	mustBucket(t, s, "b")
	if _, err := s.PutObject(ctx, obj("b", "k", "first", seg(0)), metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	segs := make([]metadata.Segment, 40)
	for i := range segs {
		segs[i] = seg(i)
	}
	_, err := s.PutObject(ctx, obj("b", "k", "second", segs...), metadata.Precondition{IfNoneMatch: "*"})
	if !errors.Is(err, metadata.ErrPreconditionFailed) {
		t.Fatalf("got %v", err)
	}
	// The chunks go to the collector (one gc entry), not left unreferenced.
	found := false
	gc, _ := s.ListGC(ctx, 1000)
	for _, e := range gc {
		found = found || e.Kind == metadata.GCObjectSegments
	}
	if !found {
		resp, _ := cli.Get(ctx, prefix+"objsegs/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		t.Fatalf("refused put left %d objsegs chunks and no gc entry for them", resp.Count)
	}
}
