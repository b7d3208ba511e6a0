package test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/storagenode"
)

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
			info, err := st.Stat(ctx, storagenode.ShardID{Segment: rec.ID, Index: i})
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
		rs, err := s.Store.ListRepairs(ctx, 100)
		return err == nil && len(rs) == len(objects)
	})
	// While the node is down the entries wait (several passes).
	passes := s.Gateway.Repairer.Stats.Snapshot().Passes
	waitFor(t, "repair passes", 10*time.Second, func() bool { return s.Gateway.Repairer.Stats.Snapshot().Passes >= passes+3 })
	if rs, _ := s.Store.ListRepairs(ctx, 100); len(rs) != len(objects) {
		t.Fatalf("entries acknowledged while the node was down: %d left", len(rs))
	}
	noErr(t, s.RestartNode(ctx, 0))
	waitFor(t, "repair queue empty", 30*time.Second, func() bool {
		rs, err := s.Store.ListRepairs(ctx, 100)
		return err == nil && len(rs) == 0
	})
	for key := range objects {
		if !fullyHealthy(t, s, "heal", key) {
			t.Fatalf("%s: not every shard rebuilt and recorded", key)
		}
	}
	if st := s.Gateway.Repairer.Stats.Snapshot(); st.ShardsRebuilt != len(objects) {
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
	id := storagenode.ShardID{Segment: seg.ID, Index: 1}
	corruptFile(t, victim.Shards().Dir(), id)
	o, err := c.GetObject(ctx, "rot", "k", minio.GetObjectOptions{})
	noErr(t, err)
	if got := readAll(t, o); !bytes.Equal(got, data) {
		t.Fatal("corrupt shard leaked into the object")
	}
	waitFor(t, "corrupt shard rebuilt", 30*time.Second, func() bool {
		rs, _ := s.Store.ListRepairs(ctx, 10)
		return len(rs) == 0 && s.Gateway.Repairer.Stats.Snapshot().ShardsRebuilt == 1
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
