package repair

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// fakeMeta is the part of metadata.Store the collector uses (safe for
// the collector's concurrent calls).
type fakeMeta struct {
	metadata.Collection
	mu       sync.Mutex
	entries  []metadata.GCEntry
	finished []string
	parked   []metadata.ShardRef
}

func (f *fakeMeta) ListGC(context.Context, int) ([]metadata.GCEntry, error) { return f.entries, nil }
func (f *fakeMeta) GCSegments(_ context.Context, e metadata.GCEntry) ([]metadata.Segment, error) {
	return []metadata.Segment{*e.Segment}, nil
}
func (f *fakeMeta) FinishGC(_ context.Context, e metadata.GCEntry, _ []metadata.Segment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finished = append(f.finished, e.ID)
	return nil
}
func (f *fakeMeta) DeferDeletes(_ context.Context, refs []metadata.ShardRef) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parked = append(f.parked, refs...)
	return nil
}
func (f *fakeMeta) DeferredDeleteNodes(context.Context) ([]string, error) {
	var out []string
	for _, r := range f.parked {
		if !slices.Contains(out, r.Node) {
			out = append(out, r.Node)
		}
	}
	return out, nil
}
func (f *fakeMeta) ListDeferredDeletes(_ context.Context, node string, _ int) ([]metadata.ShardRef, error) {
	var out []metadata.ShardRef
	for _, r := range f.parked {
		if r.Node == node {
			out = append(out, r)
		}
	}
	return out, nil
}
func (f *fakeMeta) DropDeferredDeletes(_ context.Context, refs []metadata.ShardRef) error {
	f.parked = slices.DeleteFunc(f.parked, func(r metadata.ShardRef) bool { return slices.Contains(refs, r) })
	return nil
}

type fakeStore struct {
	shard.Store
	mu      sync.Mutex
	deleted []string
}

func (f *fakeStore) Delete(_ context.Context, id shard.ID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, id.String())
	return nil
}

func (f *fakeStore) Open(context.Context, shard.ID, int64, int64) (io.ReadCloser, error) {
	return nil, shard.ErrNotFound
}

type fakeNodes map[string]*fakeStore

func (f fakeNodes) Store(id string) (shard.Store, bool) {
	s, ok := f[id]
	if !ok {
		return nil, false
	}
	return s, true
}

// Nodes: every store is a live member, and so is "down" (down, not removed).
func (f fakeNodes) Nodes() []metadata.Node {
	out := []metadata.Node{{ID: "down", State: metadata.NodeActive}}
	for id := range f {
		out = append(out, metadata.Node{ID: id, State: metadata.NodeActive, Live: true})
	}
	return out
}

func TestCollector(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	seg := func(id string, nodes ...string) *metadata.Segment {
		return &metadata.Segment{ID: id, Nodes: nodes, ShardHashes: []string{"h", "", "h"}}
	}
	// The entries' Times are the releasing gateway's clock, an hour
	// behind: the grace is timed from when this collector saw them.
	meta := &fakeMeta{entries: []metadata.GCEntry{
		{ID: "old", Kind: metadata.GCSegment, Time: now.Add(-time.Hour), Segment: seg("aa", "n1", "n2", "n3")},
		{ID: "node-down", Kind: metadata.GCSegment, Time: now.Add(-time.Hour), Segment: seg("cc", "n1", "n2", "down")},
	}}
	nodes := fakeNodes{"n1": {}, "n2": {}, "n3": {}}
	c := &Collector{Meta: meta, Nodes: nodes, Grace: 10 * time.Minute, Now: func() time.Time { return now }}
	if st, err := c.RunOnce(context.Background()); err != nil || st.Deferred != 2 || st.Entries != 0 {
		t.Fatalf("first sight of entries stamped an hour ago: %+v %v, want both deferred", st, err)
	}
	meta.entries = append(meta.entries, metadata.GCEntry{ID: "young", Kind: metadata.GCSegment, Time: now.Add(time.Hour), Segment: seg("bb", "n1", "n2", "n3")})
	now = now.Add(10 * time.Minute)
	st, err := c.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// "old": shards 0 and 2 deleted (1 was never written); "young" waits
	// for its grace; "node-down" finishes, its shard on the down node
	// parked for later.
	slices.Sort(meta.finished) // collected concurrently
	if st.Entries != 2 || st.Deferred != 1 || st.Parked != 1 || !slices.Equal(meta.finished, []string{"node-down", "old"}) {
		t.Fatalf("stats %+v finished %v", st, meta.finished)
	}
	if want := []metadata.ShardRef{{Node: "down", Segment: "cc", Index: 2}}; !slices.Equal(meta.parked, want) {
		t.Fatalf("parked %v", meta.parked)
	}
	if d := nodes["n1"].deleted; len(d) != 2 || !slices.Contains(d, "aa.0") || !slices.Contains(d, "cc.0") {
		t.Fatalf("n1 deleted %v", d)
	}
	if d := nodes["n3"].deleted; len(d) != 1 || d[0] != "aa.2" {
		t.Fatalf("n3 deleted %v", d)
	}
	// The node is back: the parked shard goes.
	nodes["down"] = &fakeStore{}
	meta.entries = nil
	if st, err := c.RunOnce(context.Background()); err != nil || st.Late != 1 || len(meta.parked) != 0 {
		t.Fatalf("node back: %+v %v, parked %v", st, err, meta.parked)
	}
	if d := nodes["down"].deleted; len(d) != 1 || d[0] != "cc.2" {
		t.Fatalf("down deleted %v", d)
	}
}

func TestDue(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		age  time.Duration
		want bool
	}{{0, false}, {time.Minute, false}, {5 * time.Minute, true}, {time.Hour, true}} {
		if got := due(t0, t0.Add(c.age), 5*time.Minute); got != c.want {
			t.Errorf("age %v: %v", c.age, got)
		}
	}
}

type fakePins map[string]bool

func (p fakePins) Pinned(context.Context) (map[string]bool, error) { return p, nil }

// TestCollectorHonoursPins: an entry whose segment is pinned, or whose
// out-of-line segment list is pinned by its version, waits; the others
// are collected.
func TestCollectorHonoursPins(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	seg := func(id string) *metadata.Segment {
		return &metadata.Segment{ID: id, Nodes: []string{"n1"}, ShardHashes: []string{"h"}}
	}
	meta := &fakeMeta{entries: []metadata.GCEntry{
		{ID: "seg-pinned", Kind: metadata.GCSegment, Segment: seg("aa")},
		{ID: "v1", Kind: metadata.GCObjectSegments, VersionID: "v1", Segment: seg("bb")},
		{ID: "free", Kind: metadata.GCSegment, Segment: seg("cc")},
	}}
	nodes := fakeNodes{"n1": {}}
	pins := fakePins{"aa": true, metadata.VersionPin("v1"): true}
	c := &Collector{Meta: meta, Nodes: nodes, Grace: 0, Now: func() time.Time { return now }, Pins: pins}
	st, err := c.RunOnce(context.Background())
	if err != nil || st.Entries != 1 || st.Deferred != 2 || !slices.Equal(meta.finished, []string{"free"}) {
		t.Fatalf("with pins: %+v %v, finished %v", st, err, meta.finished)
	}
	delete(pins, metadata.VersionPin("v1"))
	delete(pins, "aa")
	if st, err := c.RunOnce(context.Background()); err != nil || st.Entries != 3 {
		t.Fatalf("pins gone: %+v %v", st, err)
	}
}
