// Package cluster is the data plane: node membership, placement, and segment write (quorum), read (degraded, reconstruct) and rebuild over the storage nodes; the gateway, the repairer and sherdctl share it.
package cluster

// Ownership: a Cluster owns its background work (the membership watch and
// a bounded pool for best-effort tasks: deleting the shards of refused
// writes, reporting bad shards to the repair queue). Close stops it and
// waits for it; nothing it starts outlives Close.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/placement"
	"github.com/sherdstore/sherd/shard"
)

// ErrUnavailable means too few storage nodes answered for the operation.
var ErrUnavailable = errors.New("not enough storage nodes available")

// Dialer returns the shard store of a node (an HTTP client in production).
type Dialer func(n metadata.Node) shard.Store

// RepairQueue is where bad shards are reported (the metadata store).
type RepairQueue interface {
	QueueRepair(ctx context.Context, e metadata.RepairEntry) error
}

// Records reads segment records (the metadata store).
type Records interface {
	GetSegment(ctx context.Context, id string) (metadata.Segment, int64, error)
}

// Config configures a Cluster.
type Config struct {
	Dial Dialer // required
	// Records is asked where a segment's shards are when the copy a reader
	// holds lacks some (a write that stored fewer than k+m, since
	// repaired); nil: the copy is used as is.
	Records Records
	// Repairs receives the shards a write left unstored or a read found
	// missing or corrupt; nil: not reported.
	Repairs RepairQueue
	// WriteQuorum is the shards a write must store (default k+1, never below k).
	WriteQuorum int
	// Workers bounds the background tasks run at once (default 8); at most
	// 64 times as many wait, the rest are dropped and logged (what they
	// would have done is the orphan sweep's and anti-entropy's).
	Workers int
	// CommitWindow is how long after a segment's shards are written its
	// writer may still commit a reference to it (default
	// DefaultCommitWindow). The orphan sweep's grace period must exceed it:
	// a shard nobody referenced within the window never will be.
	CommitWindow time.Duration
	// StallTimeout bounds how long a shard stream may make no progress (a
	// block not taken, a response not begun) before the shard is
	// abandoned and the node's circuit breaker opens (default 5 s). Calls
	// that do not stream get CallTimeout each (default 30 s).
	StallTimeout time.Duration
	CallTimeout  time.Duration
	// HedgeAfter: a read whose shard is this late also reads a parity
	// shard and uses the first k to answer (default 500 ms; < 0: never).
	HedgeAfter time.Duration
	Log        *slog.Logger
	Now        func() time.Time
}

// DefaultCommitWindow is the default Config.CommitWindow.
const DefaultCommitWindow = 15 * time.Minute

// Cluster is a view of the storage nodes (who is a member, who is live,
// the placement ring over the active members) and the segment I/O over
// them. It is safe for concurrent use.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	codecs codecs

	mu       sync.RWMutex
	nodes    map[string]metadata.Node
	stores   map[string]shard.Store // guarded
	breakers map[string]*breaker
	addrs    map[string]string
	ring     *placement.Ring

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	tasks  chan func(context.Context)
	wg     sync.WaitGroup
	closed sync.Once
}

// New returns a Cluster with an empty view (Update or Watch fill it) and
// starts its background workers; the caller calls Close.
func New(cfg Config) *Cluster {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CommitWindow <= 0 {
		cfg.CommitWindow = DefaultCommitWindow
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 5 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.HedgeAfter == 0 {
		cfg.HedgeAfter = 500 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cluster{cfg: cfg, log: cfg.Log, now: cfg.Now, nodes: map[string]metadata.Node{},
		stores: map[string]shard.Store{}, breakers: map[string]*breaker{}, addrs: map[string]string{},
		ctx: ctx, cancel: cancel, tasks: make(chan func(context.Context), 64*cfg.Workers)}
	for range cfg.Workers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case task := <-c.tasks:
					task(ctx)
				}
			}
		}()
	}
	return c
}

// CommitWindow is Config.CommitWindow.
func (c *Cluster) CommitWindow() time.Duration { return c.cfg.CommitWindow }

// CommitContext is the context for committing a reference to a segment
// just written (call it when WriteSegment returns): it ends CommitWindow
// from now, so a commit is never sent after the window.
func (c *Cluster) CommitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.CommitWindow)
}

// Close stops the watch and the background workers and waits for them.
// Tasks still queued are dropped.
func (c *Cluster) Close() error {
	c.closed.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

// background runs task on a worker, or drops it (logged) when the queue
// is full or the Cluster is closed. task gets a context that ends at Close.
func (c *Cluster) background(what string, task func(context.Context)) {
	if c.ctx.Err() != nil {
		return
	}
	select {
	case c.tasks <- task:
	default:
		c.log.Warn("background queue full, task dropped", "task", what)
	}
}

// Watch follows the node list of store until Close. It returns once the
// first list has been applied.
func (c *Cluster) Watch(store metadata.Members) error {
	ch, err := store.WatchNodes(c.ctx)
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	select {
	case ns, ok := <-ch:
		if !ok {
			return fmt.Errorf("watch nodes: %w", errors.Join(context.Cause(c.ctx), errors.New("watch ended")))
		}
		c.Update(ns)
	case <-c.ctx.Done():
		return fmt.Errorf("watch nodes: %w", c.ctx.Err())
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for ns := range ch { // closed when c.ctx ends
			c.Update(ns)
		}
	}()
	return nil
}

// Update replaces the view with nodes. Members keep their place in the
// ring whether live or not (their missing shards are repaired); draining
// members take no new shards.
func (c *Cluster) Update(nodes []metadata.Node) {
	byID := map[string]metadata.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	ring, err := Ring(nodes)
	if err != nil {
		ring = nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = byID
	c.ring = ring
	for id, n := range byID {
		if _, dialed := c.stores[id]; !dialed || c.addrs[id] != n.Address {
			b := &breaker{}
			c.breakers[id] = b
			c.stores[id] = &guarded{Store: c.cfg.Dial(n), b: b, now: c.now, timeout: c.cfg.CallTimeout}
			c.addrs[id] = n.Address
		}
	}
}

// Ring is the placement ring of nodes: its active members, weighted by
// capacity. Pure.
func Ring(nodes []metadata.Node) (*placement.Ring, error) {
	var members []placement.Member
	for _, n := range nodes {
		if n.State == metadata.NodeActive || n.State == "" {
			w := 1.0
			if n.Capacity > 0 {
				w = float64(n.Capacity) / (1 << 40)
			}
			members = append(members, placement.Member{ID: n.ID, Zone: n.Zone, Weight: w})
		}
	}
	return placement.New(members, 0)
}

// Place returns the nodes for the k+m shards of a new segment.
// Errors: placement.ErrNotEnoughNodes.
func (c *Cluster) Place(segmentID string, n int) ([]string, error) {
	c.mu.RLock()
	ring := c.ring
	c.mu.RUnlock()
	if ring == nil {
		return nil, placement.ErrNotEnoughNodes
	}
	return ring.Place(segmentID, n)
}

// placeOrder returns every ring member in segmentID's ring order: the
// spares after the first n.
func (c *Cluster) placeOrder(segmentID string) ([]string, error) {
	c.mu.RLock()
	ring := c.ring
	c.mu.RUnlock()
	if ring == nil {
		return nil, placement.ErrNotEnoughNodes
	}
	return ring.Place(segmentID, len(ring.Members()))
}

// Full says whether node id answered "disk full" lately: it gets no new
// shard for a while (fullFor).
func (c *Cluster) Full(id string) bool {
	c.mu.RLock()
	b := c.breakers[id]
	c.mu.RUnlock()
	return b != nil && b.isFull(c.now())
}

// Store returns node id's shard store and whether the node is live. A
// node that is not live is not called at all: its shards count as missing.
// Every call through the store feeds the node's circuit breaker; calls
// that do not stream have a deadline.
func (c *Cluster) Store(id string) (shard.Store, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.stores[id], c.nodes[id].Live
}

// Healthy says whether node id is live and its circuit breaker closed.
// A call on an open breaker starts a probe of the node when one is due.
func (c *Cluster) Healthy(id string) bool {
	c.mu.RLock()
	b, st, live := c.breakers[id], c.stores[id], c.nodes[id].Live
	c.mu.RUnlock()
	if !live || b == nil {
		return false
	}
	if b.allow() {
		return true
	}
	if b.probeDue(c.now()) {
		c.background("probe node", func(ctx context.Context) {
			ok := true
			if p, isPinger := unwrap(st).(Pinger); isPinger {
				ctx, cancel := context.WithTimeout(ctx, min(c.cfg.StallTimeout, 2*time.Second))
				defer cancel()
				ok = p.Health(ctx) == nil
			}
			b.probed(c.now(), ok)
			if ok {
				c.log.Info("node answers again; circuit breaker closed", "node", id)
			}
		})
	}
	return false
}

// Breakers returns the state of every member's circuit breaker.
func (c *Cluster) Breakers() map[string]BreakerState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]BreakerState, len(c.breakers))
	for id, b := range c.breakers {
		if _, member := c.nodes[id]; member {
			out[id] = b.state()
		}
	}
	return out
}

// unwrap returns the store under wrappers that have Unwrap.
func unwrap(st shard.Store) shard.Store {
	for {
		u, ok := st.(interface{ Unwrap() shard.Store })
		if !ok {
			return st
		}
		st = u.Unwrap()
	}
}

// Nodes returns the current members.
func (c *Cluster) Nodes() []metadata.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]metadata.Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	return out
}
