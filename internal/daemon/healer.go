package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"
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
}

// Healer is a running repairer and anti-entropy loop.
type Healer struct {
	Repairer    *repair.Repairer
	AntiEntropy *repair.AntiEntropy
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
	h := &Healer{cancel: cancel}
	fail := func(err error) (*Healer, error) {
		claims.Close()
		aeClaims.Close()
		cancel()
		return nil, err
	}
	if h.Repairer, err = repair.New(repair.Config{Meta: store, Cluster: cl, Claims: claims, Rate: c.Rate, Log: log}); err != nil {
		return fail(err)
	}
	if h.AntiEntropy, err = repair.NewAntiEntropy(repair.AntiEntropyConfig{Meta: store, Cluster: cl, Claims: aeClaims,
		Repairer: h.Repairer, Grace: c.Grace, Log: log}); err != nil {
		return fail(err)
	}
	h.loops.Add(3)
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
		publish(ctx, store, c.StatusInterval, log, func() metadata.ProcessStatus {
			st := h.Repairer.Stats.Snapshot()
			now := time.Now()
			rate := float64(st.BytesRead-lastBytes) / max(now.Sub(last).Seconds(), 0.001)
			lastBytes, last = st.BytesRead, now
			rep := &metadata.RepairReport{Passes: st.Passes, Segments: st.Segments, ShardsRebuilt: st.ShardsRebuilt,
				BytesRead: st.BytesRead, Rate: rate, Waiting: st.Waiting, LastPass: st.LastPass, LastError: st.LastError}
			if round, n := h.AntiEntropy.Last(); n > 0 {
				rep.Rounds, rep.LastRound = n, &round
			}
			return metadata.ProcessStatus{Kind: "repairer", Name: name, Repair: rep}
		})
	}()
	return h, nil
}

// Close stops the loops and waits for them.
func (h *Healer) Close() {
	h.cancel()
	h.loops.Wait()
}
