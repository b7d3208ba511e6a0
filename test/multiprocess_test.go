package test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// buildSherd builds cmd/sherd and cmd/sherdctl into dir.
func buildSherd(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "sherd")
	out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/sherdstore/sherd/cmd/sherd", "github.com/sherdstore/sherd/cmd/sherdctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a child process that dies with the test (and with the test
// binary: Pdeathsig).
type process struct {
	cmd  *exec.Cmd
	out  *lockedBuffer // stderr
	line chan string
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func spawn(t *testing.T, env []string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, _ := cmd.StdoutPipe()
	p := &process{cmd: cmd, out: &lockedBuffer{}, line: make(chan string, 100)}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case p.line <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *process) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// waitLine waits for an output line starting with prefix.
func (p *process) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l := <-p.line:
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("no %q from %s; stderr:\n%s", prefix, p.cmd.Path, p.out)
		}
	}
}

// cluster is a multi-process cluster: etcd (etcdBinary) and 6 `sherd node`
// processes; startGateway adds `sherd gateway` processes.
type cluster struct {
	etcdURL  string
	env      []string
	bin      string
	nodes    []*process
	nodeArgs [][]string // the arguments each node was started with
}

// restartNode starts node i again with its arguments (after kill).
func (c *cluster) restartNode(t *testing.T, i int) {
	t.Helper()
	c.nodes[i] = spawn(t, c.env, c.bin, c.nodeArgs[i]...)
	c.nodes[i].waitLine(t, "Sherd storage node")
}

func (c *cluster) startGateway(t *testing.T, args ...string) (*process, string) {
	t.Helper()
	addr := freePort(t)
	g := spawn(t, c.env, c.bin, append([]string{"gateway", "--etcd", c.etcdURL, "--address", addr}, args...)...)
	g.waitLine(t, "Sherd S3 endpoint")
	return g, "http://" + addr
}

// startCluster starts etcd and 6 nodes, each with nodeFlags added.
func startCluster(t *testing.T, nodeFlags ...string) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and spawns processes")
	}
	etcdBin := etcdBinary(t)
	dir := t.TempDir()
	bin := buildSherd(t, dir)
	client, peer := freePort(t), freePort(t)
	etcd := spawn(t, nil, etcdBin, "--name", "e1", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "e1=http://"+peer)
	_ = etcd
	etcdURL := "http://" + client
	env := []string{"SHERD_CLUSTER_KEY=multi-process-cluster-key", "SHERD_ROOT_USER=" + rootUser, "SHERD_ROOT_PASSWORD=" + rootPass}
	c := &cluster{etcdURL: etcdURL, env: env, bin: bin}
	for i := range 6 {
		args := append([]string{"node", "--etcd", etcdURL, "--data", filepath.Join(dir, fmt.Sprintf("n%d", i)), "--id", fmt.Sprintf("node-%d", i+1)}, nodeFlags...)
		n := spawn(t, env, bin, args...)
		n.waitLine(t, "Sherd storage node")
		c.nodes = append(c.nodes, n)
		c.nodeArgs = append(c.nodeArgs, args)
	}
	return c
}

// TestMultiProcess runs a real cluster: etcd (etcdBinary), 6 `sherd node`
// processes and `sherd gateway` processes, all separate OS processes.
func TestMultiProcess(t *testing.T) {
	cl := startCluster(t)
	nodes := cl.nodes
	gw1, url1 := cl.startGateway(t)
	_, url2 := cl.startGateway(t)
	c1, c2 := minioClient(t, url1, false), minioClient(t, url2, false)
	if err := c1.MakeBucket(ctx, "multi", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(5<<20+3, 21)
	if _, err := c1.PutObject(ctx, "multi", "obj", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func(c *minio.Client, key string, want []byte) {
		t.Helper()
		o, err := c.GetObject(ctx, "multi", key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, o); !bytes.Equal(got, want) {
			t.Fatalf("%s differs", key)
		}
	}
	get(c2, "obj", data) // written through one gateway, read through the other
	// A multipart upload whose parts go through two gateway processes at once.
	core1, core2 := minio.Core{Client: c1}, minio.Core{Client: c2}
	id, err := core1.NewMultipartUpload(ctx, "multi", "mp", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mpData := randomBytes(10<<20+5, 23)
	parts := make([]minio.CompletePart, 2)
	errc := make(chan error, 2)
	for i, core := range []minio.Core{core1, core2} {
		go func() {
			chunk := mpData[i*(5<<20) : min((i+1)*(5<<20), len(mpData))]
			if i == 1 {
				chunk = mpData[5<<20:]
			}
			p, err := core.PutObjectPart(ctx, "multi", "mp", id, i+1, bytes.NewReader(chunk), int64(len(chunk)), minio.PutObjectPartOptions{})
			parts[i] = minio.CompletePart{PartNumber: i + 1, ETag: p.ETag}
			errc <- err
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := core2.CompleteMultipartUpload(ctx, "multi", "mp", id, parts, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	get(c1, "mp", mpData)
	// SIGKILL a node: reads reconstruct, writes still reach the quorum.
	nodes[3].kill()
	get(c2, "obj", data)
	data2 := randomBytes(1<<20, 22)
	if _, err := c2.PutObject(ctx, "multi", "obj2", bytes.NewReader(data2), int64(len(data2)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// Kill a gateway; the other serves everything.
	gw1.kill()
	get(c2, "obj2", data2)
	get(c2, "obj", data)
}

// TestMultiProcessNotificationSurvivesKill: a gateway process is SIGKILLed
// while it delivers a notification; another gateway process delivers it.
func TestMultiProcessNotificationSurvivesKill(t *testing.T) {
	cl := startCluster(t)
	rv := &receiver{got: map[string]string{}, block: make(chan struct{}), started: make(chan struct{})}
	hook := httptest.NewServer(rv)
	defer hook.Close()
	defer close(rv.block)
	gw1, url1 := cl.startGateway(t, "--notify-claim", "2s")
	c := minioClient(t, url1, false)
	if err := c.MakeBucket(ctx, "hooked", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(filepath.Dir(cl.bin), "sherdctl"), "notify", "--etcd", cl.etcdURL, "set", "hooked", "--url", hook.URL).CombinedOutput()
	if err != nil {
		t.Fatalf("sherdctl notify: %v %s", err, out)
	}
	if _, err := c.PutObject(ctx, "hooked", "first", bytes.NewReader([]byte("1")), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rv.started: // gw1 is delivering "first", and the receiver hangs
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery started")
	}
	gw1.cmd.Process.Signal(syscall.SIGKILL)
	gw1.cmd.Wait()
	_, url2 := cl.startGateway(t, "--notify-claim", "2s")
	c2 := minioClient(t, url2, false)
	if _, err := c2.PutObject(ctx, "hooked", "second", bytes.NewReader([]byte("2")), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both events delivered", 30*time.Second, func() bool { return rv.count() == 2 })
	rv.mu.Lock()
	defer rv.mu.Unlock()
	seen := map[string]bool{}
	for _, v := range rv.got {
		seen[v] = true
	}
	if !seen["ObjectCreated:Put hooked/first"] || !seen["ObjectCreated:Put hooked/second"] {
		t.Fatalf("events %v", rv.got)
	}
}
