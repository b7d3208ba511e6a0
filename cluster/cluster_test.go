package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/erasure"
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

// rig is a Cluster over n in-process shard stores and a real etcd store.
type rig struct {
	cl     *cluster.Cluster
	meta   *metaetcd.Store
	stores []*storagenode.Store
	nodes  []metadata.Node
}

func newRig(t *testing.T, n int) *rig {
	t.Helper()
	r := &rig{meta: metaetcd.New(etcdCli, metaetcd.Options{Prefix: "/" + t.Name() + "/" + metaetcd.NewID() + "/"})}
	byID := map[string]*storagenode.Store{}
	for i := range n {
		st, err := storagenode.Open(t.TempDir(), storagenode.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		id := fmt.Sprintf("n%d", i)
		byID[id] = st
		r.stores = append(r.stores, st)
		r.nodes = append(r.nodes, metadata.Node{ID: id, Address: "mem://" + id, State: metadata.NodeActive, Live: true})
	}
	r.cl = cluster.New(cluster.Config{Dial: func(n metadata.Node) shard.Store { return byID[n.ID] }, Repairs: r.meta, Records: r.meta})
	t.Cleanup(func() { r.cl.Close() })
	r.cl.Update(r.nodes)
	return r
}

// setLive marks nodes up or down in the cluster's view.
func (r *rig) setLive(live map[string]bool) {
	nodes := make([]metadata.Node, len(r.nodes))
	for i, n := range r.nodes {
		n.Live = live[n.ID]
		nodes[i] = n
	}
	r.cl.Update(nodes)
}

func (r *rig) allLive() map[string]bool {
	m := map[string]bool{}
	for _, n := range r.nodes {
		m[n.ID] = true
	}
	return m
}

func (r *rig) store(id string) *storagenode.Store {
	for i, n := range r.nodes {
		if n.ID == id {
			return r.stores[i]
		}
	}
	return nil
}

var small = erasure.Profile{K: 4, M: 2, BlockSize: 4096}

func read(t *testing.T, cl *cluster.Cluster, seg metadata.Segment) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	err := cl.ReadSegment(context.Background(), &buf, seg, 0, seg.Size)
	return buf.Bytes(), err
}

// TestRebuildAnyLoss: for every set of up to m lost shards, rebuilding
// them from the others gives byte-for-byte the shards the write made (the
// recorded hashes, and the stores' own hash of the file), and the segment
// then reads back from any k shards. The reference is the write itself.
func TestRebuildAnyLoss(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 6)
	for _, size := range []int{1, 4095, 4096 * 4, 4096*4*3 + 17} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rand.IntN(256))
		}
		seg, missing, ok, err := r.cl.WriteSegment(ctx, bytes.NewReader(data), small)
		if err != nil || !ok || len(missing) != 0 {
			t.Fatalf("write %d: %v %v %v", size, ok, missing, err)
		}
		n := small.Shards()
		for mask := 1; mask < 1<<n; mask++ {
			var lost []int
			for i := range n {
				if mask&(1<<i) != 0 {
					lost = append(lost, i)
				}
			}
			if len(lost) > small.M {
				continue
			}
			targets := map[int]string{}
			for _, i := range lost {
				id := shard.ID{Segment: seg.ID, Index: i}
				if err := r.store(seg.Nodes[i]).Delete(ctx, id); err != nil {
					t.Fatal(err)
				}
				targets[i] = seg.Nodes[i]
			}
			got, err := r.cl.RebuildShards(ctx, seg, targets, nil)
			if err != nil {
				t.Fatalf("size %d, lost %v: %v", size, lost, err)
			}
			for _, i := range lost {
				info, err := r.store(seg.Nodes[i]).Stat(ctx, shard.ID{Segment: seg.ID, Index: i})
				if err != nil || got[i] != seg.ShardHashes[i] || info.Hash != seg.ShardHashes[i] {
					t.Fatalf("size %d, lost %v: shard %d rebuilt as %s (stored %s, %v), recorded %s", size, lost, i, got[i], info.Hash, err, seg.ShardHashes[i])
				}
			}
		}
		// Every shard is back: any k of them read the data.
		down := r.allLive()
		down[seg.Nodes[0]], down[seg.Nodes[3]] = false, false
		r.setLive(down)
		if b, err := read(t, r.cl, seg); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("size %d: read with 2 nodes down after rebuilds: %v", size, err)
		}
		r.setLive(r.allLive())
	}
}

// TestRebuildRefusals: more than m shards lost, a target node down, and a
// record whose hash does not match what the data re-encodes to.
func TestRebuildRefusals(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 6)
	data := bytes.Repeat([]byte("sherd "), 10000)
	seg, _, _, err := r.cl.WriteSegment(ctx, bytes.NewReader(data), small)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 2} {
		r.store(seg.Nodes[i]).Delete(ctx, shard.ID{Segment: seg.ID, Index: i})
	}
	if _, err := r.cl.RebuildShards(ctx, seg, map[int]string{0: seg.Nodes[0]}, nil); !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("3 of 6 lost: %v", err)
	}
	seg, _, _, err = r.cl.WriteSegment(ctx, bytes.NewReader(data), small)
	if err != nil {
		t.Fatal(err)
	}
	r.store(seg.Nodes[1]).Delete(ctx, shard.ID{Segment: seg.ID, Index: 1})
	live := r.allLive()
	live[seg.Nodes[1]] = false
	r.setLive(live)
	if _, err := r.cl.RebuildShards(ctx, seg, map[int]string{1: seg.Nodes[1]}, nil); !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("target down: %v", err)
	}
	r.setLive(r.allLive())
	// A record whose hash is not what the data encodes to.
	bad := seg
	bad.ShardHashes = append([]string(nil), seg.ShardHashes...)
	bad.ShardHashes[1] = "00000000000000000000000000000000"
	if _, err := r.cl.RebuildShards(ctx, bad, map[int]string{1: seg.Nodes[1]}, nil); !errors.Is(err, erasure.ErrCorrupt) {
		t.Fatalf("hash mismatch: %v", err)
	}
	if _, err := r.cl.RebuildShards(ctx, seg, map[int]string{1: seg.Nodes[1]}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestReadAsksTheRecord: a write that stored 5 of 6 shards leaves a hint
// without shard i; once repair has rebuilt it and updated the record, a
// reader holding the old hint uses the rebuilt shard (with two other nodes
// down only the rebuilt one makes k).
func TestReadAsksTheRecord(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, 6)
	if err := r.meta.CreateBucket(ctx, metadata.Bucket{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	// With 6 nodes every segment has a shard on n0: write with n0 down.
	live0 := r.allLive()
	live0["n0"] = false
	r.setLive(live0)
	seg, missing, _, err := r.cl.WriteSegment(ctx, bytes.NewReader(data), small)
	if err != nil || len(missing) != 1 {
		t.Fatalf("write with n0 down: %v %v", missing, err)
	}
	r.setLive(r.allLive())
	lost := -1
	for i, h := range seg.ShardHashes {
		if h == "" {
			lost = i
		}
	}
	if _, err := r.meta.PutObject(ctx, metadata.Object{Bucket: "b", Key: "k", Size: seg.Size, Segments: []metadata.Segment{seg}}, metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	// Repair: rebuild, then record.
	rec, rev, err := r.meta.GetSegment(ctx, seg.ID)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := r.cl.RebuildShards(ctx, rec, map[int]string{lost: rec.Nodes[lost]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec.ShardHashes[lost] = hashes[lost]
	if err := r.meta.UpdateSegment(ctx, rec, rev, metadata.Fence{}); err != nil {
		t.Fatal(err)
	}
	// Two other nodes down: the hint alone has 3 shards, the record 4.
	live := r.allLive()
	downs := 0
	for i, node := range seg.Nodes {
		if i != lost && downs < 2 {
			live[node] = false
			downs++
		}
	}
	r.setLive(live)
	if b, err := read(t, r.cl, seg); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("read with the old hint after repair: %v", err)
	}
}
