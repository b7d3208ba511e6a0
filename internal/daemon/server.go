package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/gateway"
	"github.com/sherdstore/sherd/internal/etcdserver"
	"github.com/sherdstore/sherd/internal/telemetry"
	"github.com/sherdstore/sherd/metadata"
)

// ServerConfig configures the embedded all-in-one server.
type ServerConfig struct {
	Data        string // data directory: etcd/, node-1/ … node-N/, cluster.key
	Addr        string // gateway address; default 127.0.0.1:9000
	EtcdAddr    string // embedded etcd client address; default a free loopback port
	Nodes       int    // default 6
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
	// TLS serves the gateway over HTTPS (the nodes stay on loopback).
	TLS TLSFiles
	// LoopbackHTTP: the gateway reaches the nodes over loopback HTTP like
	// a real cluster's, not by direct calls (tests of the wire path).
	LoopbackHTTP bool
}

// Server is the embedded default: etcd, N storage nodes and a gateway in
// one process. The gateway calls the nodes' shard stores directly (the
// in-process transport, localNodes); everything else (sherdctl, the
// nodes' API) goes over loopback HTTP like in a real cluster.
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

// StartServer starts everything; Close stops it.
func StartServer(ctx context.Context, c ServerConfig) (s *Server, err error) {
	if c.Nodes == 0 {
		c.Nodes = 6
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
	s = &Server{cfg: c, local: newLocalNodes()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Key, err = ClusterKey(filepath.Join(c.Data, "cluster.key")); err != nil {
		return nil, err
	}
	if s.etcd, err = etcdserver.Start(etcdserver.Options{Dir: filepath.Join(c.Data, "etcd"), ClientAddr: c.EtcdAddr, Log: c.Log}); err != nil {
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
		LifecycleInterval: c.LifecycleInterval, LifecycleNow: c.LifecycleNow,
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

// EtcdURL is the embedded etcd's client URL.
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
