package test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/repair"
)

// TestGCWithNodeDown: a node that is down does not stop the collector.
// Deleted objects' shards on the live nodes go at once; those on the down
// node are parked one by one and deleted when it is back; nothing of a
// live object is touched.
func TestGCWithNodeDown(t *testing.T) {
	s := startServer(t, "")
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "gcd", minio.MakeBucketOptions{}))
	keep := randomBytes(1<<20, 1)
	must(t)(c.PutObject(ctx, "gcd", "keep", bytes.NewReader(keep), int64(len(keep)), minio.PutObjectOptions{}))
	for i := range 4 {
		b := randomBytes(100_000, uint64(10+i))
		must(t)(c.PutObject(ctx, "gcd", fmt.Sprintf("gone-%d", i), bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}))
	}
	if n := shardFiles(t, s); n != 5*6 {
		t.Fatalf("%d shard files, want 30", n)
	}
	for i := range 4 {
		noErr(t, c.RemoveObject(ctx, "gcd", fmt.Sprintf("gone-%d", i), minio.RemoveObjectOptions{}))
	}
	noErr(t, s.StopNode(2))
	waitFor(t, "5 live nodes", 10*time.Second, func() bool { return liveCount(s) == 5 })
	gc := &repair.Collector{Meta: s.Store, Nodes: s.Gateway.Cluster, Grace: 0}
	st, err := gc.RunOnce(ctx)
	if err != nil || st.Entries != 4 || st.Parked != 4 || st.Shards != 4*5 {
		t.Fatalf("pass with node 3 down: %+v %v", st, err)
	}
	if gcs, _ := s.Store.ListGC(ctx, 10); len(gcs) != 0 {
		t.Fatalf("gc entries left: %d", len(gcs))
	}
	if nodes, _ := s.Store.DeferredDeleteNodes(ctx); len(nodes) != 1 || nodes[0] != "node-3" {
		t.Fatalf("parked nodes %v", nodes)
	}
	// Still down: nothing happens to the parked shards.
	if st, err := gc.RunOnce(ctx); err != nil || st.Late != 0 {
		t.Fatalf("second pass: %+v %v", st, err)
	}
	noErr(t, s.RestartNode(ctx, 2))
	waitFor(t, "6 live nodes", 10*time.Second, func() bool { return liveCount(s) == 6 })
	st, err = gc.RunOnce(ctx)
	if err != nil || st.Late != 4 {
		t.Fatalf("pass with node 3 back: %+v %v", st, err)
	}
	if n := shardFiles(t, s); n != 6 {
		t.Fatalf("%d shard files left, want the 6 of the kept object", n)
	}
	if nodes, _ := s.Store.DeferredDeleteNodes(ctx); len(nodes) != 0 {
		t.Fatalf("parked nodes left %v", nodes)
	}
	o, err := c.GetObject(ctx, "gcd", "keep", minio.GetObjectOptions{})
	noErr(t, err)
	if !bytes.Equal(readAll(t, o), keep) {
		t.Fatal("kept object damaged")
	}
}
