// Package daemon starts Sherd's processes from their configuration: storage nodes, gateways, and the embedded all-in-one server.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/gateway"
	"github.com/sherdstore/sherd/internal/clustertls"
	"github.com/sherdstore/sherd/internal/telemetry"
	"github.com/sherdstore/sherd/lifecycle"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/notify"
	"github.com/sherdstore/sherd/repair"
	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode"
	"github.com/sherdstore/sherd/storagenode/client"
)

// NodeTTL is the lease of a node's liveness key: a node that stops
// renewing it is no longer live after this long.
const NodeTTL = 5 * time.Second

// NodeConfig configures a storage node.
type NodeConfig struct {
	ID      string // default: read from (or generated into) Dir/node-id
	Dir     string
	Addr    string // listen address; default 127.0.0.1:0
	Advert  string // base URL others use; default https://<listen address> (http:// with Plaintext)
	Zone    string
	Key     []byte // cluster key
	Store   metadata.Store
	Log     *slog.Logger
	Timeout time.Duration // lease TTL; default NodeTTL
	// ScrubInterval is the pause between scrub passes (default 24 h;
	// negative: no scrubber); ScrubRate its read rate (default 64 MiB/s).
	ScrubInterval time.Duration
	ScrubRate     float64
	// Reserve is the free space the node keeps on its disk: below it new
	// shards are refused (ErrFull), so the cluster places them elsewhere.
	// Default 2% of the file system, at most 1 GiB; negative: none.
	Reserve int64
	// StatusInterval is how often the scrubber's progress is published
	// for sherdctl status (default 10 s).
	StatusInterval time.Duration
	// Heal runs a repairer and anti-entropy in the node process (one per
	// node: the default of sherd node). Nil: none.
	Heal *HealConfig
	// Metrics is the node's registry, served at /_sherd/metrics on its
	// port to those MetricsAccess allows (nil: a new one).
	Metrics       *prometheus.Registry
	MetricsAccess telemetry.Access
	// TLS: serve the node API over HTTPS with this certificate instead
	// of one the cluster CA signs at startup (clustertls.DeriveCA), and trust
	// TLS.CA when calling other nodes.
	TLS TLSFiles
	// Plaintext serves the node API over plain HTTP (--insecure-plaintext):
	// only on a network where nobody can read or alter the traffic.
	Plaintext bool
	// AcceptV1Signatures admits requests signed by releases before the
	// version 2 signature (a rolling upgrade; see docs/security.md).
	AcceptV1Signatures bool
	// MaxConns caps the node's open connections (default 4096); more
	// wait in the listen backlog. DrainTimeout bounds what the server
	// reads of a body its handler left unread (default
	// storagenode.DrainTimeout).
	MaxConns     int
	DrainTimeout time.Duration
}

// Node is a running storage node.
type Node struct {
	ID       string
	URL      string
	Scrubber *storagenode.Scrubber // nil when it runs none
	Healer   *Healer               // nil when it runs none
	Metrics  *prometheus.Registry
	cluster  *cluster.Cluster // the healer's view of the others
	store    *storagenode.Store
	api      *storagenode.Server
	srv      *http.Server
	reg      metadata.Registration
	cancel   context.CancelFunc
	loops    sync.WaitGroup // the server and the scrubber
}

// nodeID reads or creates dir/node-id.
func nodeID(dir string) (string, error) {
	p := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var r [6]byte
	rand.Read(r[:])
	id := "node-" + hex.EncodeToString(r[:])
	if err := os.WriteFile(p, []byte(id+"\n"), 0o644); err != nil {
		return "", err
	}
	return id, nil
}

// queueMigrator is the optional capability of a metadata store to move
// work queues of earlier versions into the current layout.
type queueMigrator interface {
	MigrateQueues(ctx context.Context) error
}

// migrate moves queue items of earlier versions (idempotent, safe to run
// from every process at once).
func migrate(ctx context.Context, store metadata.Store) error {
	if m, ok := store.(queueMigrator); ok {
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := m.MigrateQueues(mctx); err != nil {
			return fmt.Errorf("migrate queues: %w", err)
		}
	}
	return nil
}

// StartNode opens the node's shard store, serves its API and registers it.
func StartNode(ctx context.Context, c NodeConfig) (*Node, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Timeout == 0 {
		c.Timeout = NodeTTL
	}
	if err := migrate(ctx, c.Store); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	if c.ID == "" {
		id, err := nodeID(c.Dir)
		if err != nil {
			return nil, err
		}
		c.ID = id
	}
	st, err := storagenode.Open(filepath.Join(c.Dir, "shards"), storagenode.Options{Reserve: reserve(c.Reserve, c.Dir)})
	if err != nil {
		return nil, err
	}
	hc, err := clustertls.NodeClient(c.Key, c.TLS.CA)
	if err != nil {
		st.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		st.Close()
		return nil, err
	}
	listen, err := nodeServing(c.TLS, c.Key, c.Plaintext, c.Advert, ln.Addr(), c.Log.With("node", c.ID))
	if err != nil {
		ln.Close()
		st.Close()
		return nil, fmt.Errorf("node %s: %w", c.ID, err)
	}
	c.Advert = listen.advert
	log := c.Log.With("node", c.ID)
	lctx, cancel := context.WithCancel(context.Background())
	if c.Metrics == nil {
		c.Metrics = telemetry.NewRegistry()
	}
	n := &Node{ID: c.ID, URL: c.Advert, store: st, cancel: cancel, Metrics: c.Metrics}
	api := storagenode.NewServer(st, c.Key, nil, log)
	api.RequireHost(listen.host) // a request signed for another node is refused
	if c.AcceptV1Signatures {
		api.AcceptV1Signatures()
		log.Warn("accepting version 1 cluster signatures (--accept-v1-signatures): not bound to the target node; drop the flag once every process is upgraded")
	}
	api.Instrument(c.Metrics, telemetry.Buckets())
	n.api = api
	var registered atomic.Bool
	var healer atomic.Pointer[Healer]
	ready := func(context.Context) error {
		if !registered.Load() {
			return errors.New("not registered in etcd yet")
		}
		return leasesErr(healer.Load(), nil)
	}
	// Anyone who reaches the port, key or not, can open connections: they
	// are capped (a file descriptor each), and a body a handler leaves
	// unread (a refusal, a health check's) is read for DrainTimeout at
	// most, on every path (storagenode.BoundDrain).
	if c.MaxConns <= 0 {
		c.MaxConns = 4096
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = storagenode.DrainTimeout
	}
	ln = netutil.LimitListener(ln, c.MaxConns)
	api.SetDrainTimeout(c.DrainTimeout)
	n.srv = &http.Server{Handler: storagenode.BoundDrain(telemetry.Handler(c.Metrics, c.MetricsAccess, ready, api), c.DrainTimeout),
		ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, TLSConfig: listen.tls,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	n.loops.Add(1)
	go func() {
		defer n.loops.Done()
		serve(n.srv, ln) // returns at Shutdown
	}()
	reg, err := c.Store.RegisterNode(ctx, metadata.Node{ID: c.ID, Address: c.Advert, Zone: c.Zone, Started: time.Now().UTC()}, c.Timeout)
	if err != nil {
		n.srv.Close()
		cancel()
		n.loops.Wait()
		st.Close()
		return nil, err
	}
	n.reg = reg
	registered.Store(true)
	if c.ScrubInterval >= 0 {
		// A shard that rots is quarantined and queued for repair at once.
		queue := func(ctx context.Context, id shard.ID) {
			qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
			defer qcancel()
			e := metadata.RepairEntry{Segment: metadata.Segment{ID: id.Segment}, Shards: []int{id.Index}, Reason: "scrub " + c.ID}
			if err := c.Store.QueueRepair(qctx, e); err != nil {
				log.Warn("scrub: queue repair", "shard", id, "err", err)
			}
		}
		n.Scrubber = storagenode.NewScrubber(st, storagenode.ScrubConfig{Rate: c.ScrubRate, Interval: c.ScrubInterval, OnCorrupt: queue, Log: log})
		kick := make(chan struct{}, 1)
		var doneRequest atomic.Pointer[string]
		n.loops.Add(3)
		go func() {
			defer n.loops.Done()
			n.Scrubber.Run(lctx)
		}()
		go func() {
			defer n.loops.Done()
			followScrubRequests(lctx, c.Store, c.ID, n.Scrubber, &doneRequest, kick, log)
		}()
		go func() {
			defer n.loops.Done()
			publish(lctx, c.Store, c.StatusInterval, kick, log, func() metadata.ProcessStatus {
				p := n.Scrubber.Progress()
				rep := &metadata.ScrubReport{
					Running: p.Running, Fraction: p.Fraction, Passes: p.Passes, LastPass: p.LastPass,
					LastTook: p.LastTook, LastShards: p.LastShards, LastCorrupt: p.LastCorrupt}
				if id := doneRequest.Load(); id != nil {
					rep.Request = *id
				}
				return metadata.ProcessStatus{Kind: "node", Name: c.ID, Scrub: rep, Disk: diskReport(st)}
			})
		}()
	}
	registerNodeMetrics(c.Metrics, st, n.Scrubber)
	if n.Scrubber == nil {
		n.loops.Add(1)
		go func() {
			defer n.loops.Done()
			publish(lctx, c.Store, c.StatusInterval, nil, log, func() metadata.ProcessStatus {
				return metadata.ProcessStatus{Kind: "node", Name: c.ID, Disk: diskReport(st)}
			})
		}()
	}
	if c.Heal != nil && c.Heal.Interval >= 0 {
		calls := cluster.NewShardCallMetrics(c.Metrics, telemetry.Buckets())
		n.cluster = cluster.New(cluster.Config{Dial: func(m metadata.Node) shard.Store {
			return calls.Wrap(m.ID, client.New(m.Address, c.Key, hc, nil))
		}, Repairs: c.Store, Records: c.Store, Log: log})
		err := n.cluster.Watch(c.Store)
		if err == nil {
			n.Healer, err = startHealer("node "+c.ID, c.Store, n.cluster, *c.Heal, log)
		}
		if err != nil {
			n.Close()
			return nil, err
		}
		healer.Store(n.Healer)
		registerHealerMetrics(c.Metrics, n.Healer, n.cluster)
		registerLeaseMetrics(c.Metrics, &n.Healer.Leases)
		registerClusterMetrics(c.Metrics, n.cluster)
		c.Metrics.MustRegister(newQueueBacklog(c.Store))
	}
	log.Info("storage node up", "url", c.Advert, "dir", c.Dir)
	return n, nil
}

// reserve is the free space a node keeps: set (negative: none), or by
// default 2% of the file system, at most 1 GiB.
func reserve(set int64, dir string) int64 {
	if set != 0 {
		return max(set, 0)
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(dir, &fs) != nil {
		return 0
	}
	return min(int64(fs.Blocks)*fs.Bsize/50, 1<<30)
}

// diskReport describes the store's use of its disk.
func diskReport(st *storagenode.Store) *metadata.DiskReport {
	shards, bytes := st.Usage()
	d := &metadata.DiskReport{Shards: shards, ShardBytes: bytes}
	var fs syscall.Statfs_t
	if syscall.Statfs(st.Dir(), &fs) == nil {
		d.Total = int64(fs.Blocks) * fs.Bsize
		d.Used = d.Total - int64(fs.Bavail)*fs.Bsize
	}
	return d
}

// followScrubRequests starts a scrub pass when an operator asks for one
// (sherdctl scrub: ctl/scrub/<node> or ctl/scrub/all), and records the
// request's id in done once a pass that started after it has ended.
func followScrubRequests(ctx context.Context, store metadata.Store, id string, sc *storagenode.Scrubber, done *atomic.Pointer[string], publishNow chan<- struct{}, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	seen := map[string]bool{}
	first := true
	var pending string
	var asked time.Time
	for {
		for _, target := range []string{id, "all"} {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			r, ok, err := store.GetRequest(rctx, "scrub", target)
			cancel()
			if err != nil || !ok || seen[r.ID] {
				continue
			}
			seen[r.ID] = true
			if first {
				continue // requested before this process started: not replayed
			}
			pending, asked = r.ID, time.Now()
			sc.Kick()
			log.Info("scrub requested", "request", r.ID)
		}
		first = false
		if p := sc.Progress(); pending != "" && !p.Running && p.Passes > 0 && !p.LastPass.Add(-p.LastTook).Before(asked) {
			finished := pending
			done.Store(&finished)
			pending = ""
			select {
			case publishNow <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Shards is the node's shard store (for tests and tools).
func (n *Node) Shards() *storagenode.Store { return n.store }

// Close deregisters the node, stops serving and scrubbing, waits for
// both, and closes the store.
func (n *Node) Close() error {
	if n.Healer != nil {
		n.Healer.Close()
	}
	if n.cluster != nil {
		n.cluster.Close()
	}
	err := n.reg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.srv.Shutdown(ctx)
	n.cancel()
	n.loops.Wait()
	return errors.Join(err, n.store.Close())
}

// GatewayConfig configures a gateway.
type GatewayConfig struct {
	Addr        string // default 127.0.0.1:9000
	Key         []byte
	Store       metadata.Store
	Credentials gateway.StaticCredentials
	Domains     []string
	Region      string
	// Locations: see gateway.Config.Locations.
	Locations []string
	Profile   erasure.Profile
	// GCGrace is how long released shards stay readable before the
	// gateway's collector deletes them (default 5 minutes); GCInterval is
	// the pause between passes (default 30 s; negative: no collector).
	GCGrace, GCInterval time.Duration
	// PinAfter: a GET running this long pins its segments so that no
	// collector deletes them while it reads (default
	// gateway.DefaultPinAfter); 2×PinAfter must not exceed GCGrace (every
	// gateway of a cluster is given the same grace).
	PinAfter time.Duration
	// NotifyInterval is how often queued notifications are looked for
	// (default 500 ms; negative: this gateway delivers none).
	NotifyInterval time.Duration
	NotifyClaim    time.Duration // see notify.Notifier.ClaimFor
	// LifecycleInterval is the lifecycle worker's window: every bucket
	// with rules gets one pass per window, from one of the gateways
	// (default 1 h; negative: this gateway runs no worker).
	LifecycleInterval time.Duration
	// LifecycleNow is the lifecycle worker's clock (tests; default time.Now).
	LifecycleNow func() time.Time
	// Heal runs a repairer and anti-entropy in the gateway (sherd server
	// does; a cluster runs them in its nodes). Nil: none.
	Heal *HealConfig
	// CommitWindow: see cluster.Config.CommitWindow (default
	// cluster.DefaultCommitWindow); it must be shorter than every
	// healer's orphan grace.
	CommitWindow time.Duration
	MinPartSize  int64 // see gateway.Config.MinPartSize
	// Limits: see gateway.Config.Limits. MaxConns caps the open client
	// connections (default 4096); more wait in the listen backlog.
	Limits   gateway.Limits
	MaxConns int
	// HeaderTimeout bounds how long a client may take to send a request's
	// headers (default 10 s).
	HeaderTimeout time.Duration
	// TLS: serve S3 over HTTPS; trust TLS.CA when calling nodes.
	TLS TLSFiles
	// local reaches the nodes of this process directly (sherd server);
	// nil: every node over HTTP.
	local *localNodes
	// Metrics is the gateway's registry, served at /_sherd/metrics on
	// its S3 port to those MetricsAccess allows (nil: a new one).
	Metrics       *prometheus.Registry
	MetricsAccess telemetry.Access
	Log           *slog.Logger
}

// Gateway is a running S3 gateway.
type Gateway struct {
	URL     string
	Cluster *cluster.Cluster
	Healer  *Healer // nil when it runs none
	Metrics *prometheus.Registry
	srv     *http.Server
	cancel  context.CancelFunc
	loops   sync.WaitGroup // the collector, the notifier and the lifecycle worker
	leases  *Leases        // the lifecycle worker's
	// Lifecycle is the gateway's lifecycle worker (nil when it runs none).
	Lifecycle *lifecycle.Worker
}

// gatewayReady: etcd answers, and enough nodes are live and active to
// store a write of the default profile (its quorum, k+1).
func gatewayReady(ctx context.Context, store metadata.Store, cl *cluster.Cluster, prof erasure.Profile) error {
	if err := pingStore(ctx, store); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	usable := 0
	for _, n := range cl.Nodes() {
		if n.Live && (n.State == metadata.NodeActive || n.State == "") {
			usable++
		}
	}
	if need := prof.K + 1; usable < need {
		return fmt.Errorf("%d storage nodes live and active, a write needs %d", usable, need)
	}
	return nil
}

// serve serves srv on ln, over TLS when srv has a TLS configuration. It
// returns at Shutdown.
func serve(srv *http.Server, ln net.Listener) {
	if srv.TLSConfig != nil {
		srv.ServeTLS(ln, "", "")
		return
	}
	srv.Serve(ln)
}

// StartGateway serves the S3 API on c.Addr.
func StartGateway(ctx context.Context, c GatewayConfig) (*Gateway, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9000"
	}
	if c.GCGrace == 0 {
		c.GCGrace = 5 * time.Minute
	}
	if c.PinAfter == 0 {
		c.PinAfter = gateway.DefaultPinAfter
	}
	if err := checkGCGrace(c.GCGrace, c.PinAfter); err != nil {
		return nil, err
	}
	if err := migrate(ctx, c.Store); err != nil {
		return nil, err
	}
	if c.Metrics == nil {
		c.Metrics = telemetry.NewRegistry()
	}
	tlsConf, err := c.TLS.serving(tls.VersionTLS12)
	if err != nil {
		return nil, err
	}
	hc, err := clustertls.NodeClient(c.Key, c.TLS.CA)
	if err != nil {
		return nil, err
	}
	calls := cluster.NewShardCallMetrics(c.Metrics, telemetry.Buckets())
	cl := cluster.New(cluster.Config{Dial: func(n metadata.Node) shard.Store {
		if c.local != nil {
			if st, ok := c.local.dial(n.ID); ok {
				return calls.Wrap(n.ID, st)
			}
		}
		return calls.Wrap(n.ID, client.New(n.Address, c.Key, hc, nil))
	}, Repairs: c.Store, Records: c.Store, CommitWindow: c.CommitWindow, Log: c.Log})
	if err := cl.Watch(c.Store); err != nil {
		cl.Close()
		return nil, err
	}
	var pins gateway.ReadPins
	if p, ok := c.Store.(gateway.ReadPins); ok {
		pins = p
	}
	g, err := gateway.New(gateway.Config{Pins: pins, Store: c.Store, Cluster: cl, Credentials: c.Credentials,
		Region: c.Region, Locations: c.Locations, Domains: c.Domains, Profile: c.Profile, Log: c.Log, MinPartSize: c.MinPartSize,
		Metrics: c.Metrics, LatencyBuckets: telemetry.Buckets(), Limits: c.Limits, PinAfter: c.PinAfter})
	if err != nil {
		cl.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		cl.Close()
		return nil, err
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 4096
	}
	ln = netutil.LimitListener(ln, c.MaxConns)
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = 10 * time.Second
	}
	wctx, cancel := context.WithCancel(context.Background())
	scheme := "http://"
	if tlsConf != nil {
		scheme = "https://"
	}
	gw := &Gateway{URL: scheme + ln.Addr().String(), Cluster: cl, cancel: cancel, Metrics: c.Metrics}
	registerClusterMetrics(c.Metrics, cl)
	c.Metrics.MustRegister(newQueueBacklog(c.Store))
	prof := c.Profile
	if prof == (erasure.Profile{}) {
		prof = erasure.DefaultProfile()
	}
	var healer atomic.Pointer[Healer]
	gw.leases = &Leases{}
	ready := newReadiness(func(ctx context.Context) error {
		if err := gatewayReady(ctx, c.Store, cl, prof); err != nil {
			return err
		}
		return leasesErr(healer.Load(), gw.leases)
	}, time.Second, nil).Ready
	// Slow clients: headers must arrive within 10 s, an idle keep-alive
	// connection is closed after 60 s, and (gateway.Limits.BodyTimeout)
	// a body or response that makes no progress ends the request. A body
	// a handler leaves unread is read for BodyTimeout at most once it
	// returns, on the telemetry paths too (storagenode.BoundDrain; the S3
	// requests bound theirs themselves).
	drain := c.Limits.BodyTimeout
	if drain <= 0 {
		drain = storagenode.DrainTimeout
	}
	gw.srv = &http.Server{Handler: storagenode.BoundDrain(telemetry.Handler(c.Metrics, c.MetricsAccess, ready, g), drain),
		ReadHeaderTimeout: c.HeaderTimeout, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(c.Log.Handler(), slog.LevelDebug), TLSConfig: tlsConf}
	gw.loops.Add(1)
	go func() {
		defer gw.loops.Done()
		serve(gw.srv, ln) // returns at Shutdown
	}()
	if c.GCInterval >= 0 {
		if c.GCInterval == 0 {
			c.GCInterval = 30 * time.Second
		}
		// Every gateway collects; passes are idempotent, so several
		// gateways only repeat each other's (cheap) deletes.
		gc := &repair.Collector{Meta: c.Store, Nodes: cl, Grace: c.GCGrace, Log: c.Log}
		if p, ok := c.Store.(repair.Pins); ok {
			gc.Pins = p
		}
		registerGCMetrics(c.Metrics, gc)
		gw.loops.Add(1)
		go func() {
			defer gw.loops.Done()
			gc.Run(wctx, c.GCInterval)
		}()
	}
	gw.loops.Add(1)
	go func() {
		defer gw.loops.Done()
		g.KeepPins(wctx) // the pins of long reads (returns at once without a pin store)
	}()
	if p, ok := c.Store.(windowPublisher); ok {
		// Healers in other processes check their orphan grace against
		// this window: published now, and again every 10 minutes.
		window := cl.CommitWindow()
		// The record's key is this gateway's alone: listen URLs repeat
		// across hosts (127.0.0.1:9000, :9000), and two gateways sharing
		// a key would overwrite each other's window.
		windowID := gatewayInstanceID(gw.URL)
		publish := func() {
			pctx, cancel := context.WithTimeout(wctx, 5*time.Second)
			defer cancel()
			if err := p.PublishCommitWindow(pctx, windowID, window, time.Now()); err != nil {
				c.Log.Warn("commit window not published", "err", err)
			}
		}
		publish()
		gw.loops.Add(1)
		go func() {
			defer gw.loops.Done()
			t := time.NewTicker(10 * time.Minute)
			defer t.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-t.C:
					publish()
				}
			}
		}()
	}
	if c.Heal != nil && c.Heal.Interval >= 0 {
		if gw.Healer, err = startHealer("gateway "+gw.URL, c.Store, cl, *c.Heal, c.Log); err != nil {
			gw.Close()
			return nil, err
		}
		healer.Store(gw.Healer)
		registerHealerMetrics(c.Metrics, gw.Healer, cl)
	}
	if gw.Healer != nil {
		registerLeaseMetrics(c.Metrics, gw.leases, &gw.Healer.Leases)
	} else {
		registerLeaseMetrics(c.Metrics, gw.leases)
	}
	if cf, ok := c.Store.(claimerFactory); ok && c.LifecycleInterval >= 0 {
		claims, err := cf.NewClaimer(wctx, "gateway "+gw.URL+" (lifecycle)", 10*time.Second)
		if err != nil {
			gw.Close()
			return nil, err
		}
		gw.leases.add(roleLifecycle, claims)
		gw.Lifecycle = &lifecycle.Worker{Store: c.Store, Claims: claims, Now: c.LifecycleNow, Interval: c.LifecycleInterval, Log: c.Log}
		gw.loops.Add(1)
		go func() {
			defer gw.loops.Done()
			defer claims.Close()
			gw.Lifecycle.Run(wctx)
		}()
	}
	if c.NotifyInterval >= 0 {
		if c.NotifyInterval == 0 {
			c.NotifyInterval = 500 * time.Millisecond
		}
		n := &notify.Notifier{Store: c.Store, Region: c.Region, Log: c.Log, ClaimFor: c.NotifyClaim, Metrics: c.Metrics}
		gw.loops.Add(1)
		go func() {
			defer gw.loops.Done()
			n.Run(wctx, c.NotifyInterval)
		}()
	}
	return gw, nil
}

// publish stores what report says now and every interval (default 10 s)
// until ctx ends.
// A send on kick publishes at once (nil: only on the ticker).
func publish(ctx context.Context, store metadata.Store, interval time.Duration, kick <-chan struct{}, log *slog.Logger, report func() metadata.ProcessStatus) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st := report()
		st.Time = time.Now().UTC()
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := store.PutStatus(pctx, st); err != nil && ctx.Err() == nil {
			log.Debug("publish status", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
	}
}

// claimerFactory is the optional capability of a metadata store to hand
// out lease-held claims (the etcd store has it).
type claimerFactory interface {
	NewClaimer(ctx context.Context, owner string, ttl time.Duration) (metadata.Claimer, error)
}

// Close stops the gateway, letting requests in flight finish for a while,
// then its loops and its data plane, and waits for all of them.
func (g *Gateway) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := g.srv.Shutdown(ctx)
	if g.Healer != nil {
		g.Healer.Close()
	}
	g.cancel()
	g.loops.Wait()
	return errors.Join(err, g.Cluster.Close())
}

// checkGCGrace refuses a collector grace that a long GET's read pin could
// miss: the GET pins its segments PinAfter after it began (and renews
// every PinAfter), so the grace must leave at least as long again.
func checkGCGrace(grace, pinAfter time.Duration) error {
	if grace < 0 || pinAfter < 0 {
		return fmt.Errorf("--gc-grace %s and --pin-after %s must be positive", grace, pinAfter)
	}
	if 2*pinAfter > grace {
		return fmt.Errorf("--gc-grace %s is shorter than twice --pin-after %s: a long GET could lose the segments it reads to the collector before it pins them", grace, pinAfter)
	}
	return nil
}

// windowPublisher records a gateway's commit window (metadata/etcd Store).
type windowPublisher interface {
	PublishCommitWindow(ctx context.Context, id string, window time.Duration, now time.Time) error
}

// gatewayInstanceID names one run of a gateway: host name, listen URL and
// a random suffix (a restarted gateway is a new instance; the records of
// old ones age out).
func gatewayInstanceID(url string) string {
	host, _ := os.Hostname()
	var b [6]byte
	rand.Read(b[:])
	return host + " " + url + " " + hex.EncodeToString(b[:])
}
