package test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/gateway"
	"github.com/sherdstore/sherd/internal/daemon"
)

// slowPut starts a presigned PUT of a 1 MiB object on a raw connection
// and sends the first bytes of the body only: the gateway's handler is
// now reading it.
func slowPut(t *testing.T, c *minio.Client, gw, bucket, key string) net.Conn {
	t.Helper()
	u, err := c.PresignedPutObject(ctx, bucket, key, time.Hour)
	noErr(t, err)
	conn, err := net.Dial("tcp", hostPort(gw))
	noErr(t, err)
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\nfirst bytes", u.RequestURI(), u.Host, 1<<20)
	return conn
}

// slowDown reports whether resp is a 503 SlowDown with an S3 XML body.
func slowDown(resp *http.Response) bool {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusServiceUnavailable && bytes.Contains(b, []byte("<Code>SlowDown</Code>")) &&
		strings.HasPrefix(resp.Header.Get("Content-Type"), "application/xml")
}

// TestInFlightCap: with 2 requests in flight (slow bodies), a third is
// answered 503 SlowDown at once; when they end, requests are served again.
func TestInFlightCap(t *testing.T) {
	s := startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.ScrubInterval = -1, -1
		c.Limits = gateway.Limits{MaxInFlight: 2, BodyTimeout: time.Minute}
	})
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "cap", minio.MakeBucketOptions{}))
	a := slowPut(t, c, s.Gateway.URL, "cap", "a")
	b := slowPut(t, c, s.Gateway.URL, "cap", "b")
	inflight := func() float64 { return value(scrape(t, s.Gateway.URL, ""), "sherd_s3_requests_in_flight", nil) }
	waitFor(t, "2 requests in flight", 10*time.Second, func() bool { return inflight() >= 2 })
	resp, err := http.Get(s.Gateway.URL + "/cap/whatever")
	noErr(t, err)
	if !slowDown(resp) {
		t.Fatalf("third request: HTTP %d, want 503 SlowDown", resp.StatusCode)
	}
	a.Close()
	b.Close()
	waitFor(t, "slots released", 10*time.Second, func() bool {
		resp, err := http.Get(s.Gateway.URL + "/cap/whatever")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusServiceUnavailable
	})
	// The cut uploads left nothing behind.
	for _, k := range []string{"a", "b"} {
		if _, err := c.StatObject(ctx, "cap", k, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
			t.Fatalf("%s after its client left: %v", k, err)
		}
	}
}

// TestRateLimits: the per-key bucket refuses the request past its burst
// (other keys' buckets are their own); the per-address bucket spares
// loopback clients unless told otherwise.
func TestRateLimits(t *testing.T) {
	slow := gateway.Rate{PerSecond: 0.001, Burst: 3} // refills in ~17 minutes: deterministic
	for _, tc := range []struct {
		name       string
		limits     gateway.Limits
		signed     bool
		wantRefuse bool
	}{
		{"per key", gateway.Limits{PerKey: slow}, true, true},
		{"per key spares anonymous", gateway.Limits{PerKey: slow}, false, false},
		{"per address spares loopback", gateway.Limits{PerAddr: slow}, false, false},
		{"per address on loopback", gateway.Limits{PerAddr: slow, LimitLoopback: true}, false, true},
		{"per address on loopback, signed", gateway.Limits{PerAddr: slow, LimitLoopback: true}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServerWith(t, "", func(c *daemon.ServerConfig) {
				c.Heal.Interval, c.ScrubInterval, c.Nodes = -1, -1, 6
				c.Limits = tc.limits
			})
			ac := awsClient(t, s.Gateway.URL, true, rootPass)
			noRetry := func(o *s3.Options) { o.RetryMaxAttempts = 1 }
			refused := 0
			for range 6 {
				var status int
				if tc.signed {
					_, err := ac.ListBuckets(ctx, &s3.ListBucketsInput{}, noRetry)
					var re interface{ HTTPStatusCode() int }
					if errors.As(err, &re) {
						status = re.HTTPStatusCode()
					} else {
						noErr(t, err)
						status = 200
					}
				} else {
					resp, err := http.Get(s.Gateway.URL + "/nobucket/key")
					noErr(t, err)
					if slowDown(resp) {
						status = 503
					} else {
						status = resp.StatusCode
					}
				}
				if status == http.StatusServiceUnavailable {
					refused++
				}
			}
			if tc.wantRefuse && refused != 3 || !tc.wantRefuse && refused != 0 {
				t.Fatalf("%d of 6 requests refused", refused)
			}
		})
	}
}

// TestSlowClients opens 500 connections that dribble their headers and
// 50 whose PUT body stops after a few bytes: the gateway keeps serving others, cuts them
// at the header and body timeouts, and its goroutines and heap return to
// where they were (logged: the measurement).
func TestSlowClients(t *testing.T) {
	s := startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.ScrubInterval = -1, -1
		c.Limits = gateway.Limits{BodyTimeout: 2 * time.Second}
		c.HeaderTimeout = 2 * time.Second
	})
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "slow", minio.MakeBucketOptions{}))
	measure := func() (int, uint64) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapInuse
	}
	g0, h0 := measure()
	var conns []net.Conn
	for i := range 500 {
		conn, err := net.Dial("tcp", hostPort(s.Gateway.URL))
		noErr(t, err)
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "GET /slow/k%d HTTP/1.1\r\nHost: x\r\n", i)
		conns = append(conns, conn)
	}
	waitFor(t, "500 connections accepted", 10*time.Second, func() bool { g, _ := measure(); return g >= g0+500 })
	gA, hA := measure()
	for i := range 50 {
		conns = append(conns, slowPut(t, c, s.Gateway.URL, "slow", fmt.Sprintf("body%d", i)))
	}
	// Dribble a header byte on each header connection (they never end
	// their headers), from this goroutine only; the body connections send
	// nothing more.
	dribble := func() {
		for _, conn := range conns[:500] {
			conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			conn.Write([]byte("X"))
		}
	}
	dribble()
	g1, h1 := measure()
	// Others are served meanwhile.
	_, err := c.PutObject(ctx, "slow", "fine", strings.NewReader("hello"), 5, minio.PutObjectOptions{})
	noErr(t, err)
	// Every slow connection is cut: a read returns EOF (or reset).
	cut := 0
	deadline := time.Now().Add(30 * time.Second)
	for _, conn := range conns {
		for {
			dribble()
			conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, err := bufio.NewReader(conn).ReadByte()
			var ne net.Error
			if err == nil || errors.As(err, &ne) && ne.Timeout() {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d slow connections cut after 30 s", cut, len(conns))
				}
				if err == nil { // an error response: the gateway answered and will close
					cut++
					break
				}
				continue
			}
			cut++
			break
		}
	}
	var g2 int
	var h2 uint64
	waitFor(t, "goroutines back to where they were", 20*time.Second, func() bool {
		g2, h2 = measure()
		return g2 <= g0+20
	})
	t.Logf("slow connections: goroutines %d before, %d with 500 anonymous header dribblers, %d with 50 stalled PUT bodies more, %d after the cut; "+
		"heap in use %d MiB, %d MiB, %d MiB, %d MiB", g0, gA, g1, g2, h0>>20, hA>>20, h1>>20, h2>>20)
	if hA > h0+64<<20 {
		t.Fatalf("heap grew by %d MiB with 500 slow anonymous connections", (hA-h0)>>20)
	}
	for i := range 50 {
		if _, err := c.StatObject(ctx, "slow", fmt.Sprintf("body%d", i), minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
			t.Fatalf("a cut upload left an object: %v", err)
		}
	}
}
