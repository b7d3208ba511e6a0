package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// faultLab is a multi-host Sherd cluster in network namespaces: 3 etcd
// members, 8 storage nodes and 2 gateways, each in a namespace of its
// own, and nginx in front of the gateways as the load balancer. Node 4's
// data directory is a small tmpfs (the disk that fills up); node 8 is
// reached through a delay proxy (the slow link).
type faultLab struct {
	t   *testing.T
	lab *netLab
	dir string
	bin string
	env []string

	etcdBin   string // etcdBinary
	etcdHosts []*netHost
	etcdArgs  [][]string
	etcd      []*process
	endpoints []string

	nodeHosts []*netHost
	nodeArgs  [][]string
	nodes     []*process
	nodeDirs  []string

	gwHosts []*netHost
	gwArgs  [][]string
	gws     []*process

	lb    string // http://ip:port of nginx
	slow  *delayProxy
	small string // the tmpfs data directory
}

const (
	labNodes   = 8
	smallNode  = 3 // index: its disk fills up
	slowNode   = 7 // index: its link gets slow
	smallBytes = 2 << 30
)

func (f *faultLab) spawnEtcd(i int) {
	f.etcd[i] = f.lab.spawnIn(f.etcdHosts[i], nil, f.etcdBin, f.etcdArgs[i]...)
}

func (f *faultLab) spawnNode(i int) {
	f.nodes[i] = f.lab.spawnIn(f.nodeHosts[i], f.env, f.bin, f.nodeArgs[i]...)
	f.nodes[i].waitLine(f.t, "Sherd storage node")
}

func (f *faultLab) spawnGateway(i int) {
	f.gws[i] = f.lab.spawnIn(f.gwHosts[i], f.env, f.bin, f.gwArgs[i]...)
	f.gws[i].waitLine(f.t, "Sherd S3 endpoint")
}

func startFaultLab(t *testing.T) *faultLab {
	t.Helper()
	f := &faultLab{t: t, lab: newNetLab(t), dir: t.TempDir(), etcdBin: etcdBinary(t)}
	f.bin = buildSherd(t, f.dir)
	f.env = []string{"SHERD_CLUSTER_KEY=fault-lab-cluster-key", "SHERD_ROOT_USER=" + rootUser, "SHERD_ROOT_PASSWORD=" + rootPass}

	var initial []string
	for i := range 3 {
		h := f.lab.addHost(fmt.Sprintf("etcd%d", i))
		f.etcdHosts = append(f.etcdHosts, h)
		f.endpoints = append(f.endpoints, "http://"+h.ip+":2379")
		initial = append(initial, fmt.Sprintf("e%d=http://%s:2380", i, h.ip))
	}
	f.etcd = make([]*process, 3)
	for i, h := range f.etcdHosts {
		f.etcdArgs = append(f.etcdArgs, []string{"--name", fmt.Sprintf("e%d", i), "--data-dir", filepath.Join(f.dir, fmt.Sprintf("etcd%d", i)),
			"--listen-client-urls", f.endpoints[i], "--advertise-client-urls", f.endpoints[i],
			"--listen-peer-urls", "http://" + h.ip + ":2380", "--initial-advertise-peer-urls", "http://" + h.ip + ":2380",
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new"})
		f.spawnEtcd(i)
	}
	cli := f.etcdClient()
	waitFor(t, "etcd cluster up", 60*time.Second, func() bool {
		_, err := cli.Put(ctx, "/up", "1")
		return err == nil
	})
	etcdURL := strings.Join(f.endpoints, ",")

	f.nodes = make([]*process, labNodes)
	for i := range labNodes {
		h := f.lab.addHost(fmt.Sprintf("node%d", i+1))
		f.nodeHosts = append(f.nodeHosts, h)
		dir := filepath.Join(f.dir, fmt.Sprintf("n%d", i+1))
		noErr(t, os.MkdirAll(dir, 0o755))
		if i == smallNode {
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", smallBytes), labMountSource(f.lab.id), dir).CombinedOutput(); err != nil {
				t.Fatalf("mount tmpfs: %v\n%s", err, out)
			}
			f.small = dir
			t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
		}
		f.nodeDirs = append(f.nodeDirs, dir)
		args := []string{"node", "--etcd", etcdURL, "--data", dir, "--id", fmt.Sprintf("node-%d", i+1), "--address", h.ip + ":9100",
			"--scrub-interval=-1s", "--repair-interval", "2s", "--anti-entropy-interval", "20s"}
		if i == slowNode {
			f.slow = startDelayProxy(t, f.lab.rootIP()+":0", h.ip+":9100")
			args = append(args, "--advertise", "https://"+f.slow.ln.Addr().String())
		}
		f.nodeArgs = append(f.nodeArgs, args)
		f.spawnNode(i)
	}

	f.gws = make([]*process, 2)
	var upstreams []string
	for i := range 2 {
		h := f.lab.addHost(fmt.Sprintf("gw%d", i+1))
		f.gwHosts = append(f.gwHosts, h)
		f.gwArgs = append(f.gwArgs, []string{"gateway", "--etcd", etcdURL, "--address", h.ip + ":9000"})
		f.spawnGateway(i)
		upstreams = append(upstreams, h.ip+":9000")
	}
	f.lb = "http://" + startLoadBalancer(t, f.dir, f.lab.rootIP(), upstreams)
	return f
}

func (f *faultLab) etcdClient() *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: f.endpoints, DialTimeout: 2 * time.Second})
	noErr(f.t, err)
	f.t.Cleanup(func() { cli.Close() })
	return cli
}

// startLoadBalancer runs nginx on listenIP, round robin over the gateways:
// request bodies streamed (not buffered), a gateway that fails is left
// out for 5 s, idempotent requests go to the other one on a connection
// failure (nginx's defaults); it returns nginx's address.
func startLoadBalancer(t *testing.T, dir, listenIP string, upstreams []string) string {
	t.Helper()
	l, err := net.Listen("tcp", listenIP+":0")
	noErr(t, err)
	addr := l.Addr().String()
	l.Close()
	work := filepath.Join(dir, "nginx")
	noErr(t, os.MkdirAll(work, 0o755))
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "\t\tserver %s max_fails=1 fail_timeout=5s;\n", u)
	}
	conf := fmt.Sprintf(`user root;
daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream gateways {
%[2]s		keepalive 32;
	}
	server {
		listen %[3]s;
		client_max_body_size 0;
		proxy_request_buffering off;
		proxy_buffering off;
		proxy_http_version 1.1;
		proxy_set_header Connection "";
		proxy_set_header Host $http_host;
		proxy_connect_timeout 2s;
		proxy_read_timeout 120s;
		proxy_send_timeout 120s;
		location / { proxy_pass http://gateways; }
	}
}
`, work, servers.String(), addr)
	noErr(t, os.WriteFile(filepath.Join(work, "nginx.conf"), []byte(conf), 0o644))
	nginx := "nginx"
	if _, err := exec.LookPath(nginx); err != nil {
		nginx = "/usr/sbin/nginx"
	}
	p := spawn(t, nil, nginx, "-c", filepath.Join(work, "nginx.conf"), "-e", filepath.Join(work, "error.log"))
	waitFor(t, "nginx listening", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	_ = p
	return addr
}

// s3Client is an SDK client for endpoint without the SDK's own retries
// (the checker counts and retries each attempt itself).
func s3Client(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(rootUser, rootPass, ""),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: time.Minute}},
	})
}

// clusterHealth is what `sherdctl status --json` says of the repair backlog.
type clusterHealth struct {
	Live     int `json:"live"`
	Segments int `json:"segments"`
	ByHealth []struct {
		Healthy  int `json:"healthy"`
		N        int `json:"n"`
		Segments int `json:"segments"`
	} `json:"segments_by_healthy_shards"`
	Queues map[string]struct {
		Total int `json:"total"`
	} `json:"queues"`
}

// degraded is the number of segments with fewer healthy shards than n.
func (h clusterHealth) degraded() int {
	d := 0
	for _, c := range h.ByHealth {
		if c.Healthy < c.N {
			d += c.Segments
		}
	}
	return d
}

func (h clusterHealth) String() string {
	return fmt.Sprintf("%d queued, %d of %d segments degraded", h.Queues["repair"].Total, h.degraded(), h.Segments)
}

func (f *faultLab) health() (clusterHealth, error) {
	var h clusterHealth
	cmd := exec.Command(filepath.Join(f.dir, "sherdctl"), "status", "--json", "--etcd", strings.Join(f.endpoints, ","))
	cmd.Env = append(os.Environ(), f.env...)
	out, err := cmd.Output()
	if err != nil {
		return h, fmt.Errorf("sherdctl status: %w", err)
	}
	return h, json.Unmarshal(out, &h)
}

// etcdLeader is the index of the current etcd leader.
func (f *faultLab) etcdLeader(cli *clientv3.Client) int {
	for i, ep := range f.endpoints {
		st, err := cli.Status(ctx, ep)
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	f.t.Fatal("no etcd leader")
	return -1
}

// fillDisk fills a file system to the last block and returns the undo.
func fillDisk(t *testing.T, dir string) func() {
	t.Helper()
	path := filepath.Join(dir, "filler")
	fh, err := os.Create(path)
	noErr(t, err)
	// Allocate in chunks, halving on ENOSPC down to a page, then write
	// pages until the last block is taken.
	off := int64(0)
	for chunk := int64(64 << 20); chunk >= 4096; {
		if err := syscall.Fallocate(int(fh.Fd()), 0, off, chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			chunk /= 2
			continue
		}
		off += chunk
	}
	if _, err := fh.Seek(0, 2); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := fh.Write(make([]byte, 4096)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	fh.Close()
	if err := os.WriteFile(filepath.Join(dir, "probe"), []byte("x"), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("disk not full: writing a byte gave %v", err)
	}
	return func() { noErr(t, os.Remove(path)); os.Remove(filepath.Join(dir, "probe")) }
}

// faultResult is one row of the results table.
type faultResult struct {
	name    string
	st      *checkStats
	after   clusterHealth
	healed  time.Duration // until no repair queued and no segment degraded
	healErr error
}

func (r faultResult) row() string {
	st := r.st
	healed := r.healed.Round(time.Second).String()
	if r.healErr != nil {
		healed = "not within 3m"
	}
	return fmt.Sprintf("| %s | %d | %s | %s | %s / %s | %s / %s | %d | %d | %s | %s |\n", r.name,
		st.total(st.ops), byKey(st.attempts), byKey(st.failed),
		st.quantile(0.99, "put", "multipart", "delete").Round(time.Millisecond), st.quantile(1, "put", "multipart", "delete").Round(time.Millisecond),
		st.quantile(0.99, "get").Round(time.Millisecond), st.quantile(1, "get").Round(time.Millisecond),
		st.wrong, st.readFailures, r.after, healed)
}

const faultTableHeader = "| scenario | acknowledged ops | failed attempts (retried) | failed ops | write p99 / max | read p99 / max | wrong reads | failed reads | repair backlog at the end | healthy again after |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"

// TestFaults runs the checker's load against the multi-host lab while,
// one at a time, the faults of a real deployment happen; each must end
// with no acknowledged write lost, no wrong bytes and no failed read of
// acknowledged data (at most 2 nodes are ever out). `make faults` runs it
// (root, iproute2, nginx; etcd is built from its module: etcdBinary);
// SHERD_FAULTS_SHORT=1 shortens the faults for CI; FAULTS_REPORT=file
// writes the results table there.
func TestFaults(t *testing.T) {
	if os.Getenv("SHERD_FAULTS") == "" {
		t.Skip("make faults runs it (SHERD_FAULTS=1; needs root, iproute2, nginx)")
	}
	if why := netLabReady(); why != "" {
		t.Fatal(why)
	}
	hold, after := 30*time.Second, 10*time.Second
	if os.Getenv("SHERD_FAULTS_SHORT") != "" {
		hold, after = 12*time.Second, 5*time.Second
	}
	f := startFaultLab(t)
	cli := f.etcdClient()
	lb := s3Client(f.lb)
	_, err := lb.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("faults")})
	noErr(t, err)
	ck := startChecker(t, lb, "faults", 6, 16)
	waitFor(t, "load running", time.Minute, func() bool { return ck.ops.Load() >= 100 })

	var results []faultResult
	// pause waits out a fault's duration while the load runs.
	pause := func(d time.Duration) { <-time.After(d) }
	run := func(name string, inject func() (heal func())) {
		t.Logf("scenario: %s", name)
		ck.window()
		heal := inject()
		pause(hold)
		heal()
		pause(after)
		r := faultResult{name: name, st: ck.window()}
		r.after, err = f.health()
		noErr(t, err)
		start := time.Now()
		r.healErr = pollUntil(3*time.Minute, func() bool {
			h, err := f.health()
			return err == nil && h.Live == labNodes && h.Queues["repair"].Total == 0 && h.degraded() == 0
		})
		r.healed = time.Since(start)
		t.Logf("%s", r.row())
		for _, n := range r.st.notes {
			t.Logf("  %s", n)
		}
		if r.st.wrong > 0 || r.st.readFailures > 0 {
			t.Errorf("%s: %d wrong reads, %d failed reads of acknowledged data", name, r.st.wrong, r.st.readFailures)
		}
		results = append(results, r)
	}

	run("baseline (no fault)", func() func() { return func() {} })
	run(fmt.Sprintf("2 nodes SIGKILLed, restarted after %s", hold), func() func() {
		f.nodes[1].kill()
		f.nodes[4].kill()
		return func() { f.spawnNode(1); f.spawnNode(4) }
	})
	run(fmt.Sprintf("a node partitioned for %s", hold), func() func() {
		f.lab.partition(f.nodeHosts[2], true)
		return func() { f.lab.partition(f.nodeHosts[2], false) }
	})
	run(fmt.Sprintf("etcd leader SIGKILLed, restarted after %s", hold), func() func() {
		i := f.etcdLeader(cli)
		f.etcd[i].kill()
		return func() { f.spawnEtcd(i) }
	})
	run(fmt.Sprintf("a gateway SIGKILLed mid-upload, restarted after %s", hold), func() func() {
		waitFor(t, "a multipart upload in flight", time.Minute, func() bool { return ck.multipartInFlight.Load() > 0 })
		f.gws[0].kill()
		return func() { f.spawnGateway(0) }
	})
	run(fmt.Sprintf("a node's disk full (ENOSPC) for %s", hold), func() func() {
		undo := fillDisk(t, f.small)
		return func() {
			// The node must have refused shards (so the scenario tested
			// something), and the cluster placed them elsewhere.
			if refused := strings.Count(f.nodes[smallNode].out.String(), "disk full: shard refused"); refused == 0 {
				t.Errorf("the full node refused no shard")
			} else {
				t.Logf("the full node refused %d shards", refused)
			}
			undo()
		}
	})
	run(fmt.Sprintf("a node's link +200 ms RTT for %s", hold), func() func() {
		f.slow.setRTT(200 * time.Millisecond)
		return func() { f.slow.setRTT(0) }
	})

	ck.stop()
	final := faultResult{name: "final read of every key (LB, gateway 1, gateway 2) and listing",
		st: ck.verify(lb, s3Client("http://"+f.gwHosts[0].ip+":9000"), s3Client("http://"+f.gwHosts[1].ip+":9000"))}
	final.after, _ = f.health()
	if final.st.wrong > 0 || final.st.readFailures > 0 || final.st.total(final.st.failed) > 0 {
		t.Errorf("final verification: %d wrong, %d failed reads, failures %s: %v", final.st.wrong, final.st.readFailures, byKey(final.st.failed), final.st.notes)
	}
	results = append(results, final)

	var table strings.Builder
	table.WriteString(faultTableHeader)
	for _, r := range results {
		table.WriteString(r.row())
	}
	t.Logf("results (%d workers over %d keys, objects 0 B-4 MiB and 5 MiB+ multipart):\n%s", 6, 6*16, table.String())
	if path := os.Getenv("FAULTS_REPORT"); path != "" {
		noErr(t, os.WriteFile(path, []byte(table.String()), 0o644))
	}
}

// pollUntil polls cond until it holds (nil) or d passes (an error).
func pollUntil(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil
}
