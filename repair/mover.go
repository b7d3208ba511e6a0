package repair

// The mover: drain, remove and rebalance (docs/operations.md).
//
// Invariants:
//   - PlanMoves is pure: from a segment record, the members and the
//     ring's order of the active members for the segment, it decides which
//     shards leave their node and where they go. A shard leaves a node
//     that is draining, removed or no member; when rebalancing, also an
//     active node the ring no longer chooses for the segment. A target is
//     a live, active member holding no other shard of the segment (so a
//     segment never has two shards on one node), the ring's choices first.
//   - A move writes the shard to its target first (a copy of the one
//     shard when its node is up, else a rebuild from k others), checks the
//     stored hash against the record, and only then changes the record, by
//     compare-and-swap under the segment's claim (the one the repairer
//     takes). A lost race leaves an unrecorded copy for the orphan sweep.
//   - The source shard is not deleted: a reader holding an older copy of
//     the record still finds it there, and the orphan sweep deletes it
//     after the grace period (a drained node's copies go with the node).
//   - Moves are throttled by the same limiter as rebuilds.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// Move is one shard to move.
type Move struct {
	Index int    `json:"index"`
	From  string `json:"from"`
	To    string `json:"to"`
	// Copy: the source node is up and the shard recorded, so it is
	// copied; otherwise it is rebuilt from the segment's other shards.
	Copy bool `json:"copy"`
}

// Leaving says why shard i of seg must leave its node ("" if it need
// not): "draining", "removed", "unknown" (no member), or "rebalance" when
// rebalance is set and the node is not among desired. Pure.
func Leaving(node string, nodes map[string]metadata.Node, desired map[string]bool, rebalance bool) string {
	n, member := nodes[node]
	switch {
	case !member:
		return "unknown"
	case n.State == metadata.NodeRemoved:
		return "removed"
	case n.State == metadata.NodeDraining:
		return "draining"
	case rebalance && !desired[node]:
		return "rebalance"
	}
	return ""
}

// PlanMoves decides the moves of seg. order is the ring's order of the
// active members for the segment (cluster.Place over all of them): its
// first k+m are where placement puts the segment now. A shard leaving for
// rebalance goes only to one of those; a shard leaving a draining,
// removed or unknown node goes to the first usable node of order. Moves
// that find no target are left out (waiting for a node). Pure.
func PlanMoves(seg metadata.Segment, nodes map[string]metadata.Node, order []string, rebalance bool) []Move {
	n := len(seg.Nodes)
	desired := map[string]bool{}
	for _, id := range order[:min(n, len(order))] {
		desired[id] = true
	}
	used := map[string]bool{}
	for _, id := range seg.Nodes {
		used[id] = true
	}
	usable := func(id string) bool {
		m, ok := nodes[id]
		return ok && m.Live && (m.State == metadata.NodeActive || m.State == "")
	}
	var out []Move
	for i, from := range seg.Nodes {
		why := Leaving(from, nodes, desired, rebalance)
		if why == "" {
			continue
		}
		j := slices.IndexFunc(order, func(id string) bool {
			return !used[id] && usable(id) && (why != "rebalance" || desired[id])
		})
		if j < 0 {
			continue
		}
		used[order[j]] = true
		src, member := nodes[from]
		copyable := member && src.Live && src.State != metadata.NodeRemoved && i < len(seg.ShardHashes) && seg.ShardHashes[i] != ""
		out = append(out, Move{Index: i, From: from, To: order[j], Copy: copyable})
	}
	return out
}

// MoverMeta is what the mover needs of the metadata store.
type MoverMeta interface {
	ScanSegments(ctx context.Context, f func(metadata.Segment) error) (int64, error)
	GetSegment(ctx context.Context, id string) (metadata.Segment, int64, error)
	UpdateSegment(ctx context.Context, seg metadata.Segment, rev int64, fence metadata.Fence) error
}

// MoverConfig configures a Mover.
type MoverConfig struct {
	Meta    MoverMeta        // required
	Cluster *cluster.Cluster // required
	// Claims is required, and not another worker's claimer of this
	// process (claims are re-entrant for their holder): the mover takes
	// the segment claims the repairer takes.
	Claims   metadata.Claimer
	Throttle cluster.Throttle // bytes read; nil: none
	Workers  int              // segments moved at once; default 4
	Log      *slog.Logger
	Now      func() time.Time
}

// MovePass is what one pass did.
type MovePass struct {
	Started  time.Time
	Segments int   // segments with shards to move
	Moved    int   // shards moved
	Bytes    int64 // shard bytes written
	Waiting  int   // shards that had to leave but could not (no target, a lost race, an error)
	Err      error
}

// Mover moves shards off draining and removed nodes, and rebalances.
type Mover struct {
	cfg MoverConfig
	log *slog.Logger

	mu    sync.Mutex
	stats metadata.MoveReport
}

// NewMover returns a Mover.
func NewMover(cfg MoverConfig) (*Mover, error) {
	if cfg.Meta == nil || cfg.Cluster == nil || cfg.Claims == nil {
		return nil, errors.New("repair: the mover needs Meta, Cluster and Claims")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Mover{cfg: cfg, log: cfg.Log}, nil
}

// Report returns what the mover has done so far.
func (m *Mover) Report() metadata.MoveReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// NeedsPass says whether members call for a pass without a rebalance:
// some member is draining or removed.
func NeedsPass(members []metadata.Node) bool {
	return slices.ContainsFunc(members, func(n metadata.Node) bool {
		return n.State == metadata.NodeDraining || n.State == metadata.NodeRemoved
	})
}

// RunOnce scans every segment record and makes the moves PlanMoves
// decides, Workers segments at a time.
func (m *Mover) RunOnce(ctx context.Context, rebalance bool) MovePass {
	pass := MovePass{Started: m.cfg.Now()}
	nodes, active := Members(m.cfg.Cluster.Nodes())
	var (
		mu   sync.Mutex
		errs []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.cfg.Workers)
	_, scanErr := m.cfg.Meta.ScanSegments(gctx, func(seg metadata.Segment) error {
		order, _ := m.cfg.Cluster.Place(seg.ID, active)
		if len(PlanMoves(seg, nodes, order, rebalance)) == 0 {
			return nil
		}
		g.Go(func() error {
			moved, bytes, waiting, err := m.moveSegment(gctx, seg.ID, nodes, active, rebalance)
			mu.Lock()
			defer mu.Unlock()
			pass.Segments++
			pass.Moved += moved
			pass.Bytes += bytes
			pass.Waiting += waiting
			if err != nil {
				errs = append(errs, err)
			}
			return nil
		})
		return nil
	})
	g.Wait()
	if scanErr != nil {
		errs = append(errs, scanErr)
	}
	pass.Err = errors.Join(errs...)
	m.mu.Lock()
	m.stats.Passes++
	m.stats.Moved += pass.Moved
	m.stats.Bytes += pass.Bytes
	m.stats.Waiting = pass.Waiting
	m.stats.LastPass = pass.Started
	m.stats.LastErr = ""
	if pass.Err != nil {
		m.stats.LastErr = pass.Err.Error()
	}
	m.mu.Unlock()
	if pass.Moved > 0 || pass.Err != nil {
		m.log.Info("move pass", "segments", pass.Segments, "moved", pass.Moved, "bytes", pass.Bytes, "waiting", pass.Waiting, "err", pass.Err)
	}
	return pass
}

// moveSegment re-reads the record under the segment's claim, plans again
// and makes the moves, then records them in one compare-and-swap.
func (m *Mover) moveSegment(ctx context.Context, id string, nodes map[string]metadata.Node, active int, rebalance bool) (moved int, bytes int64, waiting int, err error) {
	name := "repair/" + id
	fence, ok, err := m.cfg.Claims.Claim(ctx, name)
	if err != nil || !ok {
		return 0, 0, 1, err // a repairer or another mover has it
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		m.cfg.Claims.Release(rctx, name)
	}()
	seg, rev, err := m.cfg.Meta.GetSegment(ctx, id)
	if errors.Is(err, metadata.ErrNoSuchSegment) {
		return 0, 0, 0, nil // collected meanwhile
	} else if err != nil {
		return 0, 0, 1, err
	}
	order, _ := m.cfg.Cluster.Place(seg.ID, active)
	moves := PlanMoves(seg, nodes, order, rebalance)
	if len(moves) == 0 {
		return 0, 0, 0, nil
	}
	next := seg
	next.Nodes = slices.Clone(seg.Nodes)
	next.ShardHashes = slices.Clone(seg.ShardHashes)
	var rebuild map[int]string
	var errs []error
	done := 0
	for _, mv := range moves {
		if mv.Copy {
			hash, err := m.cfg.Cluster.CopyShard(ctx, seg, mv.Index, mv.To, m.cfg.Throttle)
			if err == nil {
				next.Nodes[mv.Index], next.ShardHashes[mv.Index] = mv.To, hash
				done++
				continue
			}
			if !errors.Is(err, shard.ErrNotFound) && !errors.Is(err, shard.ErrCorrupt) && !errors.Is(err, cluster.ErrUnavailable) {
				errs = append(errs, err)
				continue
			}
			m.log.Info("move: copy failed, rebuilding instead", "shard", fmt.Sprintf("%s.%d", seg.ID, mv.Index), "err", err)
		}
		if rebuild == nil {
			rebuild = map[int]string{}
		}
		rebuild[mv.Index] = mv.To
	}
	if len(rebuild) > 0 {
		// The shards being rebuilt are excluded from the sources.
		hashes, err := m.cfg.Cluster.RebuildShards(ctx, seg, rebuild, m.cfg.Throttle)
		for i, h := range hashes {
			next.Nodes[i], next.ShardHashes[i] = rebuild[i], h
			done++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if done == 0 {
		return 0, 0, len(moves), fmt.Errorf("move %s: %w", seg.ID, errors.Join(errs...))
	}
	if err := m.cfg.Meta.UpdateSegment(ctx, next, rev, fence); err != nil {
		return 0, 0, len(moves), fmt.Errorf("move %s: record: %w", seg.ID, err)
	}
	return done, int64(done) * ShardFileSize(seg), len(moves) - done, errors.Join(errs...)
}
