package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/metadata"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode"
)

// startHealingServer runs a healer whose loops wait an hour between
// rounds: the test makes the rounds it wants with RunOnce.
func startHealingServer(t *testing.T, opt func(*daemon.ServerConfig)) *daemon.Server {
	t.Helper()
	return startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.Heal.AntiEntropyInterval, c.ScrubInterval = time.Hour, time.Hour, -1
		if opt != nil {
			opt(c)
		}
	})
}

// putObjects writes n objects of assorted sizes (one of them multipart)
// and returns their contents by key.
func putObjects(t *testing.T, c *minio.Client, bucket string, n int) map[string][]byte {
	t.Helper()
	noErr(t, c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}))
	objects := map[string][]byte{}
	for i := range n {
		key := fmt.Sprintf("obj-%03d", i)
		objects[key] = randomBytes([]int{1, 100, 4096, 1 << 20, 1<<20 + 7, 2<<20 + 12345}[i%6]+i, uint64(1000+i))
		must(t)(c.PutObject(ctx, bucket, key, bytes.NewReader(objects[key]), int64(len(objects[key])), minio.PutObjectOptions{DisableMultipart: true}))
	}
	big := randomBytes(11<<20+3, 77) // 3 parts
	must(t)(c.PutObject(ctx, bucket, "multipart", bytes.NewReader(big), int64(len(big)), minio.PutObjectOptions{PartSize: 5 << 20}))
	objects["multipart"] = big
	return objects
}

// expectedOn counts the shards the records put on node.
func expectedOn(t *testing.T, s *daemon.Server, node string) int {
	t.Helper()
	n := 0
	_, err := s.Store.ScanSegments(ctx, func(seg metadata.Segment) error {
		for _, id := range seg.Nodes {
			if id == node {
				n++
			}
		}
		return nil
	})
	noErr(t, err)
	return n
}

func readBack(t *testing.T, c *minio.Client, bucket string, objects map[string][]byte) {
	t.Helper()
	for key, want := range objects {
		o, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		noErr(t, err)
		if got := readAll(t, o); !bytes.Equal(got, want) {
			t.Fatalf("%s: wrong bytes (%d, want %d)", key, len(got), len(want))
		}
	}
}

// TestWipedNodeRebuiltInOneRound: a node's data directory is wiped (a
// replaced disk) and the node comes back empty under its id. One
// anti-entropy round finds every shard it should hold missing, without
// reading any shard data, and rebuilds all of them onto it; then with two
// other nodes down every object still reads back byte-exact, which needs
// the rebuilt shards.
func TestWipedNodeRebuiltInOneRound(t *testing.T) {
	s := startHealingServer(t, nil)
	c := minioClient(t, s.Gateway.URL, false)
	objects := putObjects(t, c, "wipe", 24)
	ae := s.Gateway.Healer.AntiEntropy
	if rep, err := ae.RunOnce(ctx); err != nil || rep.Differing != 0 || rep.NodeCalls != 6 {
		t.Fatalf("healthy cluster: %+v %v (want no difference, one call per node)", rep, err)
	}

	const victim = 1 // node-2
	id := s.Nodes[victim].ID
	want := expectedOn(t, s, id)
	if want < 20 {
		t.Fatalf("only %d shards on %s", want, id)
	}
	noErr(t, s.StopNode(victim))
	noErr(t, os.RemoveAll(filepath.Join(s.Nodes[0].Shards().Dir(), "..", "..", id)))
	noErr(t, s.RestartNode(ctx, victim))
	waitFor(t, "the wiped node live at its new address", 10*time.Second, func() bool {
		st, live := s.Gateway.Cluster.Store(id)
		if !live || st == nil {
			return false
		}
		_, err := st.Children(ctx, 0, 0)
		return err == nil
	})
	if n := countShards(s.Nodes[victim].Shards()); n != 0 {
		t.Fatalf("wiped node holds %d shards", n)
	}

	rep, err := ae.RunOnce(ctx)
	noErr(t, err)
	t.Logf("round after the wipe: %+v", rep)
	if rep.Missing != want || rep.Rebuilt != want || rep.Wrong+rep.Unexpected != 0 {
		t.Fatalf("round found %d missing, rebuilt %d (want %d each), wrong %d, unexpected %d", rep.Missing, rep.Rebuilt, want, rep.Wrong, rep.Unexpected)
	}
	if got := countShards(s.Nodes[victim].Shards()); got != want {
		t.Fatalf("after one round %s holds %d shards, want %d", id, got, want)
	}
	for key := range objects {
		if !fullyHealthy(t, s, "wipe", key) {
			t.Fatalf("%s: not every shard back after one round", key)
		}
	}
	if rep, err := ae.RunOnce(ctx); err != nil || rep.Differing != 0 {
		t.Fatalf("round after the repair: %+v %v", rep, err)
	}
	for _, i := range []int{3, 4} {
		noErr(t, s.StopNode(i))
	}
	waitFor(t, "4 live nodes", 10*time.Second, func() bool { return liveCount(s) == 4 })
	readBack(t, c, "wipe", objects)
	for _, n := range s.Nodes {
		if n == nil {
			continue
		}
		rep, err := n.Shards().Check(ctx)
		noErr(t, err)
		if !rep.OK() {
			t.Fatalf("%s: %+v", n.ID, rep)
		}
	}
}

func countShards(st *storagenode.Store) int {
	n := 0
	st.Walk(ctx, func(shard.Info) error { n++; return nil })
	return n
}

// slowReader reads r in small steps with pauses: a slow client.
type slowReader struct {
	r     io.Reader
	pause time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.pause)
	return s.r.Read(p[:min(len(p), 32<<10)])
}

// TestOrphansSwept: shards a crashed gateway left behind (written, never
// committed) are deleted once they have stayed unreferenced for the grace
// period, and not before; a slow GET of a committed object that runs
// meanwhile reads every byte right, and no referenced shard is touched.
func TestOrphansSwept(t *testing.T) {
	const grace = 3 * time.Second
	// Anti-entropy's clock is the test's: it stands still, and the grace
	// passes when the test moves it.
	var skew atomic.Int64
	base := time.Now()
	clock := func() time.Time { return base.Add(time.Duration(skew.Load())) }
	s := startHealingServer(t, func(c *daemon.ServerConfig) {
		c.Heal.Grace, c.CommitWindow, c.MinPartSize, c.Heal.Now = grace, time.Second, 4096, clock
	})
	c := minioClient(t, s.Gateway.URL, false)
	objects := putObjects(t, c, "orphans", 12)

	// A gateway that crashed while completing an upload of 40 parts: the
	// out-of-line segment list is written, the commit never sent. The
	// upload stays open; its parts must survive the sweep.
	core := minio.Core{Client: c}
	uid, err := core.NewMultipartUpload(ctx, "orphans", "forty", minio.PutObjectOptions{})
	noErr(t, err)
	var forty []byte
	var cparts []minio.CompletePart
	for i := 1; i <= 40; i++ {
		part := randomBytes(4096+i, uint64(500+i))
		forty = append(forty, part...)
		p, err := core.PutObjectPart(ctx, "orphans", "forty", uid, i, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{})
		noErr(t, err)
		cparts = append(cparts, minio.CompletePart{PartNumber: i, ETag: p.ETag})
	}
	crashCompletion(t, s, "orphans", "forty", uid)
	if ps, err := s.Store.ListPendingChunks(ctx, 10); err != nil || len(ps) != 1 {
		t.Fatalf("the crashed completion left %d pending lists (%v), want 1", len(ps), err)
	}
	before := 0
	for _, n := range s.Nodes {
		before += countShards(n.Shards())
	}

	// A crashed gateway's leftovers: the shards of a segment never
	// committed, on 4 nodes, and a stray shard of a committed segment on
	// a node the record does not name.
	prof := erasure.Profile{K: 4, M: 2, BlockSize: 4096}
	enc, err := erasure.New(prof)
	noErr(t, err)
	shards := make([]*bytes.Buffer, prof.Shards())
	ws := make([]io.Writer, len(shards))
	for i := range shards {
		shards[i] = &bytes.Buffer{}
		ws[i] = shards[i]
	}
	data := randomBytes(10_000, 5)
	_, err = enc.Encode(bytes.NewReader(data), ws, prof.Shards())
	noErr(t, err)
	orphanSeg := "0abcdef0123456789abcdef012345678"
	for i := range 4 {
		_, err := s.Nodes[i].Shards().Put(ctx, shard.ID{Segment: orphanSeg, Index: i}, prof.FullShardBlock(), bytes.NewReader(shards[i].Bytes()))
		noErr(t, err)
	}
	obj, err := s.Store.GetObject(ctx, "orphans", "obj-003")
	noErr(t, err)
	rec, _, err := s.Store.GetSegment(ctx, obj.Segments[0].ID)
	noErr(t, err)
	holder := nodeIndex(s, rec.Nodes[0])
	other := (holder + 1) % len(s.Nodes)
	f, err := s.Nodes[holder].Shards().Open(ctx, shard.ID{Segment: rec.ID, Index: 0}, 0, -1)
	noErr(t, err)
	copyBytes := readAll(t, f)
	f.Close()
	_, err = s.Nodes[other].Shards().Put(ctx, shard.ID{Segment: rec.ID, Index: 0}, erasure.Profile{K: rec.Profile.K, M: rec.Profile.M, BlockSize: rec.Profile.BlockSize}.FullShardBlock(), bytes.NewReader(copyBytes))
	noErr(t, err)

	// A slow GET of a committed object, running across the sweep.
	slowDone := make(chan error, 1)
	go func() {
		o, err := c.GetObject(ctx, "orphans", "multipart", minio.GetObjectOptions{})
		if err != nil {
			slowDone <- err
			return
		}
		got, err := io.ReadAll(slowReader{o, 15 * time.Millisecond})
		if err == nil && !bytes.Equal(got, objects["multipart"]) {
			err = fmt.Errorf("slow GET read wrong bytes")
		}
		slowDone <- err
	}()

	ae := s.Gateway.Healer.AntiEntropy
	rep, err := ae.RunOnce(ctx)
	noErr(t, err)
	if rep.Unexpected != 5 || rep.Swept != 0 {
		t.Fatalf("first round: %+v (want 5 unexpected, none swept)", rep)
	}
	// Just short of the grace since the first round saw the orphans:
	// nothing is swept.
	skew.Add(int64(grace - time.Nanosecond))
	for range 3 {
		rep, err = ae.RunOnce(ctx)
		noErr(t, err)
		if rep.Swept != 0 {
			t.Fatalf("swept before the grace period: %+v", rep)
		}
	}
	skew.Add(int64(time.Nanosecond))
	waitFor(t, "the orphans swept", 15*time.Second, func() bool {
		defer skew.Add(int64(grace)) // what a later round first sees comes due too
		rep, err := ae.RunOnce(ctx)
		return err == nil && rep.Differing == 0
	})
	after := 0
	for _, n := range s.Nodes {
		after += countShards(n.Shards())
	}
	if after != before {
		t.Fatalf("%d shards after the sweep, %d before the orphans were planted", after, before)
	}
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	if ps, err := s.Store.ListPendingChunks(ctx, 10); err != nil || len(ps) != 0 {
		t.Fatalf("%d pending lists left (%v)", len(ps), err)
	}
	// The upload's parts were kept: completing it now works.
	must(t)(core.CompleteMultipartUpload(ctx, "orphans", "forty", uid, cparts, minio.PutObjectOptions{}))
	objects["forty"] = forty
	for key := range objects {
		if !fullyHealthy(t, s, "orphans", key) {
			t.Fatalf("%s lost a shard to the sweep", key)
		}
	}
	readBack(t, c, "orphans", objects)
}

func nodeIndex(s *daemon.Server, id string) int {
	for i, n := range s.Nodes {
		if n != nil && n.ID == id {
			return i
		}
	}
	return -1
}

// TestMultiProcessWipedNode: in a cluster of separate processes (etcd, 6
// `sherd node` each running its repairer and anti-entropy, a gateway), a
// node is SIGKILLed, its data directory wiped, and it restarts empty under
// its id. The nodes' anti-entropy finds and rebuilds every shard it should
// hold; then with two other nodes killed every object reads back
// byte-exact.
func TestMultiProcessWipedNode(t *testing.T) {
	cl := startCluster(t, "--anti-entropy-interval", "1s", "--repair-interval", "1s")
	_, url := cl.startGateway(t)
	c := minioClient(t, url, false)
	objects := putObjects(t, c, "wipe", 18)

	cli, err := metaetcd.Dial(cl.etcdURL)
	noErr(t, err)
	defer cli.Close()
	store := metaetcd.New(cli, metaetcd.Options{})
	want, hashed := 0, true
	count := func() {
		want, hashed = 0, true
		_, err := store.ScanSegments(ctx, func(seg metadata.Segment) error {
			for i, id := range seg.Nodes {
				if id == "node-2" {
					want++
					hashed = hashed && seg.ShardHashes[i] != ""
				}
			}
			return nil
		})
		noErr(t, err)
	}
	count()
	dir := cl.nodeArgs[1][slices.Index(cl.nodeArgs[1], "--data")+1]
	// The shards node-2 holds (files or inline): its own count, from its
	// metrics at the address it registered.
	files := func() int {
		nodes, err := store.ListNodes(ctx)
		if err != nil {
			return -1
		}
		for _, n := range nodes {
			if n.ID == "node-2" && n.Live {
				return int(value(scrapeNode(t, n.Address, []byte("multi-process-cluster-key"), ""), "sherd_node_shards", nil))
			}
		}
		return -1
	}
	if got := files(); got != want || want < 15 {
		t.Fatalf("node-2 holds %d shards, records say %d", got, want)
	}
	cl.nodes[1].kill()
	noErr(t, os.RemoveAll(dir))
	start := time.Now()
	cl.restartNode(t, 1)
	waitFor(t, "every shard back on node-2", 60*time.Second, func() bool {
		count()
		return hashed && files() == want
	})
	t.Logf("%d shards rebuilt on the wiped node %v after it restarted", want, time.Since(start).Round(10*time.Millisecond))
	cl.nodes[3].kill()
	cl.nodes[4].kill()
	readBack(t, c, "wipe", objects)
}

// lostCommitKV loses every commit transaction (one writing an objects/
// key): it is never sent, as when a gateway crashes just before.
type lostCommitKV struct{ clientv3.KV }

func (l lostCommitKV) Txn(ctx context.Context) clientv3.Txn { return &lostTxn{Txn: l.KV.Txn(ctx)} }

type lostTxn struct {
	clientv3.Txn
	commit bool
}

func (t *lostTxn) If(c ...clientv3.Cmp) clientv3.Txn  { t.Txn = t.Txn.If(c...); return t }
func (t *lostTxn) Else(o ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(o...); return t }
func (t *lostTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		t.commit = t.commit || op.IsPut() && strings.Contains(string(op.KeyBytes()), "/objects/")
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}
func (t *lostTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.commit {
		return nil, errors.New("gateway crashed")
	}
	return t.Txn.Commit()
}

// crashCompletion completes upload uid as a gateway would up to the
// commit, which it never sends: what a gateway crashing there leaves.
func crashCompletion(t *testing.T, s *daemon.Server, bucket, key, uid string) {
	t.Helper()
	cli, err := metaetcd.Dial(s.EtcdURL())
	noErr(t, err)
	defer cli.Close()
	store := metaetcd.New(cli, metaetcd.Options{KV: lostCommitKV{cli.KV}})
	u, err := store.GetUpload(ctx, bucket, key, uid)
	noErr(t, err)
	parts, _, err := store.ListParts(ctx, uid, 0, 1000)
	noErr(t, err)
	_, err = store.CompleteUpload(ctx, u, parts, metadata.Object{Bucket: bucket, Key: key, ETag: "crashed"}, metadata.Precondition{})
	if !errors.Is(err, metadata.ErrUnknownOutcome) {
		t.Fatalf("crashed completion: %v", err)
	}
}
