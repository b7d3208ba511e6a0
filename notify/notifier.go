package notify

// Delivery of the queued notification events (Events makes them; the
// gateway queues them with the change they report).
//
// Invariants:
//   - An event leaves the queue only after its webhook answered 2xx (so it
//     is delivered at least once; receivers deduplicate by the sequencer),
//     or for the dead-letter list, once it was tried MaxAttempts times or
//     is older than MaxAge (deadReason, pure): a dead webhook cannot grow
//     etcd without bound. The list is bounded too (DeadLetters; the
//     oldest are dropped and counted).
//   - A deliverer claims an event by moving its next-try time past its own
//     delivery deadline (a compare-and-swap) and counts the attempt; if it
//     dies mid-delivery the claim runs out and any gateway delivers it
//     again. Failed deliveries back off exponentially (with jitter) up to
//     MaxBackoff.
//   - Destinations (webhook URLs) are delivered to concurrently: at most
//     PerDestination deliveries at once to one, MaxDeliveries in all; no
//     delivery waits for one to another destination.
//   - Events a notifier cannot deliver yet (their destination busy, or
//     its breaker open) stay due, so a round pages past them: up to
//     listPages pages of listLimit due events, one page in memory at a
//     time, going on from where the previous round stopped and wrapping
//     at the end of the due range. However many due events busy or
//     broken destinations have, every due event is read within
//     due/(listPages*listLimit)+1 rounds, and a round reads at most
//     listPages pages from etcd. A round stops early once
//     MaxDeliveries are under way, and the next resumes at the event it
//     could not take (so freed slots go round the destinations, not to
//     the oldest events' ones).
//   - Each destination has a circuit breaker (breakerPolicy, pure, time
//     passed in): BreakerThreshold failures in a row open it; while it is
//     open, its due events are passed over, untried and unwritten (the
//     breaker, in memory, is what blocks them: no etcd write per event
//     per open period); half-open, one probe is tried: a success closes
//     it, a failure opens it again for twice as long (up to MaxBackoff).
//     Passed over, an event still dies of age (MaxAge) when read.
//   - Every delivery goroutine belongs to the Notifier: Run and RunOnce
//     return only after the ones they started have ended. Every etcd call
//     and every POST has a deadline.
//   - Metric labels come from fixed sets (result, reason), never from
//     URLs or event data.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sherdstore/sherd/internal/backoff"
	"github.com/sherdstore/sherd/metadata"
)

// Notifier delivers queued events. Several may run (one per gateway).
// The zero values of its limits mean the defaults.
type Notifier struct {
	Store  Queue
	Client *http.Client // default: one whose timeout is Timeout
	Region string
	Now    func() time.Time
	Log    *slog.Logger
	// MaxBackoff caps the pause before a retry and the time a breaker
	// stays open (default 5 minutes).
	MaxBackoff time.Duration
	// ClaimFor is how long a claimed event is left to its deliverer before
	// others may retry it (default 30 s; longer than a delivery takes).
	ClaimFor time.Duration
	// Timeout bounds one delivery (default 10 s, at most ClaimFor/2).
	Timeout time.Duration
	// MaxAttempts and MaxAge: an event tried that many times, or older,
	// goes to the dead-letter list (default 10 attempts, 24 h), which
	// keeps DeadLetters entries at most (default 10,000).
	MaxAttempts int
	MaxAge      time.Duration
	DeadLetters int
	// PerDestination bounds the deliveries to one URL at once (default
	// 4), MaxDeliveries those in all (default 64).
	PerDestination int
	MaxDeliveries  int
	// BreakerThreshold failed deliveries in a row open a destination's
	// breaker (default 5) for BreakerOpen (default 10 s), doubling at
	// each failed probe up to MaxBackoff.
	BreakerThreshold int
	BreakerOpen      time.Duration
	// Metrics receives the notifier's metrics (nil: none).
	Metrics prometheus.Registerer

	setupOnce sync.Once
	client    *http.Client
	wg        sync.WaitGroup // the deliveries under way

	mu     sync.Mutex
	dests  map[string]*destination
	active int    // deliveries under way
	resume string // the queue key the next round's paging goes on after ("": the oldest)

	delivered, failed, deferred atomic.Int64
	deadAttempts, deadAge       atomic.Int64
	// As last read from etcd; -1 before.
	pending, deadLetters, dropped atomic.Int64
}

// destination is what a notifier knows of one webhook URL.
type destination struct {
	state    breakerState
	inflight int
	pending  map[string]bool // ids of the events handed to deliveries
}

// Defaults.
const (
	defaultTimeout        = 10 * time.Second
	defaultMaxAttempts    = 10
	defaultMaxEventAge    = 24 * time.Hour
	defaultDeadLetters    = 10_000
	defaultPerDestination = 4
	defaultMaxDeliveries  = 64
	defaultBreakerFails   = 5
	defaultBreakerOpen    = 10 * time.Second
	callTimeout           = 5 * time.Second  // each etcd call
	statsEvery            = 10 * time.Second // queue and dead-letter counts
	listLimit             = 1000             // events in a page
	listPages             = 4                // pages read in a round at most
	maxLastError          = 512
)

// deadReason says why event e, read at now, is past its caps
// (metadata.DeadAttempts or DeadAge), or "". Pure.
func deadReason(e metadata.Event, now time.Time, maxAttempts int, maxAge time.Duration) string {
	switch {
	case e.Attempts >= maxAttempts:
		return metadata.DeadAttempts
	case now.Sub(e.Time) > maxAge:
		return metadata.DeadAge
	}
	return ""
}

// breakerPolicy is how a destination's circuit breaker behaves.
type breakerPolicy struct {
	threshold     int           // failures in a row that open it
	open, maxOpen time.Duration // first open period, and the cap of its doubling
}

// breakerState is a destination's circuit breaker: closed while openUntil
// is zero; open before openUntil; half-open after it, with at most one
// probe (probing) at a time.
type breakerState struct {
	failures  int // failed deliveries in a row
	opens     int // openings in a row (each one twice as long)
	openUntil time.Time
	probing   bool
}

type breakerVerdict int

const (
	breakerDeliver breakerVerdict = iota // closed: deliver
	breakerProbe                         // half-open: deliver this one as the probe
	breakerSkip                          // open, or a probe is under way: put the event off
)

// admit says what to do with a delivery to a destination in state s at
// now, and the state once it is started. Pure.
func (p breakerPolicy) admit(s breakerState, now time.Time) (breakerState, breakerVerdict) {
	switch {
	case s.openUntil.IsZero():
		return s, breakerDeliver
	case now.Before(s.openUntil) || s.probing:
		return s, breakerSkip
	}
	s.probing = true
	return s, breakerProbe
}

// record is state s after a delivery (the probe or not) ended at now,
// ok or not. Pure.
func (p breakerPolicy) record(s breakerState, probe, ok bool, now time.Time) breakerState {
	if ok {
		return breakerState{}
	}
	s.failures++
	if probe || (s.openUntil.IsZero() && s.failures >= p.threshold) {
		s.openUntil = now.Add(p.openFor(s.opens))
		s.opens++
		s.probing = false
	}
	return s
}

// openFor is the open period after opens openings in a row.
func (p breakerPolicy) openFor(opens int) time.Duration {
	return backoff.Policy{Min: p.open, Max: p.maxOpen}.Delay(opens + 1)
}

// Run delivers until ctx ends, looking for due events every interval;
// it returns once every delivery it started has ended.
func (n *Notifier) Run(ctx context.Context, interval time.Duration) {
	n.setup()
	defer n.wg.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	var counted time.Time
	for {
		if err := n.dispatch(ctx); err != nil && ctx.Err() == nil {
			n.log().Warn("notification pass failed", "err", err)
		}
		if time.Since(counted) >= statsEvery {
			n.count(ctx)
			counted = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce runs one round (the due events it reads: all of them unless
// more than listPages pages are due), waits for the deliveries it
// started to end and returns how many succeeded.
func (n *Notifier) RunOnce(ctx context.Context) (int, error) {
	n.setup()
	before := n.delivered.Load()
	err := n.dispatch(ctx)
	n.wg.Wait()
	n.count(ctx)
	return int(n.delivered.Load() - before), err
}

// dispatch is a round: it reads the due events a page at a time, from
// where the previous round stopped, wrapping once at the end of the due
// range, and for each: buries it if it is past its caps, starts its
// delivery if its destination admits one, or leaves it due (its
// destination is busy, or its breaker is open). It stops after
// listPages pages, once it is back where it started, or when the
// notifier is full; the next round goes on from there.
func (n *Notifier) dispatch(ctx context.Context) error {
	now := n.now()
	defer n.sweep()
	start := n.getResume()
	after, wrapped := start, start == ""
	for range listPages {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		evs, err := n.Store.ListEvents(cctx, now, after, listLimit) // only due ones: a backlog of events not due never hides new ones
		cancel()
		if err != nil {
			return err
		}
		end := len(evs) < listLimit // the end of the due events
		if wrapped && start != "" {
			for i, e := range evs {
				if e.QueueKey > start { // read at the start of this round
					evs, end = evs[:i], true
					break
				}
			}
		}
		last, full, err := n.dispatchPage(ctx, evs, after, now)
		switch {
		case err != nil:
			return err
		case full: // the next round goes on from the event not taken
			n.setResume(last)
			return nil
		case end && wrapped: // every due event read: the next round starts over
			n.setResume("")
			return nil
		case end:
			after, wrapped = "", true
		default:
			after = last
		}
	}
	n.setResume(after)
	return nil
}

// dispatchPage decides on each event of a page read after key after. It
// returns the key of the last event it decided on, and full when it
// stopped because the notifier has all the deliveries it may have.
func (n *Notifier) dispatchPage(ctx context.Context, evs []metadata.Event, after string, now time.Time) (string, bool, error) {
	last := after
	for _, e := range evs {
		if ctx.Err() != nil {
			return last, false, ctx.Err()
		}
		if reason := deadReason(e, now, n.maxAttempts(), n.maxAge()); reason != "" {
			n.bury(ctx, e, reason, now)
			last = e.QueueKey
			continue
		}
		switch verdict := n.take(e, now); verdict {
		case full:
			return last, true, nil
		case breakerDeliver, breakerProbe:
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.deliverOne(ctx, e, verdict == breakerProbe)
			}()
		case breakerSkip:
			n.deferred.Add(1) // left due, untouched: the breaker holds it back
		}
		last = e.QueueKey
	}
	return last, false, nil
}

func (n *Notifier) getResume() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.resume
}

func (n *Notifier) setResume(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.resume = key
}

// take's answers for an event left due besides breakerSkip: busy, its
// destination has all the deliveries it may have, or it is being
// delivered; full, the notifier has all it may have.
const (
	busy breakerVerdict = -1
	full breakerVerdict = -2
)

// take decides on event e at now and, for a delivery, takes its slots.
func (n *Notifier) take(e metadata.Event, now time.Time) breakerVerdict {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dests == nil {
		n.dests = map[string]*destination{}
	}
	d := n.dests[e.URL]
	if d == nil {
		d = &destination{pending: map[string]bool{}}
		n.dests[e.URL] = d
	}
	if d.pending[e.ID] {
		return busy
	}
	st, v := n.breaker().admit(d.state, now)
	switch {
	case v == breakerSkip:
		return breakerSkip
	case d.inflight >= n.perDestination():
		return busy
	case n.active >= n.maxDeliveries():
		return full
	}
	d.state = st
	d.inflight++
	d.pending[e.ID] = true
	n.active++
	return v
}

// done gives back the slots of a delivery of e and records its outcome
// in the breaker (tried: the event was claimed and POSTed).
func (n *Notifier) done(e metadata.Event, probe, tried, ok bool) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.dests[e.URL]
	d.inflight--
	delete(d.pending, e.ID)
	n.active--
	switch {
	case tried:
		d.state = n.breaker().record(d.state, probe, ok, now)
	case probe:
		d.state.probing = false // no probe happened: the next event is one
	}
}

// sweep forgets destinations with nothing under way and a closed breaker
// without failures: the table holds only those worth remembering.
func (n *Notifier) sweep() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for u, d := range n.dests {
		if d.inflight == 0 && len(d.pending) == 0 && d.state == (breakerState{}) {
			delete(n.dests, u)
		}
	}
}

// deliverOne claims e (an attempt), POSTs it and deletes it, or schedules
// its retry, or buries it when that was its last attempt.
func (n *Notifier) deliverOne(ctx context.Context, e metadata.Event, probe bool) {
	tried, ok := false, false
	defer func() { n.done(e, probe, tried, ok) }()
	e.Attempts++
	e.NextTry = n.now().Add(n.claimFor())
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	e, claimed, err := n.Store.UpdateEvent(cctx, e)
	cancel()
	if err != nil || !claimed {
		return // another deliverer has it
	}
	err = n.post(ctx, e)
	if ctx.Err() != nil {
		return // stopping: the claim runs out, and any gateway delivers it
	}
	tried, ok = true, err == nil
	now := n.now()
	cctx, cancel = context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if ok {
		n.delivered.Add(1)
		if err := n.Store.DeleteEvent(cctx, e); err != nil {
			n.log().Warn("delivered event not removed (it will be delivered again)", "event", e.ID, "err", err)
		}
		return
	}
	n.failed.Add(1)
	e.LastError = err.Error()
	if len(e.LastError) > maxLastError {
		e.LastError = e.LastError[:maxLastError]
	}
	if reason := deadReason(e, now, n.maxAttempts(), n.maxAge()); reason != "" {
		n.bury(ctx, e, reason, now)
		return
	}
	e.NextTry = now.Add(backoff.Jitter(backoff.Policy{Min: time.Second, Max: n.maxBackoff()}.Delay(e.Attempts), 0.2, rand.Float64))
	if _, _, err := n.Store.UpdateEvent(cctx, e); err != nil {
		n.log().Warn("failed event not rescheduled (its claim runs out first)", "event", e.ID, "err", err)
	}
	n.log().Info("webhook delivery failed", "event", e.ID, "url", e.URL, "attempt", e.Attempts, "retry", e.NextTry, "err", err)
}

// bury moves e to the dead-letter list.
func (n *Notifier) bury(ctx context.Context, e metadata.Event, reason string, now time.Time) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ok, err := n.Store.DeadLetterEvent(cctx, metadata.DeadEvent{Event: e, Died: now.UTC(), Reason: reason}, n.deadLetterCap())
	if err != nil {
		n.log().Warn("dead event not moved to the dead letters", "event", e.ID, "err", err)
		return
	}
	if !ok {
		return // changed meanwhile: another deliverer has it
	}
	if reason == metadata.DeadAttempts {
		n.deadAttempts.Add(1)
	} else {
		n.deadAge.Add(1)
	}
	n.log().Warn("webhook event given up (dead letter; sherdctl notify dead)", "event", e.ID, "bucket", e.Bucket, "url", e.URL,
		"reason", reason, "attempts", e.Attempts, "err", e.LastError)
}

// post sends e to its webhook, within Timeout.
func (n *Notifier) post(ctx context.Context, e metadata.Event) error {
	region := n.Region
	if region == "" {
		region = "us-east-1"
	}
	body, _ := json.Marshal(EventMessage{Records: []EventRecord{record(e, region)}})
	ctx, cancel := context.WithTimeout(ctx, n.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Sherd-Notifications")
	c := n.Client
	if c == nil {
		c = n.client
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	drainResponse(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// drainResponse reads a little of a webhook's answer before closing it,
// so its connection can be reused.
func drainResponse(resp *http.Response) {
	answer := resp.Body
	io.Copy(io.Discard, io.LimitReader(answer, 64<<10))
	answer.Close()
}

// count reads the queue's and the dead-letter list's sizes for the
// metrics (a scrape never waits on etcd).
func (n *Notifier) count(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if total, _, err := n.Store.QueueLength(cctx, "events", n.now()); err == nil {
		n.pending.Store(int64(total))
	}
	if count, dropped, err := n.Store.DeadEventCount(cctx); err == nil {
		n.deadLetters.Store(int64(count))
		n.dropped.Store(dropped)
	}
}

// Stats is what a notifier has done and last saw.
type Stats struct {
	Delivered, Failed     int64 // by this notifier
	Deferred              int64 // due events it passed over, untried, because their breaker was open (each time)
	DeadAttempts, DeadAge int64 // events it buried, by reason
	Pending               int64 // events in the queue (all gateways'); -1: not read yet
	DeadLetters, Dropped  int64 // dead letters, and those dropped from the full list; -1: not read yet
	BreakersOpen          int   // destinations whose breaker is not closed
	InFlight              int
}

// Stats returns the notifier's counts.
func (n *Notifier) Stats() Stats {
	n.setup()
	st := Stats{Delivered: n.delivered.Load(), Failed: n.failed.Load(), Deferred: n.deferred.Load(),
		DeadAttempts: n.deadAttempts.Load(), DeadAge: n.deadAge.Load(),
		Pending: n.pending.Load(), DeadLetters: n.deadLetters.Load(), Dropped: n.dropped.Load()}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, d := range n.dests {
		if !d.state.openUntil.IsZero() {
			st.BreakersOpen++
		}
	}
	st.InFlight = n.active
	return st
}

func (n *Notifier) setup() {
	n.setupOnce.Do(func() {
		n.pending.Store(-1)
		n.deadLetters.Store(-1)
		n.dropped.Store(-1)
		n.client = &http.Client{Timeout: n.timeout()}
		if n.Metrics != nil {
			if err := n.Metrics.Register(newCollector(n)); err != nil {
				n.log().Warn("notification metrics not registered", "err", err)
			}
		}
	})
}

// collector exports a notifier's Stats.
type collector struct {
	n                                                    *Notifier
	deliveries, deferred, buried, pending, dead, dropped *prometheus.Desc
	breakers, inflight                                   *prometheus.Desc
}

func newCollector(n *Notifier) *collector {
	return &collector{n: n,
		deliveries: prometheus.NewDesc("sherd_notify_deliveries_total", "Webhook deliveries by this gateway, by result (delivered, failed).", []string{"result"}, nil),
		deferred:   prometheus.NewDesc("sherd_notify_deferred_total", "Due events passed over, untried, because their webhook's circuit breaker was open (counted each time one is read).", nil, nil),
		buried:     prometheus.NewDesc("sherd_notify_dead_lettered_total", "Events this gateway gave up on and moved to the dead letters, by reason (attempts, age).", []string{"reason"}, nil),
		pending:    prometheus.NewDesc("sherd_notify_pending_events", "Events waiting in the queue (all gateways'), as last read from etcd.", nil, nil),
		dead:       prometheus.NewDesc("sherd_notify_dead_letters", "Events in the dead-letter list (sherdctl notify dead), as last read from etcd.", nil, nil),
		dropped:    prometheus.NewDesc("sherd_notify_dead_letters_dropped_total", "Dead letters dropped because the list was full (oldest first), cluster-wide.", nil, nil),
		breakers:   prometheus.NewDesc("sherd_notify_breakers_open", "Webhook destinations whose circuit breaker is open or half-open in this gateway.", nil, nil),
		inflight:   prometheus.NewDesc("sherd_notify_deliveries_in_flight", "Webhook deliveries under way in this gateway.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.deliveries, c.deferred, c.buried, c.pending, c.dead, c.dropped, c.breakers, c.inflight} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Stats()
	ch <- prometheus.MustNewConstMetric(c.deliveries, prometheus.CounterValue, float64(st.Delivered), "delivered")
	ch <- prometheus.MustNewConstMetric(c.deliveries, prometheus.CounterValue, float64(st.Failed), "failed")
	ch <- prometheus.MustNewConstMetric(c.deferred, prometheus.CounterValue, float64(st.Deferred))
	ch <- prometheus.MustNewConstMetric(c.buried, prometheus.CounterValue, float64(st.DeadAttempts), metadata.DeadAttempts)
	ch <- prometheus.MustNewConstMetric(c.buried, prometheus.CounterValue, float64(st.DeadAge), metadata.DeadAge)
	if st.Pending >= 0 {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
	}
	if st.DeadLetters >= 0 {
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(st.DeadLetters))
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.Dropped))
	}
	ch <- prometheus.MustNewConstMetric(c.breakers, prometheus.GaugeValue, float64(st.BreakersOpen))
	ch <- prometheus.MustNewConstMetric(c.inflight, prometheus.GaugeValue, float64(st.InFlight))
}

func (n *Notifier) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

func (n *Notifier) claimFor() time.Duration { return orDefault(n.ClaimFor, 30*time.Second) }

func (n *Notifier) timeout() time.Duration {
	return min(orDefault(n.Timeout, defaultTimeout), n.claimFor()/2)
}

func (n *Notifier) maxBackoff() time.Duration  { return orDefault(n.MaxBackoff, 5*time.Minute) }
func (n *Notifier) maxAge() time.Duration      { return orDefault(n.MaxAge, defaultMaxEventAge) }
func (n *Notifier) breakerOpen() time.Duration { return orDefault(n.BreakerOpen, defaultBreakerOpen) }
func (n *Notifier) maxAttempts() int           { return orDefault(n.MaxAttempts, defaultMaxAttempts) }
func (n *Notifier) deadLetterCap() int         { return orDefault(n.DeadLetters, defaultDeadLetters) }
func (n *Notifier) perDestination() int        { return orDefault(n.PerDestination, defaultPerDestination) }
func (n *Notifier) maxDeliveries() int         { return orDefault(n.MaxDeliveries, defaultMaxDeliveries) }

func (n *Notifier) breaker() breakerPolicy {
	return breakerPolicy{threshold: orDefault(n.BreakerThreshold, defaultBreakerFails), open: n.breakerOpen(), maxOpen: max(n.maxBackoff(), n.breakerOpen())}
}

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (n *Notifier) log() *slog.Logger {
	if n.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.Log
}

// Queue is what the notifier uses of the metadata store: the events
// queue and its dead letters, and the queue's length for the metrics.
type Queue interface {
	metadata.Events
	// QueueLength is metadata.Repairs'.
	QueueLength(ctx context.Context, name string, now time.Time) (total, due int, err error)
}
