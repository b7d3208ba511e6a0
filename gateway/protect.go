package gateway

// How a gateway protects itself (DESIGN.md §9).
//
// Invariants:
//   - At most Limits.MaxInFlight S3 requests are served at once; one more
//     is answered 503 SlowDown at once, before any work (auth included).
//   - An unsigned request with a body (a POST form before its policy is
//     checked; any anonymous write, refused later) never takes one of
//     those slots: it is admitted from a small pool of its own
//     (MaxUnauthenticated), and at most PerAddrUnauthenticated of them
//     from one client address at once (loopback spared unless
//     LimitLoopback). Past either, 503 SlowDown at once. A POST form
//     whose policy verifies moves to a MaxInFlight slot (or is refused
//     SlowDown) before its file is read: only verified work streams data
//     in the slots signed requests use.
//   - The fields of a POST form before its file must all arrive within
//     PostPreDataTimeout of the handler's start, however they trickle
//     (400 RequestTimeout), and its bucket is checked before any is read.
//   - Token buckets per client address (before auth) and per access key
//     (after auth) answer 503 SlowDown when empty. Loopback clients are
//     exempt from the per-address bucket unless LimitLoopback. The
//     buckets' tables are bounded: idle entries are dropped.
//   - A request body that sends nothing for BodyTimeout, and a response
//     the client takes nothing of for BodyTimeout, end the request: a slow
//     client holds a slot for at most that long per byte it sends.
//   - Once the handler returns, a request body it left unread gets at
//     most BodyTimeout more (boundDrain): the server reads what remains
//     of it to reuse the connection, and a client that stalls would
//     otherwise hold the connection for ever, its request long refused.
//   - Header, idle and connection limits are the http.Server's (daemon).

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sherdstore/sherd/gateway/s3"
)

// Limits bound the work one gateway takes on. The zero value means the
// defaults: 1024 requests in flight, no rate limits, 30 s body progress.
type Limits struct {
	MaxInFlight   int
	PerKey        Rate // per access key; zero: none
	PerAddr       Rate // per client IP address; zero: none
	LimitLoopback bool // apply PerAddr and PerAddrUnauthenticated to loopback clients too
	BodyTimeout   time.Duration
	// MaxUnauthenticated bounds the unsigned requests with a body served
	// at once, apart from MaxInFlight (default 64);
	// PerAddrUnauthenticated bounds them per client IP address (default
	// 8).
	MaxUnauthenticated     int
	PerAddrUnauthenticated int
	// PostPreDataTimeout bounds the whole of a POST form's fields before
	// its file (default 10 s; BodyTimeout still bounds each read).
	PostPreDataTimeout time.Duration
}

// Defaults of the unauthenticated limits.
const (
	defaultMaxUnauthenticated     = 64
	defaultPerAddrUnauthenticated = 8
	defaultPostPreDataTimeout     = 10 * time.Second
)

func (l Limits) maxUnauthenticated() int {
	if l.MaxUnauthenticated > 0 {
		return l.MaxUnauthenticated
	}
	return defaultMaxUnauthenticated
}

func (l Limits) perAddrUnauthenticated() int {
	if l.PerAddrUnauthenticated > 0 {
		return l.PerAddrUnauthenticated
	}
	return defaultPerAddrUnauthenticated
}

func (l Limits) postPreDataTimeout() time.Duration {
	if l.PostPreDataTimeout > 0 {
		return l.PostPreDataTimeout
	}
	return defaultPostPreDataTimeout
}

// Rate is a token bucket: PerSecond tokens a second, Burst at most.
type Rate struct {
	PerSecond float64
	Burst     int
}

func (r Rate) on() bool { return r.PerSecond > 0 }

const maxBuckets = 1 << 16 // entries per bucket table before idle ones are dropped

// buckets is a bounded table of token buckets by name.
type buckets struct {
	rate Rate
	mu   sync.Mutex
	m    map[string]*bucket
}

type bucket struct {
	l    *rate.Limiter
	last time.Time
}

// allow takes a token from name's bucket at now.
func (b *buckets) allow(name string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*bucket{}
	}
	e, ok := b.m[name]
	if !ok {
		if len(b.m) >= maxBuckets {
			b.sweep(now)
		}
		e = &bucket{l: rate.NewLimiter(rate.Limit(b.rate.PerSecond), max(b.rate.Burst, 1))}
		b.m[name] = e
	}
	e.last = now
	return e.l.AllowN(now, 1)
}

// sweep drops the buckets that have refilled (idle long enough to be
// full again); if that is not enough, it drops arbitrary ones.
func (b *buckets) sweep(now time.Time) {
	full := time.Duration(float64(max(b.rate.Burst, 1)) / b.rate.PerSecond * float64(time.Second))
	for k, e := range b.m {
		if now.Sub(e.last) >= full {
			delete(b.m, k)
		}
	}
	for k := range b.m {
		if len(b.m) < maxBuckets*3/4 {
			break
		}
		delete(b.m, k)
	}
}

// errRequestTimeout is AWS's answer to a body that did not arrive in time.
var errRequestTimeout = &s3.Error{Code: "RequestTimeout", Message: "Your socket connection to the server was not read from or written to within the timeout period.", Status: http.StatusBadRequest}

// unsigned says whether a request carries no credentials at all (the
// verifier will take it as anonymous): decided from its headers and
// query alone, before any work.
func unsigned(r *http.Request) bool {
	if r.Method == http.MethodOptions {
		return true
	}
	if s3.IsV2(r) {
		return false
	}
	q := r.URL.Query()
	return r.Header.Get("Authorization") == "" && q.Get("X-Amz-Algorithm") == "" && !q.Has("X-Amz-Signature")
}

// hasBody says whether a request sends a body (chunked included).
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// slot is what admit took for a request: a MaxInFlight slot, or one of
// the unauthenticated pool (and of its client's count).
type slot struct {
	mu     sync.Mutex
	unauth bool   // holds an unauthenticated slot (and one of addr's)
	main   bool   // holds a MaxInFlight slot
	addr   string // client address counted, "" if spared
}

type slotKey struct{}

func slotOf(r *http.Request) *slot {
	s, _ := r.Context().Value(slotKey{}).(*slot)
	return s
}

// unauthPool counts the unauthenticated requests served, in all and by
// client address (entries at zero are removed: the table holds at most
// MaxUnauthenticated addresses).
type unauthPool struct {
	mu     sync.Mutex
	n      int
	byAddr map[string]int
}

// take takes a slot for addr ("" counts in the pool only); false: none.
func (p *unauthPool) take(addr string, max, perAddr int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n >= max || (addr != "" && p.byAddr[addr] >= perAddr) {
		return false
	}
	p.n++
	if addr != "" {
		if p.byAddr == nil {
			p.byAddr = map[string]int{}
		}
		p.byAddr[addr]++
	}
	return true
}

func (p *unauthPool) give(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n--
	if addr != "" {
		if p.byAddr[addr]--; p.byAddr[addr] <= 0 {
			delete(p.byAddr, addr)
		}
	}
}

// inUse is the number of unauthenticated requests served now.
func (p *unauthPool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// clientAddr is the client's address for per-address limits, and
// whether they apply to it (loopback is spared unless LimitLoopback). An
// IPv6 client counts by its /64, the smallest block a site is given: one
// host may hold all of its 2^64 addresses.
func (g *Gateway) clientAddr(r *http.Request) (string, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	limited := g.limits.LimitLoopback || ip == nil || !ip.IsLoopback()
	if ip != nil && ip.To4() == nil {
		host = ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return host, limited
}

// admit takes a slot for r and a token from the client address's
// bucket, before any other work: an unsigned request with a body from
// the unauthenticated pool (and its address's share), any other from
// MaxInFlight. It returns r carrying the slot, for release (and
// promote), or 503 SlowDown, having taken nothing.
func (g *Gateway) admit(r *http.Request) (*http.Request, error) {
	addr, limited := g.clientAddr(r)
	s := &slot{}
	if unsigned(r) && hasBody(r) {
		counted := ""
		if limited {
			counted = addr
		}
		if !g.unauth.take(counted, g.limits.maxUnauthenticated(), g.limits.perAddrUnauthenticated()) {
			return r, s3.Errorf(errSlowDown, "Too many unauthenticated uploads at once.")
		}
		s.unauth, s.addr = true, counted
	} else {
		if n := g.inflight.Add(1); n > int64(g.limits.MaxInFlight) {
			g.inflight.Add(-1)
			return r, errSlowDown
		}
		s.main = true
	}
	if g.limits.PerAddr.on() && limited && !g.addrBuckets.allow(addr, g.now()) {
		g.releaseSlot(s)
		return r, errSlowDown
	}
	return r.WithContext(context.WithValue(r.Context(), slotKey{}, s)), nil
}

// release gives back the slot admit took for r.
func (g *Gateway) release(r *http.Request) {
	if s := slotOf(r); s != nil {
		g.releaseSlot(s)
	}
}

func (g *Gateway) releaseSlot(s *slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unauth {
		g.unauth.give(s.addr)
		s.unauth = false
	}
	if s.main {
		g.inflight.Add(-1)
		s.main = false
	}
}

// promote moves a request that has proved who sent it (a POST form whose
// policy verified) from the unauthenticated pool to a MaxInFlight slot,
// before it streams data; 503 SlowDown if none is free. A request that
// holds a MaxInFlight slot already keeps it.
func (g *Gateway) promote(r *http.Request) error {
	s := slotOf(r)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.main {
		return nil
	}
	if n := g.inflight.Add(1); n > int64(g.limits.MaxInFlight) {
		g.inflight.Add(-1)
		return errSlowDown
	}
	s.main = true
	if s.unauth {
		g.unauth.give(s.addr)
		s.unauth = false
	}
	return nil
}

// allowKey takes a token from an access key's bucket.
func (g *Gateway) allowKey(accessKey string) bool {
	if !g.limits.PerKey.on() || accessKey == "" {
		return true
	}
	return g.keyBuckets.allow(accessKey, g.now())
}

// progress bounds a slow client: every body read and response write
// must make progress within timeout.
type progress struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (p *progress) Write(b []byte) (int, error) {
	p.rc.SetWriteDeadline(time.Now().Add(p.timeout))
	return p.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (p *progress) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// progressBody sets the connection's read deadline before each read.
type progressBody struct {
	body interface {
		Read([]byte) (int, error)
		Close() error
	}
	rc      *http.ResponseController
	timeout time.Duration
	// until, when set, bounds every read, whatever progress it makes
	// (the pre-data of a POST form): reads past it fail with
	// errRequestTimeout.
	mu    sync.Mutex
	until time.Time
}

func (b *progressBody) Read(p []byte) (int, error) {
	now := time.Now()
	d := now.Add(b.timeout)
	b.mu.Lock()
	until := b.until
	b.mu.Unlock()
	if !until.IsZero() {
		if !now.Before(until) {
			return 0, errRequestTimeout
		}
		if until.Before(d) {
			d = until
		}
	}
	b.rc.SetReadDeadline(d)
	n, err := b.body.Read(p)
	if err != nil && !until.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) {
		err = errRequestTimeout
	}
	return n, err
}

// readsUntil bounds the reads of r's body from now on by until (zero:
// only by the progress timeout again). It returns false when r's body is
// not the gateway's (then nothing bounds the reads but their progress).
func readsUntil(r *http.Request, until time.Time) bool {
	b, ok := r.Body.(*progressBody)
	if ok {
		b.mu.Lock()
		b.until = until
		b.mu.Unlock()
	}
	return ok
}

func (b *progressBody) Close() error { return b.body.Close() }

// withProgress applies the body progress timeout to w and r. The caller
// calls done when the handler returns, refused or not: the server's reads
// of what the handler left of the body (boundDrain), and its last flush
// of the response, which may come after them, get fresh deadlines. (The
// connection's write deadline outlives the request: it is cleared here
// first, for a keep-alive connection's next request.)
func (g *Gateway) withProgress(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, func()) {
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &progressBody{body: r.Body, rc: rc, timeout: g.limits.BodyTimeout}
	}
	done := func() {
		flush := g.limits.BodyTimeout
		if boundDrain(rc, r, g.limits.BodyTimeout) {
			// The server reads what remains of the body before it
			// sends the response's header.
			flush += g.limits.BodyTimeout
		}
		rc.SetWriteDeadline(time.Now().Add(flush))
	}
	return &progress{ResponseWriter: w, rc: rc, timeout: g.limits.BodyTimeout}, r, done
}

// boundDrain bounds what the server still reads of r's body once the
// handler has returned: at most timeout from now. It reports whether r
// has a body the server may read (the bound is set). An HTTP/1.x server
// reads up to 256 KiB of a body its handler left unread, to reuse the
// connection (before it sends the response's header, and again when it
// closes the body), under the connection's read deadline: none but this
// one, since the server sets no ReadTimeout. Without it a client that
// sends one chunk of a refused PUT and stalls holds the connection (and
// one of MaxConns) for ever, its request answered nothing and its slot
// long given back. Marking the response Connection: close would not do:
// the server still reads the rest of a chunked body, or of one of at most
// 256 KiB, when it closes the body. A body read to its end costs nothing
// here: the server clears the deadline before the connection's next
// request. (HTTP/2 reads no body after the handler: nothing to bound.)
func boundDrain(rc *http.ResponseController, r *http.Request, timeout time.Duration) bool {
	if r.ProtoMajor != 1 || !hasBody(r) {
		return false
	}
	rc.SetReadDeadline(time.Now().Add(timeout))
	return true
}
