package cluster

// The segment write and read paths (DESIGN.md §5).
//
// Invariants:
//   - A segment's shards are written to the nodes placement chose, all in
//     parallel, block by block: memory per PUT is a few erasure blocks
//     whatever the object's size.
//   - A node commits a shard only when its request body ends cleanly. If
//     the client's body fails (I/O error, bad signature, bad digest) every
//     shard stream is aborted, so no node commits.
//   - The caller commits metadata only for a segment WriteSegment returned
//     without error: at least the write quorum (default k+1, never below k)
//     of shards are stored and their hashes match what was encoded. Shards
//     that were not written are recorded as "" in ShardHashes and returned
//     for the repair queue. Below quorum, the shards that were written are
//     deleted (best effort; a failed delete leaves an unindexed shard for
//     the anti-entropy sweep, not written yet) and
//     the error wraps ErrUnavailable.
//   - Reads take the k data shards of the stripes they need, verify every
//     block hash and fall back to parity for missing, failing or corrupt
//     shards; the bad shards go to the repair queue.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// hashAlgoXXH3 is the segment's bitrot hash id (metadata.Segment.HashAlgo).
const hashAlgoXXH3 = 1

// NewID returns 128 random bits in hex: segment, version and upload ids.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Profile is the erasure profile of a metadata EC profile.
func Profile(p metadata.ECProfile) erasure.Profile {
	return erasure.Profile{K: p.K, M: p.M, BlockSize: p.BlockSize}
}

// codecs caches one erasure codec per profile.
type codecs struct {
	mu sync.Mutex
	m  map[erasure.Profile]*erasure.Codec
}

func (c *codecs) get(p erasure.Profile) (*erasure.Codec, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cd, ok := c.m[p]; ok {
		return cd, nil
	}
	cd, err := erasure.New(p)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[erasure.Profile]*erasure.Codec{}
	}
	c.m[p] = cd
	return cd, nil
}

// quorum is the write quorum of a profile.
func (c *Cluster) quorum(p erasure.Profile) int {
	q := p.K + 1
	if c.cfg.WriteQuorum > 0 {
		q = c.cfg.WriteQuorum
	}
	return min(max(q, p.K), p.Shards())
}

// WriteSegment erasure-codes r into a new segment; when it returns
// without error, r has been read to EOF (so a verifying reader has checked
// the whole body). It
// returns ok=false and no error for an empty body (no segment is needed),
// and the indexes of shards that were not stored. r's errors are returned
// wrapped, unchanged in kind.
func (c *Cluster) WriteSegment(ctx context.Context, r io.Reader, prof erasure.Profile) (seg metadata.Segment, missing []int, ok bool, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if _, err := br.Peek(1); err == io.EOF {
		return seg, nil, false, nil
	} else if err != nil {
		return seg, nil, false, err
	}
	codec, err := c.codecs.get(prof)
	if err != nil {
		return seg, nil, false, err
	}
	n := prof.Shards()
	id := NewID()
	nodes, err := c.placeWrite(id, n)
	if err != nil {
		return seg, nil, false, fmt.Errorf("place %s: %w: %w", id, ErrUnavailable, err)
	}
	quorum := c.quorum(prof)
	stores, live := c.writeStores(nodes, quorum)
	if live < quorum {
		return seg, nil, false, fmt.Errorf("write %s: %d of %d nodes live, quorum %d: %w", id, live, n, quorum, ErrUnavailable)
	}

	streams := c.openShardStreams(ctx, id, prof.FullShardBlock(), stores, nil)
	res, encErr := codec.Encode(br, streams.writers, quorum)
	if encErr == nil {
		// Encode stops at the first EOF; make the promise explicit (a
		// verifying reader reports a bad digest in place of EOF).
		_, encErr = io.Copy(io.Discard, br)
	}
	// On error every stream is aborted, so no node commits a shard.
	infos, putErrs := streams.finish(encErr)
	if encErr != nil {
		c.discard(id, nodes, func(i int) bool { return putErrs[i] == nil })
		if errors.Is(encErr, erasure.ErrTooFewShards) {
			return seg, nil, false, fmt.Errorf("write %s: %w: %w", id, ErrUnavailable, encErr)
		}
		return seg, nil, false, encErr
	}

	seg = metadata.Segment{
		ID: id, Size: res.Size, HashAlgo: hashAlgoXXH3, Nodes: nodes, ShardHashes: make([]string, n),
		Profile: metadata.ECProfile{K: prof.K, M: prof.M, BlockSize: prof.BlockSize},
	}
	stored := 0
	for i := range n {
		want := hex.EncodeToString(res.ShardHashes[i][:])
		if res.ShardErrs[i] == nil && putErrs[i] == nil && infos[i].Hash == want {
			seg.ShardHashes[i] = want
			stored++
			continue
		}
		if putErrs[i] == nil && infos[i].Hash != want {
			c.log.Warn("shard stored with unexpected hash", "shard", shard.ID{Segment: id, Index: i}, "node", nodes[i])
		}
		missing = append(missing, i)
	}
	if stored < quorum {
		c.discard(id, nodes, func(i int) bool { return putErrs[i] == nil })
		return metadata.Segment{}, nil, false, fmt.Errorf("write %s: %d of %d shards stored, quorum %d: %w", id, stored, n, quorum, ErrUnavailable)
	}
	return seg, missing, true, nil
}

// nodeCondition is what a new segment's placement knows of a node.
type nodeCondition int

const (
	nodeReady    nodeCondition = iota // live, breaker closed, room for shards
	nodeSuspect                       // live, breaker open: a shard only if the quorum needs it
	nodeUnusable                      // down or full: its shard would be missing
)

// condition is node id's nodeCondition now.
func (c *Cluster) condition(id string) nodeCondition {
	st, live := c.Store(id)
	switch {
	case !live || st == nil || c.Full(id):
		return nodeUnusable
	case !c.Healthy(id):
		return nodeSuspect
	}
	return nodeReady
}

// placeWrite chooses the nodes of a new segment's n shards: the ring's
// first n, with spares standing in for those that cannot take a shard
// now (see chooseWriteNodes).
func (c *Cluster) placeWrite(id string, n int) ([]string, error) {
	preferred, err := c.Place(id, n)
	if err != nil {
		return nil, err
	}
	var order []string
	for _, nid := range preferred {
		if c.condition(nid) != nodeReady {
			if order, err = c.placeOrder(id); err != nil {
				return nil, err
			}
			break
		}
	}
	return chooseWriteNodes(preferred, order, c.condition), nil
}

// chooseWriteNodes returns preferred (the ring's choice, shard i on
// preferred[i]) with each node that is not ready replaced, in place, by
// the first ready spare of order (every member in ring order) that is not
// chosen yet, nodes that cannot take a shard at all (down, full) before
// suspect ones (breaker open); one that cannot take a shard left without
// a ready spare is replaced by a suspect spare, which may still answer. Without enough spares the rest stay: their
// shards are missing and go to repair. With every preferred node ready
// the choice is preferred itself, so placement is the ring's whenever the
// cluster is well. Zones are not rebalanced: a spare may share a zone
// with another shard. Pure.
func chooseWriteNodes(preferred, order []string, cond func(string) nodeCondition) []string {
	out := slices.Clone(preferred)
	used := map[string]bool{}
	for _, id := range out {
		used[id] = true
	}
	spare := func(want nodeCondition) string {
		for _, id := range order {
			if !used[id] && cond(id) == want {
				used[id] = true
				return id
			}
		}
		return ""
	}
	conds := make([]nodeCondition, len(out))
	for i, id := range out {
		conds[i] = cond(id)
	}
	replace := func(what, with nodeCondition) {
		for i := range out {
			if conds[i] == what {
				if s := spare(with); s != "" {
					out[i], conds[i] = s, with
				}
			}
		}
	}
	replace(nodeUnusable, nodeReady) // a sure loss first
	replace(nodeSuspect, nodeReady)
	replace(nodeUnusable, nodeSuspect)
	return out
}

// writeStores returns the stores to write a segment's shards to, nil
// where the node is down or full, and how many there are. A node whose circuit
// breaker is open gets no shard (it goes to the repair queue) unless the
// quorum needs it.
func (c *Cluster) writeStores(nodes []string, quorum int) ([]shard.Store, int) {
	stores := make([]shard.Store, len(nodes))
	live, healthy := 0, 0
	for i, nid := range nodes {
		if st, isLive := c.Store(nid); isLive && st != nil && !c.Full(nid) {
			stores[i] = st
			live++
			if c.Healthy(nid) {
				healthy++
			}
		}
	}
	if healthy >= quorum && healthy < live {
		for i, nid := range nodes {
			if stores[i] != nil && !c.Healthy(nid) {
				stores[i] = nil
				live--
			}
		}
	}
	return stores, live
}

// shardStreams are Put streams of one segment's shards, one per store
// given; writers[i] is nil where there is no store.
//
// Every stream is bounded by progress, not by a whole-request deadline:
// a block the node does not take within the stall timeout, or a response
// it does not begin within the stall timeout of the body's end, abandons
// that shard (its request is cancelled with cause erasure.ErrStalled, so
// the node's breaker opens); the other shards go on.
type shardStreams struct {
	writers []io.Writer
	pipes   []*io.PipeWriter
	aborts  []func(error)
	infos   []shard.Info
	errs    []error
	stall   time.Duration
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// openShardStreams starts a Put of shard i of segment id to stores[i]
// for every non-nil store (a Replace with want[i] when want is not nil:
// a repair); the caller writes the shard files to writers and calls
// finish.
func (c *Cluster) openShardStreams(ctx context.Context, id string, blockLen int, stores []shard.Store, want []string) *shardStreams {
	n := len(stores)
	ctx, cancel := context.WithCancel(ctx)
	s := &shardStreams{writers: make([]io.Writer, n), pipes: make([]*io.PipeWriter, n), aborts: make([]func(error), n),
		infos: make([]shard.Info, n), errs: make([]error, n), stall: c.cfg.StallTimeout, cancel: cancel}
	for i, st := range stores {
		if st == nil {
			s.errs[i] = errors.New("node not live")
			continue
		}
		sctx, scancel := context.WithCancelCause(ctx)
		pr, pw := io.Pipe()
		abort := func(cause error) {
			scancel(cause)
			pr.CloseWithError(cause)
		}
		s.pipes[i], s.aborts[i] = pw, abort
		s.writers[i] = &stallWriter{w: pw, stall: s.stall, abort: abort}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer scancel(nil)
			sid := shard.ID{Segment: id, Index: i}
			if want != nil {
				s.infos[i], s.errs[i] = st.Replace(sctx, sid, blockLen, pr, want[i])
			} else {
				s.infos[i], s.errs[i] = st.Put(sctx, sid, blockLen, pr)
			}
			if s.errs[i] != nil && errors.Is(context.Cause(sctx), erasure.ErrStalled) {
				s.errs[i] = fmt.Errorf("shard %d: %w: %w", i, erasure.ErrStalled, s.errs[i])
			}
			// Unblock the writer if the node stopped reading early.
			pr.CloseWithError(fmt.Errorf("shard %d: %w", i, errOr(s.errs[i], errors.New("node ended the request"))))
		}()
	}
	return s
}

// stallWriter is a shard stream's writer: a block not taken within stall
// aborts the stream.
type stallWriter struct {
	w     io.Writer
	stall time.Duration
	abort func(error)
}

func (w *stallWriter) Write(p []byte) (int, error) {
	t := time.AfterFunc(w.stall, func() { w.abort(erasure.ErrStalled) })
	defer t.Stop()
	return w.w.Write(p)
}

// finish ends every stream: cleanly when err is nil (the nodes commit
// their shards), else aborted with err (no node commits). It waits for
// the Puts, each at most the stall timeout from here, and returns what
// each answered.
func (s *shardStreams) finish(err error) ([]shard.Info, []error) {
	var timers []*time.Timer
	for i, pw := range s.pipes {
		if pw != nil {
			pw.CloseWithError(err) // nil: a clean end
			timers = append(timers, time.AfterFunc(s.stall, func() { s.aborts[i](erasure.ErrStalled) }))
		}
	}
	if err != nil {
		s.cancel()
	}
	s.wg.Wait()
	for _, t := range timers {
		t.Stop()
	}
	s.cancel()
	return s.infos, s.errs
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// DiscardSegment deletes the shards of a segment that was never
// committed (a refused write), in the background.
func (c *Cluster) DiscardSegment(seg metadata.Segment) {
	c.discard(seg.ID, seg.Nodes, func(i int) bool { return seg.ShardHashes[i] != "" })
}

// discard deletes the shards of an uncommitted segment that stored(i)
// says a node may hold, in the background (best effort: what it misses
// is the orphan sweep's).
func (c *Cluster) discard(id string, nodes []string, stored func(i int) bool) {
	for i, nid := range nodes {
		if !stored(i) {
			continue
		}
		st, _ := c.Store(nid)
		if st == nil {
			continue
		}
		c.background("discard shard", func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := st.Delete(ctx, shard.ID{Segment: id, Index: i}); err != nil && !errors.Is(err, shard.ErrNotFound) {
				c.log.Warn("discard shard", "segment", id, "shard", i, "err", err)
			}
		})
	}
}

// ReadObject writes length bytes of obj starting at off to w.
func (c *Cluster) ReadObject(ctx context.Context, w io.Writer, obj metadata.Object, off, length int64) error {
	for _, seg := range obj.Segments {
		if length <= 0 {
			break
		}
		if off >= seg.Size {
			off -= seg.Size
			continue
		}
		n := min(length, seg.Size-off)
		if err := c.ReadSegment(ctx, w, seg, off, n); err != nil {
			return err
		}
		length -= n
		off = 0
	}
	if length > 0 {
		return fmt.Errorf("read %s/%s: segments end %d bytes early: %w", obj.Bucket, obj.Key, length, erasure.ErrCorrupt)
	}
	return nil
}

// ReadSegment writes n bytes of seg starting at off to w, from any k
// healthy shards; missing, failing and corrupt shards on live nodes are
// reported to the repair queue. Errors wrap ErrUnavailable when fewer than
// k shards could be read.
func (c *Cluster) ReadSegment(ctx context.Context, w io.Writer, seg metadata.Segment, off, n int64) error {
	codec, err := c.codecs.get(Profile(seg.Profile))
	if err != nil {
		return err
	}
	// The copy in an object or part value is a hint: one that lacks a
	// shard may be older than the repair that rebuilt it. The record says.
	// So is one that puts a shard on a node that was removed (or is no
	// member): drain and rebalance moved it, and the record says where.
	if c.cfg.Records != nil && (slices.Contains(seg.ShardHashes, "") || c.anyGone(seg.Nodes)) {
		if rec, _, err := c.cfg.Records.GetSegment(ctx, seg.ID); err == nil && len(rec.Nodes) == len(seg.Nodes) {
			seg = rec
		}
	}
	// A shard not where the copy says may have moved (drain, rebalance,
	// repair to another node): the record is read once, on the first such
	// failure, and the shard opened where it says.
	var (
		recOnce sync.Once
		rec     metadata.Segment
		recOK   bool
	)
	record := func(ctx context.Context) (metadata.Segment, bool) {
		recOnce.Do(func() {
			if c.cfg.Records == nil {
				return
			}
			r, _, err := c.cfg.Records.GetSegment(ctx, seg.ID)
			recOK = err == nil && len(r.Nodes) == len(seg.Nodes) && len(r.ShardHashes) == len(seg.Nodes)
			rec = r
		})
		return rec, recOK
	}
	// A node whose breaker is open is skipped on the first attempt; if
	// that leaves too few shards, the read is retried asking it too.
	var (
		skipMu  sync.Mutex
		skipped = map[int]bool{}
		skip    = true
	)
	openAt := func(ctx context.Context, node string, i int, off, n int64) (io.ReadCloser, error) {
		st, live := c.Store(node)
		if st == nil || !live {
			return nil, fmt.Errorf("shard %d: node %s: %w", i, node, ErrUnavailable)
		}
		if skip && !c.Healthy(node) {
			skipMu.Lock()
			skipped[i] = true
			skipMu.Unlock()
			return nil, fmt.Errorf("shard %d: node %s: circuit breaker open: %w", i, node, ErrUnavailable)
		}
		return st.Open(ctx, shard.ID{Segment: seg.ID, Index: i}, off, n)
	}
	open := func(ctx context.Context, i int, off, n int64) (io.ReadCloser, error) {
		if i >= len(seg.Nodes) {
			return nil, fmt.Errorf("shard %d: %w", i, shard.ErrNotFound)
		}
		var rc io.ReadCloser
		err := fmt.Errorf("shard %d: %w", i, shard.ErrNotFound)
		if seg.ShardHashes[i] != "" {
			if rc, err = openAt(ctx, seg.Nodes[i], i, off, n); err == nil {
				return rc, nil
			}
		}
		if r, ok := record(ctx); ok && r.ShardHashes[i] != "" && (r.Nodes[i] != seg.Nodes[i] || seg.ShardHashes[i] == "") {
			return openAt(ctx, r.Nodes[i], i, off, n)
		}
		return nil, err
	}
	cw := &countingWriter{w: w}
	bad, err := codec.ReadRangeWith(ctx, cw, seg.Size, off, n, open, c.readOptions())
	if errors.Is(err, erasure.ErrTooFewShards) && len(skipped) > 0 {
		skip = false
		var more []int
		more, err = codec.ReadRangeWith(ctx, cw, seg.Size, off+cw.n, n-cw.n, open, c.readOptions())
		bad = append(bad, more...)
	}
	// Shards on a node that is down or skipped are not queued: they are
	// likely intact and the node is anti-entropy's business when it
	// returns or is removed.
	var repair []int
	for _, i := range bad {
		if i < len(seg.Nodes) && !slices.Contains(repair, i) {
			if _, live := c.Store(seg.Nodes[i]); (live && !skipped[i]) || seg.ShardHashes[i] == "" {
				repair = append(repair, i)
			}
		}
	}
	if len(repair) > 0 {
		c.QueueRepair(seg, repair, "read")
	}
	if errors.Is(err, erasure.ErrTooFewShards) {
		return fmt.Errorf("read segment %s: %w: %w", seg.ID, ErrUnavailable, err)
	}
	return err
}

// readOptions are the hedging and stall bounds of segment reads.
func (c *Cluster) readOptions() erasure.ReadOptions {
	return erasure.ReadOptions{Hedge: max(c.cfg.HedgeAfter, 0), Stall: c.cfg.StallTimeout}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// QueueRepair records shards to rebuild, in the background. A failure is
// logged; anti-entropy finds such shards missing anyway.
func (c *Cluster) QueueRepair(seg metadata.Segment, shards []int, reason string) {
	if c.cfg.Repairs == nil {
		return
	}
	e := metadata.RepairEntry{Segment: seg, Shards: shards, Reason: reason, Time: c.now()}
	c.background("queue repair", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		// A shard the record has since moved (drain, rebalance) is not
		// missing: the reader looked where an older copy said.
		if c.cfg.Records != nil {
			if rec, _, err := c.cfg.Records.GetSegment(ctx, seg.ID); err == nil && len(rec.Nodes) == len(seg.Nodes) {
				e.Shards = slices.DeleteFunc(slices.Clone(shards), func(i int) bool {
					return i < len(rec.Nodes) && rec.Nodes[i] != seg.Nodes[i]
				})
				if len(e.Shards) == 0 {
					return
				}
			}
		}
		if err := c.cfg.Repairs.QueueRepair(ctx, e); err != nil {
			c.log.Warn("queue repair", "segment", seg.ID, "shards", shards, "err", err)
		}
	})
}

// anyGone says whether some of nodes is removed or no member at all.
func (c *Cluster) anyGone(nodes []string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, id := range nodes {
		if n, ok := c.nodes[id]; !ok || n.State == metadata.NodeRemoved {
			return true
		}
	}
	return false
}
