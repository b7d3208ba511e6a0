package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sherdstore/sherd/gateway"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
)

func startTestServer(t *testing.T, dir string, opt func(*ServerConfig)) (*Server, error) {
	t.Helper()
	c := ServerConfig{Data: dir, Addr: "127.0.0.1:0", Nodes: 2, Credentials: gateway.StaticCredentials{"admin": "admin-secret"}}
	c.Heal.Interval = -1
	if opt != nil {
		opt(&c)
	}
	s, err := StartServer(context.Background(), c)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// listeningTCP returns the addresses this process listens on over TCP
// (/proc/net/tcp{,6} rows in LISTEN whose socket is one of its fds).
func listeningTCP(t *testing.T) []string {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var addrs []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || fl[3] != "0A" || !mine[fl[9]] { // 0A: LISTEN
				continue
			}
			hostHex, portHex, _ := strings.Cut(fl[1], ":")
			port, _ := strconv.ParseUint(portHex, 16, 16)
			host := "127.0.0.1"
			if len(hostHex) == 32 {
				host = "::1"
			}
			addrs = append(addrs, net.JoinHostPort(host, strconv.Itoa(int(port))))
		}
		f.Close()
	}
	return addrs
}

// servesEtcd reports whether addr answers as etcd: its HTTP /version
// (served on client and peer ports) or its gRPC KV API.
func servesEtcd(addr string) bool {
	hc := &http.Client{Timeout: 2 * time.Second}
	if resp, err := hc.Get("http://" + addr + "/version"); err == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if strings.Contains(string(b), "etcdserver") {
			return true
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + addr}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return false
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = cli.Get(ctx, "/probe")
	return err == nil
}

// etcdPorts probes every TCP port this process listens on, at once.
func etcdPorts(t *testing.T) (all, etcd []string) {
	all = listeningTCP(t)
	found := make([]bool, len(all))
	var wg sync.WaitGroup
	for i, a := range all {
		wg.Go(func() { found[i] = servesEtcd(a) })
	}
	wg.Wait()
	for i, a := range all {
		if found[i] {
			etcd = append(etcd, a)
		}
	}
	return all, etcd
}

// The embedded etcd of sherd server listens on no TCP port (client or
// peer) by default, only on a unix socket of mode 0600 in a directory of
// mode 0700; sherdctl's client reaches it there.
func TestServerEtcdOnlyOnPrivateSocket(t *testing.T) {
	dir := t.TempDir()
	s, err := startTestServer(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	all, etcd := etcdPorts(t)
	if len(etcd) > 0 {
		t.Fatalf("etcd answers on TCP %v (of the process's listeners %v)", etcd, all)
	}
	if len(all) == 0 {
		t.Fatal("found no TCP listener at all (the gateway's and nodes' are expected): the probe is broken")
	}
	sock := EtcdSocket(dir)
	if want := "unix://" + sock; s.EtcdURL() != want {
		t.Fatalf("EtcdURL %q, want %q", s.EtcdURL(), want)
	}
	st, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, want a socket of mode 0600", sock, st.Mode())
	}
	if st, err := os.Stat(filepath.Dir(sock)); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v, want mode 0700", filepath.Dir(sock), st.Mode(), err)
	}
	cli, err := metaetcd.Dial(s.EtcdURL()) // sherdctl's way in
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/probe", "1"); err != nil {
		t.Fatalf("over the socket: %v", err)
	}
}

// A client address the operator asks for is served if loopback (the probe
// above finds it: it does detect etcd) and refused at startup otherwise.
func TestServerEtcdAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := startTestServer(t, t.TempDir(), func(c *ServerConfig) { c.EtcdAddr = addr }); err != nil {
		t.Fatal(err)
	}
	if _, etcd := etcdPorts(t); len(etcd) != 1 || etcd[0] != addr {
		t.Fatalf("etcd on %v, want only on %s", etcd, addr)
	}
	for _, bad := range []string{"0.0.0.0:2379", ":2379", "[::]:2379", "192.0.2.7:2379", "etcd.example.com:2379"} {
		dir := t.TempDir()
		_, err := startTestServer(t, dir, func(c *ServerConfig) { c.EtcdAddr = bad })
		if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
			t.Fatalf("--etcd-address %s: %v, want refused as not loopback", bad, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "etcd")); !os.IsNotExist(err) {
			t.Fatalf("--etcd-address %s: etcd was started before the refusal (%v)", bad, err)
		}
	}
}

// sherd server runs the orphan sweep and the gateway in one process: a
// commit window not shorter than the orphan grace is refused at startup.
func TestServerCommitWindowBelowOrphanGrace(t *testing.T) {
	for _, tc := range []struct {
		window, grace time.Duration
		ok            bool
	}{
		{0, 0, true}, // 15m < 1h
		{time.Hour, 0, false},
		{0, 10 * time.Minute, false},
		{time.Minute, time.Minute, false},
		{time.Minute, 2 * time.Minute, true},
	} {
		t.Run(fmt.Sprintf("window=%v,grace=%v", tc.window, tc.grace), func(t *testing.T) {
			dir := t.TempDir()
			_, err := startTestServer(t, dir, func(c *ServerConfig) {
				c.CommitWindow, c.Heal.Grace, c.Heal.Interval, c.Heal.AntiEntropyInterval = tc.window, tc.grace, time.Hour, time.Hour
			})
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "must be shorter than --orphan-grace") {
					t.Fatalf("%v, want refused: commit window must be shorter than the orphan grace", err)
				}
				if _, err := os.Stat(filepath.Join(dir, "etcd")); !os.IsNotExist(err) {
					t.Fatalf("etcd was started before the refusal (%v)", err)
				}
			}
		})
	}
}

// A start that fails half-way (here: the gateway's port is taken) returns
// its error, and stops what it started: etcd's socket is gone and the data
// directory starts again.
func TestServerStartFailureCleansUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	if _, err := startTestServer(t, dir, func(c *ServerConfig) { c.Addr = l.Addr().String() }); err == nil {
		t.Fatal("started on a taken port")
	}
	if _, err := os.Stat(EtcdSocket(dir)); !os.IsNotExist(err) {
		t.Fatalf("etcd's socket after the failed start: %v", err)
	}
	if _, err := startTestServer(t, dir, nil); err != nil {
		t.Fatalf("restart on the same data directory: %v", err)
	}
}

// TestGCGraceCoversPins: a grace a long GET's pin could miss is refused.
func TestGCGraceCoversPins(t *testing.T) {
	for _, tc := range []struct {
		grace, pin time.Duration
		ok         bool
	}{
		{5 * time.Minute, time.Minute, true},
		{2 * time.Minute, time.Minute, true},
		{90 * time.Second, time.Minute, false},
		{time.Second, time.Minute, false},
		{-time.Second, time.Second, false},
	} {
		if err := checkGCGrace(tc.grace, tc.pin); (err == nil) != tc.ok {
			t.Errorf("grace %s, pin after %s: %v", tc.grace, tc.pin, err)
		}
	}
}
