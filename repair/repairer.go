package repair

// The repair driver.
//
// Invariants:
//   - A pass reads the queue, learns the state of every shard of each
//     queued segment from its node (Stat: no data is read), plans with
//     PlanSegment and rebuilds most-at-risk first.
//   - A segment is worked on by one repairer at a time: it claims
//     repair/<segment> first (a claim under its etcd lease, lost if it
//     crashes, so another repairer resumes). Claims are re-entrant for
//     their holder, so within one process a busy set keeps the queue loop
//     and anti-entropy's calls from working on one segment at once.
//   - The segment record changes only by compare-and-swap after the
//     rebuilt shards are stored; a lost race leaves the entry for the next
//     pass, which sees the shards already rebuilt (rebuilding is
//     idempotent: a rebuilt shard is byte-for-byte the original).
//   - An entry is acknowledged by revision, and only when its segment
//     needs nothing more: shards reported meanwhile stay queued.
//   - Rebuild reads are throttled to Config.Rate bytes per second.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/internal/backoff"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// DefaultRate is the default rebuild read rate (bytes per second).
const DefaultRate = 128 << 20

// Meta is what the repairer needs of the metadata store.
type Meta interface {
	ListRepairs(ctx context.Context, limit int) ([]metadata.RepairEntry, error)
	DoneRepair(ctx context.Context, e metadata.RepairEntry) (bool, error)
	DeferRepair(ctx context.Context, e metadata.RepairEntry, until time.Time) (bool, error)
	GetSegment(ctx context.Context, id string) (metadata.Segment, int64, error)
	UpdateSegment(ctx context.Context, seg metadata.Segment, rev int64, fence metadata.Fence) error
}

// Config configures a Repairer.
type Config struct {
	Meta    Meta             // required
	Cluster *cluster.Cluster // required
	Claims  metadata.Claimer // required: one repairer per segment at a time
	Rate    float64          // rebuild read bytes per second; default DefaultRate
	Batch   int              // queue entries per pass; default 256
	Workers int              // segments assessed and rebuilt at once; default 4
	Log     *slog.Logger
}

// Stats counts what repairers did; safe for concurrent use.
type Stats struct {
	mu            sync.Mutex
	Passes        int
	Segments      int   // segments whose repair completed
	ShardsRebuilt int   // shards written
	BytesRead     int64 // segment bytes read to rebuild them
	BytesWritten  int64 // shard bytes rebuilt
	Waiting       int   // shards the last pass could not rebuild yet
	LastPass      time.Time
	LastError     string
}

// Snapshot returns a copy.
func (s *Stats) Snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Passes: s.Passes, Segments: s.Segments, ShardsRebuilt: s.ShardsRebuilt, BytesRead: s.BytesRead, BytesWritten: s.BytesWritten,
		Waiting: s.Waiting, LastPass: s.LastPass, LastError: s.LastError}
}

// Repairer consumes the repair queue.
type Repairer struct {
	cfg     Config
	log     *slog.Logger
	limiter *rate.Limiter
	Stats   Stats
	busy    busySet // segments this process is repairing now
}

// busySet is the segments being worked on in this process. Claims are
// re-entrant for their holder, and the queue loop and anti-entropy's
// rounds call one Repairer with one claimer: the etcd claim alone would
// let both rebuild the same segment at once.
type busySet struct {
	mu  sync.Mutex
	ids map[string]bool
}

// take marks id busy and reports whether it was free.
func (b *busySet) take(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ids[id] {
		return false
	}
	if b.ids == nil {
		b.ids = map[string]bool{}
	}
	b.ids[id] = true
	return true
}

func (b *busySet) put(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.ids, id)
}

// waitBackoff is how long an entry that must wait (its node down, too few
// healthy shards) is deferred after its n-th attempt: 500 ms doubling,
// at most 10 s.
var waitBackoff = backoff.Policy{Min: 500 * time.Millisecond, Max: 10 * time.Second}

// New returns a Repairer.
func New(cfg Config) (*Repairer, error) {
	if cfg.Meta == nil || cfg.Cluster == nil || cfg.Claims == nil {
		return nil, errors.New("repair: Meta, Cluster and Claims are required")
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	burst := max(int(cfg.Rate/10), 1<<20)
	return &Repairer{cfg: cfg, log: cfg.Log, limiter: rate.NewLimiter(rate.Limit(cfg.Rate), burst)}, nil
}

// Throttle is the repairer's rate limit as a cluster.Throttle, for other
// workers that must share its budget (the mover).
func (r *Repairer) Throttle() cluster.Throttle {
	return func(ctx context.Context, n int) error { return r.limiter.WaitN(ctx, n) }
}

// Run makes a pass every interval until ctx ends.
func (r *Repairer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("repair pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// assessed is a queue entry with its plan.
type assessed struct {
	entry metadata.RepairEntry
	rev   int64 // the record's revision
	plan  Plan
}

// RunOnce makes one pass over (up to Batch entries of) the queue and
// returns how many shards it rebuilt.
func (r *Repairer) RunOnce(ctx context.Context) (int, error) {
	entries, err := r.cfg.Meta.ListRepairs(ctx, r.cfg.Batch)
	if err != nil {
		return 0, err
	}
	rebuilt, waiting, err := r.Repair(ctx, entries)
	r.Stats.mu.Lock()
	r.Stats.Passes++
	r.Stats.Waiting = waiting
	r.Stats.LastPass = time.Now()
	r.Stats.LastError = ""
	if err != nil {
		r.Stats.LastError = err.Error()
	}
	r.Stats.mu.Unlock()
	return rebuilt, err
}

// Repair assesses and repairs the segments of entries, most-at-risk first,
// Config.Workers segments at a time, and returns the shards rebuilt and
// those that must wait. Entries read from the queue (Rev > 0) are
// acknowledged once their segment needs nothing more; others (anti-entropy
// findings) are not queue entries and need no acknowledgement.
func (r *Repairer) Repair(ctx context.Context, entries []metadata.RepairEntry) (rebuilt, waiting int, err error) {
	nodes, active := Members(r.cfg.Cluster.Nodes())
	var (
		mu   sync.Mutex
		work []assessed
		errs []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Workers)
	for _, e := range entries {
		g.Go(func() error {
			a, done, err := r.assess(gctx, e, nodes, active)
			if err == nil && done && e.Rev > 0 {
				_, err = r.cfg.Meta.DoneRepair(gctx, e)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case !done:
				work = append(work, a)
			}
			return nil
		})
	}
	g.Wait()
	plans := make([]Plan, len(work))
	for i := range work {
		plans[i] = work[i].plan
	}
	ByRisk(plans)
	byID := map[string]assessed{}
	for _, a := range work {
		byID[a.entry.Segment.ID] = a
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Workers)
	for _, p := range plans {
		if gctx.Err() != nil {
			break
		}
		a := byID[p.Segment.ID]
		g.Go(func() error {
			n, err := r.repair(gctx, a)
			mu.Lock()
			defer mu.Unlock()
			rebuilt += n
			waiting += len(a.plan.Wait)
			if err != nil {
				errs = append(errs, err)
			}
			return nil
		})
	}
	g.Wait()
	return rebuilt, waiting, errors.Join(errs...)
}

// assess reads the segment record and asks each live node about its shard.
// done: nothing to do (all healthy, or the segment was collected).
func (r *Repairer) assess(ctx context.Context, e metadata.RepairEntry, nodes map[string]metadata.Node, active int) (assessed, bool, error) {
	rec, rev, err := r.cfg.Meta.GetSegment(ctx, e.Segment.ID)
	if errors.Is(err, metadata.ErrNoSuchSegment) {
		return assessed{}, true, nil // collected: nothing to keep
	}
	if err != nil {
		return assessed{}, false, err
	}
	states := r.states(ctx, rec)
	order, _ := r.cfg.Cluster.Place(rec.ID, active)
	plan := PlanSegment(rec, states, e.Shards, nodes, order, r.cfg.Cluster.Full)
	return assessed{entry: e, rev: rev, plan: plan}, plan.Done(), nil
}

// states asks every live node holding a shard of seg about it (Stat).
func (r *Repairer) states(ctx context.Context, seg metadata.Segment) []ShardState {
	out := make([]ShardState, len(seg.Nodes))
	var wg sync.WaitGroup
	for i, node := range seg.Nodes {
		st, live := r.cfg.Cluster.Store(node)
		if st == nil || !live {
			continue // Unknown
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			info, err := st.Stat(sctx, shard.ID{Segment: seg.ID, Index: i})
			switch {
			case errors.Is(err, shard.ErrNotFound):
				out[i] = Missing
			case err != nil:
				out[i] = Unknown
			case seg.ShardHashes[i] == "" || info.Hash != seg.ShardHashes[i]:
				out[i] = Corrupt
			default:
				out[i] = Healthy
			}
		}()
	}
	wg.Wait()
	return out
}

// repair rebuilds one segment's shards under its claim, records them, and
// acknowledges the entry when nothing is left.
func (r *Repairer) repair(ctx context.Context, a assessed) (int, error) {
	seg := a.plan.Segment
	if !r.busy.take(seg.ID) {
		return 0, nil // this process is at it already (queue or anti-entropy)
	}
	defer r.busy.put(seg.ID)
	name := "repair/" + seg.ID
	fence, ok, err := r.cfg.Claims.Claim(ctx, name)
	if err != nil || !ok {
		return 0, err // another repairer has it
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		r.cfg.Claims.Release(rctx, name)
	}()
	rebuilt := 0
	if len(a.plan.Rebuild) > 0 {
		throttle := func(ctx context.Context, n int) error { return r.limiter.WaitN(ctx, n) }
		hashes, err := r.cfg.Cluster.RebuildShards(ctx, seg, a.plan.Rebuild, throttle)
		if err != nil {
			return 0, fmt.Errorf("repair %s: %w", seg.ID, err)
		}
		next := seg
		next.Nodes = append([]string(nil), seg.Nodes...)
		next.ShardHashes = append([]string(nil), seg.ShardHashes...)
		for i, node := range a.plan.Rebuild {
			next.Nodes[i], next.ShardHashes[i] = node, hashes[i]
		}
		if err := r.cfg.Meta.UpdateSegment(ctx, next, a.rev, fence); err != nil {
			return 0, fmt.Errorf("repair %s: record: %w", seg.ID, err) // next pass re-reads
		}
		rebuilt = len(hashes)
		r.Stats.mu.Lock()
		r.Stats.ShardsRebuilt += rebuilt
		r.Stats.BytesRead += seg.Size
		r.Stats.BytesWritten += int64(len(hashes)) * ShardFileSize(seg)
		r.Stats.mu.Unlock()
		r.log.Info("repaired", "segment", seg.ID, "shards", len(hashes), "healthy_before", a.plan.Healthy)
	}
	if len(a.plan.Wait) > 0 {
		if a.entry.Rev > 0 {
			// Not due again until a backoff has passed: a backlog of
			// waiting entries never holds back the others.
			e := a.entry
			e.Attempts++
			if _, err := r.cfg.Meta.DeferRepair(ctx, e, time.Now().Add(waitBackoff.Delay(e.Attempts+1))); err != nil {
				return rebuilt, err
			}
		}
		return rebuilt, nil
	}
	r.Stats.mu.Lock()
	r.Stats.Segments++
	r.Stats.mu.Unlock()
	if a.entry.Rev > 0 {
		if _, err := r.cfg.Meta.DoneRepair(ctx, a.entry); err != nil {
			return rebuilt, err
		}
	}
	return rebuilt, nil
}
