// Command sherd is the Sherd daemon: "server" (embedded all-in-one), "gateway" and "node".
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sherdstore/sherd/gateway"
	"github.com/sherdstore/sherd/internal/clustertls"
	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/internal/telemetry"
	"github.com/sherdstore/sherd/metadata"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
)

const usage = `usage:
  sherd server  --data DIR [--address 127.0.0.1:9000] [--nodes 6] [--domain D]
                [--etcd-address 127.0.0.1:2379] [HEALING]
  sherd gateway --etcd URLS [--address 127.0.0.1:9000] [--domain D] [--repair-interval -1s] [HEALING]
  sherd node    --etcd URLS --data DIR [--address 127.0.0.1:0] [--advertise URL] [--id ID] [--zone Z]
                [--scrub-interval 24h] [--scrub-rate 64] [NODE TLS] [HEALING]
  sherd cluster-ca [--cluster-key-file FILE]   print the cluster CA certificate (PEM)

NODE TLS: the node API is HTTPS by default, with a certificate made at startup for the
host of --advertise (https://…) and signed by the cluster CA, which every process derives
from the cluster key (so gateways, healers and sherdctl trust it with no setup):
  --tls-cert FILE --tls-key FILE   serve this certificate instead (PEM)
  --tls-ca FILE                    also trust these CAs when calling nodes (default $SHERD_TLS_CA)
  --insecure-plaintext             serve plain HTTP (advertise http://): only on a network
                                   nobody else can read or write
  --accept-v1-signatures           during an upgrade only: accept the requests of releases
                                   whose signature is not bound to the node (docs/security.md)

HEALING (a repairer and anti-entropy run in every node and in sherd server; gateways
run none unless --repair-interval is set):
  --repair-interval 10s       pause between passes over the repair queue (negative: none)
  --anti-entropy-interval 1m  pause between anti-entropy rounds
  --repair-rate 128           rebuild read rate, MiB/s
  --orphan-grace 1h           an unreferenced shard is deleted after this long (more than
                              the gateways' --commit-window, default 15m)
  --move-interval 10s         pause between mover passes (drain, remove, rebalance)

METRICS (every process): /_sherd/metrics, /_sherd/health, /_sherd/ready on its port
  --metrics-allow CIDRS       who may scrape, comma-separated CIDRs or addresses
                              (default loopback only; "any": everyone)
  --pprof ADDR                serve Go profiles (/debug/pprof/) on ADDR, e.g. 127.0.0.1:6060,
                              with block and mutex profiling on (default: off)

Environment:
  SHERD_ROOT_USER, SHERD_ROOT_PASSWORD  root credentials: required by gateway; server uses
                                        printed defaults on loopback, else generates them
                                        once into DIR/root-credentials
  SHERD_CLUSTER_KEY                     shared secret of gateways and nodes (required by
                                        gateway and node; server keeps one in DIR/cluster.key)
  SHERD_LOG_LEVEL                       debug | info | warn | error (default info)
  SHERD_METRICS_TOKEN                   when set, a scrape must send
                                        "Authorization: Bearer <token>" as well
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := newLogger()
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(ctx, log, os.Args[2:])
	case "gateway":
		err = runGateway(ctx, log, os.Args[2:])
	case "node":
		err = runNode(ctx, log, os.Args[2:])
	case "cluster-ca":
		err = runClusterCA(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sherd:", err)
		os.Exit(1)
	}
}

func newLogger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(os.Getenv("SHERD_LOG_LEVEL"))); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// commaList splits a comma-separated flag value, dropping empty items.
func commaList(d string) []string {
	var out []string
	for _, s := range strings.Split(d, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func clusterKey() ([]byte, error) {
	k := os.Getenv("SHERD_CLUSTER_KEY")
	if len(k) < 16 {
		return nil, fmt.Errorf("SHERD_CLUSTER_KEY must be set to the same secret (16+ characters) on every gateway and node")
	}
	return []byte(k), nil
}

// metricsFlag declares --metrics-allow; the function it returns reads it
// (and SHERD_METRICS_TOKEN) after fs.Parse.
func metricsFlag(fs *flag.FlagSet) func() (telemetry.Access, error) {
	allow := fs.String("metrics-allow", "", "who may scrape /_sherd/metrics: comma-separated CIDRs or addresses (default loopback; any: everyone)")
	return func() (telemetry.Access, error) {
		prefixes, err := telemetry.ParseAllow(*allow)
		if err != nil {
			return telemetry.Access{}, err
		}
		return telemetry.Access{Allow: prefixes, Token: os.Getenv("SHERD_METRICS_TOKEN")}, nil
	}
}

// protectFlags declares the gateway's protection flags; the function it
// returns reads them after fs.Parse.
func protectFlags(fs *flag.FlagSet) func() (gateway.Limits, int) {
	inflight := fs.Int("max-inflight", 1024, "S3 requests served at once; more are answered 503 SlowDown")
	conns := fs.Int("max-connections", 4096, "open client connections; more wait to be accepted")
	keyRate := fs.Float64("rate-per-key", 0, "requests per second per access key (0: no limit); more are answered 503 SlowDown")
	keyBurst := fs.Int("burst-per-key", 0, "burst of --rate-per-key (default twice the rate)")
	addrRate := fs.Float64("rate-per-address", 0, "requests per second per client IP address (0: no limit)")
	addrBurst := fs.Int("burst-per-address", 0, "burst of --rate-per-address (default twice the rate)")
	loopback := fs.Bool("rate-limit-loopback", false, "apply --rate-per-address to loopback clients too")
	body := fs.Duration("body-timeout", 30*time.Second, "a request body or response that makes no progress for this long ends the request")
	unauth := fs.Int("max-unauthenticated", 64, "unsigned requests with a body (POST forms before their policy is checked) served at once, apart from --max-inflight; more are answered 503 SlowDown")
	unauthAddr := fs.Int("max-unauthenticated-per-address", 8, "of those, from one client IP address (loopback spared unless --rate-limit-loopback)")
	preData := fs.Duration("post-predata-timeout", 10*time.Second, "all the fields of a POST form before its file must arrive within this (400 RequestTimeout)")
	return func() (gateway.Limits, int) {
		burst := func(b int, r float64) int {
			if b > 0 {
				return b
			}
			return max(1, int(2*r))
		}
		return gateway.Limits{MaxInFlight: *inflight, BodyTimeout: *body, LimitLoopback: *loopback,
			MaxUnauthenticated: *unauth, PerAddrUnauthenticated: *unauthAddr, PostPreDataTimeout: *preData,
			PerKey:  gateway.Rate{PerSecond: *keyRate, Burst: burst(*keyBurst, *keyRate)},
			PerAddr: gateway.Rate{PerSecond: *addrRate, Burst: burst(*addrBurst, *addrRate)}}, *conns
	}
}

// tlsFlags declares --tls-cert and --tls-key (and --tls-ca when withCA);
// the function it returns reads them after fs.Parse.
func tlsFlags(fs *flag.FlagSet, withCA bool) func() daemon.TLSFiles {
	cert := fs.String("tls-cert", "", "serve over HTTPS with this certificate (PEM; with --tls-key)")
	key := fs.String("tls-key", "", "the certificate's private key (PEM)")
	ca := new(string)
	if withCA {
		ca = fs.String("tls-ca", os.Getenv("SHERD_TLS_CA"), "CA bundle (PEM) that signed the nodes' certificates, trusted beyond the cluster CA and the system's (default $SHERD_TLS_CA)")
	}
	return func() daemon.TLSFiles { return daemon.TLSFiles{Cert: *cert, Key: *key, CA: *ca} }
}

// gcFlags declares --gc-grace and --pin-after (see
// daemon.GatewayConfig.GCGrace and PinAfter).
func gcFlags(fs *flag.FlagSet) (grace, pinAfter *time.Duration) {
	grace = fs.Duration("gc-grace", 5*time.Minute, "how long released shards (overwritten or deleted data) stay readable before the collector deletes them; give every gateway the same value")
	pinAfter = fs.Duration("pin-after", time.Minute, "a GET running this long pins its segments so no collector deletes them while it reads; at most half of --gc-grace")
	return grace, pinAfter
}

// connect reads the cluster key and opens the metadata store on etcd, its
// calls timed into reg.
func connect(etcdURLs string, reg *prometheus.Registry) (key []byte, store metadata.Store, closeEtcd func() error, err error) {
	if key, err = clusterKey(); err != nil {
		return nil, nil, nil, err
	}
	cli, err := metaetcd.Dial(etcdURLs)
	if err != nil {
		return nil, nil, nil, err
	}
	return key, daemon.NewObservedMetadataStore(cli, reg), cli.Close, nil
}

func runServer(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	data := fs.String("data", "./data", "data directory")
	addr := fs.String("address", "127.0.0.1:9000", "S3 listen address")
	nodes := fs.Int("nodes", 6, "number of storage nodes")
	domain := fs.String("domain", "localhost", "comma-separated base domains for virtual-hosted-style requests")
	locations := fs.String("location-constraints", "", "comma-separated LocationConstraints CreateBucket accepts besides us-east-1 (default: any)")
	etcdAddr := fs.String("etcd-address", "", "also serve the embedded etcd on this TCP address, loopback only (default: none; it serves only the unix socket DATA/run/etcd.sock, mode 0600)")
	heal := healFlags(fs, 10*time.Second)
	grace, pinAfter := gcFlags(fs)
	metrics := metricsFlag(fs)
	protect := protectFlags(fs)
	tlsFiles := tlsFlags(fs, false)
	prof := pprofFlag(fs)
	fs.Parse(args)
	stopProf, err := prof(log)
	if err != nil {
		return err
	}
	defer stopProf()
	limits, maxConns := protect()
	access, err := metrics()
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("server: unexpected argument %q", fs.Arg(0))
	}
	creds, err := serverCredentials(os.Getenv, *addr, *data)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s, err := daemon.StartServer(ctx, daemon.ServerConfig{Data: *data, Addr: *addr, EtcdAddr: *etcdAddr, Nodes: *nodes,
		Credentials: gateway.StaticCredentials{creds.user: creds.pass}, Domains: commaList(*domain), Locations: commaList(*locations), Log: log, Heal: *heal(), MetricsAccess: access,
		Limits: limits, MaxConns: maxConns, TLS: tlsFiles(), GCGrace: *grace, PinAfter: *pinAfter})
	if err != nil {
		return err
	}
	printEndpoint(os.Stdout, s.Gateway.URL, creds)
	fmt.Printf("  embedded etcd: %s (sherdctl --etcd %s, as this user), %d storage nodes under %s\n", s.EtcdURL(), s.EtcdURL(), len(s.Nodes), *data)
	<-ctx.Done()
	log.Info("shutting down")
	return s.Close()
}

func runGateway(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ExitOnError)
	etcdURLs := fs.String("etcd", "", "etcd client URLs, comma-separated")
	addr := fs.String("address", "127.0.0.1:9000", "S3 listen address")
	domain := fs.String("domain", "localhost", "comma-separated base domains for virtual-hosted-style requests")
	locations := fs.String("location-constraints", "", "comma-separated LocationConstraints CreateBucket accepts besides us-east-1 (default: any)")
	claim := fs.Duration("notify-claim", 30*time.Second, "how long a notification being delivered is left to this gateway before others retry it")
	heal := healFlags(fs, -1)
	grace, pinAfter := gcFlags(fs)
	window := fs.Duration("commit-window", 0, "how long after writing a segment its commit may still be sent (default 15m; less than every --orphan-grace)")
	metrics := metricsFlag(fs)
	protect := protectFlags(fs)
	tlsFiles := tlsFlags(fs, true)
	prof := pprofFlag(fs)
	fs.Parse(args)
	stopProf, err := prof(log)
	if err != nil {
		return err
	}
	defer stopProf()
	limits, maxConns := protect()
	access, err := metrics()
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("gateway: unexpected argument %q", fs.Arg(0))
	}
	if *etcdURLs == "" {
		return fmt.Errorf("gateway: --etcd is required")
	}
	creds, err := gatewayCredentials(os.Getenv)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	reg := telemetry.NewRegistry()
	key, store, closeEtcd, err := connect(*etcdURLs, reg)
	if err != nil {
		return err
	}
	defer closeEtcd()
	g, err := daemon.StartGateway(ctx, daemon.GatewayConfig{Addr: *addr, Key: key, Store: store,
		Credentials: gateway.StaticCredentials{creds.user: creds.pass}, Domains: commaList(*domain), Locations: commaList(*locations), Log: log, NotifyClaim: *claim,
		Heal: heal(), CommitWindow: *window, GCGrace: *grace, PinAfter: *pinAfter, Metrics: reg, MetricsAccess: access, Limits: limits, MaxConns: maxConns, TLS: tlsFiles()})
	if err != nil {
		return err
	}
	printEndpoint(os.Stdout, g.URL, creds)
	<-ctx.Done()
	return g.Close()
}

func runNode(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	etcdURLs := fs.String("etcd", "", "etcd client URLs, comma-separated")
	data := fs.String("data", "", "data directory")
	addr := fs.String("address", "127.0.0.1:0", "listen address")
	advert := fs.String("advertise", "", "base URL gateways use (default https://<listen address>; http:// with --insecure-plaintext)")
	id := fs.String("id", "", "node id (default: generated once and kept in the data directory)")
	zone := fs.String("zone", "", "failure domain")
	scrubEvery := fs.Duration("scrub-interval", 24*time.Hour, "pause between scrub passes (negative: no scrubber)")
	scrubRate := fs.Float64("scrub-rate", 64, "scrub read rate, MiB/s")
	reserveMiB := fs.Int64("reserve", 0, "free space to keep on the disk, MiB: below it the node takes no new shard (default 2% of the disk, at most 1 GiB; negative: none)")
	heal := healFlags(fs, 10*time.Second)
	metrics := metricsFlag(fs)
	tlsFiles := tlsFlags(fs, true)
	plaintext := fs.Bool("insecure-plaintext", false, "serve the node API over plain HTTP, not HTTPS (only on a network nobody else can read or write)")
	acceptV1 := fs.Bool("accept-v1-signatures", false, "during a rolling upgrade only: accept requests signed by releases before the version 2 signature")
	prof := pprofFlag(fs)
	fs.Parse(args)
	stopProf, err := prof(log)
	if err != nil {
		return err
	}
	defer stopProf()
	if fs.NArg() > 0 {
		return fmt.Errorf("node: unexpected argument %q", fs.Arg(0))
	}
	access, err := metrics()
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if *etcdURLs == "" || *data == "" {
		return fmt.Errorf("node: --etcd and --data are required")
	}
	reg := telemetry.NewRegistry()
	key, store, closeEtcd, err := connect(*etcdURLs, reg)
	if err != nil {
		return err
	}
	defer closeEtcd()
	n, err := daemon.StartNode(ctx, daemon.NodeConfig{ID: *id, Dir: *data, Addr: *addr, Advert: *advert, Zone: *zone,
		Key: key, Store: store, Log: log, ScrubInterval: *scrubEvery, ScrubRate: *scrubRate * (1 << 20), Reserve: *reserveMiB << 20, Heal: heal(),
		Metrics: reg, MetricsAccess: access, TLS: tlsFiles(), Plaintext: *plaintext, AcceptV1Signatures: *acceptV1})
	if err != nil {
		return err
	}
	fmt.Printf("Sherd storage node %s at %s\n", n.ID, n.URL)
	<-ctx.Done()
	return n.Close()
}

// runClusterCA prints the cluster CA certificate (PEM) of the cluster key
// in the file given or SHERD_CLUSTER_KEY: what a client of the nodes'
// ports other than Sherd's own (Prometheus) must trust.
func runClusterCA(args []string) error {
	fs := flag.NewFlagSet("cluster-ca", flag.ExitOnError)
	keyFile := fs.String("cluster-key-file", "", "file holding the cluster key (sherd server: DATA/cluster.key; default: SHERD_CLUSTER_KEY)")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("cluster-ca: unexpected argument %q", fs.Arg(0))
	}
	var key []byte
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("cluster-ca: %w", err)
		}
		key = []byte(strings.TrimSpace(string(b)))
	} else {
		k, err := clusterKey()
		if err != nil {
			return fmt.Errorf("cluster-ca: %w", err)
		}
		key = k
	}
	ca, err := clustertls.DeriveCA(key)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(ca.PEM())
	return err
}

// healFlags declares the healing flags (see usage) on fs; the function it
// returns reads them after fs.Parse.
func healFlags(fs *flag.FlagSet, interval time.Duration) func() *daemon.HealConfig {
	every := fs.Duration("repair-interval", interval, "pause between passes over the repair queue (negative: no repairer or anti-entropy here)")
	ae := fs.Duration("anti-entropy-interval", time.Minute, "pause between anti-entropy rounds")
	rate := fs.Float64("repair-rate", 128, "rebuild read rate, MiB/s")
	grace := fs.Duration("orphan-grace", 0, "delete a shard no segment record refers to after this long (default 1h)")
	move := fs.Duration("move-interval", 10*time.Second, "pause between mover passes while a node drains or a rebalance is requested")
	return func() *daemon.HealConfig {
		return &daemon.HealConfig{Interval: *every, AntiEntropyInterval: *ae, Rate: *rate * (1 << 20), Grace: *grace, MoveInterval: *move}
	}
}
