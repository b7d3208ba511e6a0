// Package gateway is the S3 gateway: HTTP handlers (gorilla/mux) and the object service over erasure coding, storage nodes and metadata.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/internal/reqid"
	"github.com/sherdstore/sherd/metadata"
)

// Config configures a Gateway.
type Config struct {
	Store       Metadata
	Cluster     *cluster.Cluster // the data plane; the caller owns (and closes) it
	Credentials s3.Credentials
	// Region is the region the gateway reports (default us-east-1).
	Region string
	// Locations are the LocationConstraints CreateBucket accepts besides
	// Region (stored with the bucket, returned by GetBucketLocation);
	// empty: any.
	Locations []string
	// Domains are the base domains of virtual-hosted-style requests:
	// Host "bucket.<domain>" addresses the bucket.
	Domains []string
	// Profile is the EC profile of new buckets (default 4+2, 1 MiB).
	Profile erasure.Profile
	// MinPartSize is the smallest multipart part but the last (default
	// 5 MiB, as AWS); tests lower it to build 10,000-part objects quickly.
	MinPartSize int64
	// Limits bound the requests it serves at once and their rates.
	Limits Limits
	// Metrics receives the request metrics (nil: none); LatencyBuckets
	// are their histogram buckets in seconds (nil: Prometheus's).
	Metrics        prometheus.Registerer
	LatencyBuckets []float64
	// Pins, when set, keeps the segments of GETs running longer than
	// PinAfter (default DefaultPinAfter) from the collector (pins.go).
	Pins     ReadPins
	PinAfter time.Duration
	Log      *slog.Logger
	Now      func() time.Time
}

// Metadata is what the gateway uses of the metadata store: buckets,
// object versions and multipart uploads (the notifications it queues go
// with the commits; the repairs it reports, through the cluster).
type Metadata interface {
	metadata.Buckets
	metadata.Objects
	metadata.Uploads
}

// Gateway serves the S3 API. It is stateless: everything it knows is in
// etcd and on the nodes, so any number of gateways can serve one cluster.
type Gateway struct {
	cfg      Config
	store    Metadata
	cluster  *cluster.Cluster
	verifier *s3.Verifier
	log      *slog.Logger
	now      func() time.Time
	router   *mux.Router
	metrics  *metrics
	limits   Limits

	inflight    atomic.Int64
	pins        pinKeeper  // reads in flight and their pins (pins.go)
	unauth      unauthPool // unsigned requests with a body (protect.go)
	addrBuckets buckets
	keyBuckets  buckets
	cors        corsCache
	corsParses  atomic.Int64 // CORS configurations parsed (the cache's misses)
}

// New returns a gateway; it serves once cfg.Cluster knows the nodes.
func New(cfg Config) (*Gateway, error) {
	if cfg.Store == nil || cfg.Cluster == nil || cfg.Credentials == nil {
		return nil, fmt.Errorf("gateway: Store, Cluster and Credentials are required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Profile == (erasure.Profile{}) {
		cfg.Profile = erasure.DefaultProfile()
	}
	if err := cfg.Profile.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PinAfter <= 0 {
		cfg.PinAfter = DefaultPinAfter
	}
	if cfg.MinPartSize <= 0 {
		cfg.MinPartSize = minPartSize
	}
	if cfg.Limits.MaxInFlight <= 0 {
		cfg.Limits.MaxInFlight = 1024
	}
	if cfg.Limits.BodyTimeout <= 0 {
		cfg.Limits.BodyTimeout = 30 * time.Second
	}
	g := &Gateway{cfg: cfg, store: cfg.Store, cluster: cfg.Cluster, log: cfg.Log, now: cfg.Now,
		verifier: s3.NewVerifier(cfg.Credentials, cfg.Now), limits: cfg.Limits,
		addrBuckets: buckets{rate: cfg.Limits.PerAddr}, keyBuckets: buckets{rate: cfg.Limits.PerKey}}
	g.router = g.routes()
	g.metrics = newMetrics(cfg.Metrics, cfg.LatencyBuckets)
	return g, nil
}

// StaticCredentials is a fixed set of access key → secret.
type StaticCredentials map[string]string

// SecretKey implements s3.Credentials.
func (c StaticCredentials) SecretKey(ak string) (string, error) {
	if s, ok := c[ak]; ok {
		return s, nil
	}
	return "", s3.Errorf(s3.ErrInvalidAccessKeyID, "%s", ak)
}

type ctxKey int

const keyIdentity ctxKey = 0

// request is what the front handler learned about a request.
type request struct {
	rid    string // request id
	id     s3.Identity
	bucket string
	key    string
}

func reqOf(r *http.Request) request {
	v, _ := r.Context().Value(keyIdentity).(request)
	return v
}

// ServeHTTP authenticates the request, resolves virtual-hosted-style
// addressing, and routes it.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ridb [8]byte
	rand.Read(ridb[:])
	rid := strings.ToUpper(hex.EncodeToString(ridb[:]))
	w.Header().Set("X-Amz-Request-Id", rid)
	// The id goes with every shard call the request makes, so a node's
	// log names the S3 request.
	r = r.WithContext(reqid.With(r.Context(), rid))
	g.observe(w, r, rid, g.serve)
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	rid := reqid.From(r.Context())
	w.Header().Set("Server", "Sherd")
	// The progress bounds come first: a request refused at admission
	// also gets its unread body bounded (boundDrain).
	w, r, done := g.withProgress(w, r)
	defer done()
	r, err := g.admit(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	defer g.release(r)
	vhost := g.vhostBucket(r.Host)
	bucketOf := func(path string) string {
		if vhost != "" {
			return vhost
		}
		b, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		return b
	}
	g.corsHeaders(w, r, bucketOf(r.URL.Path))
	var id s3.Identity
	switch {
	case r.Method == http.MethodOptions:
		// A CORS preflight: browsers send it unsigned, even for a
		// presigned URL; it only reads the bucket's CORS rules.
		id = s3.Identity{Anonymous: true}
	case s3.IsV2(r):
		id, err = g.verifier.VerifyV2(r, vhost)
	default:
		id, err = g.verifier.Verify(r)
	}
	if err == nil && !id.Anonymous && !g.allowKey(id.AccessKey) {
		err = errSlowDown
	}
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	path := r.URL.Path
	if vhost != "" {
		path = "/" + vhost + path
	}
	rest := strings.TrimPrefix(path, "/")
	bucket, key, _ := strings.Cut(rest, "/")
	ctx := context.WithValue(r.Context(), keyIdentity, request{rid: rid, id: id, bucket: bucket, key: key})
	r = r.WithContext(ctx)
	r.URL.Path = path
	r.URL.RawPath = ""
	g.router.ServeHTTP(w, r)
}

// vhostBucket is the bucket a Host header names, or "".
func (g *Gateway) vhostBucket(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	for _, d := range g.cfg.Domains {
		if b, ok := strings.CutSuffix(host, "."+strings.ToLower(d)); ok && b != "" {
			return b
		}
	}
	return ""
}
