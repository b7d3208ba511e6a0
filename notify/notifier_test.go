package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/internal/etcdserver"
	"github.com/sherdstore/sherd/metadata"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
)

var etcdCli *clientv3.Client

func TestMain(m *testing.M) {
	var stop func()
	var err error
	if etcdCli, stop, err = etcdserver.ForTests(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// waitUntil polls cond until it holds or 10 s pass (then it reports what
// it saw and returns false).
func waitUntil(t *testing.T, what string, cond func() (bool, string)) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, saw := cond()
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: not within 10 s (%s)", what, saw)
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeadReason(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		attempts int
		at       time.Time
		want     string
	}{
		{"fresh", 0, t0, ""},
		{"tried less than the cap", 9, t0.Add(time.Hour), ""},
		{"tried as often as the cap", 10, t0.Add(time.Hour), metadata.DeadAttempts},
		{"just at the age cap", 3, t0.Add(24 * time.Hour), ""},
		{"older than the age cap", 3, t0.Add(24*time.Hour + time.Second), metadata.DeadAge},
		{"both: attempts first", 12, t0.Add(48 * time.Hour), metadata.DeadAttempts},
	} {
		e := metadata.Event{Time: t0, Attempts: tc.attempts}
		if got := deadReason(e, tc.at, 10, 24*time.Hour); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestBreakerPolicy(t *testing.T) {
	p := breakerPolicy{threshold: 3, open: 10 * time.Second, maxOpen: 35 * time.Second}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	open := func(until time.Duration, opens, failures int) breakerState {
		return breakerState{failures: failures, opens: opens, openUntil: t0.Add(until)}
	}
	type step struct {
		at      time.Duration // since t0
		probe   bool          // the delivery recorded was the probe
		ok      bool
		record  bool // record an outcome (else: admit)
		verdict breakerVerdict
		want    breakerState
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"closed delivers; failures below the threshold keep it closed", []step{
			{at: 0, verdict: breakerDeliver, want: breakerState{}},
			{at: 1, record: true, want: breakerState{failures: 1}},
			{at: 2, record: true, want: breakerState{failures: 2}},
			{at: 3, verdict: breakerDeliver, want: breakerState{failures: 2}},
			{at: 4, record: true, ok: true, want: breakerState{}},
		}},
		{"the threshold opens it; open skips until it half-opens", []step{
			{at: 0, record: true, want: breakerState{failures: 1}},
			{at: 0, record: true, want: breakerState{failures: 2}},
			{at: time.Second, record: true, want: open(11*time.Second, 1, 3)},
			{at: 5 * time.Second, verdict: breakerSkip, want: open(11*time.Second, 1, 3)},
			{at: 11 * time.Second, verdict: breakerProbe, want: breakerState{failures: 3, opens: 1, openUntil: t0.Add(11 * time.Second), probing: true}},
			{at: 12 * time.Second, verdict: breakerSkip, want: breakerState{failures: 3, opens: 1, openUntil: t0.Add(11 * time.Second), probing: true}},
			// A delivery started before it opened fails: nothing changes.
			{at: 12 * time.Second, record: true, want: breakerState{failures: 4, opens: 1, openUntil: t0.Add(11 * time.Second), probing: true}},
			// The probe fails: open twice as long.
			{at: 13 * time.Second, record: true, probe: true, want: open(33*time.Second, 2, 5)},
			{at: 33 * time.Second, verdict: breakerProbe, want: breakerState{failures: 5, opens: 2, openUntil: t0.Add(33 * time.Second), probing: true}},
			// Again: 40 s, capped at 35 s.
			{at: 34 * time.Second, record: true, probe: true, want: open(69*time.Second, 3, 6)},
			{at: 69 * time.Second, verdict: breakerProbe, want: breakerState{failures: 6, opens: 3, openUntil: t0.Add(69 * time.Second), probing: true}},
			// The probe succeeds: closed.
			{at: 70 * time.Second, record: true, probe: true, ok: true, want: breakerState{}},
			{at: 70 * time.Second, verdict: breakerDeliver, want: breakerState{}},
		}},
	} {
		s := breakerState{}
		for i, st := range tc.steps {
			now := t0.Add(st.at)
			if st.record {
				s = p.record(s, st.probe, st.ok, now)
			} else {
				var v breakerVerdict
				s, v = p.admit(s, now)
				if v != st.verdict {
					t.Errorf("%s, step %d: verdict %d, want %d", tc.name, i, v, st.verdict)
				}
			}
			if s != st.want {
				t.Fatalf("%s, step %d: state %+v, want %+v", tc.name, i, s, st.want)
			}
		}
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// webhook is a receiver: it answers status at once, or (while hang is
// open) holds every request until hang closes or the request ends.
type webhook struct {
	hits   atomic.Int64
	hang   chan struct{}
	status int
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.hits.Add(1)
	if h.hang != nil {
		select {
		case <-h.hang:
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(h.status)
}

// notifyEnv is a store with a bucket, webhooks and a clock.
type notifyEnv struct {
	store metadata.Store
	clock *fakeClock
	reg   *prometheus.Registry
	n     *Notifier
	puts  int
}

// queue commits an object whose commit queues one event to each url.
func (env *notifyEnv) queue(t *testing.T, urls ...string) {
	t.Helper()
	now := time.Now().UTC()
	var evs []metadata.Event
	for _, u := range urls {
		evs = append(evs, metadata.Event{ID: newEventID(now), URL: u, Config: "c", Name: "ObjectCreated:Put", Bucket: "b",
			Key: fmt.Sprint("k", env.puts), Time: now, NextTry: now})
	}
	env.puts++
	if _, err := env.store.PutObject(context.Background(), metadata.Object{Bucket: "b", Key: fmt.Sprint("k", env.puts), ETag: "e"}, metadata.Precondition{}, evs...); err != nil {
		t.Fatal(err)
	}
}

func (env *notifyEnv) runOnce(t *testing.T) {
	t.Helper()
	if _, err := env.n.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// metric is the value of the series name{labels} (-1: none).
func (env *notifyEnv) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := env.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetValue())
			}
			if strings.Join(got, ",") != strings.Join(labels, ",") {
				continue
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func (env *notifyEnv) want(t *testing.T, name string, value float64, labels ...string) {
	t.Helper()
	if got := env.metric(t, name, labels...); got != value {
		t.Errorf("%s%v = %v, want %v", name, labels, got, value)
	}
}

func newNotifyEnv(t *testing.T, n *Notifier) *notifyEnv {
	t.Helper()
	store := metaetcd.New(etcdCli, metaetcd.Options{Prefix: "/" + t.Name() + "/" + metaetcd.NewID() + "/"})
	if err := store.CreateBucket(context.Background(), metadata.Bucket{Name: "b", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	env := &notifyEnv{store: store, clock: &fakeClock{t: time.Now().Add(time.Second)}, reg: prometheus.NewRegistry(), n: n}
	n.Store, n.Now, n.Metrics = store, env.clock.Now, env.reg
	return env
}

// TestNotifierBoundsDeadWebhooks (#23 item 9): a webhook that hangs
// delays no other destination's events; once its breaker opens its events
// are passed over untried until it half-opens, then one probe is tried; events
// past their attempt or age cap leave the queue for a bounded dead-letter
// list (oldest dropped, counted); the metrics say so, with labels from
// fixed sets only. Before the fix, deliveries were one at a time (the live
// webhook got nothing while the dead one hung) and failed events stayed
// queued for ever.
func TestNotifierBoundsDeadWebhooks(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    *Notifier
		run  func(t *testing.T, env *notifyEnv)
	}{
		{"a dead webhook delays no other, is skipped while its breaker is open, and its events die of age",
			&Notifier{Timeout: 10 * time.Second, MaxAttempts: 10, MaxAge: time.Hour, DeadLetters: 2, PerDestination: 4,
				BreakerThreshold: 2, BreakerOpen: time.Minute, MaxBackoff: 4 * time.Minute},
			func(t *testing.T, env *notifyEnv) {
				dead := &webhook{hang: make(chan struct{}), status: http.StatusServiceUnavailable}
				live := &webhook{status: http.StatusNoContent}
				deadSrv, liveSrv := httptest.NewServer(dead), httptest.NewServer(live)
				defer deadSrv.Close()
				defer liveSrv.Close()
				for range 4 {
					env.queue(t, deadSrv.URL, liveSrv.URL)
				}
				env.queue(t, deadSrv.URL)
				env.queue(t, deadSrv.URL)
				// While 4 deliveries hang on the dead webhook, the live one
				// gets all its events.
				ran := make(chan error, 1)
				go func() { _, err := env.n.RunOnce(context.Background()); ran <- err }()
				waitUntil(t, "4 events delivered to the live webhook while the dead one hangs", func() (bool, string) {
					return live.hits.Load() == 4, fmt.Sprintf("%d delivered, %d hanging", live.hits.Load(), dead.hits.Load())
				})
				waitUntil(t, "4 deliveries (PerDestination) to the dead webhook", func() (bool, string) {
					return dead.hits.Load() == 4, fmt.Sprint(dead.hits.Load())
				})
				close(dead.hang) // it fails them now
				select {
				case err := <-ran:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("RunOnce did not return after the dead webhook answered")
				}
				if st := env.n.Stats(); st.Delivered != 4 || st.Failed != 4 || st.BreakersOpen != 1 {
					t.Fatalf("after the first pass: %+v", st)
				}
				// Open: its events (2 never tried, 1 new) are passed
				// over untried; the live webhook is served.
				env.queue(t, deadSrv.URL, liveSrv.URL)
				env.runOnce(t)
				if d, l, st := dead.hits.Load(), live.hits.Load(), env.n.Stats(); d != 4 || l != 5 || st.Deferred != 3 {
					t.Fatalf("breaker open: dead webhook tried %d times (want 4), live %d (want 5), %d passed over (want 3)", d, l, st.Deferred)
				}
				// Half-open: one probe; it fails, the breaker opens again.
				env.clock.Add(3 * time.Minute)
				env.runOnce(t)
				if d, st := dead.hits.Load(), env.n.Stats(); d != 5 || st.BreakersOpen != 1 {
					t.Fatalf("half-open: dead webhook tried %d times (want 5), %d breakers open", d, st.BreakersOpen)
				}
				env.want(t, "sherd_notify_pending_events", 7)
				// An hour later every event of the dead webhook is past its
				// age: buried, the list keeps 2, 5 dropped.
				env.clock.Add(time.Hour)
				env.runOnce(t)
				if d := dead.hits.Load(); d != 5 {
					t.Errorf("events past their age were tried: %d tries", d)
				}
				env.want(t, "sherd_notify_pending_events", 0)
				env.want(t, "sherd_notify_dead_letters", 2)
				env.want(t, "sherd_notify_dead_letters_dropped_total", 5)
				env.want(t, "sherd_notify_dead_lettered_total", 7, metadata.DeadAge)
				env.want(t, "sherd_notify_deliveries_total", 5, "delivered")
				env.want(t, "sherd_notify_deliveries_total", 5, "failed")
				dl, err := env.store.ListDeadEvents(context.Background(), 10)
				if err != nil || len(dl) != 2 || dl[0].URL != deadSrv.URL || dl[0].Reason != metadata.DeadAge {
					t.Fatalf("dead letters: %+v %v", dl, err)
				}
				// Label values come from fixed sets, never from URLs.
				mfs, _ := env.reg.Gather()
				for _, mf := range mfs {
					for _, m := range mf.GetMetric() {
						for _, l := range m.GetLabel() {
							if v := l.GetValue(); v != "delivered" && v != "failed" && v != metadata.DeadAttempts && v != metadata.DeadAge {
								t.Errorf("%s has label %s=%q", mf.GetName(), l.GetName(), v)
							}
						}
					}
				}
			}},
		{"events that fail MaxAttempts times die",
			&Notifier{MaxAttempts: 2, DeadLetters: 2, BreakerThreshold: 100},
			func(t *testing.T, env *notifyEnv) {
				failing := &webhook{status: http.StatusInternalServerError}
				srv := httptest.NewServer(failing)
				defer srv.Close()
				for range 3 {
					env.queue(t, srv.URL)
				}
				env.runOnce(t)
				env.want(t, "sherd_notify_pending_events", 3)
				env.clock.Add(2 * time.Second) // past the first backoff (1 s + 20 %)
				env.runOnce(t)
				if h := failing.hits.Load(); h != 6 {
					t.Errorf("%d deliveries, want 6 (2 each)", h)
				}
				env.want(t, "sherd_notify_pending_events", 0)
				env.want(t, "sherd_notify_dead_letters", 2)
				env.want(t, "sherd_notify_dead_letters_dropped_total", 1)
				env.want(t, "sherd_notify_dead_lettered_total", 3, metadata.DeadAttempts)
				dl, err := env.store.ListDeadEvents(context.Background(), 10)
				if err != nil || len(dl) != 2 || dl[1].Attempts != 2 || !strings.Contains(dl[1].LastError, "500") {
					t.Fatalf("dead letters: %+v %v", dl, err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newNotifyEnv(t, tc.n)) })
	}
}

// TestNotifierRunStops: Run returns when its context ends, after the
// deliveries it started (one hangs in a webhook) have ended.
func TestNotifierRunStops(t *testing.T) {
	hung := &webhook{hang: make(chan struct{}), status: http.StatusNoContent}
	srv := httptest.NewServer(hung)
	defer srv.Close()
	defer close(hung.hang)
	env := newNotifyEnv(t, &Notifier{Timeout: 10 * time.Second})
	env.queue(t, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		env.n.Run(ctx, 10*time.Millisecond)
	}()
	waitUntil(t, "a delivery hanging", func() (bool, string) { return hung.hits.Load() == 1, fmt.Sprint(hung.hits.Load()) })
	cancel()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if st := env.n.Stats(); st.InFlight != 0 {
		t.Fatalf("%d deliveries still under way after Run returned", st.InFlight)
	}
}

// backlog queues count events to url, due now, committed 50 at a time.
func (env *notifyEnv) backlog(t *testing.T, url string, count int) {
	t.Helper()
	now := time.Now().UTC()
	for c := 0; c < count; c += 50 {
		var evs []metadata.Event
		for range min(50, count-c) {
			evs = append(evs, metadata.Event{ID: newEventID(now), URL: url, Config: "c", Name: "ObjectCreated:Put", Bucket: "b",
				Key: fmt.Sprint("backlog", c), Time: now, NextTry: now})
		}
		if _, err := env.store.PutObject(context.Background(), metadata.Object{Bucket: "b", Key: fmt.Sprint("backlog", c), ETag: "e"}, metadata.Precondition{}, evs...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNotifierReachesPastBusyDestinations (#23 item 9 review, finding 6):
// the 3000 oldest due events belong to a destination that cannot take
// more (its PerDestination deliveries hang, or its breaker is open); an
// event queued after them for another destination is still delivered,
// within a few rounds. Before the fix every round listed only the 1000
// oldest due events, all of the busy destination's: B got nothing ("0
// delivered" for the hanging webhook, with A at its 4 deliveries).
func TestNotifierReachesPastBusyDestinations(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    *Notifier
		a    *webhook
		// wantA is how many deliveries A gets, at most (its cap while it
		// hangs; up to its breaker's threshold when it fails).
		wantA int64
	}{
		{"A's deliveries hang at its cap", &Notifier{Timeout: 10 * time.Second, PerDestination: 4},
			&webhook{hang: make(chan struct{}), status: http.StatusNoContent}, 4},
		{"A's breaker is open", &Notifier{PerDestination: 4, BreakerThreshold: 1, BreakerOpen: time.Hour},
			&webhook{status: http.StatusServiceUnavailable}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newNotifyEnv(t, tc.n)
			b := &webhook{status: http.StatusNoContent}
			srvA, srvB := httptest.NewServer(tc.a), httptest.NewServer(b)
			defer srvA.Close()
			defer srvB.Close()
			if tc.a.hang != nil {
				defer close(tc.a.hang) // before the servers close
			}
			env.backlog(t, srvA.URL, 3*listLimit)
			env.queue(t, srvB.URL)
			env.clock.Add(time.Since(env.clock.Now()) + time.Second) // all due, however long queueing took
			if evs, err := env.store.ListEvents(context.Background(), env.clock.Now(), "", listLimit); err != nil || len(evs) != listLimit {
				t.Fatalf("the oldest page: %d events, %v", len(evs), err)
			} else {
				for _, e := range evs {
					if e.URL != srvA.URL {
						t.Fatalf("the oldest page has an event for %s: not the scenario", e.URL)
					}
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				env.n.Run(ctx, 20*time.Millisecond)
			}()
			waitUntil(t, "B's event delivered past A's backlog", func() (bool, string) {
				return env.n.Stats().Delivered == 1, fmt.Sprintf("B delivered %d, A %d", b.hits.Load(), tc.a.hits.Load())
			})
			cancel()
			select {
			case <-stopped:
			case <-time.After(15 * time.Second):
				t.Fatal("Run did not return after its context ended")
			}
			if h := tc.a.hits.Load(); h < 1 || h > tc.wantA {
				t.Errorf("A got %d deliveries, want 1 to %d", h, tc.wantA)
			}
			if st := env.n.Stats(); b.hits.Load() != 1 || st.Delivered != 1 || st.InFlight != 0 {
				t.Errorf("after Run: %+v", st)
			}
		})
	}
}

// TestNotifierOpenBreakerWritesNothing (#23 item 9 review, finding 7):
// while a destination's breaker is open its due events are passed over
// without an etcd write; each time it half-opens one probe is tried; the
// events never tried keep the revision they were queued at, across eight
// open periods, and still die of age (MaxAge) into the dead letters,
// untried. Before the fix every round that met them while the breaker
// was open rewrote each one (put off: a delete and a put), so an event
// of a dead webhook was rewritten every open period (~5 minutes) for 24 h.
func TestNotifierOpenBreakerWritesNothing(t *testing.T) {
	const events = 20
	env := newNotifyEnv(t, &Notifier{PerDestination: 1, BreakerThreshold: 1, BreakerOpen: time.Minute,
		MaxBackoff: 4 * time.Minute, MaxAge: time.Hour})
	dead := &webhook{status: http.StatusServiceUnavailable}
	srv := httptest.NewServer(dead)
	defer srv.Close()
	for range events {
		env.queue(t, srv.URL)
	}
	env.runOnce(t) // tries one (or a few, if the first fails fast), then the breaker opens
	tried := dead.hits.Load()
	if st := env.n.Stats(); tried < 1 || st.BreakersOpen != 1 {
		t.Fatalf("first round: %d tries, %+v", tried, st)
	}
	revs := func() map[string]metadata.Event {
		t.Helper()
		evs, err := env.store.ListEvents(context.Background(), env.clock.Now().Add(48*time.Hour), "", 100)
		if err != nil || len(evs) != events {
			t.Fatalf("%d events queued, %v", len(evs), err)
		}
		m := map[string]metadata.Event{}
		for _, e := range evs {
			m[e.ID] = e
		}
		return m
	}
	before := revs()
	for round := range 8 {
		env.clock.Add(5 * time.Minute) // past the open period (at most 4 minutes): half-open
		env.runOnce(t)
		if h := dead.hits.Load(); h != tried+int64(round)+1 {
			t.Fatalf("half-open %d: %d tries, want %d (one probe)", round, h, tried+int64(round)+1)
		}
		if st := env.n.Stats(); st.BreakersOpen != 1 {
			t.Fatalf("half-open %d: the failed probe left %d breakers open", round, st.BreakersOpen)
		}
	}
	after := revs()
	untried := 0
	for id, e := range after {
		if e.Attempts > 0 {
			continue
		}
		untried++
		if e.Rev != before[id].Rev || e.QueueKey != before[id].QueueKey {
			t.Errorf("event %s, never tried, was rewritten while its breaker was open (rev %d → %d, key %s → %s)",
				id, before[id].Rev, e.Rev, before[id].QueueKey, e.QueueKey)
		}
	}
	if want := events - int(tried) - 8; untried != want {
		t.Errorf("%d events never tried, want %d", untried, want)
	}
	if st := env.n.Stats(); st.Deferred == 0 {
		t.Errorf("no event passed over: %+v", st)
	}
	// Past MaxAge every one dies of age, none tried again.
	env.clock.Add(30 * time.Minute)
	hits := dead.hits.Load()
	env.runOnce(t)
	if h := dead.hits.Load(); h != hits {
		t.Errorf("events past their age were tried: %d tries", h-hits)
	}
	env.want(t, "sherd_notify_pending_events", 0)
	env.want(t, "sherd_notify_dead_lettered_total", events, metadata.DeadAge)
	env.want(t, "sherd_notify_dead_letters", events)
}
