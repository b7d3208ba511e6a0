package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/sherdstore/sherd/internal/clustertls"
)

// TLSFiles name a process's TLS certificate and key (PEM) for serving,
// and the CA bundle it trusts beyond the cluster CA when it calls nodes
// (clustertls.NodeClient).
type TLSFiles struct {
	Cert, Key string
	CA        string
}

// serving returns the server TLS configuration with at least TLS version
// minVersion, nil when no certificate is set. Errors: a missing or bad
// file, or only one of Cert and Key.
func (f TLSFiles) serving(minVersion uint16) (*tls.Config, error) {
	if f.Cert == "" && f.Key == "" {
		return nil, nil
	}
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("tls: --tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minVersion}, nil
}

// nodeListen is how a node serves its API.
type nodeListen struct {
	tls    *tls.Config // nil: plain HTTP
	advert string      // its advertised URL
	host   string      // the advertised URL's host (and port): the only one it answers signed requests for
}

// nodeServing decides how a node listening on addr serves: over HTTPS
// with the operator's certificate (files) or, by default, one the
// cluster CA of key signs now for the host of the advertised URL and the
// listen address; over plain HTTP only when plaintext is asked for. The
// advertised URL defaults to <scheme>://<addr> and must have the scheme
// the node serves.
func nodeServing(files TLSFiles, key []byte, plaintext bool, advert string, addr net.Addr, log *slog.Logger) (nodeListen, error) {
	scheme := "https"
	if plaintext {
		if files.Cert != "" || files.Key != "" {
			return nodeListen{}, errors.New("--insecure-plaintext and --tls-cert/--tls-key exclude each other")
		}
		scheme = "http"
	}
	if advert == "" {
		advert = scheme + "://" + addr.String()
	}
	u, err := url.Parse(advert)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return nodeListen{}, fmt.Errorf("advertised URL %q: want http(s)://host[:port]", advert)
	}
	if u.Scheme != scheme {
		if plaintext {
			return nodeListen{}, fmt.Errorf("advertised URL %s: the node serves plain HTTP (--insecure-plaintext): advertise http://", advert)
		}
		return nodeListen{}, fmt.Errorf("advertised URL %s: the node serves HTTPS: advertise https://, or (on a network you trust entirely) start it with --insecure-plaintext", advert)
	}
	out := nodeListen{advert: strings.TrimSuffix(advert, "/"), host: u.Host}
	if plaintext {
		log.Warn("node API served over plain HTTP (--insecure-plaintext): anyone on the network path can read shards and substitute the bytes gateways read", "url", out.advert)
		return out, nil
	}
	if out.tls, err = files.serving(tls.VersionTLS13); err != nil || out.tls != nil {
		return out, err
	}
	ca, err := clustertls.DeriveCA(key)
	if err != nil {
		return nodeListen{}, err
	}
	hosts := []string{u.Hostname()}
	if tcp, ok := addr.(*net.TCPAddr); ok && !tcp.IP.IsUnspecified() && tcp.IP.String() != u.Hostname() {
		hosts = append(hosts, tcp.IP.String())
	}
	cert, err := ca.Issue(hosts, time.Now())
	if err != nil {
		return nodeListen{}, err
	}
	out.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	return out, nil
}
