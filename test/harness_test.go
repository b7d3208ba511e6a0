package test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	mcreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/sherdstore/sherd/gateway"
	"github.com/sherdstore/sherd/internal/daemon"
)

const (
	rootUser = "sherdtest"
	rootPass = "sherdtest-secret-key"
)

var ctx = context.Background()

// startServer starts the embedded server (etcd, 6 nodes, gateway) in a
// temporary directory; it stops with the test.
func startServer(t testing.TB, dir string) *daemon.Server {
	t.Helper()
	// The repairer and the scrubbers stay off in tests that look at the
	// repair queue or corrupt shards themselves; startRepairingServer and
	// startServerWith turn them on.
	return startServerWith(t, dir, func(c *daemon.ServerConfig) { c.Heal.Interval, c.ScrubInterval = -1, -1 })
}

// startRepairingServer runs the repairer over the repair queue every
// 100 ms (no scrubber; anti-entropy rounds only hourly, so what the test
// queues is what gets repaired).
func startRepairingServer(t testing.TB, dir string) *daemon.Server {
	t.Helper()
	return startServerWith(t, dir, func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.Heal.AntiEntropyInterval, c.ScrubInterval = 100*time.Millisecond, time.Hour, -1
	})
}

func startServerWith(t testing.TB, dir string, opt func(*daemon.ServerConfig)) *daemon.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	var log *slog.Logger
	if os.Getenv("SHERD_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := daemon.ServerConfig{Data: dir, Addr: "127.0.0.1:0",
		Credentials: gateway.StaticCredentials{rootUser: rootPass}, Domains: []string{"localhost"}, Log: log}
	opt(&cfg)
	s, err := daemon.StartServer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func hostPort(u string) string { return u[len("http://"):] }

// loopbackDialer sends every connection to addr, so virtual-hosted-style
// names (bucket.localhost) reach the test's gateway.
func loopbackTransport(addr string) *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
}

func minioClient(t testing.TB, endpoint string, v2 bool) *minio.Client {
	t.Helper()
	creds := mcreds.NewStaticV4(rootUser, rootPass, "")
	if v2 {
		creds = mcreds.NewStaticV2(rootUser, rootPass, "")
	}
	c, err := minio.New(hostPort(endpoint), &minio.Options{Creds: creds, Region: "us-east-1", BucketLookup: minio.BucketLookupPath, TrailingHeaders: !v2})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func awsClient(t testing.TB, endpoint string, pathStyle bool, secret string) *s3.Client {
	t.Helper()
	ep := endpoint
	if !pathStyle {
		ep = "http://localhost:" + endpoint[len("http://127.0.0.1:"):]
	}
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(ep),
		UsePathStyle: pathStyle,
		Credentials:  credentials.NewStaticCredentialsProvider(rootUser, secret, ""),
		HTTPClient:   &http.Client{Transport: loopbackTransport(hostPort(endpoint))},
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// noErr fails the test on err.
func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// must fails the test when a call returning a value and an error fails:
// must(t)(c.PutObject(…)).
func must(t testing.TB) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		noErr(t, err)
	}
}
