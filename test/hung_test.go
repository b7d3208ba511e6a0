package test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestHungNodeUnderLoad SIGSTOPs one storage node process for 30 s while
// clients write and read through a gateway: nothing may fail, and the
// latency of the requests while it is stopped is logged (p50, p99, max)
// for docs/reliability.md. Without per-shard progress deadlines a PUT
// placed on the stopped node waited until the node came back.
func TestHungNodeUnderLoad(t *testing.T) {
	cl := startCluster(t)
	_, url := cl.startGateway(t)
	c := minioClient(t, url, false)
	noErr(t, c.MakeBucket(ctx, "hung", minio.MakeBucketOptions{}))
	l := startLoad(t, c, "hung", 4)
	waitFor(t, "load running", 60*time.Second, func() bool { return l.ops.Load() >= 40 })
	before := l.latencies()

	victim := cl.nodes[2].cmd.Process
	noErr(t, victim.Signal(syscall.SIGSTOP))
	stopped := time.Now()
	stopFor := 30 * time.Second
	if testing.Short() {
		stopFor = 10 * time.Second
	}
	waitFor(t, "the stop to last", stopFor+5*time.Second, func() bool { return time.Since(stopped) >= stopFor })
	during := l.latencies()
	noErr(t, victim.Signal(syscall.SIGCONT))
	resumed := time.Now()
	waitFor(t, "10 s after the node resumed", 20*time.Second, func() bool { return time.Since(resumed) >= 10*time.Second })
	after := l.latencies()
	objects := l.finish()
	readEverything(t, c, "hung", objects, "after the stop")

	var b strings.Builder
	fmt.Fprintf(&b, "| phase | op | requests | p50 | p99 | max |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, ph := range []struct {
		name string
		m    map[string][4]time.Duration
	}{{"before", before}, {fmt.Sprintf("node stopped %s", stopFor), during}, {"after SIGCONT", after}} {
		for _, op := range []string{"put", "get"} {
			v := ph.m[op]
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s |\n", ph.name, op, int64(v[0]), v[1].Round(time.Millisecond), v[2].Round(time.Millisecond), v[3].Round(time.Millisecond))
		}
	}
	t.Logf("latency with one node SIGSTOPped:\n%s", b.String())
}
