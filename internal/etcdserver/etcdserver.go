// Package etcdserver runs an embedded single-member etcd, for `sherd server` and for tests.
package etcdserver

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
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
	Dir string // data directory
	// ClientSocket is the path of a unix socket for clients, made mode
	// 0600 in a directory of mode 0700 (only this user can connect). With
	// it, etcd listens on no TCP port unless ClientAddr asks for one.
	ClientSocket string
	// ClientAddr is a host:port for clients (plain HTTP: whoever reaches it
	// can read and write everything). "" without ClientSocket: a free
	// loopback port (tests).
	ClientAddr string
	Log        *slog.Logger
}

// maxSocketPath is the longest unix socket path Linux takes (sun_path
// holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// Start starts etcd and waits until it serves. A free loopback client
// port (no ClientAddr nor ClientSocket) taken between choosing and binding
// is retried. The single member has no peers: it listens on no peer port.
func Start(o Options) (*Server, error) {
	if o.ClientSocket != "" {
		abs, err := filepath.Abs(o.ClientSocket)
		if err != nil {
			return nil, err
		}
		if len(abs) > maxSocketPath {
			return nil, fmt.Errorf("etcdserver: socket path %s is longer than the %d bytes a unix socket path may have (use a shorter data directory path)", abs, maxSocketPath)
		}
		o.ClientSocket = abs
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return nil, err
		}
		// An existing directory keeps its mode: make it private too.
		if err := os.Chmod(filepath.Dir(abs), 0o700); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range 5 {
		s, err := start(o)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if o.ClientAddr != "" || o.ClientSocket != "" {
			break
		}
	}
	return nil, lastErr
}

func start(o Options) (*Server, error) {
	var clientURLs []url.URL
	if o.ClientSocket != "" {
		// unix://<path>: embed listens on Host+Path.
		clientURLs = append(clientURLs, url.URL{Scheme: "unix", Path: o.ClientSocket})
	}
	if o.ClientAddr != "" || o.ClientSocket == "" {
		clientAddr := o.ClientAddr
		if clientAddr == "" {
			clientAddr = freeAddr()
		}
		clientURLs = append(clientURLs, url.URL{Scheme: "http", Host: clientAddr})
	}
	cfg := embed.NewConfig()
	cfg.Dir = o.Dir
	cfg.Name = "sherd"
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = clientURLs, clientURLs
	// A single member never hears from a peer: no peer listener at all
	// (raft messages sent to it would otherwise be taken from anyone who
	// can connect). The advertised peer URL is only a name in the
	// membership; nothing listens on it.
	pu := url.URL{Scheme: "http", Host: "127.0.0.1:2380"}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = nil, []url.URL{pu}
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
	if o.ClientSocket != "" {
		if err := os.Chmod(o.ClientSocket, 0o600); err != nil {
			e.Close()
			return nil, fmt.Errorf("etcdserver: %w", err)
		}
	}
	return &Server{e: e, clientURL: clientURLs[0].String()}, nil
}

// ClientURL is the URL clients connect to: unix:///path with a
// ClientSocket, else http://host:port.
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

// Close stops the server (its socket file goes with its listener).
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
