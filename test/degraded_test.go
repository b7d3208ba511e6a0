package test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode"
)

// TestDegraded stops storage nodes under a 4+2 cluster: with any 2 of 6
// down every GET still succeeds (reconstructing), PUTs succeed while the
// write quorum (k+1 = 5) holds and queue the missing shard for repair,
// and below quorum a PUT is a 503 that leaves no object behind.
func TestDegraded(t *testing.T) {
	s := startServer(t, "")
	c := minioClient(t, s.Gateway.URL, false)
	if err := c.MakeBucket(ctx, "deg", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	objects := map[string][]byte{}
	for i, n := range []int{1, 1000, 1 << 20, 3<<20 + 5} {
		key := fmt.Sprintf("o%d", i)
		objects[key] = randomBytes(n, uint64(100+i))
		if _, err := c.PutObject(ctx, "deg", key, bytes.NewReader(objects[key]), int64(n), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	getAll := func(what string) {
		t.Helper()
		for key, data := range objects {
			o, err := c.GetObject(ctx, "deg", key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatalf("%s: get %s: %v", what, key, err)
			}
			if got := readAll(t, o); !bytes.Equal(got, data) {
				t.Fatalf("%s: %s differs", what, key)
			}
		}
	}
	// The gateway's own view of the nodes (it follows etcd by a watch).
	liveNodes := func(n int) func() bool {
		return func() bool {
			live := 0
			for _, x := range s.Gateway.Cluster.Nodes() {
				if x.Live {
					live++
				}
			}
			return live == n
		}
	}
	// Every pair of nodes down: all objects read back.
	for a := range 6 {
		for b := a + 1; b < 6; b++ {
			noErr(t, s.StopNode(a))
			noErr(t, s.StopNode(b))
			waitFor(t, "4 live nodes", 10*time.Second, liveNodes(4))
			getAll(fmt.Sprintf("nodes %d,%d down", a+1, b+1))
			if a == 0 && b == 1 {
				// Below the write quorum: 503, and nothing becomes visible.
				_, err := c.PutObject(ctx, "deg", "refused", bytes.NewReader([]byte("data")), 4, minio.PutObjectOptions{})
				if minio.ToErrorResponse(err).StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("put below quorum: %v", err)
				}
				if _, err := c.StatObject(ctx, "deg", "refused", minio.StatObjectOptions{}); minio.ToErrorResponse(err).StatusCode != 404 {
					t.Fatalf("refused object visible: %v", err)
				}
			}
			noErr(t, s.RestartNode(ctx, a))
			noErr(t, s.RestartNode(ctx, b))
			waitFor(t, "6 live nodes", 10*time.Second, liveNodes(6))
		}
	}
	// One node down: PUT succeeds with 5 shards and queues the 6th.
	noErr(t, s.StopNode(2))
	waitFor(t, "5 live nodes", 10*time.Second, liveNodes(5))
	data := randomBytes(2<<20, 9)
	if _, err := c.PutObject(ctx, "deg", "five", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	objects["five"] = data
	five, err := s.Store.GetObject(ctx, "deg", "five")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "repair entry for the missing shard", 10*time.Second, func() bool {
		rs, err := s.Store.ListRepairs(ctx, 100)
		for _, r := range rs {
			if err == nil && r.Segment.ID == five.Segments[0].ID && len(r.Shards) == 1 && r.Segment.Nodes[r.Shards[0]] == "node-3" {
				return true
			}
		}
		return false
	})
	// Another node down on top: still readable (the new object has only
	// one spare shard left).
	noErr(t, s.StopNode(4))
	waitFor(t, "4 live nodes", 10*time.Second, liveNodes(4))
	getAll("nodes 3,5 down after a degraded write")
	// A third node down: reads of objects that lost 3 shards fail cleanly.
	noErr(t, s.StopNode(0))
	waitFor(t, "3 live nodes", 10*time.Second, liveNodes(3))
	_, err = c.StatObject(ctx, "deg", "five", minio.StatObjectOptions{})
	if err != nil {
		t.Fatalf("metadata must stay readable: %v", err)
	}
	o, err := c.GetObject(ctx, "deg", "five", minio.GetObjectOptions{})
	noErr(t, err)
	if _, err := o.Read(make([]byte, 10)); minio.ToErrorResponse(err).StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("get with 3 of 6 down: %v", err)
	}
	for _, i := range []int{0, 2, 4} {
		noErr(t, s.RestartNode(ctx, i))
	}
	waitFor(t, "6 live nodes", 10*time.Second, liveNodes(6))
	getAll("all back")
}

// TestCorruptShardReadAndQueued flips bytes in a shard file on disk: the
// GET still returns the right bytes and the shard is queued for repair.
func TestCorruptShardReadAndQueued(t *testing.T) {
	s := startServer(t, "")
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "rot", minio.MakeBucketOptions{}))
	data := randomBytes(1<<20+100, 3)
	if _, err := c.PutObject(ctx, "rot", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// Corrupt data shard 0 wherever it is.
	corrupted := false
	for _, n := range s.Nodes {
		n.Shards().Walk(ctx, func(info shard.Info) error {
			if id, _ := shard.ParseID(info.ID); id.Index == 0 {
				corruptFile(t, n.Shards(), id)
				corrupted = true
			}
			return nil
		})
	}
	if !corrupted {
		t.Fatal("no shard 0 found")
	}
	o, err := c.GetObject(ctx, "rot", "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, o); !bytes.Equal(got, data) {
		t.Fatal("corrupt shard leaked into the object")
	}
	waitFor(t, "repair entry", 10*time.Second, func() bool {
		rs, err := s.Store.ListRepairs(ctx, 10)
		return err == nil && len(rs) == 1 && rs[0].Shards[0] == 0
	})
}

// corruptFile flips a byte inside the first block of a shard stored in a
// file or a pack (not inline in the node's index).
func corruptFile(t *testing.T, store *storagenode.Store, id shard.ID) {
	t.Helper()
	path, off, err := store.Locate(id)
	if err != nil || path == "" {
		t.Fatalf("shard %s: not in a file or pack (%v)", id, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off+100)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off+100); err != nil {
		t.Fatal(err)
	}
}
