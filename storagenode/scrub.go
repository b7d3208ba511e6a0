package storagenode

// The scrubber (DESIGN.md §7).
//
// Invariants:
//   - A pass re-reads every shard file the index knows, verifies every
//     block hash, the file's size and its whole-file hash, at most Rate
//     bytes per second.
//   - A shard that fails is quarantined: it leaves the index and its Merkle
//     leaf in one transaction (the file moves to quarantine/, kept for the
//     operator), so anti-entropy sees it missing; OnCorrupt is told, so it
//     can be queued for repair at once.
//   - Progress is visible while a pass runs; a pass ends with its duration.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/shard"
)

// Verify re-reads shard id's file and checks every block hash, the size
// and the whole-file hash against the index. Errors: shard.ErrNotFound,
// shard.ErrCorrupt (the file does not match: quarantine it).
func (s *Store) Verify(ctx context.Context, id shard.ID, throttle func(ctx context.Context, n int) error) (shard.Info, error) {
	info, err := s.Stat(ctx, id)
	if err != nil {
		return info, err
	}
	f, _, err := s.openData(id)
	if errors.Is(err, os.ErrNotExist) {
		return info, fmt.Errorf("verify %s: file missing: %w", id, shard.ErrCorrupt)
	} else if err != nil {
		return info, err
	}
	defer f.Close()
	var r io.Reader = ctxReader{ctx: ctx, r: f}
	if throttle != nil {
		r = &throttledReader{ctx: ctx, r: r, t: throttle}
	}
	h := erasure.NewShardHasher()
	n, err := erasure.CopyRecords(h, r, info.BlockLen)
	switch {
	case errors.Is(err, erasure.ErrCorrupt):
		return info, fmt.Errorf("verify %s: %w", id, shard.ErrCorrupt)
	case err != nil:
		return info, err
	case n != info.Size || hashHex(h) != info.Hash:
		return info, fmt.Errorf("verify %s: size %d hash %s, index says %d %s: %w", id, n, hashHex(h), info.Size, info.Hash, shard.ErrCorrupt)
	}
	return info, nil
}

type throttledReader struct {
	ctx context.Context
	r   io.Reader
	t   func(ctx context.Context, n int) error
}

func (t *throttledReader) Read(p []byte) (int, error) {
	if len(p) > 256<<10 {
		p = p[:256<<10]
	}
	n, err := t.r.Read(p)
	if n > 0 {
		if werr := t.t(t.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// ScrubConfig configures a Scrubber.
type ScrubConfig struct {
	Rate     float64       // bytes per second (default 64 MiB/s)
	Interval time.Duration // pause between passes (default 24 h)
	// OnCorrupt is told of every shard quarantined (e.g. to queue it for
	// repair); it runs on the scrubber's goroutine.
	OnCorrupt func(ctx context.Context, id shard.ID)
	Log       *slog.Logger
	Now       func() time.Time
}

// ScrubProgress is what a scrubber has done.
type ScrubProgress struct {
	Running     bool
	PassStarted time.Time
	Shards      int     // verified this pass so far
	Bytes       int64   // read this pass so far
	Fraction    float64 // of the key space covered this pass, 0..1
	Quarantined int     // this pass
	Passes      int     // completed
	LastPass    time.Time
	LastTook    time.Duration
	LastShards  int
	LastCorrupt int
}

// Scrubber re-reads a store's shards in passes.
type Scrubber struct {
	store   *Store
	cfg     ScrubConfig
	limiter *rate.Limiter
	mu      sync.Mutex
	p       ScrubProgress
	kick    chan struct{}
}

// Kick starts a pass now (an operator's request), or as soon as the one
// under way ends.
func (sc *Scrubber) Kick() {
	select {
	case sc.kick <- struct{}{}:
	default:
	}
}

// NewScrubber returns a scrubber of store.
func NewScrubber(store *Store, cfg ScrubConfig) *Scrubber {
	if cfg.Rate <= 0 {
		cfg.Rate = 64 << 20
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 24 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scrubber{store: store, cfg: cfg, limiter: rate.NewLimiter(rate.Limit(cfg.Rate), max(int(cfg.Rate/10), 1<<20)), kick: make(chan struct{}, 1)}
}

// Progress returns a snapshot.
func (sc *Scrubber) Progress() ScrubProgress {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.p
}

// Pass verifies every shard once.
func (sc *Scrubber) Pass(ctx context.Context) error {
	start := sc.cfg.Now()
	sc.mu.Lock()
	sc.p.Running, sc.p.PassStarted, sc.p.Shards, sc.p.Bytes, sc.p.Fraction, sc.p.Quarantined = true, start, 0, 0, 0, 0
	sc.mu.Unlock()
	throttle := func(ctx context.Context, n int) error { return sc.limiter.WaitN(ctx, n) }
	// Verification times are recorded in batches (one index transaction
	// per 1000 shards, and at the end).
	var verified []shard.ID
	flush := func() {
		if err := sc.store.MarkVerified(verified, sc.cfg.Now()); err != nil {
			sc.cfg.Log.Warn("scrub: record verification times", "err", err)
		}
		verified = verified[:0]
	}
	defer flush()
	err := sc.store.Walk(ctx, func(info shard.Info) error {
		id, err := shard.ParseID(info.ID)
		if err != nil {
			return nil
		}
		_, verr := sc.store.Verify(ctx, id, throttle)
		if errors.Is(verr, shard.ErrCorrupt) {
			switch qerr := sc.store.Quarantine(id); {
			case errors.Is(qerr, shard.ErrNotFound):
				// Deleted meanwhile (collected): nothing to report.
			case qerr != nil:
				sc.cfg.Log.Warn("scrub: quarantine", "shard", id, "err", qerr)
			default:
				sc.cfg.Log.Warn("scrub: corrupt shard quarantined", "shard", id, "err", verr)
				sc.mu.Lock()
				sc.p.Quarantined++
				sc.mu.Unlock()
				if sc.cfg.OnCorrupt != nil {
					sc.cfg.OnCorrupt(ctx, id)
				}
			}
		} else if verr != nil && !errors.Is(verr, shard.ErrNotFound) {
			return verr // I/O error or ctx: stop the pass
		} else if verr == nil {
			if verified = append(verified, id); len(verified) >= 1000 {
				flush()
			}
		}
		pos, _ := strconv.ParseUint(id.Segment[:4], 16, 32)
		sc.mu.Lock()
		sc.p.Shards++
		sc.p.Bytes += info.Size
		sc.p.Fraction = float64(pos+1) / 65536
		sc.mu.Unlock()
		return nil
	})
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.p.Running = false
	if err == nil {
		sc.p.Passes++
		sc.p.LastPass, sc.p.LastTook = sc.cfg.Now(), sc.cfg.Now().Sub(start)
		sc.p.LastShards, sc.p.LastCorrupt, sc.p.Fraction = sc.p.Shards, sc.p.Quarantined, 1
	}
	return err
}

// Run makes a pass, then one every Interval, until ctx ends.
func (sc *Scrubber) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-sc.kick:
		}
		if err := sc.Pass(ctx); err != nil && ctx.Err() == nil {
			sc.cfg.Log.Warn("scrub pass", "err", err)
		}
		t.Reset(sc.cfg.Interval)
	}
}
