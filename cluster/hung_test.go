package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// hangable wraps a shard store; while hung, it stops reading Put bodies
// and answers no Open, like a node that accepts connections and stalls
// (a stopped process, a dead disk), until the caller gives up.
type hangable struct {
	shard.Store
	hung  atomic.Bool
	calls atomic.Int64
}

func (h *hangable) wait(ctx context.Context) error {
	<-ctx.Done()
	return context.Cause(ctx)
}

func (h *hangable) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	h.calls.Add(1)
	if h.hung.Load() {
		return shard.Info{}, h.wait(ctx)
	}
	return h.Store.Put(ctx, id, blockLen, r)
}

func (h *hangable) Open(ctx context.Context, id shard.ID, off, n int64) (io.ReadCloser, error) {
	h.calls.Add(1)
	if h.hung.Load() {
		return nil, h.wait(ctx)
	}
	return h.Store.Open(ctx, id, off, n)
}

// TestHungNodeDoesNotHangTheCluster: with one node hung, writes finish
// without its shard (queued for repair), reads hedge past it, its breaker
// opens so later writes skip it at once, and a probe closes the breaker
// when it answers again.
func TestHungNodeDoesNotHangTheCluster(t *testing.T) {
	r := newRig(t, 6)
	hung := map[string]*hangable{}
	r.cl.Close()
	r.cl = cluster.New(cluster.Config{
		Dial:    func(n metadata.Node) shard.Store { return hung[n.ID] },
		Repairs: r.meta, Records: r.meta,
		StallTimeout: 300 * time.Millisecond, HedgeAfter: 50 * time.Millisecond,
	})
	for i, st := range r.stores {
		hung[r.nodes[i].ID] = &hangable{Store: st}
	}
	t.Cleanup(func() { r.cl.Close() })
	r.cl.Update(r.nodes)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prof := erasure.Profile{K: 4, M: 2, BlockSize: 64 << 10}
	data := make([]byte, 1<<20+77)
	rand.NewChaCha8([32]byte{5}).Read(data)
	before, _, _, err := r.cl.WriteSegment(ctx, bytes.NewReader(data), prof)
	if err != nil {
		t.Fatal(err)
	}
	victim := before.Nodes[0] // holds data shard 0: every read wants it
	hung[victim].hung.Store(true)

	// A read hedges past the hung data shard; it is not reported bad.
	var buf bytes.Buffer
	if err := r.cl.ReadSegment(ctx, &buf, before, 0, before.Size); err != nil {
		t.Fatalf("read with a hung node: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Fatal("read with a hung node: wrong bytes")
	}

	// A write abandons the hung node's shard and keeps the quorum.
	seg, missing, _, err := r.cl.WriteSegment(ctx, bytes.NewReader(data), prof)
	if err != nil {
		t.Fatalf("write with a hung node: %v", err)
	}
	at := slices.Index(seg.Nodes, victim)
	if !slices.Equal(missing, []int{at}) || seg.ShardHashes[at] != "" {
		t.Fatalf("missing %v, want [%d] (the hung node's)", missing, at)
	}
	if b := r.cl.Breakers()[victim]; !b.Open {
		t.Fatalf("breaker of the hung node: %+v, want open", b)
	}
	// Now it is skipped without being called.
	calls := hung[victim].calls.Load()
	for range 3 {
		if _, missing, _, err := r.cl.WriteSegment(ctx, bytes.NewReader(data[:1000]), prof); err != nil || len(missing) != 1 {
			t.Fatalf("write with the breaker open: missing %v, err %v", missing, err)
		}
		buf.Reset()
		if err := r.cl.ReadSegment(ctx, &buf, before, 0, before.Size); err != nil || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("read with the breaker open: %v", err)
		}
	}
	if got := hung[victim].calls.Load(); got != calls {
		t.Fatalf("the node was called %d times with its breaker open", got-calls)
	}

	// It answers again: a probe closes the breaker and writes use it.
	hung[victim].hung.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for !r.cl.Healthy(victim) {
		if time.Now().After(deadline) {
			t.Fatalf("breaker still open: %+v", r.cl.Breakers()[victim])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, missing, _, err := r.cl.WriteSegment(ctx, bytes.NewReader(data), prof); err != nil || len(missing) != 0 {
		t.Fatalf("write after recovery: missing %v, err %v", missing, err)
	}
}

// TestBreakerOpensOnlyOnNodeFaults: answers that are the shard's or the
// caller's doing leave the breaker closed.
func TestBreakerOpensOnlyOnNodeFaults(t *testing.T) {
	r := newRig(t, 6)
	ctx := context.Background()
	id := shard.ID{Segment: fmt.Sprintf("%032x", 1), Index: 0}
	st, _ := r.cl.Store("n0")
	for range 5 {
		if _, err := st.Stat(ctx, id); err == nil {
			t.Fatal("stat of a missing shard succeeded")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		st.Stat(cctx, id)
	}
	if b := r.cl.Breakers()["n0"]; b.Open || b.Faults != 0 {
		t.Fatalf("breaker %+v after not-found and cancelled calls", b)
	}
}

// refusing is a store whose node has nothing listening: every call fails
// as a dial to a closed port does.
type refusing struct{ shard.Store }

func (refusing) Stat(context.Context, shard.ID) (shard.Info, error) {
	return shard.Info{}, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// TestRefusedConnectionOpensBreaker: one refused connection opens the
// breaker (nothing listens there), where other faults take three.
func TestRefusedConnectionOpensBreaker(t *testing.T) {
	r := newRig(t, 6)
	r.cl.Close()
	r.cl = cluster.New(cluster.Config{Dial: func(n metadata.Node) shard.Store { return refusing{r.store(n.ID)} },
		Repairs: r.meta, Records: r.meta})
	t.Cleanup(func() { r.cl.Close() })
	r.cl.Update(r.nodes)
	st, _ := r.cl.Store("n0")
	if _, err := st.Stat(context.Background(), shard.ID{Segment: fmt.Sprintf("%032x", 1)}); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("stat: %v", err)
	}
	if b := r.cl.Breakers()["n0"]; !b.Open {
		t.Fatalf("breaker %+v after a refused connection, want open", b)
	}
}
