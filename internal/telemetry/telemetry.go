// Package telemetry serves a process's Prometheus metrics and its health and readiness endpoints, with the scrape restriction.
package telemetry

// Endpoints (on the gateway's S3 port and on each node's port):
//
//	/_sherd/metrics  Prometheus text format; only from the allowed
//	                 networks, and with the bearer token when one is set
//	/_sherd/health   200 while the process serves (liveness)
//	/_sherd/ready    200 when it can do its work, 503 with the reason
//	                 otherwise (readiness)

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Paths of the endpoints.
const (
	MetricsPath = "/_sherd/metrics"
	HealthPath  = "/_sherd/health"
	ReadyPath   = "/_sherd/ready"
)

// defaultAllow is who may scrape when nothing is configured: loopback only.
const defaultAllow = "127.0.0.0/8,::1/128"

// Access says who may scrape: clients from Allow (CIDRs; empty: loopback
// only), and, when Token is set, only requests with
// "Authorization: Bearer <Token>".
type Access struct {
	Allow []netip.Prefix
	Token string
}

// ParseAllow parses a comma-separated list of CIDRs or addresses; "" is
// loopback only and "any" everyone (for a token-protected endpoint behind
// a firewall).
func ParseAllow(s string) ([]netip.Prefix, error) {
	if s == "" {
		s = defaultAllow
	}
	if s == "any" {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, nil
	}
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("metrics allow list: %q is neither a CIDR nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// allowed checks r against a.
func (a Access) allowed(r *http.Request) bool {
	allow := a.Allow
	if len(allow) == 0 {
		allow, _ = ParseAllow("")
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	ok := false
	for _, p := range allow {
		if p.Contains(ip) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	if a.Token == "" {
		return true
	}
	got, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return found && subtle.ConstantTimeCompare([]byte(got), []byte(a.Token)) == 1
}

// NewRegistry returns a registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Ready reports whether the process can do its work; an error says why not.
type Ready func(ctx context.Context) error

// Handler serves the three endpoints; next serves everything else.
func Handler(g prometheus.Gatherer, access Access, ready Ready, next http.Handler) http.Handler {
	metrics := promhttp.HandlerFor(g, promhttp.HandlerOpts{Timeout: 10 * time.Second})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case MetricsPath:
			if !access.allowed(r) {
				http.Error(w, "metrics: not allowed from here (see --metrics-allow and SHERD_METRICS_TOKEN)", http.StatusForbidden)
				return
			}
			metrics.ServeHTTP(w, r)
		case HealthPath:
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintln(w, "ok")
		case ReadyPath:
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			w.Header().Set("Content-Type", "text/plain")
			if ready != nil {
				if err := ready(ctx); err != nil {
					w.WriteHeader(http.StatusServiceUnavailable)
					fmt.Fprintln(w, "not ready:", err)
					return
				}
			}
			fmt.Fprintln(w, "ready")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// Buckets returns the latency histogram buckets (seconds): 1 ms to 60 s.
func Buckets() []float64 {
	return []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
}
