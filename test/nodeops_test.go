package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/clustertls"
	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/metadata"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode/client"
)

// startMovingServer runs n nodes whose healer (in the gateway) makes a
// mover pass every 200 ms and looks for requests every 100 ms.
func startMovingServer(t *testing.T, nodes int) *daemon.Server {
	t.Helper()
	return startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Nodes, c.ScrubInterval, c.StatusInterval = nodes, -1, 200*time.Millisecond
		c.Heal = daemon.HealConfig{Interval: 200 * time.Millisecond, AntiEntropyInterval: time.Hour,
			MoveInterval: 200 * time.Millisecond, RequestPoll: 100 * time.Millisecond, StatusInterval: 200 * time.Millisecond}
	})
}

// load writes and reads objects until stopped, counting failures: every
// PUT must succeed and every GET must return what was written.
type load struct {
	t       *testing.T
	c       *minio.Client
	bucket  string
	mu      sync.Mutex
	objects map[string][]byte
	ops     atomic.Int64
	fails   atomic.Int64
	errs    []string
	lat     map[string][]time.Duration // by op: put, get
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(t *testing.T, c *minio.Client, bucket string, workers int) *load {
	l := &load{t: t, c: c, bucket: bucket, objects: map[string][]byte{}, stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if i%2 == 0 {
					key := fmt.Sprintf("load/%d/%d", w, i)
					data := randomBytes(1+rng.IntN(3<<20), uint64(w*1_000_000+i))
					start := time.Now()
					_, err := l.c.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{DisableMultipart: true})
					l.took("put", start)
					l.note(err, "put "+key)
					if err == nil {
						l.mu.Lock()
						l.objects[key] = data
						l.mu.Unlock()
					}
					continue
				}
				key, want := l.pick(rng)
				if key == "" {
					continue
				}
				start := time.Now()
				obj, err := l.c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
				var got []byte
				if err == nil {
					got, err = readAllErr(obj)
					obj.Close()
				}
				l.took("get", start)
				if err == nil && !bytes.Equal(got, want) {
					err = fmt.Errorf("read %d bytes, not the %d written", len(got), len(want))
				}
				l.note(err, "get "+key)
			}
		}()
	}
	return l
}

func (l *load) took(op string, start time.Time) {
	d := time.Since(start)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lat == nil {
		l.lat = map[string][]time.Duration{}
	}
	l.lat[op] = append(l.lat[op], d)
}

// latencies returns, per op, the count, p50, p99 and max of the requests
// since the last call, and starts counting anew.
func (l *load) latencies() map[string][4]time.Duration {
	l.mu.Lock()
	lat := l.lat
	l.lat = nil
	l.mu.Unlock()
	out := map[string][4]time.Duration{}
	for op, ds := range lat {
		slices.Sort(ds)
		q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
		out[op] = [4]time.Duration{time.Duration(len(ds)), q(0.5), q(0.99), ds[len(ds)-1]}
	}
	return out
}

func (l *load) note(err error, what string) {
	l.ops.Add(1)
	if err != nil {
		l.fails.Add(1)
		l.mu.Lock()
		if len(l.errs) < 10 {
			l.errs = append(l.errs, what+": "+err.Error())
		}
		l.mu.Unlock()
	}
}

func (l *load) pick(rng *rand.Rand) (string, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.objects) == 0 {
		return "", nil
	}
	keys := make([]string, 0, len(l.objects))
	for k := range l.objects {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	k := keys[rng.IntN(len(keys))]
	return k, l.objects[k]
}

// finish stops the load and fails the test if any request failed.
func (l *load) finish() map[string][]byte {
	close(l.stop)
	l.wg.Wait()
	l.t.Logf("load: %d requests, %d failed", l.ops.Load(), l.fails.Load())
	if l.fails.Load() > 0 {
		l.t.Fatalf("%d client requests failed under load: %s", l.fails.Load(), strings.Join(l.errs, "; "))
	}
	return l.objects
}

func readAllErr(obj *minio.Object) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(obj)
	return b.Bytes(), err
}

// sherdctl runs the operator CLI and returns its output; it fails the
// test on a non-zero exit unless wantFail.
func sherdctl(t *testing.T, ctl string, wantFail bool, args ...string) string {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, ctl, args...).CombinedOutput()
	if (err != nil) != wantFail {
		t.Fatalf("sherdctl %s: err %v (want failure: %v)\n%s", strings.Join(args, " "), err, wantFail, out)
	}
	return string(out)
}

// shardsOn counts the shards segment records put on each node.
func shardsOn(t *testing.T, s *daemon.Server) map[string]int {
	t.Helper()
	out := map[string]int{}
	_, err := s.Store.ScanSegments(ctx, func(seg metadata.Segment) error {
		for _, n := range seg.Nodes {
			out[n]++
		}
		return nil
	})
	noErr(t, err)
	return out
}

// readEverything reads every object back and compares it.
func readEverything(t *testing.T, c *minio.Client, bucket string, objects map[string][]byte, what string) {
	t.Helper()
	for k, want := range objects {
		obj, err := c.GetObject(ctx, bucket, k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatalf("%s: get %s: %v", what, k, err)
		}
		got, err := readAllErr(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %s: %d bytes, err %v; want %d bytes", what, k, len(got), err, len(want))
		}
	}
}

// TestDrainUnderLoad drains a node of a 7-node cluster while clients
// write and read: no request fails, every shard leaves the node, the node
// is removed, and then every pair of the 6 others can be stopped with
// everything still read back.
func TestDrainUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("drains a node under load")
	}
	ctl := filepath.Join(filepath.Dir(buildSherd(t, t.TempDir())), "sherdctl")
	s := startMovingServer(t, 7)
	etcd := "--etcd=" + s.EtcdURL()
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "drain", minio.MakeBucketOptions{}))
	before := map[string][]byte{}
	for i := range 40 {
		k := fmt.Sprintf("before/%d", i)
		before[k] = randomBytes(1+i*7_000, uint64(i+7)) // small: read back 15 times below
		must(t)(c.PutObject(ctx, "drain", k, bytes.NewReader(before[k]), int64(len(before[k])), minio.PutObjectOptions{DisableMultipart: true}))
	}
	on := shardsOn(t, s)
	if on["node-7"] == 0 {
		t.Fatalf("node-7 holds no shard before the drain: %v", on)
	}

	// Refusals first: an unknown node, and removing a node not drained.
	sherdctl(t, ctl, true, "node", "drain", "node-99", etcd)
	if out := sherdctl(t, ctl, true, "node", "remove", "node-7", etcd); !strings.Contains(out, "drain it first") {
		t.Fatalf("remove of an active node: %s", out)
	}

	l := startLoad(t, c, "drain", 3)
	waitFor(t, "the load to write", 30*time.Second, func() bool { return l.ops.Load() > 10 })
	out := sherdctl(t, ctl, false, "node", "drain", "node-7", "--wait", "--json", etcd)
	var res struct {
		State  string
		Shards int
	}
	noErr(t, json.Unmarshal([]byte(out), &res))
	if res.State != "draining" || res.Shards != 0 {
		t.Fatalf("drain --wait ended with %s", out)
	}
	// Keep the load on a little while the drained node still serves.
	time.Sleep(500 * time.Millisecond)
	written := l.finish()
	t.Logf("before the drain node-7 held %d shards; after: %v", on["node-7"], shardsOn(t, s))

	// Writes committed after the drain began may have raced its first
	// scans: remove waits until none is left on the node.
	waitFor(t, "no shard recorded on node-7", time.Minute, func() bool { return shardsOn(t, s)["node-7"] == 0 })
	sherdctl(t, ctl, false, "node", "remove", "node-7", etcd)
	noErr(t, s.StopNode(6))
	status := sherdctl(t, ctl, false, "status", etcd)
	if !strings.Contains(status, "removed") {
		t.Fatalf("status does not show node-7 removed:\n%s", status)
	}

	all := before
	for k, v := range written {
		all[k] = v
	}
	for a := range 6 {
		for b := a + 1; b < 6; b++ {
			noErr(t, s.StopNode(a))
			noErr(t, s.StopNode(b))
			waitFor(t, "4 live nodes", 10*time.Second, func() bool { return liveCount(s) == 4 })
			readEverything(t, c, "drain", all, fmt.Sprintf("node-%d and node-%d stopped", a+1, b+1))
			noErr(t, s.RestartNode(ctx, a))
			noErr(t, s.RestartNode(ctx, b))
			waitFor(t, "6 live nodes", 10*time.Second, func() bool { return liveCount(s) == 6 })
		}
	}
	t.Logf("%d objects read back with each of the 15 pairs of the 6 remaining nodes stopped", len(all))
}

// TestAddNodeAndRebalanceUnderLoad adds a seventh node to a 6-node
// cluster: new writes use it at once, and rebalance moves existing shards
// onto it while clients write and read, with no failed request.
func TestAddNodeAndRebalanceUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("rebalances under load")
	}
	ctl := filepath.Join(filepath.Dir(buildSherd(t, t.TempDir())), "sherdctl")
	s := startMovingServer(t, 6)
	etcd := "--etcd=" + s.EtcdURL()
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "grow", minio.MakeBucketOptions{}))
	before := map[string][]byte{}
	for i := range 60 {
		k := fmt.Sprintf("before/%d", i)
		before[k] = randomBytes(1+i*40_000, uint64(i+70))
		must(t)(c.PutObject(ctx, "grow", k, bytes.NewReader(before[k]), int64(len(before[k])), minio.PutObjectOptions{DisableMultipart: true}))
	}
	// With 6 nodes and 4+2, no node can be drained: the other 5 cannot
	// hold 6 distinct shards.
	if out := sherdctl(t, ctl, true, "node", "drain", "node-1", etcd); !strings.Contains(out, "refused") {
		t.Fatalf("drain of one of 6 nodes: %s", out)
	}
	// Nothing to move while placement is what it was.
	if out := sherdctl(t, ctl, false, "rebalance", "--json", etcd); !strings.Contains(out, `"misplaced": 0`) {
		t.Fatalf("rebalance of a balanced cluster: %s", out)
	}

	_, err := s.AddNode(ctx)
	noErr(t, err)
	sherdctl(t, ctl, false, "node", "add", "node-7", etcd)
	waitFor(t, "the gateway to see 7 live nodes", 10*time.Second, func() bool { return liveCount(s) == 7 })
	k := "after-add"
	must(t)(c.PutObject(ctx, "grow", k, bytes.NewReader(randomBytes(1<<20, 5)), 1<<20, minio.PutObjectOptions{DisableMultipart: true}))
	var newWrites int
	for i := range 30 {
		k := fmt.Sprintf("new/%d", i)
		must(t)(c.PutObject(ctx, "grow", k, bytes.NewReader([]byte(k)), int64(len(k)), minio.PutObjectOptions{DisableMultipart: true}))
		obj, err := s.Store.GetObject(ctx, "grow", k)
		noErr(t, err)
		if slices.Contains(obj.Segments[0].Nodes, "node-7") {
			newWrites++
		}
	}
	if newWrites == 0 {
		t.Fatal("no new write placed a shard on node-7")
	}
	t.Logf("%d of 30 new objects have a shard on node-7", newWrites)
	onBefore := shardsOn(t, s)

	l := startLoad(t, c, "grow", 3)
	waitFor(t, "the load to write", 30*time.Second, func() bool { return l.ops.Load() > 10 })
	out := sherdctl(t, ctl, false, "rebalance", "--wait", "--json", etcd)
	if !strings.Contains(out, `"state": "done"`) {
		t.Fatalf("rebalance --wait: %s", out)
	}
	written := l.finish()
	onAfter := shardsOn(t, s)
	t.Logf("shards per node before the rebalance %v, after %v", onBefore, onAfter)
	if onAfter["node-7"] <= onBefore["node-7"] {
		t.Fatalf("rebalance moved nothing onto node-7: %d then %d", onBefore["node-7"], onAfter["node-7"])
	}
	// Evenness: node-7 holds at least half a fair share.
	total := 0
	for _, n := range onAfter {
		total += n
	}
	if fair := total / 7; onAfter["node-7"] < fair/2 {
		t.Fatalf("node-7 holds %d shards, a fair share is %d", onAfter["node-7"], fair)
	}
	all := before
	for k, v := range written {
		all[k] = v
	}
	readEverything(t, c, "grow", all, "after the rebalance")
	// Lose two of the old nodes: everything still reads (6 distinct nodes per segment).
	noErr(t, s.StopNode(0))
	noErr(t, s.StopNode(1))
	waitFor(t, "5 live nodes", 10*time.Second, func() bool { return liveCount(s) == 5 })
	readEverything(t, c, "grow", all, "after the rebalance, node-1 and node-2 stopped")
}

// TestMultiProcessOperatorCommands drives sherdctl against a real
// cluster of separate processes (Debian's etcd, `sherd node` processes
// with their healers, a `sherd gateway`): node add and rebalance, status,
// scrub and repair rounds, verify before and after a lost shard, a scoped
// repair, drain and remove.
func TestMultiProcessOperatorCommands(t *testing.T) {
	cl := startCluster(t, "--repair-interval", "300ms", "--anti-entropy-interval", "1h", "--move-interval", "300ms", "--scrub-interval", "1h")
	_, url := cl.startGateway(t)
	ctl := filepath.Join(filepath.Dir(cl.bin), "sherdctl")
	etcd := "--etcd=" + cl.etcdURL
	c := minioClient(t, url, false)
	objects := putObjects(t, c, "ops", 12)

	// A seventh node joins and takes its share.
	dir := filepath.Join(filepath.Dir(cl.bin), "n7")
	args := []string{"node", "--etcd", cl.etcdURL, "--data", dir, "--id", "node-7", "--repair-interval", "300ms", "--anti-entropy-interval", "1h", "--move-interval", "300ms", "--scrub-interval", "1h"}
	cl.nodes = append(cl.nodes, spawn(t, cl.env, cl.bin, args...))
	cl.nodeArgs = append(cl.nodeArgs, args)
	cl.nodes[6].waitLine(t, "Sherd storage node")
	sherdctl(t, ctl, false, "node", "add", "node-7", etcd)
	out := sherdctl(t, ctl, false, "rebalance", "--wait", "--json", etcd)
	if !strings.Contains(out, `"state": "done`) {
		t.Fatalf("rebalance: %s", out)
	}

	var st struct {
		Nodes []struct {
			ID       string
			State    string
			Live     bool
			Recorded int `json:"shards_recorded"`
			Disk     *struct{ Total int64 }
		}
		Segments int
	}
	waitFor(t, "status to show 7 live nodes with their disks", 30*time.Second, func() bool {
		noErr(t, json.Unmarshal([]byte(sherdctl(t, ctl, false, "status", "--json", etcd)), &st))
		ok := len(st.Nodes) == 7
		for _, n := range st.Nodes {
			ok = ok && n.Live && n.Disk != nil && n.Disk.Total > 0
		}
		return ok
	})
	if st.Nodes[6].Recorded == 0 {
		t.Fatalf("node-7 holds nothing after the rebalance: %+v", st.Nodes)
	}

	out = sherdctl(t, ctl, false, "scrub", "--all", "--wait", "--json", etcd)
	var sc struct {
		Done   bool
		Shards map[string]int
	}
	noErr(t, json.Unmarshal([]byte(out), &sc))
	if !sc.Done || len(sc.Shards) != 7 {
		t.Fatalf("scrub --all --wait: %s", out)
	}
	out = sherdctl(t, ctl, false, "repair", "--wait", "--json", etcd)
	if !strings.Contains(out, `"done": true`) || !strings.Contains(out, `"repairers": 7`) {
		t.Fatalf("repair --wait: %s", out)
	}

	// Lose one shard of one object; verify sees it, a scoped repair
	// rebuilds it, verify sees it healthy.
	cli, err := metaetcd.Dial(cl.etcdURL)
	noErr(t, err)
	defer cli.Close()
	store := metaetcd.New(cli, metaetcd.Options{})
	obj, err := store.GetObject(ctx, "ops", "obj-003")
	noErr(t, err)
	seg, _, err := store.GetSegment(ctx, obj.Segments[0].ID)
	noErr(t, err)
	nodes, err := store.ListNodes(ctx)
	noErr(t, err)
	victim := slices.IndexFunc(nodes, func(n metadata.Node) bool { return n.ID == seg.Nodes[2] })
	nc := clientFor(nodes[victim].Address)
	noErr(t, nc.Delete(ctx, shardID(seg.ID, 2)))
	env := append(os.Environ(), "SHERD_CLUSTER_KEY=multi-process-cluster-key")
	run := func(wantFail bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(ctl, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if (err != nil) != wantFail {
			t.Fatalf("sherdctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out = run(false, "verify", "s3://ops/obj-003", etcd)
	if !strings.Contains(out, "missing") {
		t.Fatalf("verify after a lost shard:\n%s", out)
	}
	t.Logf("verify:\n%s", out)
	out = run(false, "repair", "s3://ops/obj-00", "--wait", "--json", etcd)
	if !strings.Contains(out, `"missing": 1`) || !strings.Contains(out, `"rebuilt": 1`) {
		t.Fatalf("scoped repair: %s", out)
	}
	out = run(false, "verify", "s3://ops/obj-003", "--json", etcd)
	if strings.Contains(out, "missing") || strings.Contains(out, "corrupt") {
		t.Fatalf("verify after repair: %s", out)
	}

	// Drain node-1 and remove it; everything reads back with two more
	// nodes gone.
	sherdctl(t, ctl, false, "node", "drain", "node-1", "--wait", etcd)
	waitFor(t, "no shard recorded on node-1", time.Minute, func() bool {
		n := 0
		store.ScanSegments(ctx, func(s metadata.Segment) error {
			n += len(slices.DeleteFunc(slices.Clone(s.Nodes), func(id string) bool { return id != "node-1" }))
			return nil
		})
		return n == 0
	})
	sherdctl(t, ctl, false, "node", "remove", "node-1", etcd)
	cl.nodes[0].kill()
	cl.nodes[3].kill()
	cl.nodes[5].kill()
	readBack(t, c, "ops", objects)
}

// clientFor is a node client signed with the multi-process cluster's key.
func clientFor(addr string) *client.Client {
	key := []byte("multi-process-cluster-key")
	hc, _ := clustertls.NodeClient(key, "")
	return client.New(addr, key, hc, nil)
}

func shardID(seg string, i int) shard.ID {
	return shard.ID{Segment: seg, Index: i}
}

// TestForceRemoveDeadNode: a node that died for good is removed with
// --force (refused while it is up); its shards are rebuilt on the others,
// after which any two more nodes can be lost.
func TestForceRemoveDeadNode(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds a node's shards")
	}
	ctl := filepath.Join(filepath.Dir(buildSherd(t, t.TempDir())), "sherdctl")
	s := startMovingServer(t, 7)
	etcd := "--etcd=" + s.EtcdURL()
	c := minioClient(t, s.Gateway.URL, false)
	objects := putObjects(t, c, "dead", 18)
	held := shardsOn(t, s)["node-4"]
	if out := sherdctl(t, ctl, true, "node", "remove", "node-4", "--force", etcd); !strings.Contains(out, "is up") {
		t.Fatalf("force-remove of a live node: %s", out)
	}
	noErr(t, s.StopNode(3))
	waitFor(t, "6 live nodes", 10*time.Second, func() bool { return liveCount(s) == 6 })
	out := sherdctl(t, ctl, false, "node", "remove", "node-4", "--force", "--wait", "--json", etcd)
	if !strings.Contains(out, `"state": "removed"`) || !strings.Contains(out, `"shards": 0`) {
		t.Fatalf("remove --force --wait: %s", out)
	}
	if n := shardsOn(t, s)["node-4"]; n != 0 || held == 0 {
		t.Fatalf("node-4 held %d shards, %d still recorded there", held, n)
	}
	t.Logf("%d shards of the dead node rebuilt elsewhere", held)
	noErr(t, s.StopNode(0))
	noErr(t, s.StopNode(6))
	waitFor(t, "4 live nodes", 10*time.Second, func() bool { return liveCount(s) == 4 })
	readBack(t, c, "dead", objects)
}
