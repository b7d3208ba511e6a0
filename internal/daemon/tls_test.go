package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	mcreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/sherdstore/sherd/internal/clustertls"
	"github.com/sherdstore/sherd/shard/storetest"
	"github.com/sherdstore/sherd/storagenode/client"
	"github.com/sherdstore/sherd/storagenode/wire"
)

// nodeVia is a client of node n whose connections go to addr instead
// (an on-path party between the gateway side and the node): it still
// addresses, signs for and verifies the node's URL.
func nodeVia(t *testing.T, key []byte, nodeURL, addr string) *client.Client {
	t.Helper()
	hc, err := clustertls.NodeClient(key, "")
	if err != nil {
		t.Fatal(err)
	}
	tr := hc.Transport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return client.New(nodeURL, key, &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil)
}

// proxy accepts TCP connections and hands each, with a connection to
// target, to relay; it stops with the test.
func proxy(t *testing.T, target string, relay func(c, up net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns { // kept alive by the client: end them now
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				up, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				deadline := time.Now().Add(30 * time.Second)
				c.SetDeadline(deadline)
				up.SetDeadline(deadline)
				relay(c, up)
			})
		}
	})
	return ln.Addr().String()
}

// pipe copies both ways until either side ends; toClient may alter what
// goes to the client.
func pipe(c, up net.Conn, toClient func(dst io.Writer, src io.Reader)) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { toClient(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

func hostOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}

// selfMadeCert is a certificate for 127.0.0.1 from a CA of the attacker's
// own.
func selfMadeCert(t *testing.T) tls.Certificate {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Sherd cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

// An on-path party between a gateway-side client and a node cannot make
// a read return altered bytes: the node API is TLS (cluster CA) by
// default, so bits it flips in the stream end the read with an error, and
// a party that terminates the connection with a certificate of its own
// fails the handshake.
func TestNodeTrafficTamperEvident(t *testing.T) {
	s, err := startTestServer(t, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	node := s.Nodes[0].URL
	if !strings.HasPrefix(node, "https://") {
		t.Fatalf("node URL %s: node traffic is not TLS by default", node)
	}
	direct := nodeVia(t, s.Key, node, hostOf(t, node))
	id := storetest.ID(1, 1, 0)
	shard := storetest.MakeShard(1, 256<<10)
	if _, err := direct.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(shard)); err != nil {
		t.Fatal(err)
	}

	t.Run("bits flipped", func(t *testing.T) {
		var flipped atomic.Int64
		addr := proxy(t, hostOf(t, node), func(c, up net.Conn) {
			pipe(c, up, func(dst io.Writer, src io.Reader) {
				buf := make([]byte, 32<<10)
				var seen int64
				for {
					n, err := src.Read(buf)
					if n > 0 {
						// One bit of every 64 KiB past the first 16 KiB
						// (the handshake, the headers): shard bytes.
						for i := range n {
							if p := seen + int64(i); p >= 16<<10 && p%(64<<10) == 0 {
								buf[i] ^= 0x10
								flipped.Add(1)
							}
						}
						seen += int64(n)
						if _, err := dst.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		})
		rc, err := nodeVia(t, s.Key, node, addr).Open(ctx, id, 0, -1)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(rc)
			rc.Close()
		}
		if flipped.Load() == 0 {
			t.Fatal("the proxy flipped nothing")
		}
		if !bytes.HasPrefix(shard, got) {
			t.Fatalf("read through a bit-flipping proxy returned altered bytes (%d of %d, err %v)", len(got), len(shard), err)
		}
		if err == nil {
			t.Fatal("read through a bit-flipping proxy succeeded")
		}
		t.Logf("read failed as it should: %v", err)
	})

	t.Run("own certificate", func(t *testing.T) {
		cert := selfMadeCert(t)
		addr := proxy(t, hostOf(t, node), func(c, up net.Conn) {
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
			if tc.Handshake() != nil {
				return
			}
			tu := tls.Client(up, &tls.Config{InsecureSkipVerify: true})
			pipe(tc, tu, func(dst io.Writer, src io.Reader) { io.Copy(dst, src) })
		})
		rc, err := nodeVia(t, s.Key, node, addr).Open(ctx, id, 0, -1)
		if err == nil {
			got, _ := io.ReadAll(rc)
			rc.Close()
			t.Fatalf("read through a proxy with its own certificate succeeded (%d bytes)", len(got))
		}
		if !errors.As(err, new(x509.UnknownAuthorityError)) {
			t.Fatalf("read through a proxy with its own certificate: %v, want an unknown authority", err)
		}
	})

	// Nothing was lost on the way: the shard reads back whole directly.
	rc, err := direct.Open(ctx, id, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, shard) {
		t.Fatalf("direct read: %d bytes, %v", len(got), err)
	}
}

// A request signed for one node is refused by another, whether an
// on-path party forwards the connection to it as it is (Host names the
// first node) or replays it with the Host rewritten (the signature covers
// the host).
func TestRequestForAnotherNodeRefused(t *testing.T) {
	s, err := startTestServer(t, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, b := s.Nodes[0].URL, s.Nodes[1].URL
	id := storetest.ID(2, 2, 0)
	for _, u := range []string{a, b} {
		if _, err := nodeVia(t, s.Key, u, hostOf(t, u)).Put(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(2, 5000))); err != nil {
			t.Fatal(err)
		}
	}
	onB := func() bool {
		_, err := s.Nodes[1].Shards().Stat(ctx, id)
		return err == nil
	}

	// The gateway side deletes the shard on A; the connection is taken to B.
	err = nodeVia(t, s.Key, a, hostOf(t, b)).Delete(ctx, id)
	if !errors.Is(err, wire.ErrUnauthorized) {
		t.Errorf("delete for node A delivered to node B: %v, want ErrUnauthorized", err)
	}
	if !onB() {
		t.Fatal("node B deleted its shard on a request signed for node A")
	}

	// A captured request for A, replayed to B with B's host.
	hc, err := clustertls.NodeClient(s.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{hostOf(t, a), hostOf(t, b)} {
		req, _ := http.NewRequest(http.MethodDelete, a+"/v1/shards/"+id.String(), nil)
		wire.SignRequest(req, s.Key, time.Now())
		req.URL.Host = hostOf(t, b) // delivered to B
		req.Host = host
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("replay to B with Host %s: HTTP %d, want 403", host, resp.StatusCode)
		}
	}
	if !onB() {
		t.Fatal("node B deleted its shard on a replayed request")
	}
	// The same client reaches A itself.
	if err := nodeVia(t, s.Key, a, hostOf(t, a)).Delete(ctx, id); err != nil {
		t.Fatalf("delete on A: %v", err)
	}
}

// Nodes started with --insecure-plaintext advertise http:// and are still
// reached by the same clients (the scheme comes from the node's URL); an
// advertised URL whose scheme the node does not serve is refused at
// startup.
func TestPlaintextNodeReachable(t *testing.T) {
	s, err := startTestServer(t, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := func(name string, mod func(*NodeConfig)) (*Node, error) {
		c := NodeConfig{ID: name, Dir: filepath.Join(t.TempDir(), name), Key: s.Key, Store: s.Store, ScrubInterval: -1}
		mod(&c)
		n, err := StartNode(ctx, c)
		if err == nil {
			t.Cleanup(func() { n.Close() })
		}
		return n, err
	}
	n, err := start("plain", func(c *NodeConfig) { c.Plaintext = true })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(n.URL, "http://") {
		t.Fatalf("plaintext node advertises %s", n.URL)
	}
	hc, err := clustertls.NodeClient(s.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(n.URL, s.Key, hc, nil)
	if _, err := c.Put(ctx, storetest.ID(3, 3, 0), storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(3, 5000))); err != nil {
		t.Fatalf("put on a plaintext node: %v", err)
	}
	for name, mod := range map[string]func(*NodeConfig){
		"https node, http advert": func(c *NodeConfig) { c.Advert = "http://127.0.0.1:1" },
		"plaintext, https advert": func(c *NodeConfig) { c.Plaintext, c.Advert = true, "https://127.0.0.1:1" },
		"plaintext and a cert":    func(c *NodeConfig) { c.Plaintext, c.TLS = true, TLSFiles{Cert: "c.pem", Key: "k.pem"} },
	} {
		if _, err := start(strings.ReplaceAll(name, " ", "-"), mod); err == nil {
			t.Errorf("%s: node started", name)
		}
	}
}

// sherd server with its gateway reaching the nodes over loopback (not in
// process) uses the cluster's default: HTTPS with the cluster CA. Objects
// are written and read back through it.
func TestServerLoopbackHTTPS(t *testing.T) {
	s, err := startTestServer(t, t.TempDir(), func(c *ServerConfig) { c.Nodes, c.LoopbackHTTP = 6, true })
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Nodes {
		if !strings.HasPrefix(n.URL, "https://") {
			t.Fatalf("node %s advertises %s", n.ID, n.URL)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := minio.New(strings.TrimPrefix(s.Gateway.URL, "http://"), &minio.Options{
		Creds: mcreds.NewStaticV4("admin", "admin-secret", ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ { // until the gateway sees the nodes
		if err = c.MakeBucket(ctx, "bkt", minio.MakeBucketOptions{}); err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	data := storetest.MakeShard(9, 3<<20)
	if _, err := c.PutObject(ctx, "bkt", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(ctx, "bkt", "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if got, err := io.ReadAll(obj); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}
}
