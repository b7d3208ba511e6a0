package test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// netLab is a test network made of Linux network namespaces: a bridge in
// the root namespace (holding the lab's first address, where the test's
// own clients, nginx and the delay proxies live) and one namespace per
// host, each joined to the bridge by a veth pair, all in one private /24.
// Taking a host's link down partitions it (both directions, no resets: its
// peers see silence, as with a pulled cable). Everything it made is removed
// when the test ends. Needs root and iproute2.
type netLab struct {
	t      *testing.T
	id     string // unique per lab: names of namespaces and links
	prefix string // "10.a.b."
	bridge string
	hosts  []*netHost
}

// netHost is one namespace of a netLab.
type netHost struct {
	name string // the test's name for it
	ns   string // the namespace
	ip   string
	veth string // the bridge side of its link (root namespace)
}

// netLabReady reports why a netLab cannot be made here, or "".
func netLabReady() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces)"
	}
	for _, bin := range []string{"ip", "nginx"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err := os.Stat("/usr/sbin/" + bin); err != nil {
				return bin + " not installed (apt-get install iproute2 nginx-light; .ci/run does)"
			}
		}
	}
	if _, err := etcdBinaryPath(); err != nil {
		return err.Error()
	}
	return ""
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// netLabRun holds a file per lab, named by its id, holding the pid of the
// test that made it: a lab whose test died (killed before its cleanup)
// is removed by the next one.
const netLabRun = "/run/sherd-netlab"

// removeStaleLabs deletes the namespaces, bridge and mounts of labs whose
// test process is gone.
func removeStaleLabs() {
	ents, _ := os.ReadDir(netLabRun)
	for _, e := range ents {
		id := e.Name()
		b, _ := os.ReadFile(filepath.Join(netLabRun, id))
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && syscall.Kill(pid, 0) == nil {
			continue // alive
		}
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "shf"+id+"-") {
				exec.Command("ip", "netns", "del", f[0]).Run()
			}
		}
		exec.Command("ip", "link", "del", "shf"+id+"br").Run()
		if mounts, err := os.ReadFile("/proc/mounts"); err == nil {
			for _, line := range strings.Split(string(mounts), "\n") {
				if f := strings.Fields(line); len(f) > 1 && f[0] == labMountSource(id) {
					exec.Command("umount", "-l", f[1]).Run()
				}
			}
		}
		os.Remove(filepath.Join(netLabRun, id))
	}
}

// labMountSource names the file systems a lab mounts (tmpfs volumes), so
// that a stale lab's can be found.
func labMountSource(id string) string { return "sherd-lab-" + id }

func newNetLab(t *testing.T) *netLab {
	t.Helper()
	removeStaleLabs()
	var b [3]byte
	rand.Read(b[:])
	l := &netLab{t: t, id: hex.EncodeToString(b[:2]), prefix: fmt.Sprintf("10.%d.%d.", 200+int(b[2])%50, b[1])}
	noErr(t, os.MkdirAll(netLabRun, 0o755))
	marker := filepath.Join(netLabRun, l.id)
	noErr(t, os.WriteFile(marker, []byte(strconv.Itoa(os.Getpid())), 0o644))
	t.Cleanup(func() { os.Remove(marker) })
	l.bridge = "shf" + l.id + "br"
	ipCmd(t, "link", "add", l.bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", l.bridge).Run() })
	ipCmd(t, "addr", "add", l.prefix+"1/24", "dev", l.bridge)
	ipCmd(t, "link", "set", l.bridge, "up")
	return l
}

// rootIP is the lab's address in the root namespace (the bridge's).
func (l *netLab) rootIP() string { return l.prefix + "1" }

// addHost makes a namespace joined to the bridge.
func (l *netLab) addHost(name string) *netHost {
	t := l.t
	t.Helper()
	n := len(l.hosts) + 1
	h := &netHost{name: name, ns: fmt.Sprintf("shf%s-%s", l.id, name), ip: fmt.Sprintf("%s%d", l.prefix, 10+n),
		veth: fmt.Sprintf("shf%sh%d", l.id, n)}
	inner := fmt.Sprintf("shf%sn%d", l.id, n)
	ipCmd(t, "netns", "add", h.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", h.ns).Run() }) // removes the veth pair too
	ipCmd(t, "link", "add", h.veth, "type", "veth", "peer", "name", inner)
	ipCmd(t, "link", "set", inner, "netns", h.ns)
	ipCmd(t, "link", "set", h.veth, "master", l.bridge)
	ipCmd(t, "link", "set", h.veth, "up")
	ipCmd(t, "-n", h.ns, "addr", "add", h.ip+"/24", "dev", inner)
	ipCmd(t, "-n", h.ns, "link", "set", inner, "up")
	ipCmd(t, "-n", h.ns, "link", "set", "lo", "up")
	l.hosts = append(l.hosts, h)
	return h
}

// partition cuts (or restores) a host's link to the bridge.
func (l *netLab) partition(h *netHost, cut bool) {
	state := "up"
	if cut {
		state = "down"
	}
	ipCmd(l.t, "link", "set", h.veth, state)
}

// spawnIn starts a process in a host's namespace (`ip netns exec` execs
// the command: the process is the command itself, for signals).
func (l *netLab) spawnIn(h *netHost, env []string, name string, args ...string) *process {
	l.t.Helper()
	return spawn(l.t, env, "ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
}

// delayProxy forwards TCP connections to a target, holding every chunk of
// data for a settable one-way delay in each direction: the added latency
// of a slow link (this kernel has no netem), in order, at full bandwidth
// once the pipe is full. Close stops it and its connections and waits.
type delayProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // one way, in nanoseconds
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func startDelayProxy(t *testing.T, listen, target string) *delayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// setRTT sets the added round-trip time (half each way).
func (p *delayProxy) setRTT(d time.Duration) { p.delay.Store(int64(d / 2)) }

func (p *delayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *delayProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *delayProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(in)
			out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil || !p.track(out) {
				return
			}
			defer p.untrack(out)
			var pipes sync.WaitGroup
			pipes.Add(2)
			go func() { defer pipes.Done(); p.pipe(out, in) }()
			go func() { defer pipes.Done(); p.pipe(in, out) }()
			pipes.Wait()
		}()
	}
}

type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each chunk delayed; on either side's end it
// half-closes dst (or closes both on error).
func (p *delayProxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 64)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now().Add(time.Duration(p.delay.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	for c := range q {
		if failed {
			continue // drain until the reader sees the close
		}
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			failed = true
			dst.Close()
			src.Close()
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok && !failed {
		tc.CloseWrite()
	}
}

func (p *delayProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
