package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// startEtcdCluster starts n etcd members (etcdBinary) on loopback and
// returns their client URLs and processes.
func startEtcdCluster(t *testing.T, dir string, n int) ([]string, []*process) {
	t.Helper()
	var clients, peers, initial []string
	for i := range n {
		clients = append(clients, "http://"+freePort(t))
		peers = append(peers, "http://"+freePort(t))
		initial = append(initial, fmt.Sprintf("e%d=%s", i, peers[i]))
	}
	bin := etcdBinary(t)
	var procs []*process
	for i := range n {
		procs = append(procs, spawn(t, nil, bin, "--name", fmt.Sprintf("e%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("etcd%d", i)),
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new"))
	}
	return clients, procs
}

// TestEtcdLeaderLoss SIGKILLs the etcd leader of a 3-member cluster under
// load: nothing may fail, and the latency of the requests around the loss
// is logged (the goal: at most about 2 s, the election plus failover).
func TestEtcdLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	endpoints, members := startEtcdCluster(t, dir, 3)
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	noErr(t, err)
	defer cli.Close()
	waitFor(t, "etcd cluster up", 30*time.Second, func() bool {
		_, err := cli.Put(ctx, "/up", "1")
		return err == nil
	})
	bin := buildSherd(t, dir)
	etcdURL := strings.Join(endpoints, ",")
	env := []string{"SHERD_CLUSTER_KEY=multi-process-cluster-key", "SHERD_ROOT_USER=" + rootUser, "SHERD_ROOT_PASSWORD=" + rootPass}
	cl := &cluster{etcdURL: etcdURL, env: env, bin: bin}
	for i := range 6 {
		n := spawn(t, env, bin, "node", "--etcd", etcdURL, "--data", filepath.Join(dir, fmt.Sprintf("n%d", i)), "--id", fmt.Sprintf("node-%d", i+1))
		n.waitLine(t, "Sherd storage node")
		cl.nodes = append(cl.nodes, n)
	}
	_, url := cl.startGateway(t)
	c := minioClient(t, url, false)
	noErr(t, c.MakeBucket(ctx, "etcdloss", minio.MakeBucketOptions{}))
	l := startLoad(t, c, "etcdloss", 4)
	waitFor(t, "load running", 60*time.Second, func() bool { return l.ops.Load() >= 40 })
	before := l.latencies()

	// Find and kill the leader.
	leader := -1
	for i, ep := range endpoints {
		st, err := cli.Status(ctx, ep)
		if err == nil && st.Leader == st.Header.MemberId {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no leader found")
	}
	noErr(t, members[leader].cmd.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	waitFor(t, "15 s after the leader died", 25*time.Second, func() bool { return time.Since(killed) >= 15*time.Second })
	during := l.latencies()
	objects := l.finish()
	readEverything(t, c, "etcdloss", objects, "after the leader loss")
	t.Logf("etcd leader (member %d of 3) SIGKILLed under load:\n| phase | op | requests | p50 | p99 | max |\n| --- | --- | --- | --- | --- | --- |\n%s%s",
		leader, latencyRows("before", before), latencyRows("15 s after the kill", during))
}

// latencyRows formats load.latencies as table rows.
func latencyRows(phase string, m map[string][4]time.Duration) string {
	var b strings.Builder
	for _, op := range []string{"put", "get"} {
		v := m[op]
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s |\n", phase, op, int64(v[0]), v[1].Round(time.Millisecond), v[2].Round(time.Millisecond), v[3].Round(time.Millisecond))
	}
	return b.String()
}
