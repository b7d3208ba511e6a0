package etcd_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/internal/etcdserver"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/etcd"
)

var cli *clientv3.Client

// TestMain starts one real embedded etcd for the package; every test works
// under its own key prefix.
func TestMain(m *testing.M) {
	dir, _ := os.MkdirTemp("", "sherd-etcd-test")
	srv, err := etcdserver.Start(etcdserver.Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cli, err = srv.Client()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cli.Close()
	srv.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// countingKV counts range reads and the key and value bytes they return.
type countingKV struct {
	clientv3.KV
	gets  atomic.Int64
	bytes atomic.Int64
}

func (c *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	c.gets.Add(1)
	resp, err := c.KV.Get(ctx, key, opts...)
	if err == nil {
		for _, kv := range resp.Kvs {
			c.bytes.Add(int64(len(kv.Key) + len(kv.Value)))
		}
	}
	return resp, err
}

func newStore(t *testing.T) (*etcd.Store, *countingKV, string) {
	prefix := "/test/" + strings.ReplaceAll(t.Name(), "/", "_") + "/"
	kv := &countingKV{KV: cli.KV}
	return etcd.New(cli, etcd.Options{Prefix: prefix, KV: kv}), kv, prefix
}

var ctx = context.Background()

func seg(i int) metadata.Segment {
	return metadata.Segment{ID: fmt.Sprintf("%08x%024x", rand.Uint32(), i), Size: 5 << 20, MD5: strings.Repeat("a", 32),
		Profile: metadata.ECProfile{K: 4, M: 2, BlockSize: 1 << 20}, HashAlgo: 1,
		Nodes:       []string{"node-1", "node-2", "node-3", "node-4", "node-5", "node-6"},
		ShardHashes: []string{strings.Repeat("0", 32), strings.Repeat("1", 32), strings.Repeat("2", 32), strings.Repeat("3", 32), strings.Repeat("4", 32), strings.Repeat("5", 32)}}
}

func obj(bucket, key, etag string, segs ...metadata.Segment) metadata.Object {
	return metadata.Object{Bucket: bucket, Key: key, ETag: etag, Size: int64(len(segs)) * (5 << 20), Segments: segs}
}

func mustBucket(t *testing.T, s *etcd.Store, name string) {
	t.Helper()
	if err := s.CreateBucket(ctx, metadata.Bucket{Name: name, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func gcKinds(t *testing.T, s *etcd.Store) map[metadata.GCKind]int {
	t.Helper()
	es, err := s.ListGC(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[metadata.GCKind]int{}
	for _, e := range es {
		out[e.Kind]++
	}
	return out
}

func TestBuckets(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "b1")
	mustBucket(t, s, "b2")
	if err := s.CreateBucket(ctx, metadata.Bucket{Name: "b1"}); !errors.Is(err, metadata.ErrBucketExists) {
		t.Fatalf("create twice: %v", err)
	}
	if err := s.CreateBucket(ctx, metadata.Bucket{Name: "a/b"}); !errors.Is(err, metadata.ErrInvalid) {
		t.Fatalf("slash in name: %v", err)
	}
	bs, err := s.ListBuckets(ctx)
	if err != nil || len(bs) != 2 || bs[0].Name != "b1" || bs[1].Name != "b2" {
		t.Fatalf("list: %+v %v", bs, err)
	}
	if err := s.UpdateBucket(ctx, "b1", func(b *metadata.Bucket) error { b.PublicRead = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.GetBucket(ctx, "b1"); !b.PublicRead {
		t.Fatal("update lost")
	}
	if _, err := s.GetBucket(ctx, "nope"); !errors.Is(err, metadata.ErrNoSuchBucket) {
		t.Fatal(err)
	}
	// Not empty: an object, then an upload.
	if _, err := s.PutObject(ctx, obj("b1", "k", "e", seg(1)), metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBucket(ctx, "b1"); !errors.Is(err, metadata.ErrBucketNotEmpty) {
		t.Fatalf("delete non-empty: %v", err)
	}
	s.DeleteObject(ctx, "b1", "k", metadata.Precondition{})
	s.CreateUpload(ctx, metadata.Upload{Bucket: "b1", Key: "u", UploadID: etcd.NewID()})
	if err := s.DeleteBucket(ctx, "b1"); !errors.Is(err, metadata.ErrBucketNotEmpty) {
		t.Fatalf("delete with upload: %v", err)
	}
	if err := s.DeleteBucket(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBucket(ctx, "b2"); !errors.Is(err, metadata.ErrNoSuchBucket) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s.PutObject(ctx, obj("b2", "k", "e", seg(1)), metadata.Precondition{}); !errors.Is(err, metadata.ErrNoSuchBucket) {
		t.Fatalf("put into deleted bucket: %v", err)
	}
}

func TestObjectCommitOverwriteDelete(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "b")
	s1, s2 := seg(1), seg(2)
	if _, err := s.PutObject(ctx, obj("b", "dir/key", "e1", s1), metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetObject(ctx, "b", "dir/key")
	if err != nil || got.ETag != "e1" || len(got.Segments) != 1 || got.Segments[0].ID != s1.ID || got.VersionID == "" {
		t.Fatalf("get: %+v %v", got, err)
	}
	segsIn := func(sg metadata.Segment) bool {
		list, err := s.PartitionSegments(ctx, sg.Partition())
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(list, func(x metadata.Segment) bool { return x.ID == sg.ID })
	}
	if !segsIn(s1) {
		t.Fatal("segment not indexed at commit")
	}
	if _, err := s.PutObject(ctx, obj("b", "dir/key", "e2", s2), metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if k := gcKinds(t, s); k[metadata.GCSegment] != 1 {
		t.Fatalf("overwrite: gc %v", k)
	}
	if !segsIn(s1) || !segsIn(s2) {
		t.Fatal("segidx must keep the replaced segment until gc collects it")
	}
	if _, err := s.DeleteObject(ctx, "b", "dir/key", metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetObject(ctx, "b", "dir/key"); !errors.Is(err, metadata.ErrNoSuchKey) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := s.GetObject(ctx, "nob", "k"); !errors.Is(err, metadata.ErrNoSuchBucket) {
		t.Fatalf("get in missing bucket: %v", err)
	}
	if _, err := s.DeleteObject(ctx, "b", "dir/key", metadata.Precondition{}); !errors.Is(err, metadata.ErrNoSuchKey) {
		t.Fatalf("delete twice: %v", err)
	}
	if k := gcKinds(t, s); k[metadata.GCSegment] != 2 {
		t.Fatalf("delete: gc %v", k)
	}
}

func TestPreconditions(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "b")
	tests := []struct {
		name     string
		pre      metadata.Precondition
		existing bool
		ok       bool
		want     error // when not ok (default ErrPreconditionFailed)
	}{
		{"if-none-match * on new", metadata.Precondition{IfNoneMatch: "*"}, false, true, nil},
		{"if-none-match * on existing", metadata.Precondition{IfNoneMatch: "*"}, true, false, nil},
		{"if-match right etag", metadata.Precondition{IfMatch: "e0"}, true, true, nil},
		{"if-match wrong etag", metadata.Precondition{IfMatch: "zz"}, true, false, nil},
		{"if-match on new", metadata.Precondition{IfMatch: "e0"}, false, false, metadata.ErrNoSuchKey},
		{"if-match * on new", metadata.Precondition{IfMatch: "*"}, false, false, metadata.ErrNoSuchKey},
		{"if-none-match etag equal", metadata.Precondition{IfNoneMatch: "e0"}, true, false, nil},
		{"if-none-match etag differs", metadata.Precondition{IfNoneMatch: "zz"}, true, true, nil},
	}
	for i, tt := range tests {
		key := fmt.Sprintf("k%d", i)
		if tt.existing {
			s.PutObject(ctx, obj("b", key, "e0", seg(i)), metadata.Precondition{})
		}
		_, err := s.PutObject(ctx, obj("b", key, "new", seg(100+i)), tt.pre)
		want := tt.want
		if want == nil {
			want = metadata.ErrPreconditionFailed
		}
		if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, want)) {
			t.Errorf("%s: err %v", tt.name, err)
		}
	}
	// Linearizable create-if-absent: of 16 racing writers exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.PutObject(ctx, obj("b", "race", fmt.Sprint(i), seg(i)), metadata.Precondition{IfNoneMatch: "*"})
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, metadata.ErrPreconditionFailed) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d writers won If-None-Match: *", wins.Load())
	}
	if _, err := s.DeleteObject(ctx, "b", "race", metadata.Precondition{IfMatch: "nope"}); !errors.Is(err, metadata.ErrPreconditionFailed) {
		t.Fatalf("conditional delete: %v", err)
	}
}

func TestTenThousandSegments(t *testing.T) {
	s, _, prefix := newStore(t)
	mustBucket(t, s, "b")
	segs := make([]metadata.Segment, 10000)
	for i := range segs {
		segs[i] = seg(i)
	}
	o := obj("b", "huge", "etag-10000", segs...)
	if _, err := s.PutObject(ctx, o, metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetObject(ctx, "b", "huge")
	if err != nil || len(got.Segments) != 10000 {
		t.Fatalf("get: %d segments, %v", len(got.Segments), err)
	}
	for i := range segs {
		if got.Segments[i].ID != segs[i].ID {
			t.Fatalf("segment %d out of order", i)
		}
	}
	// No single value is near etcd's 1.5 MiB request limit.
	resp, _ := cli.Get(ctx, prefix, clientv3.WithPrefix())
	biggest := 0
	for _, kv := range resp.Kvs {
		biggest = max(biggest, len(kv.Value))
	}
	t.Logf("10,000-segment object: %d keys, largest value %d bytes", len(resp.Kvs), biggest)
	if biggest > 1<<20 {
		t.Fatalf("largest value %d bytes", biggest)
	}
	// Listing does not carry the segments.
	lr, err := s.ListObjects(ctx, "b", metadata.ListOptions{MaxKeys: 10})
	if err != nil || len(lr.Objects) != 1 || lr.Objects[0].Segments != nil {
		t.Fatalf("list: %+v %v", lr, err)
	}
	// Overwrite releases the whole list with one gc entry.
	if _, err := s.PutObject(ctx, obj("b", "huge", "small", seg(1)), metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	es, _ := s.ListGC(ctx, 10)
	if len(es) != 1 || es[0].Kind != metadata.GCObjectSegments || es[0].VersionID != got.VersionID || es[0].Chunks != 10 {
		t.Fatalf("gc after overwrite: %+v", es)
	}
}

// refList is the plain reference for ListObjects: a scan of sorted keys.
func refList(keys []string, o metadata.ListOptions) ([]string, []string, bool) {
	var objs, cps []string
	n := 0
	for _, k := range keys {
		if !strings.HasPrefix(k, o.Prefix) || k <= o.StartAfter {
			continue
		}
		if o.Delimiter != "" {
			if i := strings.Index(k[len(o.Prefix):], o.Delimiter); i >= 0 {
				cp := k[:len(o.Prefix)+i+len(o.Delimiter)]
				if cp <= o.StartAfter || (len(cps) > 0 && cps[len(cps)-1] == cp) {
					continue
				}
				if n == o.MaxKeys {
					return objs, cps, true
				}
				cps = append(cps, cp)
				n++
				continue
			}
		}
		if n == o.MaxKeys {
			return objs, cps, true
		}
		objs = append(objs, k)
		n++
	}
	return objs, cps, false
}

// putRaw writes object keys directly, 100 per transaction (fast setup).
func putRaw(t *testing.T, prefix, bucket string, keys []string) {
	for lo := 0; lo < len(keys); lo += 100 {
		var ops []clientv3.Op
		for _, k := range keys[lo:min(lo+100, len(keys))] {
			v, _ := json.Marshal(metadata.Object{V: 1, Bucket: bucket, Key: k, ETag: "e", Size: 1})
			ops = append(ops, clientv3.OpPut(prefix+"objects/"+bucket+"/"+k, string(v)))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListFoldersReadsOnlyKeys: a page of 1,000 common prefixes (folders
// of 20 objects each) reads about one key per folder and no values. The
// old paging read up to MaxKeys values after every folder: 92,276,131
// key and value bytes for this page (measured at 35b4f6d); now 70,201.
func TestListFoldersReadsOnlyKeys(t *testing.T) {
	s, kv, prefix := newStore(t)
	mustBucket(t, s, "b")
	var keys []string
	for f := range 1001 {
		for i := range 20 {
			keys = append(keys, fmt.Sprintf("folder-%04d/object-%02d.jpg", f, i))
		}
	}
	putRaw(t, prefix, "b", keys)
	before, bytesBefore := kv.gets.Load(), kv.bytes.Load()
	res, err := s.ListObjects(ctx, "b", metadata.ListOptions{Delimiter: "/", MaxKeys: 1000})
	if err != nil {
		t.Fatal(err)
	}
	reads, read := kv.gets.Load()-before, kv.bytes.Load()-bytesBefore
	t.Logf("a page of 1,000 folders (20,020 objects): %d range reads, %d bytes read from etcd", reads, read)
	if len(res.CommonPrefixes) != 1000 || !res.IsTruncated || res.CommonPrefixes[999] != "folder-0999/" {
		t.Fatalf("%d prefixes, truncated %v", len(res.CommonPrefixes), res.IsTruncated)
	}
	if read > 1000*2*80 { // about one key per folder
		t.Fatalf("%d bytes read for 1,000 folders", read)
	}
}

func TestListSkipsCommonPrefixes(t *testing.T) {
	s, kv, prefix := newStore(t)
	mustBucket(t, s, "b")
	var keys []string
	for i := range 10000 {
		keys = append(keys, fmt.Sprintf("big/%05d", i))
	}
	keys = append(keys, "a.txt", "alpha/1", "alpha/2", "big", "big0", "c/d/e", "zeta", "photos/2024/x.jpg", "photos/2025/y.jpg", "ü/ñ")
	putRaw(t, prefix, "b", keys)
	sort.Strings(keys)

	before, bytesBefore := kv.gets.Load(), kv.bytes.Load()
	res, err := s.ListObjects(ctx, "b", metadata.ListOptions{Delimiter: "/", MaxKeys: 1000})
	if err != nil {
		t.Fatal(err)
	}
	reads, read := kv.gets.Load()-before, kv.bytes.Load()-bytesBefore
	t.Logf("listing %d keys (10,000 under big/) with delimiter: %d range reads, %d bytes", len(keys), reads, read)
	if reads > 16 || read > 16<<10 {
		t.Fatalf("%d range reads, %d bytes: the common prefix was read", reads, read)
	}
	wantObjs, wantCPs, _ := refList(keys, metadata.ListOptions{Delimiter: "/", MaxKeys: 1000})
	if fmt.Sprint(names(res.Objects)) != fmt.Sprint(wantObjs) || fmt.Sprint(res.CommonPrefixes) != fmt.Sprint(wantCPs) {
		t.Fatalf("got %v %v\nwant %v %v", names(res.Objects), res.CommonPrefixes, wantObjs, wantCPs)
	}

	// Every page of many option sets equals the reference, following NextMarker.
	for _, o := range []metadata.ListOptions{
		{MaxKeys: 1000}, {MaxKeys: 7, Delimiter: "/"}, {MaxKeys: 1, Delimiter: "/"}, {Prefix: "big/0", MaxKeys: 333},
		{Prefix: "photos/", Delimiter: "/", MaxKeys: 1}, {Prefix: "b", Delimiter: "/", MaxKeys: 2}, {StartAfter: "big/09990", MaxKeys: 5},
		{Prefix: "c/", Delimiter: "d", MaxKeys: 10}, {Prefix: "nothing", MaxKeys: 10}, {StartAfter: "big/", Delimiter: "/", MaxKeys: 3},
	} {
		startAfter := o.StartAfter
		for page := 0; ; page++ {
			o.StartAfter = startAfter
			res, err := s.ListObjects(ctx, "b", o)
			if err != nil {
				t.Fatal(err)
			}
			wo, wc, wt := refList(keys, o)
			if fmt.Sprint(names(res.Objects)) != fmt.Sprint(wo) || fmt.Sprint(res.CommonPrefixes) != fmt.Sprint(wc) || res.IsTruncated != wt {
				t.Fatalf("%+v page %d:\n got %v %v %v\nwant %v %v %v", o, page, names(res.Objects), res.CommonPrefixes, res.IsTruncated, wo, wc, wt)
			}
			if !res.IsTruncated {
				break
			}
			startAfter = res.NextMarker
			if page > 12000 {
				t.Fatal("no progress")
			}
		}
	}
}

func names(objs []metadata.Object) []string {
	out := []string{}
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

func TestMultipart(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "b")
	u := metadata.Upload{Bucket: "b", Key: "big/file", UploadID: etcd.NewID(), Initiated: time.Now()}
	if err := s.CreateUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	u2 := metadata.Upload{Bucket: "b", Key: "big", UploadID: etcd.NewID()}
	s.CreateUpload(ctx, u2)
	for n := 1; n <= 5; n++ {
		if err := s.PutPart(ctx, u, metadata.Part{Number: n, Size: 5 << 20, ETag: fmt.Sprint(n), Segment: seg(n)}); err != nil {
			t.Fatal(err)
		}
	}
	// Re-upload part 3: old segment to gc.
	p3 := metadata.Part{Number: 3, Size: 5 << 20, ETag: "3b", Segment: seg(33)}
	if err := s.PutPart(ctx, u, p3); err != nil {
		t.Fatal(err)
	}
	if k := gcKinds(t, s); k[metadata.GCSegment] != 1 {
		t.Fatalf("replaced part: gc %v", k)
	}
	page, more, err := s.ListParts(ctx, u.UploadID, 0, 2)
	if err != nil || len(page) != 2 || !more || page[1].Number != 2 {
		t.Fatalf("list parts: %+v %v %v", page, more, err)
	}
	page, more, _ = s.ListParts(ctx, u.UploadID, 2, 10)
	if len(page) != 3 || more || page[0].ETag != "3b" {
		t.Fatalf("list parts page 2: %+v %v", page, more)
	}
	upres, err := s.ListUploads(ctx, "b", metadata.UploadListOptions{MaxUploads: 10})
	ups, more := upres.Uploads, upres.IsTruncated
	if err != nil || len(ups) != 2 || more || ups[0].Key != "big" || ups[1].Key != "big/file" {
		t.Fatalf("list uploads: %+v %v", ups, err)
	}
	upres, _ = s.ListUploads(ctx, "b", metadata.UploadListOptions{MaxUploads: 10, KeyMarker: "big"})
	ups = upres.Uploads
	if len(ups) != 1 || ups[0].Key != "big/file" {
		t.Fatalf("list uploads after marker: %+v", ups)
	}
	if err := s.PutPart(ctx, metadata.Upload{Bucket: "b", Key: "x", UploadID: "nope"}, metadata.Part{Number: 1, Segment: seg(1)}); !errors.Is(err, metadata.ErrNoSuchUpload) {
		t.Fatalf("part of missing upload: %v", err)
	}
	// Complete with parts 1, 3, 5; a stale part 3 is a conflict.
	all, _, _ := s.ListParts(ctx, u.UploadID, 0, 10)
	stale := []metadata.Part{all[0], {Number: 3, Segment: seg(3)}, all[4]}
	if _, err := s.CompleteUpload(ctx, u, stale, metadata.Object{ETag: "x-3"}, metadata.Precondition{}); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("stale part: %v", err)
	}
	chosen := []metadata.Part{all[0], all[2], all[4]}
	if _, err := s.CompleteUpload(ctx, u, chosen, metadata.Object{ETag: "abc-3", Size: 15 << 20}, metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	o, err := s.GetObject(ctx, "b", "big/file")
	if err != nil || o.PartCount != 3 || len(o.Segments) != 3 || o.Segments[1].ID != p3.Segment.ID {
		t.Fatalf("completed object: %+v %v", o, err)
	}
	if _, err := s.GetUpload(ctx, "b", "big/file", u.UploadID); !errors.Is(err, metadata.ErrNoSuchUpload) {
		t.Fatalf("upload after complete: %v", err)
	}
	if _, err := s.CompleteUpload(ctx, u, chosen, metadata.Object{}, metadata.Precondition{}); !errors.Is(err, metadata.ErrNoSuchUpload) {
		t.Fatalf("complete twice: %v", err)
	}
	es, _ := s.ListGC(ctx, 100)
	var done *metadata.GCEntry
	for i := range es {
		if es[i].Kind == metadata.GCCompletedUpload {
			done = &es[i]
		}
	}
	if done == nil || fmt.Sprint(done.UsedParts) != "[1 3 5]" {
		t.Fatalf("completed-upload gc entry: %+v", es)
	}
	if err := s.AbortUpload(ctx, "b", "big", u2.UploadID); err != nil {
		t.Fatal(err)
	}
	if err := s.AbortUpload(ctx, "b", "big", u2.UploadID); !errors.Is(err, metadata.ErrNoSuchUpload) {
		t.Fatalf("abort twice: %v", err)
	}
	if k := gcKinds(t, s); k[metadata.GCAbortedUpload] != 1 {
		t.Fatalf("abort: gc %v", k)
	}
}

func TestTenThousandParts(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "b")
	u := metadata.Upload{Bucket: "b", Key: "k", UploadID: etcd.NewID()}
	s.CreateUpload(ctx, u)
	parts := make([]metadata.Part, 10000)
	var wg sync.WaitGroup
	errs := make(chan error, 10000)
	sem := make(chan struct{}, 64)
	for i := range parts {
		parts[i] = metadata.Part{Number: i + 1, Size: 5 << 20, ETag: fmt.Sprint(i), Segment: seg(i)}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.PutPart(ctx, u, parts[i]); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := s.CompleteUpload(ctx, u, parts, metadata.Object{ETag: "x-10000"}, metadata.Precondition{IfNoneMatch: "*"}); err != nil {
		t.Fatal(err)
	}
	o, err := s.GetObject(ctx, "b", "k")
	if err != nil || len(o.Segments) != 10000 || o.PartCount != 10000 || o.Segments[9999].ID != parts[9999].Segment.ID {
		t.Fatalf("get: %d segments %v", len(o.Segments), err)
	}
}

func TestNodesLeaseAndWatch(t *testing.T) {
	s, _, _ := newStore(t)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.WatchNodes(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if first := <-ch; len(first) != 0 {
		t.Fatalf("initial nodes %v", first)
	}
	reg, err := s.RegisterNode(ctx, metadata.Node{ID: "n1", Address: "http://127.0.0.1:1"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	next := func() []metadata.Node {
		select {
		case ns := <-ch:
			return ns
		case <-time.After(10 * time.Second):
			t.Fatal("no watch event")
			return nil
		}
	}
	if ns := next(); len(ns) != 1 || ns[0].ID != "n1" || ns[0].State != metadata.NodeActive || !ns[0].Live {
		t.Fatalf("after register: %+v", ns)
	}
	if ns, _ := s.ListNodes(ctx); len(ns) != 1 {
		t.Fatalf("list: %+v", ns)
	}
	reg.Close()
	// The member stays (placement keeps it); it is no longer live.
	if ns := next(); len(ns) != 1 || ns[0].Live {
		t.Fatalf("after close: %+v", ns)
	}
	// The operator's state survives a re-registration.
	if err := s.SetNodeState(ctx, "n1", metadata.NodeDraining); err != nil {
		t.Fatal(err)
	}
	reg, err = s.RegisterNode(ctx, metadata.Node{ID: "n1", Address: "http://127.0.0.1:2"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ns, _ := s.ListNodes(ctx)
	if len(ns) != 1 || !ns[0].Live || ns[0].State != metadata.NodeDraining || ns[0].Address != "http://127.0.0.1:2" {
		t.Fatalf("re-registered: %+v", ns)
	}
}

func TestNodeReRegistersAfterLeaseLoss(t *testing.T) {
	s, _, prefix := newStore(t)
	reg, err := s.RegisterNode(ctx, metadata.Node{ID: "n2", Address: "http://127.0.0.1:1"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	// Revoke the node's lease, as if etcd had expired it.
	liveKey := prefix + "nodes/n2/live"
	leaseOf := func() clientv3.LeaseID {
		resp, err := cli.Get(ctx, liveKey)
		if err != nil || len(resp.Kvs) == 0 {
			return 0
		}
		return clientv3.LeaseID(resp.Kvs[0].Lease)
	}
	// An operator drained it meanwhile: re-registering keeps that.
	if err := s.SetNodeState(ctx, "n2", metadata.NodeDraining); err != nil {
		t.Fatal(err)
	}
	old := leaseOf()
	if _, err := cli.Revoke(ctx, old); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ns, err := s.ListNodes(ctx)
		if l := leaseOf(); err == nil && len(ns) == 1 && ns[0].Live && l != 0 && l != old {
			if ns[0].State != metadata.NodeDraining {
				t.Fatalf("state after re-registering: %q, want draining", ns[0].State)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not live again: %+v %v", ns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRepairQueue: each report is an entry; an entry is acknowledged only
// as it was read (a stale ack keeps it); a deferred entry is not read
// until due, and a backlog of them never holds back entries behind them.
func TestRepairQueue(t *testing.T) {
	s, _, _ := newStore(t)
	seg := metadata.Segment{ID: etcd.NewID(), Size: 1}
	for _, shards := range [][]int{{4}, {1, 4}} {
		if err := s.QueueRepair(ctx, metadata.RepairEntry{Segment: seg, Shards: shards, Reason: "put"}); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.ListRepairs(ctx, 10)
	if err != nil || len(rs) != 2 || !slices.Equal(rs[1].Shards, []int{1, 4}) {
		t.Fatalf("repairs %+v %v", rs, err)
	}
	stale := rs[0]
	if ok, err := s.DeferRepair(ctx, rs[0], time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatalf("defer: %v %v", ok, err)
	}
	if ok, err := s.DoneRepair(ctx, stale); err != nil || ok {
		t.Fatalf("stale ack of a deferred entry: %v %v", ok, err)
	}
	if rs, _ := s.ListRepairs(ctx, 10); len(rs) != 1 || !slices.Equal(rs[0].Shards, []int{1, 4}) {
		t.Fatalf("a deferred entry was listed: %+v", rs)
	}
	// 50 entries deferred: a listing of 10 still finds the one due.
	for range 50 {
		if err := s.QueueRepair(ctx, metadata.RepairEntry{Segment: seg, Shards: []int{0}}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		rs, _ := s.ListRepairs(ctx, 10)
		if len(rs) == 1 {
			break
		}
		for _, e := range rs {
			if slices.Equal(e.Shards, []int{0}) {
				if ok, _ := s.DeferRepair(ctx, e, time.Now().Add(time.Hour)); !ok {
					t.Fatal("defer failed")
				}
			}
		}
	}
	if err := s.QueueRepair(ctx, metadata.RepairEntry{Segment: seg, Shards: []int{5}}); err != nil {
		t.Fatal(err)
	}
	rs, _ = s.ListRepairs(ctx, 10)
	if len(rs) != 2 || !slices.Equal(rs[1].Shards, []int{5}) {
		t.Fatalf("behind 51 deferred entries: %+v", rs)
	}
	total, due, err := s.QueueLength(ctx, "repair", time.Now())
	if err != nil || total != 53 || due != 2 {
		t.Fatalf("queue length %d (%d due), %v; want 53 (2)", total, due, err)
	}
	for _, e := range rs {
		if ok, err := s.DoneRepair(ctx, e); err != nil || !ok {
			t.Fatalf("ack: %v %v", ok, err)
		}
	}
	if rs, _ := s.ListRepairs(ctx, 10); len(rs) != 0 {
		t.Fatalf("after done: %+v", rs)
	}
}

// TestEventQueueDueOrder: an event claimed or waiting to retry is not
// listed until due, so 1000 failing events never hide a new one.
func TestEventQueueDueOrder(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "b")
	now := time.Now()
	var evs []metadata.Event
	for i := range 1001 {
		evs = append(evs, metadata.Event{ID: fmt.Sprintf("e%05d", i), URL: "http://127.0.0.1:1/", Name: "ObjectCreated:Put", Bucket: "b", Key: "k", Time: now, NextTry: now})
	}
	for a := 0; a < len(evs); a += 50 { // queued with commits, 50 at a time
		if _, err := s.PutObject(ctx, obj("b", fmt.Sprint("k", a), "e"), metadata.Precondition{}, evs[a:a+min(50, len(evs)-a)]...); err != nil {
			t.Fatal(err)
		}
	}
	// All 1000 first ones fail and wait a minute.
	for {
		got, err := s.ListEvents(ctx, now, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			if got[0].ID != "e01000" {
				t.Fatalf("the event left due is %s", got[0].ID)
			}
			break
		}
		for _, e := range got {
			if e.ID == "e01000" {
				continue
			}
			e.Attempts, e.NextTry, e.LastError = 1, now.Add(time.Minute), "refused"
			if _, ok, err := s.UpdateEvent(ctx, e); err != nil || !ok {
				t.Fatalf("retry later: %v %v", ok, err)
			}
		}
	}
	got, _ := s.ListEvents(ctx, now.Add(2*time.Minute), "", 2000)
	if len(got) != 1001 || got[1000].ID != "e01000" && got[0].ID != "e01000" {
		t.Fatalf("%d events due in 2 minutes", len(got))
	}
	// Paged after the last key read, the same events in the same order.
	var paged []metadata.Event
	for after := ""; ; {
		page, err := s.ListEvents(ctx, now.Add(2*time.Minute), after, 300)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < 300 {
			break
		}
		after = page[len(page)-1].QueueKey
	}
	if len(paged) != len(got) {
		t.Fatalf("paged: %d events, want %d", len(paged), len(got))
	}
	for i := range paged {
		if paged[i].QueueKey != got[i].QueueKey {
			t.Fatalf("paged: event %d is %s, want %s", i, paged[i].QueueKey, got[i].QueueKey)
		}
	}
	// Nothing due by now follows the one never retried (due first).
	if got[0].ID != "e01000" {
		t.Fatalf("first due: %s", got[0].ID)
	}
	if due, err := s.ListEvents(ctx, now, got[0].QueueKey, 10); err != nil || len(due) != 0 {
		t.Fatalf("due by now after %s: %d events, %v", got[0].ID, len(due), err)
	}
	if due, err := s.ListEvents(ctx, now.Add(2*time.Minute), got[999].QueueKey, 10); err != nil || len(due) != 1 || due[0].QueueKey != got[1000].QueueKey {
		t.Fatalf("due after the next to last: %+v %v", due, err)
	}
	if _, err := s.ListEvents(ctx, now, "buckets/b", 10); !errors.Is(err, metadata.ErrInvalid) {
		t.Fatalf("after a key outside the queue: %v", err)
	}
	// Ack by revision: a claimed copy cannot be deleted with a stale read.
	e := got[0]
	claimed, ok, err := s.UpdateEvent(ctx, metadata.Event(e))
	if err != nil || !ok {
		t.Fatal(err)
	}
	if err := s.DeleteEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	if total, _, _ := s.QueueLength(ctx, "events", now); total != 1001 {
		t.Fatalf("a stale delete removed the claimed event: %d left", total)
	}
	if err := s.DeleteEvent(ctx, claimed); err != nil {
		t.Fatal(err)
	}
	if total, _, _ := s.QueueLength(ctx, "events", now); total != 1000 {
		t.Fatalf("%d left after the delete", total)
	}
}

// TestMigrateQueues: items of the old per-queue keys move into queue/ and
// keep working.
func TestMigrateQueues(t *testing.T) {
	s, _, prefix := newStore(t)
	now := time.Now().Add(-time.Hour)
	seg := metadata.Segment{ID: etcd.NewID(), Size: 1}
	old := map[string]any{
		"repair/" + seg.ID: metadata.RepairEntry{V: 1, Segment: seg, Shards: []int{2}, Time: now},
		"gc/" + seg.ID:     metadata.GCEntry{V: 1, ID: seg.ID, Kind: metadata.GCSegment, Time: now, Segment: &seg},
		"events/e1":        metadata.Event{V: 1, ID: "e1", URL: "http://x/", Time: now, NextTry: now},
	}
	for k, v := range old {
		b, _ := json.Marshal(v)
		if _, err := cli.Put(ctx, prefix+k, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // idempotent
		if err := s.MigrateQueues(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"repair/", "gc/", "events/"} {
		if resp, _ := cli.Get(ctx, prefix+p, clientv3.WithPrefix(), clientv3.WithCountOnly()); resp.Count != 0 {
			t.Fatalf("%s keys left", p)
		}
	}
	rs, _ := s.ListRepairs(ctx, 10)
	gc, _ := s.ListGC(ctx, 10)
	evs, _ := s.ListEvents(ctx, time.Now(), "", 10)
	if len(rs) != 1 || rs[0].Shards[0] != 2 || len(gc) != 1 || gc[0].ID != seg.ID || len(evs) != 1 || evs[0].ID != "e1" {
		t.Fatalf("after migration: %+v %+v %+v", rs, gc, evs)
	}
	if ok, err := s.DoneRepair(ctx, rs[0]); !ok || err != nil {
		t.Fatalf("ack migrated: %v %v", ok, err)
	}
	if err := s.FinishGC(ctx, gc[0], nil); err != nil {
		t.Fatal(err)
	}
	if gc, _ := s.ListGC(ctx, 10); len(gc) != 0 {
		t.Fatalf("gc %+v", gc)
	}
}

// TestSegmentRecordCAS: the segment record is written with the commit, read
// with its revision and replaced by compare-and-swap only.
func TestSegmentRecordCAS(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "b")
	sg := seg(1)
	if _, _, err := s.GetSegment(ctx, sg.ID); !errors.Is(err, metadata.ErrNoSuchSegment) {
		t.Fatalf("before commit: %v", err)
	}
	if _, err := s.PutObject(ctx, obj("b", "k", "e", sg), metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	rec, rev, err := s.GetSegment(ctx, sg.ID)
	if err != nil || rec.Nodes[2] != "node-3" {
		t.Fatalf("record %+v %v", rec, err)
	}
	moved := rec
	moved.Nodes = slices.Clone(rec.Nodes)
	moved.Nodes[2] = "node-9"
	if err := s.UpdateSegment(ctx, moved, rev, metadata.Fence{}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSegment(ctx, rec, rev, metadata.Fence{}); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if got, _, _ := s.GetSegment(ctx, sg.ID); got.Nodes[2] != "node-9" {
		t.Fatalf("after update: %+v", got.Nodes)
	}
	// The collector works from the record: it deletes the moved shard.
	if _, err := s.DeleteObject(ctx, "b", "k", metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	gc, _ := s.ListGC(ctx, 10)
	if len(gc) != 1 {
		t.Fatalf("gc %+v", gc)
	}
	segs, err := s.GCSegments(ctx, gc[0])
	if err != nil || len(segs) != 1 || segs[0].Nodes[2] != "node-9" {
		t.Fatalf("gc segments %+v %v", segs, err)
	}
}

// TestClaims: a claim is exclusive, re-entrant for its holder, given up
// by Release and Close, and lost when the holder's lease runs out (a
// crashed holder: its client is gone without revoking anything).
func TestClaims(t *testing.T) {
	s, _, _ := newStore(t)
	a, err := s.NewClaimer(ctx, "a", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := s.NewClaimer(ctx, "b", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	claim := func(c metadata.Claimer, name string, want bool) {
		t.Helper()
		if _, got, err := c.Claim(ctx, name); err != nil || got != want {
			t.Fatalf("claim %s: %v %v, want %v", name, got, err, want)
		}
	}
	claim(a, "x", true)
	claim(b, "x", false)
	claim(a, "x", true) // re-entrant
	if err := b.Release(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	claim(b, "x", false) // b's release of a's claim is a no-op
	if err := a.Release(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	claim(b, "x", true)
	b.Close()
	claim(a, "x", true)

	// A holder that dies without a word: its own client, closed abruptly.
	cli2, err := clientv3.New(clientv3.Config{Endpoints: cli.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "/test/" + t.Name() + "/"
	s2 := etcd.New(cli2, etcd.Options{Prefix: prefix})
	c2, err := s2.NewClaimer(ctx, "crashing", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c2.Claim(ctx, "y"); !ok || err != nil {
		t.Fatalf("claim y: %v %v", ok, err)
	}
	cli2.Close() // no revoke: the lease runs out on etcd's clock
	defer c2.Close()
	claim(a, "y", false)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, ok, _ := a.Claim(ctx, "y"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a crashed holder's claim never expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDeferredDeletes: parked shards per node; the node list skips each
// node's keys.
func TestDeferredDeletes(t *testing.T) {
	s, kv, _ := newStore(t)
	var refs []metadata.ShardRef
	for _, node := range []string{"node-a", "node-b", "node-c"} {
		for i := range 150 { // more than one transaction's worth
			refs = append(refs, metadata.ShardRef{Node: node, Segment: fmt.Sprintf("%032x", i), Index: i % 6})
		}
	}
	if err := s.DeferDeletes(ctx, refs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeferDeletes(ctx, refs[:10]); err != nil { // idempotent
		t.Fatal(err)
	}
	before := kv.gets.Load()
	nodes, err := s.DeferredDeleteNodes(ctx)
	if err != nil || !slices.Equal(nodes, []string{"node-a", "node-b", "node-c"}) {
		t.Fatalf("nodes %v %v", nodes, err)
	}
	if reads := kv.gets.Load() - before; reads != 4 {
		t.Errorf("%d range reads for 3 nodes, want 4", reads)
	}
	got, err := s.ListDeferredDeletes(ctx, "node-b", 1000)
	if err != nil || len(got) != 150 || got[0].Node != "node-b" {
		t.Fatalf("node-b: %d %v", len(got), err)
	}
	if err := s.DropDeferredDeletes(ctx, got); err != nil {
		t.Fatal(err)
	}
	if nodes, _ := s.DeferredDeleteNodes(ctx); !slices.Equal(nodes, []string{"node-a", "node-c"}) {
		t.Fatalf("after drop: %v", nodes)
	}
	if err := s.DeferDeletes(ctx, []metadata.ShardRef{{Node: "a/b", Segment: "x", Index: 1}}); !errors.Is(err, metadata.ErrInvalid) {
		t.Fatalf("bad node id: %v", err)
	}
}

// TestScanAndWatchSegments: a scan sees every record as of one revision; a
// watch from that revision sees every later change with its old value;
// LeafSegments reads one leaf.
func TestScanAndWatchSegments(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "b")
	want := map[string]bool{}
	var first metadata.Segment
	for i := range 2500 / 100 { // 2500 records: more than two scan pages
		var segs []metadata.Segment
		for j := range 100 {
			sg := seg(i*100 + j + 10)
			if first.ID == "" {
				first = sg
			}
			segs = append(segs, sg)
			want[sg.ID] = true
		}
		if _, err := s.PutObject(ctx, obj("b", fmt.Sprint("k", i), "e", segs...), metadata.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	rev, err := s.ScanSegments(ctx, func(sg metadata.Segment) error {
		if got[sg.ID] {
			t.Fatalf("%s scanned twice", sg.ID)
		}
		got[sg.ID] = true
		return nil
	})
	if err != nil || len(got) != len(want) {
		t.Fatalf("scan: %d records, want %d, err %v", len(got), len(want), err)
	}
	stop := errors.New("stop")
	if _, err := s.ScanSegments(ctx, func(metadata.Segment) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("scan error: %v", err)
	}

	// A move (update) and a delete after the scan revision.
	rec, rrev, err := s.GetSegment(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	moved := rec
	moved.Nodes = slices.Clone(rec.Nodes)
	moved.Nodes[0] = "node-9"
	if err := s.UpdateSegment(ctx, moved, rrev, metadata.Fence{}); err != nil {
		t.Fatal(err)
	}
	fresh := seg(99999)
	if _, err := s.PutObject(ctx, obj("b", "new", "e", fresh), metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	var changes []metadata.SegmentChange
	err = s.WatchSegments(wctx, rev, func(cs []metadata.SegmentChange) {
		changes = append(changes, cs...)
		if len(changes) >= 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("watch ended with %v", err)
	}
	if len(changes) != 2 || changes[0].Old == nil || changes[0].Old.Nodes[0] == "node-9" || changes[0].New.Nodes[0] != "node-9" ||
		changes[1].Old != nil || changes[1].New.ID != fresh.ID {
		t.Fatalf("changes %+v", changes)
	}

	leaf, _ := merkleLeaf(fresh.ID)
	in, err := s.LeafSegments(ctx, leaf)
	if err != nil || len(in) != 1 || in[0].ID != fresh.ID {
		t.Fatalf("leaf segments %+v %v", in, err)
	}
	if _, err := s.LeafSegments(ctx, 1<<20); !errors.Is(err, metadata.ErrInvalid) {
		t.Fatalf("leaf out of range: %v", err)
	}
}

func merkleLeaf(id string) (uint32, error) {
	v, err := strconv.ParseUint(id[:5], 16, 32)
	return uint32(v), err
}

// TestListUploadsWithDelimiter pages through uploads in folders: the
// pages equal the plain answer, and folders are jumped, not read.
func TestListUploadsWithDelimiter(t *testing.T) {
	s, kv, _ := newStore(t)
	mustBucket(t, s, "b")
	type up struct{ key, id string }
	var all []up
	for f := range 60 {
		for i := range 5 {
			all = append(all, up{fmt.Sprintf("dir%02d/file%d", f, i), etcd.NewID()})
		}
	}
	for i := range 7 {
		all = append(all, up{fmt.Sprintf("top%d", i), etcd.NewID()}, up{fmt.Sprintf("top%d", i), etcd.NewID()})
	}
	for _, u := range all {
		if err := s.CreateUpload(ctx, metadata.Upload{Bucket: "b", Key: u.key, UploadID: u.id, Initiated: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	// The plain answer: common prefixes once each, then uploads by key, id.
	sort.Slice(all, func(i, j int) bool {
		if all[i].key != all[j].key {
			return all[i].key < all[j].key
		}
		return all[i].id < all[j].id
	})
	var want []string
	for _, u := range all {
		if cp := strings.SplitAfterN(u.key, "/", 2); len(cp) == 2 {
			if len(want) == 0 || want[len(want)-1] != cp[0] {
				want = append(want, cp[0])
			}
			continue
		}
		want = append(want, u.key+" "+u.id)
	}
	for _, max := range []int{1, 7, 50, 1000} {
		var got []string
		o := metadata.UploadListOptions{Delimiter: "/", MaxUploads: max}
		before := kv.bytes.Load()
		for pages := 0; ; pages++ {
			res, err := s.ListUploads(ctx, "b", o)
			if err != nil {
				t.Fatal(err)
			}
			// Within a page, prefixes and uploads interleave by key.
			var page []string
			page = append(page, res.CommonPrefixes...)
			for _, u := range res.Uploads {
				page = append(page, u.Key+" "+u.UploadID)
			}
			sort.Strings(page)
			got = append(got, page...)
			if !res.IsTruncated {
				break
			}
			o.KeyMarker, o.UploadIDMarker = res.NextKeyMarker, res.NextUploadIDMarker
			if pages > 1000 {
				t.Fatal("no progress")
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("max %d:\ngot  %v\nwant %v", max, got, want)
		}
		if read := kv.bytes.Load() - before; max == 1000 && read > 60*2*200+14*400 {
			t.Fatalf("max %d: %d bytes read: the folders were read", max, read)
		}
	}
}

// TestUpdateObject: UpdateObject changes what describes a version in
// place, never its data or identity, releases nothing, and keeps an
// out-of-line segment list.
func TestUpdateObject(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "b")
	segs := make([]metadata.Segment, 40) // out of line
	for i := range segs {
		segs[i] = seg(i)
	}
	for _, o := range []metadata.Object{obj("b", "small", "e1", seg(1)), obj("b", "big", "e2", segs...)} {
		if _, err := s.PutObject(ctx, o, metadata.Precondition{}); err != nil {
			t.Fatal(err)
		}
		before, _ := s.GetObject(ctx, "b", o.Key)
		err := s.UpdateObject(ctx, "b", o.Key, "", func(cur *metadata.Object) error {
			cur.ACL = "public-read"
			cur.ETag, cur.Segments, cur.VersionID, cur.Size = "changed", nil, "other", 1
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		after, err := s.GetObject(ctx, "b", o.Key)
		if err != nil || after.ACL != "public-read" {
			t.Fatalf("%s: ACL %q, %v", o.Key, after.ACL, err)
		}
		after.ACL = ""
		if !reflect.DeepEqual(after, before) {
			t.Fatalf("%s: data changed:\n%+v\n%+v", o.Key, before, after)
		}
	}
	if n := gcKinds(t, s); len(n) != 0 {
		t.Fatalf("update released %v", n)
	}
	boom := errors.New("boom")
	for _, tc := range []struct {
		bucket, key string
		f           func(*metadata.Object) error
		want        error
	}{
		{"b", "absent", func(*metadata.Object) error { return nil }, metadata.ErrNoSuchKey},
		{"nob", "small", func(*metadata.Object) error { return nil }, metadata.ErrNoSuchBucket},
		{"b", "small", func(*metadata.Object) error { return boom }, boom},
	} {
		if err := s.UpdateObject(ctx, tc.bucket, tc.key, "", tc.f); !errors.Is(err, tc.want) {
			t.Errorf("%s/%s: %v, want %v", tc.bucket, tc.key, err, tc.want)
		}
	}
}
