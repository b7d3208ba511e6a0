package etcd_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/etcd"
)

// stallProxy forwards TCP connections to target and, while paused,
// forwards nothing (connections stay open): etcd unreachable without a
// connection error, as when etcd or the network stalls.
type stallProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	closed bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

// pipe copies src to dst, holding each chunk while the proxy is paused.
func (p *stallProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.paused && !p.closed {
			p.cond.Wait()
		}
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

func (p *stallProxy) pause(on bool) {
	p.mu.Lock()
	p.paused = on
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *stallProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClaimerSurvivesStall: etcd is unreachable (a stalled link) past the
// claimer's lease TTL. The claimer says it has no lease, its claims lapse
// on etcd's clock and another claimer can take them; when etcd is back the
// claimer makes a new lease and claims again, and a write fenced by a
// claim of the lapsed lease fails (ErrClaimLost) while one fenced by the
// new claim succeeds. Before the fix the claimer kept its dead session and
// every Claim failed with "requested lease not found" for good.
func TestClaimerSurvivesStall(t *testing.T) {
	s, _, prefix := newStore(t)
	proxy := newStallProxy(t, strings.TrimPrefix(cli.Endpoints()[0], "http://"))
	cli2, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + proxy.ln.Addr().String()}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli2.Close()
	stalled := etcd.New(cli2, etcd.Options{Prefix: prefix})
	c, err := stalled.NewClaimer(ctx, "stalled", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, err := s.NewClaimer(ctx, "other", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	rec := seg(1)
	old, ok, err := c.Claim(ctx, "repair/x")
	if err != nil || !ok || old.Token == 0 {
		t.Fatalf("claim: %+v %v %v", old, ok, err)
	}
	if h := c.Health(); !h.Live || h.Lapses != 0 {
		t.Fatalf("health before the stall: %+v", h)
	}

	proxy.pause(true)
	waitUntil(t, "the claimer to notice its lease lapsed", 20*time.Second, func() bool { return !c.Health().Live })
	if _, _, err := c.Claim(ctx, "repair/y"); !errors.Is(err, metadata.ErrNoLease) {
		t.Fatalf("claim without a lease: %v, want ErrNoLease", err)
	}
	// On etcd's clock the claim is gone: another claimer takes it.
	waitUntil(t, "the lapsed claim to be free", 20*time.Second, func() bool {
		_, ok, _ := other.Claim(ctx, "repair/x")
		return ok
	})
	proxy.pause(false)
	waitUntil(t, "the claimer to have a lease again", 30*time.Second, func() bool { return c.Health().Live })
	if h := c.Health(); h.Lapses != 1 {
		t.Fatalf("health after the stall: %+v, want one lapse", h)
	}
	if _, ok, err := c.Claim(ctx, "repair/x"); err != nil || ok {
		t.Fatalf("claim held by another: %v %v", ok, err)
	}
	if err := other.Release(ctx, "repair/x"); err != nil {
		t.Fatal(err)
	}
	cur, ok, err := c.Claim(ctx, "repair/x")
	if err != nil || !ok || cur.Token == old.Token {
		t.Fatalf("claim after the stall: %+v %v %v (old %+v)", cur, ok, err, old)
	}

	// Fencing: a segment record written under the lapsed claim is refused.
	if err := s.CreateBucket(ctx, metadata.Bucket{Name: "fence"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutObject(ctx, obj("fence", "k", "e", rec), metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	got, rev, err := s.GetSegment(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Nodes[0] = "node-9"
	if err := s.UpdateSegment(ctx, got, rev, old); !errors.Is(err, metadata.ErrClaimLost) {
		t.Fatalf("update under a lapsed claim: %v, want ErrClaimLost", err)
	}
	if err := s.UpdateSegment(ctx, got, rev, cur); err != nil {
		t.Fatalf("update under the live claim: %v", err)
	}
}

// TestExpireFenced: a lifecycle removal under a claim whose lease is gone
// is refused (ErrClaimLost) and removes nothing.
func TestExpireFenced(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "b")
	o := obj("b", "k", "e", seg(1))
	o.VersionID = etcd.NewID()
	if _, err := s.PutObject(ctx, o, metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	c, err := s.NewClaimer(ctx, "w", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f, ok, err := c.Claim(ctx, "lifecycle/b/1")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	c.Close() // the lease is revoked: the claim is gone
	if _, err := s.Expire(ctx, "b", "k", metadata.Expiry{VersionID: o.VersionID, Current: true, Fence: f}); !errors.Is(err, metadata.ErrClaimLost) {
		t.Fatalf("expire under a lost claim: %v, want ErrClaimLost", err)
	}
	if _, err := s.GetObject(ctx, "b", "k"); err != nil {
		t.Fatalf("object gone: %v", err)
	}
}
