package repair

// The garbage collector.
//
// Invariants:
//   - A gc entry is collected only after its grace period (reads that
//     began before the release keep working). The period is timed on this
//     collector's own clock from when it first saw the entry, never from
//     the entry's Time (another process's wall clock): clock skew between
//     gateways cannot shorten it; a restarted collector waits it again.
//   - A node that is down does not stop collection: the shards on live
//     nodes are deleted, those on down nodes are recorded one by one as
//     deferred deletes of their node (before the entry is finished), and
//     deleted when the node is live again, or forgotten when it is
//     removed. A shard is never forgotten while its node may come back.
//   - Shards are deleted before the metadata that names them (FinishGC
//     removes the entry last), so a crash at any point leaves an entry that
//     the next pass completes; deleting an absent shard is not an error.
//   - An entry any of whose segments a read pin keeps (Pins), or whose
//     out-of-line segment list is pinned by its version, waits: the
//     pins are read after the pass decided what is due and before any
//     shard is deleted, so a long GET that pinned its segments within the
//     grace of its start is never cut (metadata/etcd/pins.go).
//   - Up to Parallel entries are collected at once, and an entry's shards
//     in parallel: a node's deletes then share index commits (its group
//     commit) instead of paying one each.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// Nodes gives the shard store of a node and whether it is live, and the
// members (cluster.Cluster).
type Nodes interface {
	Store(id string) (shard.Store, bool)
	Nodes() []metadata.Node
}

// Pins lists the segments long reads keep now (metadata/etcd Store).
type Pins interface {
	// Pinned returns every pinned name: segment ids, and
	// metadata.VersionPin of versions whose segment list is out of line.
	// Errors: the store's.
	Pinned(ctx context.Context) (map[string]bool, error)
}

// errPinned defers an entry a read still uses.
var errPinned = errors.New("gc: a read pins the segment")

// Collector deletes released shards and their metadata.
type Collector struct {
	Meta  metadata.Collection
	Nodes Nodes
	// Pins, when set, is read once per pass before anything is deleted.
	Pins  Pins
	Grace time.Duration // how long released shards stay readable
	Now   func() time.Time
	Log   *slog.Logger
	// Parallel is how many entries are collected at once (default 8).
	Parallel int

	mu    sync.Mutex
	total GCTotals
	seen  map[string]time.Time // entry → when this collector first listed it
}

// GCTotals is what Run's passes have done so far.
type GCTotals struct {
	Passes   int
	Entries  int // entries finished
	Shards   int // shard files deleted
	Late     int // parked shards deleted or forgotten
	Deferred int // entries the last pass left for later
	LastPass time.Time
}

// Totals returns what Run has done so far.
func (c *Collector) Totals() GCTotals {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// GCStats is what one pass did.
type GCStats struct {
	Entries  int // entries finished
	Shards   int // shard files deleted
	Deferred int // entries left for later (grace, an error)
	Parked   int // shards on down nodes recorded for later
	Late     int // earlier parked shards deleted (or forgotten: node removed)
}

// due says whether an entry first seen at seen is past its grace period
// (a pure decision).
func due(seen, now time.Time, grace time.Duration) bool {
	return now.Sub(seen) >= grace
}

// firstSeen records the entries of a listing and returns when each was
// first seen; entries no longer listed are forgotten.
func (c *Collector) firstSeen(entries []metadata.GCEntry, now time.Time) map[string]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[string]time.Time, len(entries))
	for _, e := range entries {
		t, ok := c.seen[e.ID]
		if !ok {
			t = now
		}
		next[e.ID] = t
	}
	c.seen = next
	return next
}

// RunOnce collects every gc entry that is due.
func (c *Collector) RunOnce(ctx context.Context) (GCStats, error) {
	var st GCStats
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	entries, err := c.Meta.ListGC(ctx, 10000)
	if err != nil {
		return st, err
	}
	seen := c.firstSeen(entries, now())
	var pinned map[string]bool
	if c.Pins != nil {
		if pinned, err = c.Pins.Pinned(ctx); err != nil {
			return st, err // nothing deleted without knowing the pins
		}
	}
	var mu sync.Mutex // guards st
	g, gctx := errgroup.WithContext(ctx)
	if c.Parallel > 0 {
		g.SetLimit(c.Parallel)
	} else {
		g.SetLimit(8)
	}
	for _, e := range entries {
		if !due(seen[e.ID], now(), c.Grace) {
			st.Deferred++
			continue
		}
		g.Go(func() error {
			n, parked, err := c.collect(gctx, e, pinned)
			mu.Lock()
			defer mu.Unlock()
			st.Shards += n
			st.Parked += parked
			if err != nil {
				st.Deferred++
				c.log().Debug("gc entry deferred", "entry", e.ID, "err", err)
				return nil
			}
			st.Entries++
			return nil
		})
	}
	g.Wait()
	late, err := c.collectParked(ctx)
	st.Late = late
	return st, err
}

// collect deletes an entry's shards on live nodes, parks those on down
// nodes, and finishes the entry.
func (c *Collector) collect(ctx context.Context, e metadata.GCEntry, pinned map[string]bool) (deleted, parked int, err error) {
	if e.VersionID != "" && pinned[metadata.VersionPin(e.VersionID)] {
		return 0, 0, fmt.Errorf("entry %s, version %s: %w", e.ID, e.VersionID, errPinned)
	}
	segs, err := c.Meta.GCSegments(ctx, e)
	if err != nil {
		return 0, 0, err
	}
	for _, seg := range segs {
		if pinned[seg.ID] {
			return 0, 0, fmt.Errorf("entry %s, segment %s: %w", e.ID, seg.ID, errPinned)
		}
	}
	var (
		mu    sync.Mutex // guards errs, later, deleted
		errs  []error
		later []metadata.ShardRef
		g     errgroup.Group
	)
	g.SetLimit(16)
	for _, seg := range segs {
		for i, node := range seg.Nodes {
			if i < len(seg.ShardHashes) && seg.ShardHashes[i] == "" {
				continue // never written
			}
			store, live := c.Nodes.Store(node)
			if store == nil || !live {
				later = append(later, metadata.ShardRef{Node: node, Segment: seg.ID, Index: i})
				continue
			}
			g.Go(func() error {
				err := store.Delete(ctx, shard.ID{Segment: seg.ID, Index: i})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					deleted++
				case errors.Is(err, shard.ErrNotFound):
				default:
					errs = append(errs, err)
				}
				return nil
			})
		}
	}
	g.Wait()
	if err := errors.Join(errs...); err != nil {
		return deleted, 0, err
	}
	if len(later) > 0 {
		if err := c.Meta.DeferDeletes(ctx, later); err != nil {
			return deleted, 0, err
		}
	}
	return deleted, len(later), c.Meta.FinishGC(ctx, e, segs)
}

// collectParked deletes the parked shards of nodes that are live again and
// forgets those of nodes that were removed.
func (c *Collector) collectParked(ctx context.Context) (int, error) {
	nodes, err := c.Meta.DeferredDeleteNodes(ctx)
	if err != nil || len(nodes) == 0 {
		return 0, err
	}
	members := map[string]metadata.Node{}
	for _, n := range c.Nodes.Nodes() {
		members[n.ID] = n
	}
	done := 0
	var errs []error
	for _, id := range nodes {
		m, member := members[id]
		removed := !member || m.State == metadata.NodeRemoved
		store, live := c.Nodes.Store(id)
		if !removed && (store == nil || !live) {
			continue // still down: later
		}
		refs, err := c.Meta.ListDeferredDeletes(ctx, id, 1000)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var gone []metadata.ShardRef
		for _, r := range refs {
			if !removed {
				err := store.Delete(ctx, shard.ID{Segment: r.Segment, Index: r.Index})
				if err != nil && !errors.Is(err, shard.ErrNotFound) {
					errs = append(errs, fmt.Errorf("parked %s.%d on %s: %w", r.Segment, r.Index, id, err))
					continue
				}
			}
			gone = append(gone, r)
		}
		if err := c.Meta.DropDeferredDeletes(ctx, gone); err != nil {
			errs = append(errs, err)
			continue
		}
		done += len(gone)
	}
	return done, errors.Join(errs...)
}

// Run collects every interval until ctx ends.
func (c *Collector) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st, err := c.RunOnce(ctx)
		c.mu.Lock()
		c.total.Passes++
		c.total.Entries += st.Entries
		c.total.Shards += st.Shards
		c.total.Late += st.Late
		c.total.Deferred = st.Deferred
		c.total.LastPass = time.Now()
		c.mu.Unlock()
		if err != nil {
			c.log().Warn("gc pass failed", "err", err)
		} else if st.Entries > 0 || st.Shards > 0 || st.Late > 0 {
			c.log().Info("gc pass", "entries", st.Entries, "shards", st.Shards, "deferred", st.Deferred, "parked", st.Parked, "late", st.Late)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Collector) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}
