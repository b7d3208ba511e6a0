package repair

// The anti-entropy round.
//
// Invariants:
//   - Detection reads no shard data: it compares, per node, the expected
//     Merkle tree (from segment records, kept current by a watch, or
//     rescanned) with the node's tree, descending only into subtrees that
//     differ: the root down to the partitions, then, per differing
//     partition, down to the leaves, then the leaf inventories. A node
//     that agrees costs one call.
//   - A partition is examined by one repairer at a time: it claims
//     ae/<partition> (a claim under its etcd lease) and skips partitions
//     another repairer holds; they are that one's work.
//   - Differences are classified against records read from etcd now, not
//     the possibly lagging expected tree, so a record committed a moment
//     ago is never mistaken for an orphan or a missing shard.
//   - Missing and wrong shards are repaired by the Repairer (per-segment
//     claims, most-at-risk first, compare-and-swap on the record).
//   - An unexpected shard (no record puts it on that node) is deleted only
//     after it has been seen unexpected, with the same hash, for Grace on
//     this process's monotonic clock, and only if a fresh read still finds
//     no record for it there. Gateways refuse to commit a segment whose
//     shards finished writing more than cluster.CommitWindow ago (less
//     than Grace), so a shard deleted this way can never become referenced.
//     No wall clock of another process is compared with ours, so clock
//     skew cannot shorten the grace period.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// DefaultGrace is how long an unexpected shard must stay unexpected
// before it is deleted.
const DefaultGrace = time.Hour

// nodeCallTimeout bounds one tree or inventory call to a node.
const nodeCallTimeout = 10 * time.Second

// AEMeta is what anti-entropy needs of the metadata store.
type AEMeta interface {
	ScanSegments(ctx context.Context, f func(metadata.Segment) error) (int64, error)
	WatchSegments(ctx context.Context, rev int64, f func([]metadata.SegmentChange)) error
	LeafSegments(ctx context.Context, leaf uint32) ([]metadata.Segment, error)
	ListPendingChunks(ctx context.Context, limit int) ([]metadata.PendingChunks, error)
	ReleasePendingChunks(ctx context.Context, p metadata.PendingChunks) (bool, error)
}

// AntiEntropyConfig configures an AntiEntropy.
type AntiEntropyConfig struct {
	Meta    AEMeta           // required
	Cluster *cluster.Cluster // required
	// Claims is required: one examiner per partition at a time. Not the
	// Repairer's claimer: claims are re-entrant for their holder, and the
	// sweep takes the segment claims the Repairer takes.
	Claims   metadata.Claimer
	Repairer *Repairer // required: repairs what rounds find
	// Grace is how long an unexpected shard must stay so before it is
	// deleted (default DefaultGrace); it must exceed the gateways'
	// cluster.CommitWindow.
	Grace time.Duration
	// Now is the clock of the grace period (default time.Now, whose
	// readings carry the monotonic clock); its readings are subtracted
	// from each other, and compared with the wall-clock times gateways
	// published their commit windows at (WindowFreshness).
	Now func() time.Time
	Log *slog.Logger
	// Windows, when set, gives the commit windows gateways in other
	// processes published; the sweep deletes nothing while the grace does
	// not exceed the largest (a shard written just before its commit
	// could be swept).
	Windows CommitWindows
}

// CommitWindows is what the gateways of a cluster published (the
// metadata/etcd Store).
type CommitWindows interface {
	// MaxCommitWindow returns the largest window published at or after
	// since, and its gateway. Errors: the store's.
	MaxCommitWindow(ctx context.Context, since time.Time) (time.Duration, string, error)
}

// WindowFreshness is how old a published commit window may be and still
// count: a gateway republishes every few minutes, and one stopped for
// longer has no commit left to send.
const WindowFreshness = 24 * time.Hour

// RoundReport is what one anti-entropy round did.
type RoundReport = metadata.AntiEntropyRound

// suspect is an unexpected shard being timed.
type suspect struct {
	first time.Time
	hash  string
}

// AntiEntropy runs anti-entropy rounds. One per process; Run owns its
// goroutines.
type AntiEntropy struct {
	cfg      AntiEntropyConfig
	log      *slog.Logger
	expected atomic.Pointer[Expected] // nil: not followed, rescan
	mu       sync.Mutex
	suspects map[string]suspect // node/shard id → when first seen unexpected
	pending  map[string]suspect // version id → when its uncommitted segment list was first seen (hash: its revision)
	last     RoundReport
	rounds   int
	kick     chan struct{}
}

// NewAntiEntropy returns an AntiEntropy.
func NewAntiEntropy(cfg AntiEntropyConfig) (*AntiEntropy, error) {
	if cfg.Meta == nil || cfg.Cluster == nil || cfg.Claims == nil || cfg.Repairer == nil {
		return nil, errors.New("repair: anti-entropy needs Meta, Cluster, Claims and Repairer")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if w := cfg.Cluster.CommitWindow(); cfg.Grace <= w {
		return nil, fmt.Errorf("repair: orphan grace %v must exceed the commit window %v", cfg.Grace, w)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &AntiEntropy{cfg: cfg, log: cfg.Log, suspects: map[string]suspect{}, pending: map[string]suspect{}, kick: make(chan struct{}, 1)}, nil
}

// SegmentHealth counts the segments by recorded shards on nodes live
// says are up, from the expected trees Run keeps current; false while
// they are not loaded.
func (a *AntiEntropy) SegmentHealth(live func(node string) bool) (map[Health]int, bool) {
	exp := a.expected.Load()
	if exp == nil {
		return nil, false
	}
	return exp.Health(live), true
}

// Kick makes Run start its next round now (an operator's request), or
// as soon as the round under way ends.
func (a *AntiEntropy) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Last returns the report of the last round and the number of rounds.
func (a *AntiEntropy) Last() (RoundReport, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last, a.rounds
}

// Run makes a round every interval until ctx ends, keeping the expected
// trees current with a watch between rounds. It returns when ctx ends,
// after its watch has stopped.
func (a *AntiEntropy) Run(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if a.expected.Load() == nil {
			if exp, rev, err := a.scan(ctx); err == nil {
				a.expected.Store(exp)
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := a.cfg.Meta.WatchSegments(ctx, rev, func(cs []metadata.SegmentChange) {
						for _, c := range cs {
							exp.Apply(c.Old, c.New)
						}
					})
					a.expected.CompareAndSwap(exp, nil) // rescan before the next round
					if ctx.Err() == nil {
						a.log.Warn("segment watch ended; rescanning", "err", err)
					}
				}()
			} else if ctx.Err() == nil {
				a.log.Warn("anti-entropy scan", "err", err)
			}
		}
		if _, err := a.RunOnce(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("anti-entropy round", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.kick:
		}
	}
}

// scan builds the expected trees from every segment record.
func (a *AntiEntropy) scan(ctx context.Context) (*Expected, int64, error) {
	exp := NewExpected()
	rev, err := a.cfg.Meta.ScanSegments(ctx, func(seg metadata.Segment) error {
		exp.Apply(nil, &seg)
		return nil
	})
	return exp, rev, err
}

// nodeTree is a node's Merkle tree as a merkle.Source, counting calls.
type nodeTree struct {
	ctx   context.Context
	st    shard.Store
	calls *atomic.Int64
}

func (n nodeTree) Children(level int, idx uint32) ([merkle.Fanout]merkle.Digest, error) {
	n.calls.Add(1)
	ctx, cancel := context.WithTimeout(n.ctx, nodeCallTimeout)
	defer cancel()
	return n.st.Children(ctx, level, idx)
}

// RunOnce makes one round: compare every live node with the expected
// trees, classify what differs, repair missing and wrong shards, sweep
// unexpected ones past the grace period.
func (a *AntiEntropy) RunOnce(ctx context.Context) (RoundReport, error) {
	rep := RoundReport{Started: time.Now()}
	err := a.round(ctx, &rep)
	rep.Took = time.Since(rep.Started)
	if err != nil {
		rep.Error = err.Error()
	}
	a.mu.Lock()
	a.last = rep
	a.rounds++
	a.mu.Unlock()
	return rep, err
}

func (a *AntiEntropy) round(ctx context.Context, rep *RoundReport) error {
	exp := a.expected.Load()
	if exp == nil { // not followed by a watch: scan for this round
		var err error
		if exp, _, err = a.scan(ctx); err != nil {
			return err
		}
	}
	findings, examined, err := a.detect(ctx, exp, rep)
	rep.Detect = time.Since(rep.Started)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}

	// Act: repair missing and wrong shards (and shards recorded without a
	// hash), sweep orphans.
	entries := map[string]*metadata.RepairEntry{}
	add := func(segID string, idx int, reason string) {
		e := entries[segID]
		if e == nil {
			e = &metadata.RepairEntry{Segment: metadata.Segment{ID: segID}, Reason: reason}
			entries[segID] = e
		}
		if !slices.Contains(e.Shards, idx) {
			e.Shards = append(e.Shards, idx)
		}
	}
	var unexpected []Finding
	for _, f := range findings {
		switch f.Kind {
		case MissingShard:
			rep.Missing++
			add(f.Segment, f.Index, "anti-entropy: missing")
		case WrongContent:
			rep.Wrong++
			add(f.Segment, f.Index, "anti-entropy: wrong content")
		case UnexpectedShard:
			rep.Unexpected++
			unexpected = append(unexpected, f)
		}
	}
	for _, seg := range exp.Unhashed() {
		for i, h := range seg.ShardHashes {
			if h == "" {
				add(seg.ID, i, "recorded without a hash")
			}
		}
	}
	list := make([]metadata.RepairEntry, 0, len(entries))
	for _, e := range entries {
		list = append(list, *e)
	}
	bytesBefore := a.cfg.Repairer.Stats.Snapshot().BytesWritten
	rebuilt, waiting, err := a.cfg.Repairer.Repair(ctx, list)
	rep.Rebuilt, rep.Waiting = rebuilt, waiting
	rep.RebuiltBytes = a.cfg.Repairer.Stats.Snapshot().BytesWritten - bytesBefore // approximate if the queue repairs meanwhile
	if err != nil {
		errs = append(errs, err)
	}
	swept, err := a.sweep(ctx, unexpected, examined)
	rep.Swept = swept
	if err != nil {
		errs = append(errs, err)
	}
	lists, err := a.sweepLists(ctx)
	rep.SweptLists = lists
	if err != nil {
		errs = append(errs, err)
	}
	if rep.Missing+rep.Wrong+rep.Unexpected > 0 {
		a.log.Info("anti-entropy round", "nodes", rep.Nodes, "partitions", rep.Examined, "missing", rep.Missing,
			"wrong", rep.Wrong, "unexpected", rep.Unexpected, "rebuilt", rep.Rebuilt, "swept", rep.Swept)
	}
	return errors.Join(errs...)
}

// detect compares every live node with exp and returns the differences in
// the partitions it examined (under their claims), and those partitions.
func (a *AntiEntropy) detect(ctx context.Context, exp *Expected, rep *RoundReport) ([]Finding, map[uint32]bool, error) {
	var calls atomic.Int64
	defer func() { rep.NodeCalls = calls.Load() }()

	// Down to the partitions, every live node.
	type nodeSide struct {
		id  string
		src nodeTree
	}
	byPartition := map[uint32][]nodeSide{}
	var errs []error
	for _, n := range a.cfg.Cluster.Nodes() {
		st, live := a.cfg.Cluster.Store(n.ID)
		if !live || st == nil || n.State == metadata.NodeRemoved {
			continue
		}
		rep.Nodes++
		side := nodeSide{n.ID, nodeTree{ctx, st, &calls}}
		parts, err := merkle.DiffBelow(exp.Tree(n.ID), side.src, 0, 0, merkle.PartitionLevel)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.ID, err))
			continue
		}
		for _, p := range parts {
			byPartition[p] = append(byPartition[p], side)
		}
	}
	rep.Differing = len(byPartition)
	partitions := make([]uint32, 0, len(byPartition))
	for p := range byPartition {
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)

	// Per partition, under its claim: down to the leaves, classify.
	var findings []Finding
	examined := map[uint32]bool{}
	for _, p := range partitions {
		if ctx.Err() != nil {
			break
		}
		name := fmt.Sprintf("ae/%03x", p)
		_, ok, err := a.cfg.Claims.Claim(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			rep.Skipped++
			continue
		}
		rep.Examined++
		examined[p] = true
		records := map[uint32][]metadata.Segment{} // leaf → records, read once per round
		for _, side := range byPartition[p] {
			f, err := a.examine(ctx, exp, side.id, side.src, p, records)
			findings = append(findings, f...)
			if err != nil {
				errs = append(errs, fmt.Errorf("node %s partition %03x: %w", side.id, p, err))
			}
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		a.cfg.Claims.Release(rctx, name)
		cancel()
	}
	return findings, examined, errors.Join(errs...)
}

// examine descends one node's partition p down to the differing leaves
// and classifies them against fresh records (cached in records for the
// other nodes of the round).
func (a *AntiEntropy) examine(ctx context.Context, exp *Expected, node string, src nodeTree, p uint32, records map[uint32][]metadata.Segment) ([]Finding, error) {
	leaves, err := merkle.DiffBelow(exp.Tree(node), src, merkle.PartitionLevel, p, merkle.Depth)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, leaf := range leaves {
		recs, ok := records[leaf]
		if !ok {
			if recs, err = a.cfg.Meta.LeafSegments(ctx, leaf); err != nil {
				return out, err
			}
			records[leaf] = recs
		}
		src.calls.Add(1)
		lctx, cancel := context.WithTimeout(ctx, nodeCallTimeout)
		have, err := src.st.Leaf(lctx, leaf)
		cancel()
		if err != nil {
			return out, err
		}
		out = append(out, ClassifyLeaf(node, recs, have)...)
	}
	return out, nil
}

// sweep times unexpected shards and deletes those past the grace period
// (see the design comment). Suspects in partitions examined this round
// that were not found again are forgotten.
func (a *AntiEntropy) sweep(ctx context.Context, unexpected []Finding, examined map[uint32]bool) (int, error) {
	now := a.cfg.Now()
	seen := map[string]bool{}
	var due []Finding
	a.mu.Lock()
	for _, f := range unexpected {
		key := f.Node + "/" + f.ShardID()
		seen[key] = true
		s, ok := a.suspects[key]
		if !ok || s.hash != f.Have.Hash {
			a.suspects[key] = suspect{first: now, hash: f.Have.Hash}
			continue
		}
		if now.Sub(s.first) >= a.cfg.Grace {
			due = append(due, f)
		}
	}
	for key := range a.suspects {
		if seen[key] {
			continue
		}
		id, err := shard.ParseID(key[indexAfterSlash(key):])
		if err != nil || examined[id.Partition()] {
			delete(a.suspects, key)
		}
	}
	a.mu.Unlock()

	swept := 0
	if len(due) > 0 && a.cfg.Windows != nil {
		w, who, err := a.cfg.Windows.MaxCommitWindow(ctx, a.cfg.Now().Add(-WindowFreshness))
		if err != nil {
			return 0, err
		}
		if a.cfg.Grace <= w {
			return 0, fmt.Errorf("orphan sweep skipped: the orphan grace %v does not exceed the commit window %v of gateway %s (raise --orphan-grace or lower that gateway's --commit-window)", a.cfg.Grace, w, who)
		}
	}
	var errs []error
	for _, f := range due {
		ok, err := a.sweepOne(ctx, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			swept++
			a.mu.Lock()
			delete(a.suspects, f.Node+"/"+f.ShardID())
			a.mu.Unlock()
		}
	}
	return swept, errors.Join(errs...)
}

// pendingPerRound bounds the uncommitted segment lists looked at per round.
const pendingPerRound = 1000

// sweepLists releases out-of-line segment lists whose commit never came
// (objsegpending/), once seen unchanged for the grace period, under the
// claim sweep/objsegs. The commit of a released list fails (it requires
// the pending mark), so the grace only spares slow writers a failed
// commit; safety does not depend on it.
func (a *AntiEntropy) sweepLists(ctx context.Context) (int, error) {
	_, ok, err := a.cfg.Claims.Claim(ctx, "sweep/objsegs")
	if err != nil || !ok {
		return 0, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		a.cfg.Claims.Release(rctx, "sweep/objsegs")
	}()
	list, err := a.cfg.Meta.ListPendingChunks(ctx, pendingPerRound)
	if err != nil {
		return 0, err
	}
	now := a.cfg.Now()
	seen := map[string]bool{}
	var due []metadata.PendingChunks
	a.mu.Lock()
	for _, p := range list {
		seen[p.VersionID] = true
		rev := fmt.Sprint(p.Rev)
		s, ok := a.pending[p.VersionID]
		if !ok || s.hash != rev {
			a.pending[p.VersionID] = suspect{first: now, hash: rev}
			continue
		}
		if now.Sub(s.first) >= a.cfg.Grace {
			due = append(due, p)
		}
	}
	if len(list) < pendingPerRound { // saw them all: forget the others
		for vid := range a.pending {
			if !seen[vid] {
				delete(a.pending, vid)
			}
		}
	}
	a.mu.Unlock()
	released := 0
	var errs []error
	for _, p := range due {
		ok, err := a.cfg.Meta.ReleasePendingChunks(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			released++
			a.log.Info("released an uncommitted segment list", "version", p.VersionID, "bucket", p.Bucket, "key", p.Key, "indexed", p.Indexed)
		}
		a.mu.Lock()
		delete(a.pending, p.VersionID)
		a.mu.Unlock()
	}
	return released, errors.Join(errs...)
}

func indexAfterSlash(key string) int {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return i + 1
		}
	}
	return 0
}

// sweepOne deletes one orphan after checking, now, that no record puts it
// on its node and that the node still holds it with the hash timed. It
// holds the segment's repair claim meanwhile, so a repairer cannot be
// rebuilding the shard onto that node between the check and the delete,
// and checks it still holds that same claim just before the delete.
func (a *AntiEntropy) sweepOne(ctx context.Context, f Finding) (bool, error) {
	name := "repair/" + f.Segment
	fence, ok, err := a.cfg.Claims.Claim(ctx, name)
	if err != nil || !ok {
		return false, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		a.cfg.Claims.Release(rctx, name)
	}()
	leaf, err := merkle.LeafOf(f.Segment)
	if err != nil {
		return false, err
	}
	recs, err := a.cfg.Meta.LeafSegments(ctx, leaf)
	if err != nil {
		return false, err
	}
	for _, seg := range recs {
		if seg.ID == f.Segment && f.Index < len(seg.Nodes) && seg.Nodes[f.Index] == f.Node {
			return false, nil // referenced again: keep
		}
	}
	st, live := a.cfg.Cluster.Store(f.Node)
	if !live || st == nil {
		return false, nil
	}
	id := shard.ID{Segment: f.Segment, Index: f.Index}
	sctx, cancel := context.WithTimeout(ctx, nodeCallTimeout)
	defer cancel()
	info, err := st.Stat(sctx, id)
	if errors.Is(err, shard.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sweep %s on %s: %w", id, f.Node, err)
	}
	if info.Hash != f.Have.Hash {
		return false, nil // rewritten meanwhile: time it again
	}
	// Fenced: the claim must still be the one the checks were made
	// under. Had its lease lapsed meanwhile (a new lease, another token,
	// or another holder), a repairer elsewhere may have rebuilt the shard
	// onto this node and recorded it: keep it, and look again next round.
	if again, ok, err := a.cfg.Claims.Claim(ctx, name); err != nil || !ok || again != fence {
		return false, err
	}
	if err := st.Delete(sctx, id); err != nil && !errors.Is(err, shard.ErrNotFound) {
		return false, fmt.Errorf("sweep %s on %s: %w", id, f.Node, err)
	}
	a.log.Info("swept orphan shard", "node", f.Node, "shard", id.String())
	return true, nil
}
