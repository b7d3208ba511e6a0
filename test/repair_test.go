package test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode"
)

// repairBacklog is the number of entries in the repair queue, due or
// deferred.
func repairBacklog(t testing.TB, s *daemon.Server) int {
	t.Helper()
	total, _, err := s.Store.QueueLength(ctx, "repair", time.Now())
	noErr(t, err)
	return total
}

func liveCount(s *daemon.Server) int {
	n := 0
	for _, x := range s.Gateway.Cluster.Nodes() {
		if x.Live {
			n++
		}
	}
	return n
}

// fullyHealthy says whether every shard of the object's segments is
// recorded and stored with its recorded hash.
func fullyHealthy(t *testing.T, s *daemon.Server, bucket, key string) bool {
	t.Helper()
	obj, err := s.Store.GetObject(ctx, bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*storagenode.Store{}
	for _, n := range s.Nodes {
		if n != nil {
			byID[n.ID] = n.Shards()
		}
	}
	for _, hint := range obj.Segments {
		rec, _, err := s.Store.GetSegment(ctx, hint.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i, node := range rec.Nodes {
			st := byID[node]
			if rec.ShardHashes[i] == "" || st == nil {
				return false
			}
			info, err := st.Stat(ctx, shard.ID{Segment: rec.ID, Index: i})
			if err != nil || info.Hash != rec.ShardHashes[i] {
				return false
			}
		}
	}
	return true
}

// TestRepairHealsQueuedShards: objects written while a node is down have
// 5 of 6 shards and are queued for repair; the queue waits while the node
// is down; once it is back every missing shard is rebuilt onto it and
// recorded, the queue empties, and then with two *other* nodes down every
// object still reads back byte-exact (which needs the rebuilt shards).
func TestRepairHealsQueuedShards(t *testing.T) {
	s := startRepairingServer(t, "")
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "heal", minio.MakeBucketOptions{}))
	noErr(t, s.StopNode(0))
	waitFor(t, "5 live nodes", 10*time.Second, func() bool { return liveCount(s) == 5 })
	objects := map[string][]byte{}
	for i, size := range []int{1, 4096, 1 << 20, 1<<20 + 1, 3<<20 + 12345} {
		key := fmt.Sprintf("obj-%d", i)
		objects[key] = randomBytes(size, uint64(i))
		if _, err := c.PutObject(ctx, "heal", key, bytes.NewReader(objects[key]), int64(size), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a repair entry per object", 10*time.Second, func() bool {
		return repairBacklog(t, s) == len(objects)
	})
	// While the node is down the entries wait (several passes).
	passes := s.Gateway.Healer.Repairer.Stats.Snapshot().Passes
	waitFor(t, "repair passes", 10*time.Second, func() bool { return s.Gateway.Healer.Repairer.Stats.Snapshot().Passes >= passes+3 })
	if n := repairBacklog(t, s); n != len(objects) {
		t.Fatalf("entries acknowledged while the node was down: %d left", n)
	}
	noErr(t, s.RestartNode(ctx, 0))
	waitFor(t, "repair queue empty", 30*time.Second, func() bool {
		return repairBacklog(t, s) == 0
	})
	for key := range objects {
		if !fullyHealthy(t, s, "heal", key) {
			t.Fatalf("%s: not every shard rebuilt and recorded", key)
		}
	}
	if st := s.Gateway.Healer.Repairer.Stats.Snapshot(); st.ShardsRebuilt != len(objects) {
		t.Errorf("rebuilt %d shards, want %d (nothing twice)", st.ShardsRebuilt, len(objects))
	}
	// Two other nodes down: 4 shards left, one of them rebuilt.
	noErr(t, s.StopNode(1))
	noErr(t, s.StopNode(2))
	waitFor(t, "4 live nodes", 10*time.Second, func() bool { return liveCount(s) == 4 })
	for key, want := range objects {
		o, err := c.GetObject(ctx, "heal", key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, o); !bytes.Equal(got, want) {
			t.Fatalf("%s: wrong bytes after repair with 2 nodes down", key)
		}
	}
}

// TestRepairRebuildsCorruptShard: a shard that rotted on disk is routed
// around by the read, reported, rebuilt in place and recorded; the file is
// then byte-for-byte the original again.
func TestRepairRebuildsCorruptShard(t *testing.T) {
	s := startRepairingServer(t, "")
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "rot", minio.MakeBucketOptions{}))
	data := randomBytes(2<<20+100, 7)
	if _, err := c.PutObject(ctx, "rot", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, err := s.Store.GetObject(ctx, "rot", "k")
	noErr(t, err)
	seg := obj.Segments[0]
	var victim *daemon.Node
	for _, n := range s.Nodes {
		if n.ID == seg.Nodes[1] {
			victim = n
		}
	}
	id := shard.ID{Segment: seg.ID, Index: 1}
	corruptFile(t, victim.Shards(), id)
	o, err := c.GetObject(ctx, "rot", "k", minio.GetObjectOptions{})
	noErr(t, err)
	if got := readAll(t, o); !bytes.Equal(got, data) {
		t.Fatal("corrupt shard leaked into the object")
	}
	waitFor(t, "corrupt shard rebuilt", 30*time.Second, func() bool {
		return repairBacklog(t, s) == 0 && s.Gateway.Healer.Repairer.Stats.Snapshot().ShardsRebuilt == 1
	})
	if rep, err := victim.Shards().Check(ctx); err != nil || !rep.OK() {
		t.Fatalf("store check after repair: %+v %v", rep, err)
	}
	// Only the rebuilt shard can make k now.
	for i, node := range seg.Nodes {
		if i == 0 || i == 2 {
			for j, n := range s.Nodes {
				if n != nil && n.ID == node {
					noErr(t, s.StopNode(j))
				}
			}
		}
	}
	waitFor(t, "4 live nodes", 10*time.Second, func() bool { return liveCount(s) == 4 })
	o, err = c.GetObject(ctx, "rot", "k", minio.GetObjectOptions{})
	noErr(t, err)
	if got := readAll(t, o); !bytes.Equal(got, data) {
		t.Fatal("wrong bytes from the rebuilt shard")
	}
}

// TestScrubAndRepairHealRot: bytes flipped in random shard files on two
// nodes are found by the scrubbers without any read, quarantined, queued
// and rebuilt; meanwhile a reader keeps GETting every object and never
// sees a wrong byte; afterwards every shard is back and the stores check
// clean.
func TestScrubAndRepairHealRot(t *testing.T) {
	s := startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.Heal.AntiEntropyInterval, c.ScrubInterval, c.StatusInterval = 100*time.Millisecond, time.Hour, time.Hour, 100*time.Millisecond
	})
	// The scrubbers' first pass runs at start: let it end (before any
	// object is written), so that only the pass below sees the damage.
	waitFor(t, "the scrubbers' first pass", 30*time.Second, func() bool {
		for _, n := range s.Nodes {
			if p := n.Scrubber.Progress(); p.Passes < 1 || p.Running {
				return false
			}
		}
		return true
	})
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "rot2", minio.MakeBucketOptions{}))
	objects := map[string][]byte{}
	for i := range 12 {
		key := fmt.Sprintf("o%d", i)
		objects[key] = randomBytes(50_000+i*70_000, uint64(100+i))
		must(t)(c.PutObject(ctx, "rot2", key, bytes.NewReader(objects[key]), int64(len(objects[key])), minio.PutObjectOptions{}))
	}
	// Flip bytes in 3 shard files on each of two nodes.
	flipped := 0
	for _, n := range s.Nodes[1:3] {
		var ids []shard.ID
		n.Shards().Walk(ctx, func(info shard.Info) error {
			id, _ := shard.ParseID(info.ID)
			if p, _, err := n.Shards().Locate(id); err == nil && p != "" {
				ids = append(ids, id) // a file or pack, not inline (rot of those: storagenode's tests)
			}
			return nil
		})
		if len(ids) < 3 {
			t.Fatalf("%s holds %d shard files", n.ID, len(ids))
		}
		for _, id := range ids[:3] {
			corruptFile(t, n.Shards(), id)
			flipped++
		}
	}
	// A scrub pass finds all the rot. Nothing reads the objects before it:
	// a reader's bad-shard reports would have the repairer rebuild some of
	// the damaged shards first, and the pass would find fewer.
	for _, n := range s.Nodes[1:3] {
		noErr(t, n.Scrubber.Pass(ctx))
	}
	quarantined := 0
	for _, n := range s.Nodes[1:3] {
		quarantined += n.Scrubber.Progress().LastCorrupt
	}
	if quarantined != flipped {
		t.Fatalf("scrubbers quarantined %d shards, %d were damaged", quarantined, flipped)
	}
	// A reader, all along the healing: it never sees wrong bytes.
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			for key, want := range objects {
				o, err := c.GetObject(ctx, "rot2", key, minio.GetObjectOptions{})
				if err != nil {
					done <- err
					return
				}
				got := new(bytes.Buffer)
				if _, err := got.ReadFrom(o); err != nil {
					done <- err
					return
				}
				if !bytes.Equal(got.Bytes(), want) {
					done <- fmt.Errorf("%s: wrong bytes while healing", key)
					return
				}
			}
		}
	}()
	stopReader := sync.OnceValue(func() error { close(stop); return <-done })
	defer stopReader() // on a failure below
	waitFor(t, "everything healthy again", 30*time.Second, func() bool {
		if repairBacklog(t, s) != 0 {
			return false
		}
		for key := range objects {
			if !fullyHealthy(t, s, "rot2", key) {
				return false
			}
		}
		return true
	})
	noErr(t, stopReader())
	for _, n := range s.Nodes {
		if rep, err := n.Shards().Check(ctx); err != nil || !rep.OK() {
			t.Fatalf("%s: check %+v %v", n.ID, rep, err)
		}
	}
	if got := s.Gateway.Healer.Repairer.Stats.Snapshot().ShardsRebuilt; got < flipped {
		t.Fatalf("%d shards rebuilt, want at least %d", got, flipped)
	}
	// The operator sees it: each node's last scrub pass, the repairer's work.
	bin := buildSherd(t, t.TempDir())
	var out []byte
	waitFor(t, "sherdctl status to show the scrub finds and the repairs", 20*time.Second, func() bool {
		var err error
		out, err = exec.Command(filepath.Join(filepath.Dir(bin), "sherdctl"), "status", "--etcd", s.EtcdURL()).CombinedOutput()
		if err != nil {
			t.Fatalf("sherdctl status: %v\n%s", err, out)
		}
		return scrubRow(string(out), "node-2", 3) && scrubRow(string(out), "node-3", 3) && strings.Contains(string(out), "REPAIRER")
	})
	t.Logf("sherdctl status:\n%s", out)
}

// scrubRow says whether status output has node's scrub row with corrupt
// shards found in its last pass.
func scrubRow(out, node string, corrupt int) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		// node-2  1s ago  12ms  36  3  idle  0s ago
		if len(f) >= 7 && f[0] == node && f[len(f)-4] == fmt.Sprint(corrupt) {
			return true
		}
	}
	return false
}

// TestStatusShowsSegmentHealth: sherdctl status counts segments by healthy
// shards from metadata: 6/6 when written with every node up, 5/6 for those
// written with one node down, 4/6 when a second node goes down.
func TestStatusShowsSegmentHealth(t *testing.T) {
	bin := buildSherd(t, t.TempDir())
	ctl := filepath.Join(filepath.Dir(bin), "sherdctl")
	s := startServer(t, "")
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "stat", minio.MakeBucketOptions{}))
	put := func(key string) {
		b := randomBytes(10_000, 1)
		must(t)(c.PutObject(ctx, "stat", key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}))
	}
	status := func() string {
		out, err := exec.Command(ctl, "status", "--etcd", s.EtcdURL()).CombinedOutput()
		if err != nil {
			t.Fatalf("sherdctl status: %v\n%s", err, out)
		}
		return string(out)
	}
	put("a")
	put("b")
	noErr(t, s.StopNode(5))
	waitFor(t, "5 live nodes", 10*time.Second, func() bool { return liveCount(s) == 5 })
	put("c")
	// node-6 is down: a and b have 5 recorded shards on live nodes, and so
	// has c (written without it).
	if out := status(); !strings.Contains(out, "3 in all; 5/6: 3") {
		t.Fatalf("status with node-6 down:\n%s", out)
	}
	noErr(t, s.RestartNode(ctx, 5))
	waitFor(t, "6 live nodes", 10*time.Second, func() bool { return liveCount(s) == 6 })
	if out := status(); !strings.Contains(out, "3 in all; 6/6: 2; 5/6: 1") {
		t.Fatalf("status with every node up:\n%s", out)
	}
	noErr(t, s.StopNode(0))
	waitFor(t, "5 live nodes", 10*time.Second, func() bool { return liveCount(s) == 5 })
	if out := status(); !strings.Contains(out, "5/6: 2; 4/6 (no redundancy left): 1") {
		t.Fatalf("status with node-1 down:\n%s", out)
	}
}
