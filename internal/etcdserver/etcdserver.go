// Package etcdserver runs an embedded single-member etcd on loopback, for `sherd server` and for tests.
package etcdserver

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Server is a running embedded etcd.
type Server struct {
	e         *embed.Etcd
	clientURL string
}

// Options configures Start.
type Options struct {
	Dir        string // data directory
	ClientAddr string // host:port for clients; "" picks a free loopback port
	Log        *slog.Logger
}

// Start starts etcd and waits until it serves. Ports left empty are chosen
// free on 127.0.0.1; a port taken between choosing and binding is retried.
func Start(o Options) (*Server, error) {
	var lastErr error
	for range 5 {
		s, err := start(o)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if o.ClientAddr != "" {
			break
		}
	}
	return nil, lastErr
}

func start(o Options) (*Server, error) {
	clientAddr := o.ClientAddr
	if clientAddr == "" {
		clientAddr = freeAddr()
	}
	peerAddr := freeAddr()
	cfg := embed.NewConfig()
	cfg.Dir = o.Dir
	cfg.Name = "sherd"
	cu, pu := url.URL{Scheme: "http", Host: clientAddr}, url.URL{Scheme: "http", Host: peerAddr}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.QuotaBackendBytes = 8 << 30
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcdserver: start: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcdserver: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcdserver: not ready after 60s")
	}
	return &Server{e: e, clientURL: cu.String()}, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.clientURL }

// Client returns a new client of this server; the caller closes it.
// It talks to the server through gRPC on its client URL, like any other.
func (s *Server) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{s.clientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// LocalClient returns a client that calls this server's gRPC handlers
// in process (etcd's v3client: no socket, no HTTP/2 framing); the
// caller closes it before the server. Same API and semantics as Client.
func (s *Server) LocalClient() *clientv3.Client { return v3client.New(s.e.Server) }

// Close stops the server.
func (s *Server) Close() { s.e.Close() }

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ForTests starts a server in a new temporary directory for a test binary
// (its TestMain) and returns a client; stop closes the client and the
// server and removes the directory.
func ForTests() (cli *clientv3.Client, stop func(), err error) {
	dir, err := os.MkdirTemp("", "sherd-etcd-test")
	if err != nil {
		return nil, nil, err
	}
	srv, err := Start(Options{Dir: dir})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	if cli, err = srv.Client(); err != nil {
		srv.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return cli, func() {
		cli.Close()
		srv.Close()
		os.RemoveAll(dir)
	}, nil
}
