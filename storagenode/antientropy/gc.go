// Package antientropy keeps the nodes' shards equal to what metadata says should exist: garbage collection now; Merkle comparison and repair next.
package antientropy

// The garbage collector.
//
// Invariants:
//   - A gc entry is collected only after its grace period (reads that
//     began before the release keep working) and only when every node
//     holding one of its shards is live: a shard on a node that is down is
//     deleted on a later pass, never forgotten.
//   - Shards are deleted before the metadata that names them (FinishGC
//     removes the entry last), so a crash at any point leaves an entry that
//     the next pass completes; deleting an absent shard is not an error.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/storagenode"
)

// Nodes gives the shard store of a node and whether it is live.
type Nodes interface {
	Store(id string) (storagenode.ShardStore, bool)
}

// Collector deletes released shards and their metadata.
type Collector struct {
	Meta  metadata.Store
	Nodes Nodes
	Grace time.Duration // how long released shards stay readable
	Now   func() time.Time
	Log   *slog.Logger
}

// GCStats is what one pass did.
type GCStats struct {
	Entries  int // entries finished
	Shards   int // shard files deleted
	Deferred int // entries left for later (grace, a node down, an error)
}

// due says whether an entry's grace period is over (a pure decision).
func due(e metadata.GCEntry, now time.Time, grace time.Duration) bool {
	return !now.Before(e.Time.Add(grace))
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
	for _, e := range entries {
		if !due(e, now(), c.Grace) {
			st.Deferred++
			continue
		}
		n, err := c.collect(ctx, e)
		st.Shards += n
		if err != nil {
			st.Deferred++
			c.log().Debug("gc entry deferred", "entry", e.ID, "err", err)
			continue
		}
		st.Entries++
	}
	return st, nil
}

var errNodeDown = errors.New("node not live")

func (c *Collector) collect(ctx context.Context, e metadata.GCEntry) (int, error) {
	segs, err := c.Meta.GCSegments(ctx, e)
	if err != nil {
		return 0, err
	}
	deleted := 0
	var errs []error
	for _, seg := range segs {
		for i, node := range seg.Nodes {
			if i < len(seg.ShardHashes) && seg.ShardHashes[i] == "" {
				continue // never written
			}
			store, live := c.Nodes.Store(node)
			if store == nil || !live {
				errs = append(errs, fmt.Errorf("segment %s shard %d: %s: %w", seg.ID, i, node, errNodeDown))
				continue
			}
			err := store.Delete(ctx, storagenode.ShardID{Segment: seg.ID, Index: i})
			switch {
			case err == nil:
				deleted++
			case errors.Is(err, storagenode.ErrNotFound):
			default:
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return deleted, err
	}
	return deleted, c.Meta.FinishGC(ctx, e, segs)
}

// Run collects every interval until ctx ends.
func (c *Collector) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if st, err := c.RunOnce(ctx); err != nil {
			c.log().Warn("gc pass failed", "err", err)
		} else if st.Entries > 0 || st.Shards > 0 {
			c.log().Info("gc pass", "entries", st.Entries, "shards", st.Shards, "deferred", st.Deferred)
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
