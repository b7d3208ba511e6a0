package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/internal/etcdserver"
	"github.com/sherdstore/sherd/metadata"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode"
)

var etcdCli *clientv3.Client

func TestMain(m *testing.M) {
	var stop func()
	var err error
	if etcdCli, stop, err = etcdserver.ForTests(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// faultyStore wraps a shard store; it fails, or corrupts, on command.
type faultyStore struct {
	shard.Store
	failPut  atomic.Bool // Put fails after reading some of the body
	failOpen atomic.Bool
	hangOpen atomic.Bool  // Open waits for its context to end
	opens    atomic.Int64 // Opens started
}

var errInjected = errors.New("injected fault")

func (f *faultyStore) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	if f.failPut.Load() {
		io.CopyN(io.Discard, r, 1000)
		return shard.Info{}, errInjected
	}
	return f.Store.Put(ctx, id, blockLen, r)
}

func (f *faultyStore) Open(ctx context.Context, id shard.ID, off, n int64) (io.ReadCloser, error) {
	f.opens.Add(1)
	if f.hangOpen.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if f.failOpen.Load() {
		return nil, errInjected
	}
	return f.Store.Open(ctx, id, off, n)
}

type fixture struct {
	gw     *Gateway
	stores []*storagenode.Store
	faults []*faultyStore
	mc     *minio.Client
	meta   metadata.Store
}

// newFixture serves a gateway over 6 in-process shard stores (no HTTP
// between gateway and nodes) wrapped for fault injection.
func newFixture(t *testing.T) *fixture { t.Helper(); return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with a gateway configured by configure.
func newFixtureWith(t *testing.T, configure func(*Config)) *fixture {
	t.Helper()
	f := &fixture{meta: metaetcd.New(etcdCli, metaetcd.Options{Prefix: "/" + t.Name() + "/" + metaetcd.NewID() + "/"})}
	var nodes []metadata.Node
	byAddr := map[string]*faultyStore{}
	for i := range 6 {
		st, err := storagenode.Open(t.TempDir(), storagenode.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fs := &faultyStore{Store: st}
		f.stores, f.faults = append(f.stores, st), append(f.faults, fs)
		addr := fmt.Sprintf("mem://%d", i)
		byAddr[addr] = fs
		nodes = append(nodes, metadata.Node{ID: fmt.Sprintf("n%d", i), Address: addr, State: metadata.NodeActive, Live: true})
	}
	cl := cluster.New(cluster.Config{Dial: func(n metadata.Node) shard.Store { return byAddr[n.Address] }, Repairs: f.meta, Records: f.meta})
	t.Cleanup(func() { cl.Close() })
	cl.Update(nodes)
	cfg := Config{Store: f.meta, Cluster: cl, Credentials: StaticCredentials{"ak": "secret-key"}}
	if configure != nil {
		configure(&cfg)
	}
	gw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.gw = gw
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	// No client retries: the faults are injected on purpose, and a retry
	// of a refused PUT would seek the body while the HTTP transport of the
	// refused attempt may still be reading it (a data race in minio-go,
	// which does not wait for the transport to close the body).
	f.mc, err = minio.New(srv.Listener.Addr().String(), &minio.Options{Creds: credentials.NewStaticV4("ak", "secret-key", ""), Region: "us-east-1", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.mc.MakeBucket(context.Background(), "faults", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) shardFiles(t *testing.T) int {
	n := 0
	for _, st := range f.stores {
		st.Walk(context.Background(), func(shard.Info) error { n++; return nil })
	}
	return n
}

// TestFaultInjection: nodes failing mid-write and mid-read.
func TestFaultInjection(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	data := bytes.Repeat([]byte("sherd!"), 500_000)
	put := func(key string) error {
		_, err := f.mc.PutObject(ctx, "faults", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		return err
	}
	get := func(key string) error {
		o, err := f.mc.GetObject(ctx, "faults", key, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		got, err := io.ReadAll(o)
		if err == nil && !bytes.Equal(got, data) {
			err = errors.New("bytes differ")
		}
		return err
	}
	// One node fails its write: the PUT stands on 5 shards and the 6th is queued.
	f.faults[1].failPut.Store(true)
	if err := put("one-failed"); err != nil {
		t.Fatal(err)
	}
	f.faults[1].failPut.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs, _ := f.meta.ListRepairs(ctx, 10)
		if len(rs) == 1 && len(rs[0].Shards) == 1 && rs[0].Segment.Nodes[rs[0].Shards[0]] == "n1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("repair not queued: %+v", rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.shardFiles(t); n != 5 {
		t.Fatalf("%d shard files, want 5", n)
	}
	// Two nodes fail: below the quorum of 5, 503, no object, and the shards
	// already written are deleted.
	f.faults[2].failPut.Store(true)
	f.faults[4].failPut.Store(true)
	err := put("two-failed")
	if minio.ToErrorResponse(err).StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("below quorum: %v", err)
	}
	f.faults[2].failPut.Store(false)
	f.faults[4].failPut.Store(false)
	if _, err := f.mc.StatObject(ctx, "faults", "two-failed", minio.StatObjectOptions{}); minio.ToErrorResponse(err).StatusCode != 404 {
		t.Fatalf("object visible after 503: %v", err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for f.shardFiles(t) != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d shard files after a refused PUT, want 5", f.shardFiles(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Reads route around failing nodes, up to m of them.
	if err := put("readme"); err != nil {
		t.Fatal(err)
	}
	f.faults[0].failOpen.Store(true)
	f.faults[3].failOpen.Store(true)
	if err := get("readme"); err != nil {
		t.Fatalf("2 nodes failing reads: %v", err)
	}
	f.faults[5].failOpen.Store(true)
	if err := get("readme"); minio.ToErrorResponse(err).StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("3 nodes failing reads: %v", err)
	}
}

func TestValidBucketName(t *testing.T) {
	for name, ok := range map[string]bool{
		"abc": true, "my-bucket.v2": true, "a1b": true, strings63(): true,
		"ab": false, "ABC": false, "a_b": false, "-ab": false, "ab-": false, "a..b": false, "a.-b": false,
		"192.168.1.1": false, "xn--abc": false, "abc-s3alias": false, strings63() + "a": false,
	} {
		if validBucketName(name) != ok {
			t.Errorf("validBucketName(%q) = %v", name, !ok)
		}
	}
}

func strings63() string { return string(bytes.Repeat([]byte("a"), 63)) }

func TestReadPreconditions(t *testing.T) {
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	before, after := mod.Add(-time.Hour).Format(http.TimeFormat), mod.Add(time.Hour).Format(http.TimeFormat)
	cases := []struct {
		hdr  map[string]string
		want int
	}{
		{map[string]string{}, 0},
		{map[string]string{"If-Match": `"e"`}, 0},
		{map[string]string{"If-Match": `"x", "e"`}, 0},
		{map[string]string{"If-Match": `"x"`}, 412},
		{map[string]string{"If-Match": "*"}, 0},
		{map[string]string{"If-None-Match": `"e"`}, 304},
		{map[string]string{"If-None-Match": `W/"e"`}, 304},
		{map[string]string{"If-None-Match": `"x"`}, 0},
		{map[string]string{"If-Modified-Since": after}, 304},
		{map[string]string{"If-Modified-Since": before}, 0},
		{map[string]string{"If-Modified-Since": mod.Format(http.TimeFormat)}, 304},
		{map[string]string{"If-Unmodified-Since": before}, 412},
		{map[string]string{"If-Unmodified-Since": after}, 0},
		// If-Match wins over If-Unmodified-Since; If-None-Match over If-Modified-Since.
		{map[string]string{"If-Match": `"e"`, "If-Unmodified-Since": before}, 0},
		{map[string]string{"If-None-Match": `"x"`, "If-Modified-Since": after}, 0},
		{map[string]string{"If-Modified-Since": "garbage"}, 0},
	}
	for _, c := range cases {
		h := http.Header{}
		for k, v := range c.hdr {
			h.Set(k, v)
		}
		if got := readPreconditions(h, "e", mod); got != c.want {
			t.Errorf("%v: %d, want %d", c.hdr, got, c.want)
		}
	}
}

func TestParseObjectMeta(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Encoding", "aws-chunked,gzip")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Amz-Meta-Color", "blue")
	m, err := parseObjectMeta(h)
	if err != nil || m.headers["Content-Encoding"] != "gzip" || m.headers["Cache-Control"] != "no-cache" || m.userMeta["color"] != "blue" {
		t.Fatalf("%+v %v", m, err)
	}
	h.Set("Content-Encoding", "aws-chunked")
	if m, _ := parseObjectMeta(h); m.headers["Content-Encoding"] != "" {
		t.Fatalf("aws-chunked kept: %+v", m.headers)
	}
	h.Set("Content-Encoding", "deflate, gzip") // kept byte for byte, as AWS
	if m, _ := parseObjectMeta(h); m.headers["Content-Encoding"] != "deflate, gzip" {
		t.Fatalf("Content-Encoding rewritten: %q", m.headers["Content-Encoding"])
	}
	h.Set("X-Amz-Meta-Big", string(bytes.Repeat([]byte("x"), 2100)))
	if _, err := parseObjectMeta(h); !errors.Is(err, errMetadataTooLarge) {
		t.Fatalf("big metadata: %v", err)
	}
	h.Del("X-Amz-Meta-Big")
	// Stored standard headers are bounded too: they go into etcd values.
	h.Set("Content-Disposition", string(bytes.Repeat([]byte("y"), 5000)))
	h.Set("Cache-Control", string(bytes.Repeat([]byte("z"), 4000)))
	if _, err := parseObjectMeta(h); !errors.Is(err, errHeadersTooLarge) {
		t.Fatalf("9 KB of stored headers: %v", err)
	}
}

func TestPartRange(t *testing.T) {
	obj := metadata.Object{Size: 25, PartCount: 3, Segments: []metadata.Segment{{Size: 10}, {Size: 10}, {Size: 5}}}
	for _, c := range []struct {
		n           string
		off, length int64
		err         bool
	}{{"1", 0, 10, false}, {"2", 10, 10, false}, {"3", 20, 5, false}, {"4", 0, 0, true}, {"0", 0, 0, true}, {"x", 0, 0, true}} {
		off, l, _, err := partRange(c.n, obj)
		if off != c.off || l != c.length || (err != nil) != c.err {
			t.Errorf("part %s: %d %d %v", c.n, off, l, err)
		}
	}
}

func FuzzCopySource(f *testing.F) {
	for _, s := range []string{"/b/k", "b/k?versionId=null", "b/k?versionId=3f2a", "b%2Fk", "/b/", "b/k%ZZ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, k, v, err := copySource(s)
		if err == nil && (b == "" || k == "") {
			t.Fatalf("%q: empty bucket or key", s)
		}
		if err == nil && v != "" && !strings.Contains(s, "?") {
			t.Fatalf("%q: a version without a query", s)
		}
	})
}

func FuzzParseCopyRange(f *testing.F) {
	f.Add("bytes=0-9")
	f.Add("bytes=5-")
	f.Fuzz(func(t *testing.T, s string) {
		a, b, ok := parseCopyRange(s)
		if ok && (a < 0 || b < a) {
			t.Fatalf("%q: %d-%d", s, a, b)
		}
	})
}
