package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/repair"
)

// HealConfig configures the self-healing loops one process runs: the
// repair-queue consumer and the anti-entropy rounds (docs/repair.md).
type HealConfig struct {
	// Interval is the pause between passes over the repair queue
	// (default 10 s; negative: the process runs no healing at all).
	Interval time.Duration
	// Rate is the rebuild read rate in bytes per second (default
	// repair.DefaultRate).
	Rate float64
	// AntiEntropyInterval is the pause between anti-entropy rounds
	// (default 1 minute).
	AntiEntropyInterval time.Duration
	// Grace is the orphan grace period (default repair.DefaultGrace); it
	// must exceed the gateways' commit window.
	Grace time.Duration
	// StatusInterval is how often progress is published (default 10 s).
	StatusInterval time.Duration
	// MoveInterval is the pause between mover passes while a node is
	// draining or removed or a rebalance is requested (default 10 s).
	MoveInterval time.Duration
	// RequestPoll is how often operator requests (sherdctl repair,
	// rebalance) are looked for (default 1 s).
	RequestPoll time.Duration
	// Now is anti-entropy's clock, that of the orphan grace (default
	// time.Now; tests pass their own).
	Now func() time.Time
}

// Leases watches the claimers of a process's background workers (their
// roles are a fixed set: repair, antientropy, mover, lifecycle), for
// readiness, metrics and status. Safe for concurrent use; the zero value
// watches nothing.
type Leases struct {
	mu       sync.Mutex
	claimers map[string]metadata.Claimer
}

// Lease roles (metric label values).
const (
	roleRepair      = "repair"
	roleAntiEntropy = "antientropy"
	roleMover       = "mover"
	roleLifecycle   = "lifecycle"
)

// add watches c under role.
func (l *Leases) add(role string, c metadata.Claimer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.claimers == nil {
		l.claimers = map[string]metadata.Claimer{}
	}
	l.claimers[role] = c
}

// Health returns each watched claimer's lease state by role.
func (l *Leases) Health() map[string]metadata.LeaseHealth {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]metadata.LeaseHealth, len(l.claimers))
	for role, c := range l.claimers {
		out[role] = c.Health()
	}
	return out
}

// Err says which workers hold no lease now (nil: all do): they cannot
// claim work, so nothing heals or expires through them until they have
// one again.
func (l *Leases) Err() error {
	var errs []error
	h := l.Health()
	roles := make([]string, 0, len(h))
	for role := range h {
		roles = append(roles, role)
	}
	slices.Sort(roles)
	for _, role := range roles {
		if lh := h[role]; !lh.Live {
			errs = append(errs, fmt.Errorf("%s worker has no etcd lease since %s (%d lost; last error: %s)",
				role, lh.Since.UTC().Format(time.RFC3339), lh.Lapses, lh.Err))
		}
	}
	return errors.Join(errs...)
}

// Healer is a running repairer and anti-entropy loop.
type Healer struct {
	// Leases are its claimers' leases.
	Leases      Leases
	Repairer    *repair.Repairer
	AntiEntropy *repair.AntiEntropy
	Mover       *repair.Mover
	doneRequest atomic.Pointer[string] // the last operator request whose round ended
	cancel      context.CancelFunc
	loops       sync.WaitGroup
}

// startHealer runs a repairer and anti-entropy rounds over cl, named name
// in status, until Close.
func startHealer(name string, store metadata.Store, cl *cluster.Cluster, c HealConfig, log *slog.Logger) (*Healer, error) {
	cf, ok := store.(claimerFactory)
	if !ok {
		return nil, errors.New("the metadata store cannot hold claims; turn healing off")
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.AntiEntropyInterval <= 0 {
		c.AntiEntropyInterval = time.Minute
	}
	if c.MoveInterval <= 0 {
		c.MoveInterval = 10 * time.Second
	}
	if c.RequestPoll <= 0 {
		c.RequestPoll = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Two claimers: claims are re-entrant for their holder, and the
	// orphan sweep must exclude this process's repairer too.
	claims, err := cf.NewClaimer(ctx, name, 10*time.Second)
	if err != nil {
		cancel()
		return nil, err
	}
	aeClaims, err := cf.NewClaimer(ctx, name+" (anti-entropy)", 10*time.Second)
	if err != nil {
		claims.Close()
		cancel()
		return nil, err
	}
	moveClaims, err := cf.NewClaimer(ctx, name+" (mover)", 10*time.Second)
	if err != nil {
		claims.Close()
		aeClaims.Close()
		cancel()
		return nil, err
	}
	h := &Healer{cancel: cancel}
	h.Leases.add(roleRepair, claims)
	h.Leases.add(roleAntiEntropy, aeClaims)
	h.Leases.add(roleMover, moveClaims)
	fail := func(err error) (*Healer, error) {
		claims.Close()
		aeClaims.Close()
		moveClaims.Close()
		cancel()
		return nil, err
	}
	if h.Repairer, err = repair.New(repair.Config{Meta: store, Cluster: cl, Claims: claims, Rate: c.Rate, Log: log}); err != nil {
		return fail(err)
	}
	if h.AntiEntropy, err = repair.NewAntiEntropy(repair.AntiEntropyConfig{Meta: store, Cluster: cl, Claims: aeClaims,
		Repairer: h.Repairer, Grace: c.Grace, Log: log, Windows: windowsOf(store), Now: c.Now}); err != nil {
		return fail(err)
	}
	if h.Mover, err = repair.NewMover(repair.MoverConfig{Meta: store, Cluster: cl, Claims: moveClaims,
		Throttle: h.Repairer.Throttle(), Log: log}); err != nil {
		return fail(err)
	}
	kick := make(chan struct{}, 1)
	h.loops.Add(4)
	go func() {
		defer h.loops.Done()
		defer moveClaims.Close()
		h.control(ctx, store, cl, c, kick, log)
	}()
	go func() {
		defer h.loops.Done()
		defer claims.Close()
		h.Repairer.Run(ctx, c.Interval)
	}()
	go func() {
		defer h.loops.Done()
		defer aeClaims.Close()
		h.AntiEntropy.Run(ctx, c.AntiEntropyInterval)
	}()
	go func() {
		defer h.loops.Done()
		var lastBytes int64
		last := time.Now()
		publish(ctx, store, c.StatusInterval, kick, log, func() metadata.ProcessStatus {
			st := h.Repairer.Stats.Snapshot()
			now := time.Now()
			rate := float64(st.BytesRead-lastBytes) / max(now.Sub(last).Seconds(), 0.001)
			lastBytes, last = st.BytesRead, now
			rep := &metadata.RepairReport{Passes: st.Passes, Segments: st.Segments, ShardsRebuilt: st.ShardsRebuilt,
				BytesRead: st.BytesRead, Rate: rate, Waiting: st.Waiting, LastPass: st.LastPass, LastError: st.LastError}
			if round, n := h.AntiEntropy.Last(); n > 0 {
				rep.Rounds, rep.LastRound = n, &round
			}
			if id := h.doneRequest.Load(); id != nil {
				rep.Request = *id
			}
			rep.Leases = h.Leases.Health()
			mv := h.Mover.Report()
			return metadata.ProcessStatus{Kind: "repairer", Name: name, Repair: rep, Move: &mv}
		})
	}()
	return h, nil
}

// Close stops the loops and waits for them.
func (h *Healer) Close() {
	h.cancel()
	h.loops.Wait()
}

// control follows operator requests and runs the mover: an anti-entropy
// request (sherdctl repair) starts a round now and publishes its report
// when done; the mover makes a pass every MoveInterval while a member is
// draining or removed or a rebalance is requested. A situation (the
// draining and removed members, the rebalance request) that a pass found
// nothing to do for, once it is older than the commit window (no write
// placed before it can still commit), is not scanned again until it
// changes.
func (h *Healer) control(ctx context.Context, store metadata.Store, cl *cluster.Cluster, c HealConfig, kick chan<- struct{}, log *slog.Logger) {
	poll := time.NewTicker(c.RequestPoll)
	defer poll.Stop()
	var (
		lastAE    string
		requested time.Time // when a requested round was asked for (zero: none waited for)
		lastMove  time.Time
		cleanSig  string
		sig       string
		sigSince  time.Time
	)
	if r, ok, err := getRequest(ctx, store, "antientropy"); err == nil && ok {
		lastAE = r.ID // an old request is not replayed at start
	}
	publishNow := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		if r, ok, err := getRequest(ctx, store, "antientropy"); err == nil && ok && r.ID != lastAE {
			lastAE, requested = r.ID, time.Now()
			h.AntiEntropy.Kick()
			log.Info("anti-entropy round requested", "request", r.ID)
		}
		if !requested.IsZero() {
			// Publish once a round that started after the request ended.
			if last, n := h.AntiEntropy.Last(); n > 0 && !last.Started.Before(requested) {
				requested = time.Time{}
				finished := lastAE
				h.doneRequest.Store(&finished)
				publishNow()
			}
		}
		if time.Since(lastMove) < c.MoveInterval {
			continue
		}
		lastMove = time.Now()
		rb, rebalance, err := getRequest(ctx, store, "rebalance")
		if err != nil {
			continue
		}
		members := cl.Nodes()
		if !rebalance && !repair.NeedsPass(members) {
			continue
		}
		next := moveSignature(members, rb.ID)
		if next != sig {
			sig, sigSince = next, time.Now()
		}
		if sig == cleanSig {
			continue
		}
		pass := h.Mover.RunOnce(ctx, rebalance)
		if pass.Segments == 0 && pass.Err == nil && time.Since(sigSince) > cl.CommitWindow() {
			cleanSig = sig
		}
		if pass.Moved > 0 {
			publishNow()
		}
	}
}

// getRequest reads an operator request with a deadline.
func getRequest(ctx context.Context, store metadata.Store, kind string) (metadata.Request, bool, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return store.GetRequest(rctx, kind, "all")
}

// moveSignature names what the mover must act on: the draining and removed
// members and the rebalance request.
func moveSignature(members []metadata.Node, rebalance string) string {
	var b strings.Builder
	ids := make([]string, 0, len(members))
	for _, n := range members {
		if n.State == metadata.NodeDraining || n.State == metadata.NodeRemoved {
			ids = append(ids, n.ID+"="+string(n.State))
		}
	}
	slices.Sort(ids)
	b.WriteString(strings.Join(ids, ","))
	b.WriteString("|" + rebalance)
	return b.String()
}

// windowsOf is the commit windows the gateways publish, if store keeps
// them (nil: the sweep checks its own process's window only).
func windowsOf(store any) repair.CommitWindows {
	if w, ok := store.(repair.CommitWindows); ok {
		return w
	}
	return nil
}
