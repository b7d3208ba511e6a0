package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// fullable wraps a shard store that refuses new shards with ErrFull while
// full is set, as a node at its disk reserve does.
type fullable struct {
	shard.Store
	full atomic.Bool
	puts atomic.Int64
}

func (f *fullable) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	f.puts.Add(1)
	if f.full.Load() {
		return shard.Info{}, fmt.Errorf("put %s: %w", id, shard.ErrFull)
	}
	return f.Store.Put(ctx, id, blockLen, r)
}

// TestWritesGoAroundDownAndFullNodes: with 9 nodes for 4+2 segments, two
// nodes down and one full, every write still stores all 6 shards, on
// spares in ring order; the full node is asked once, is not taken as
// faulty (its breaker stays closed), and gets shards again once it has
// room and its full mark has passed.
func TestWritesGoAroundDownAndFullNodes(t *testing.T) {
	r := newRig(t, 9)
	wrapped := map[string]*fullable{}
	for i, st := range r.stores {
		wrapped[r.nodes[i].ID] = &fullable{Store: st}
	}
	r.cl.Close()
	now := atomic.Pointer[time.Time]{}
	now.Store(&time.Time{}) // a fixed clock: the full mark lasts until moved
	r.cl = cluster.New(cluster.Config{Dial: func(n metadata.Node) shard.Store { return wrapped[n.ID] },
		Repairs: r.meta, Records: r.meta, Now: func() time.Time { return *now.Load() }})
	t.Cleanup(func() { r.cl.Close() })
	live := r.allLive()
	live["n1"], live["n5"] = false, false
	r.setLive(live)
	wrapped["n2"].full.Store(true)

	ctx := context.Background()
	prof := erasure.Profile{K: 4, M: 2, BlockSize: 4096}
	data := bytes.Repeat([]byte("sherd"), 3000)
	missingTotal := 0
	for i := range 40 {
		seg, missing, ok, err := r.cl.WriteSegment(ctx, bytes.NewReader(data), prof)
		if err != nil || !ok {
			t.Fatalf("write %d: %v", i, err)
		}
		missingTotal += len(missing)
		for _, down := range []string{"n1", "n5"} {
			if slices.Contains(seg.Nodes, down) {
				t.Fatalf("write %d placed a shard on down node %s: %v", i, down, seg.Nodes)
			}
		}
		if got, err := read(t, r.cl, seg); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if p := wrapped["n2"].puts.Load(); p != 1 || missingTotal != 1 {
		t.Fatalf("full node asked %d times, %d shards missing; want 1 and 1 (the first ask marks it full)", p, missingTotal)
	}
	if r.cl.Breakers()["n2"].Open {
		t.Fatal("a full node's breaker opened: it is not faulty")
	}
	if !r.cl.Full("n2") {
		t.Fatal("n2 not marked full")
	}
	// Room again; after the mark has passed, the ring's choice returns.
	wrapped["n2"].full.Store(false)
	later := now.Load().Add(time.Minute)
	now.Store(&later)
	if r.cl.Full("n2") {
		t.Fatal("full mark did not pass")
	}
	for range 40 {
		if _, _, _, err := r.cl.WriteSegment(ctx, bytes.NewReader(data), prof); err != nil {
			t.Fatal(err)
		}
	}
	if wrapped["n2"].puts.Load() < 2 {
		t.Fatal("n2 got no shard once it had room")
	}
}
