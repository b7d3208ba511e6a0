package gateway

// How a gateway protects itself (DESIGN.md §9).
//
// Invariants:
//   - At most Limits.MaxInFlight S3 requests are served at once; one more
//     is answered 503 SlowDown at once, before any work (auth included).
//   - Token buckets per client address (before auth) and per access key
//     (after auth) answer 503 SlowDown when empty. Loopback clients are
//     exempt from the per-address bucket unless LimitLoopback. The
//     buckets' tables are bounded: idle entries are dropped.
//   - A request body that sends nothing for BodyTimeout, and a response
//     the client takes nothing of for BodyTimeout, end the request: a slow
//     client holds a slot for at most that long per byte it sends.
//   - Header, idle and connection limits are the http.Server's (daemon).

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound the work one gateway takes on. The zero value means the
// defaults: 1024 requests in flight, no rate limits, 30 s body progress.
type Limits struct {
	MaxInFlight   int
	PerKey        Rate // per access key; zero: none
	PerAddr       Rate // per client IP address; zero: none
	LimitLoopback bool // apply PerAddr to loopback clients too
	BodyTimeout   time.Duration
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

// admit takes an in-flight slot and a token from the client address's
// bucket; it returns false (and takes nothing) to refuse the request.
// The caller calls release when admit returned true.
func (g *Gateway) admit(r *http.Request) bool {
	if n := g.inflight.Add(1); n > int64(g.limits.MaxInFlight) {
		g.inflight.Add(-1)
		return false
	}
	if g.limits.PerAddr.on() {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		ip := net.ParseIP(host)
		if g.limits.LimitLoopback || ip == nil || !ip.IsLoopback() {
			if !g.addrBuckets.allow(host, g.now()) {
				g.inflight.Add(-1)
				return false
			}
		}
	}
	return true
}

func (g *Gateway) release() { g.inflight.Add(-1) }

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
}

func (b *progressBody) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	return b.body.Read(p)
}

func (b *progressBody) Close() error { return b.body.Close() }

// withProgress applies the body progress timeout to w and r. The caller
// calls done when the handler returns: the server's last flush of the
// response gets a fresh deadline. (The connection's write deadline
// outlives the request: it is cleared here first, for a keep-alive
// connection's next request.)
func (g *Gateway) withProgress(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, func()) {
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &progressBody{body: r.Body, rc: rc, timeout: g.limits.BodyTimeout}
	}
	done := func() { rc.SetWriteDeadline(time.Now().Add(g.limits.BodyTimeout)) }
	return &progress{ResponseWriter: w, rc: rc, timeout: g.limits.BodyTimeout}, r, done
}
