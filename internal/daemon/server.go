package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/gateway"
	"github.com/sherdstore/sherd/internal/etcdserver"
	"github.com/sherdstore/sherd/internal/telemetry"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/repair"
)

// ServerConfig configures the embedded all-in-one server.
type ServerConfig struct {
	// GCGrace and PinAfter: see GatewayConfig.
	GCGrace, PinAfter time.Duration
	Data              string // data directory: etcd/, run/etcd.sock, node-1/ … node-N/, cluster.key
	Addr              string // gateway address; default 127.0.0.1:9000
	// EtcdAddr is a TCP address for the embedded etcd's clients, besides
	// its unix socket (EtcdSocket): loopback only (it has no TLS nor
	// authentication). Default: none.
	EtcdAddr    string
	Nodes       int // default 6
	Credentials gateway.StaticCredentials
	Domains     []string
	Locations   []string // see gateway.Config.Locations
	// LifecycleInterval, LifecycleNow: see GatewayConfig.
	LifecycleInterval time.Duration
	LifecycleNow      func() time.Time
	Log               *slog.Logger
	// Heal configures the repairer and anti-entropy the server runs (in
	// its gateway: one per process); Heal.Interval < 0: none.
	Heal HealConfig
	// CommitWindow, MinPartSize: see GatewayConfig.
	CommitWindow time.Duration
	MinPartSize  int64
	// ScrubInterval, ScrubRate: see NodeConfig.
	ScrubInterval time.Duration
	ScrubRate     float64
	// StatusInterval: see NodeConfig and GatewayConfig.
	StatusInterval time.Duration
	// MetricsAccess: who may scrape the gateway and the nodes.
	MetricsAccess telemetry.Access
	// Limits, MaxConns: see GatewayConfig.
	Limits        gateway.Limits
	MaxConns      int
	HeaderTimeout time.Duration
	// TLS serves the gateway over HTTPS. (The nodes, on loopback, serve
	// HTTPS with certificates of the cluster CA, as in a real cluster.)
	TLS TLSFiles
	// LoopbackHTTP: the gateway reaches the nodes over loopback HTTPS
	// like a real cluster's, not by direct calls (tests of the wire path).
	LoopbackHTTP bool
}

// Server is the embedded default: etcd, N storage nodes and a gateway in
// one process. The gateway calls the nodes' shard stores directly (the
// in-process transport, localNodes: nothing on the wire to sign or
// protect); everything else (sherdctl, the nodes' API) goes over
// loopback HTTPS, signed and verified like in a real cluster.
type Server struct {
	cfg       ServerConfig
	closeOnce sync.Once
	closeErr  error
	etcd      *etcdserver.Server
	cli       *clientv3.Client
	Store     metadata.Store
	Key       []byte
	Nodes     []*Node
	Gateway   *Gateway
	local     *localNodes
}

// ClusterKey reads the key in path, creating a random one if absent.
func ClusterKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	var k [32]byte
	rand.Read(k[:])
	s := hex.EncodeToString(k[:])
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// EtcdSocket is the unix socket of the embedded etcd of a server on data
// directory dir (mode 0600, in a directory of mode 0700): its clients
// other than the server itself (sherdctl) connect to unix://<it>.
func EtcdSocket(dir string) string { return filepath.Join(dir, "run", "etcd.sock") }

// checkEtcdAddr refuses a client address for the embedded etcd that is
// not loopback: etcd would serve it without TLS or authentication, so
// whoever reaches it could read every secret and rewrite every bucket.
func checkEtcdAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--etcd-address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--etcd-address %s is not a loopback address: the embedded etcd serves it without TLS or authentication, so anyone who reaches it could rewrite every bucket; "+
		"use a loopback address, or sherdctl over the unix socket (--etcd unix://DATA/run/etcd.sock), or run an etcd cluster of your own with TLS for remote clients", addr)
}

// checkCommitWindow refuses an orphan grace that does not exceed the
// commit window: a shard written just before the grace began could be
// deleted as an orphan and then committed (its object unreadable).
func checkCommitWindow(window, grace time.Duration) error {
	if window <= 0 {
		window = cluster.DefaultCommitWindow
	}
	if grace <= 0 {
		grace = repair.DefaultGrace
	}
	if window >= grace {
		return fmt.Errorf("the commit window (%v) must be shorter than --orphan-grace (%v): otherwise a shard written just before its commit can be deleted as an orphan", window, grace)
	}
	return nil
}

// StartServer starts everything; Close stops it.
func StartServer(ctx context.Context, c ServerConfig) (s *Server, err error) {
	if c.Nodes == 0 {
		c.Nodes = 6
	}
	if err := checkEtcdAddr(c.EtcdAddr); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if c.Heal.Interval >= 0 { // the healer sweeps orphans (none without it)
		if err := checkCommitWindow(c.CommitWindow, c.Heal.Grace); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Heal.StatusInterval == 0 {
		c.Heal.StatusInterval = c.StatusInterval
	}
	if err := os.MkdirAll(c.Data, 0o755); err != nil {
		return nil, err
	}
	srv := &Server{cfg: c, local: newLocalNodes()}
	s = srv
	defer func() {
		if err != nil {
			srv.Close() // s is nil here: return nil, err
		}
	}()
	if s.Key, err = ClusterKey(filepath.Join(c.Data, "cluster.key")); err != nil {
		return nil, err
	}
	// etcd listens on a unix socket only this user can connect to (and
	// on c.EtcdAddr if asked); the gateway and nodes call it in process.
	if s.etcd, err = etcdserver.Start(etcdserver.Options{Dir: filepath.Join(c.Data, "etcd"), ClientSocket: EtcdSocket(c.Data), ClientAddr: c.EtcdAddr, Log: c.Log}); err != nil {
		return nil, err
	}
	// The gateway and nodes of this process call etcd in process.
	s.cli = s.etcd.LocalClient()
	// The server's etcd latency is the gateway's metric (one store serves
	// the gateway and the nodes of this process).
	gwMetrics := telemetry.NewRegistry()
	s.Store = NewObservedMetadataStore(s.cli, gwMetrics)
	for i := range c.Nodes {
		n, err := s.startNode(ctx, i)
		if err != nil {
			return nil, err
		}
		s.Nodes = append(s.Nodes, n)
	}
	s.Gateway, err = StartGateway(ctx, GatewayConfig{Addr: c.Addr, Key: s.Key, Store: s.Store,
		Credentials: c.Credentials, Domains: c.Domains, Locations: c.Locations, Log: c.Log, Heal: &c.Heal, CommitWindow: c.CommitWindow, MinPartSize: c.MinPartSize,
		Metrics: gwMetrics, MetricsAccess: c.MetricsAccess, Limits: c.Limits, MaxConns: c.MaxConns, HeaderTimeout: c.HeaderTimeout, TLS: c.TLS,
		LifecycleInterval: c.LifecycleInterval, LifecycleNow: c.LifecycleNow, GCGrace: c.GCGrace, PinAfter: c.PinAfter,
		local: s.gatewayLocal()})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) startNode(ctx context.Context, i int) (*Node, error) {
	id := fmt.Sprintf("node-%d", i+1)
	n, err := StartNode(ctx, NodeConfig{ID: id, Dir: filepath.Join(s.cfg.Data, id), Key: s.Key, Store: s.Store, Log: s.cfg.Log,
		ScrubInterval: s.cfg.ScrubInterval, ScrubRate: s.cfg.ScrubRate, StatusInterval: s.cfg.StatusInterval, MetricsAccess: s.cfg.MetricsAccess})
	if err != nil {
		return nil, err
	}
	s.local.set(n.ID, n.api.Local())
	return n, nil
}

// gatewayLocal is the in-process transport, unless the config asks for
// loopback HTTP.
func (s *Server) gatewayLocal() *localNodes {
	if s.cfg.LoopbackHTTP {
		return nil
	}
	return s.local
}

// stopNode closes node i, unreachable in process first.
func (s *Server) stopNode(i int) error {
	s.local.set(s.Nodes[i].ID, nil)
	err := s.Nodes[i].Close()
	s.Nodes[i] = nil
	return err
}

// EtcdURL is the embedded etcd's client URL for other processes of this
// user on this machine: unix:///DATA/run/etcd.sock.
func (s *Server) EtcdURL() string { return s.etcd.ClientURL() }

// StopNode stops node i (0-based) as an operator would: it deregisters.
func (s *Server) StopNode(i int) error {
	if s.Nodes[i] == nil {
		return nil
	}
	return s.stopNode(i)
}

// AddNode starts one more storage node (node-<N+1>) and returns its index.
func (s *Server) AddNode(ctx context.Context) (int, error) {
	i := len(s.Nodes)
	n, err := s.startNode(ctx, i)
	if err != nil {
		return 0, err
	}
	s.Nodes = append(s.Nodes, n)
	return i, nil
}

// RestartNode starts node i again on its data directory.
func (s *Server) RestartNode(ctx context.Context, i int) error {
	if s.Nodes[i] != nil {
		return nil
	}
	n, err := s.startNode(ctx, i)
	if err != nil {
		return err
	}
	s.Nodes[i] = n
	return nil
}

// Close stops the gateway, the nodes and etcd. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	var errs []error
	if s.Gateway != nil {
		errs = append(errs, s.Gateway.Close())
	}
	for i := range s.Nodes {
		if s.Nodes[i] != nil {
			errs = append(errs, s.stopNode(i))
		}
	}
	if s.cli != nil {
		s.cli.Close()
	}
	if s.etcd != nil {
		s.etcd.Close()
	}
	return errors.Join(errs...)
}
