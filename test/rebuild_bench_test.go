package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/storagenode"
)

// Rebuild benchmarks (docs/durability.md). They are measurements, not
// tests: run them one at a time with -benchtime 1x. Knobs:
//
//	SHERD_BENCH_GIB   object data to write, GiB (default 1; a node then
//	                  holds a quarter of it in shards: 16 GiB → 4 GiB)
//	SHERD_BENCH_RATE  repair read rate, MiB/s (default: repair.DefaultRate)
//
// go test -run '^$' -bench RebuildWipedNode -benchtime 1x ./test/
func benchEnv(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}

// fill writes gib GiB of 64 MiB objects, 4 at a time, and returns their keys.
func fill(b *testing.B, c *minio.Client, bucket string, gib float64) []string {
	b.Helper()
	noErr(b, c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}))
	const size = 64 << 20
	n := int(gib * (1 << 30) / size)
	payload := randomBytes(size, 9)
	keys := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	start := time.Now()
	for i := range n {
		keys[i] = fmt.Sprintf("fill-%05d", i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := slices.Clone(payload)
			copy(p, keys[i]) // distinct objects
			_, err := c.PutObject(ctx, bucket, keys[i], bytes.NewReader(p), size, minio.PutObjectOptions{DisableMultipart: true})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		noErr(b, err)
	}
	b.Logf("wrote %d objects of 64 MiB in %v", n, time.Since(start).Round(time.Millisecond))
	return keys
}

// wipe stops node i, removes its data directory and starts it again
// empty, and waits until the gateway's cluster view reaches it.
func wipe(b *testing.B, s *daemon.Server, i int) string {
	b.Helper()
	id := s.Nodes[i].ID
	dir := filepath.Dir(s.Nodes[i].Shards().Dir())
	noErr(b, s.StopNode(i))
	noErr(b, os.RemoveAll(dir))
	noErr(b, s.RestartNode(ctx, i))
	waitFor(b, "the wiped node reachable", 20*time.Second, func() bool {
		st, live := s.Gateway.Cluster.Store(id)
		if !live || st == nil {
			return false
		}
		_, err := st.Children(ctx, 0, 0)
		return err == nil
	})
	return id
}

func nodeBytes(st *storagenode.Store) (n int, bytes int64) {
	st.Walk(ctx, func(info storagenode.ShardInfo) error {
		n++
		bytes += info.Size
		return nil
	})
	return n, bytes
}

// BenchmarkRebuildWipedNode: fill, wipe one node, and time one
// anti-entropy round: detection (no data read) and the rebuild.
func BenchmarkRebuildWipedNode(b *testing.B) {
	gib := benchEnv("SHERD_BENCH_GIB", 1)
	rate := benchEnv("SHERD_BENCH_RATE", 0)
	s := startServerWith(b, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.Heal.AntiEntropyInterval, c.ScrubInterval = time.Hour, time.Hour, -1
		c.Heal.Rate = rate * (1 << 20)
	})
	c := minioClient(b, s.Gateway.URL, false)
	fill(b, c, "rebuild", gib)
	_, before := nodeBytes(s.Nodes[2].Shards())
	b.ResetTimer()
	for range b.N {
		wipe(b, s, 2)
		rep, err := s.Gateway.Healer.AntiEntropy.RunOnce(ctx)
		noErr(b, err)
		n, after := nodeBytes(s.Nodes[2].Shards())
		if after != before || rep.Rebuilt != n {
			b.Fatalf("node holds %d bytes after the round, %d before; round %+v", after, before, rep)
		}
		repairTime := rep.Took - rep.Detect
		b.ReportMetric(float64(after)/(1<<30), "GiB-rebuilt")
		b.ReportMetric(rep.Detect.Seconds(), "s-detect")
		b.ReportMetric(repairTime.Seconds(), "s-rebuild")
		b.ReportMetric(float64(rep.RebuiltBytes)/1e6/repairTime.Seconds(), "MB/s-rebuilt")
		b.Logf("round: %d shards (%.2f GiB) on the wiped node; detect %v (%d node calls, %d partitions), rebuild %v: %.0f MB/s of shard data written, %.0f MB/s of segment data read",
			n, float64(after)/(1<<30), rep.Detect.Round(time.Millisecond), rep.NodeCalls, rep.Examined, repairTime.Round(time.Millisecond),
			float64(rep.RebuiltBytes)/1e6/repairTime.Seconds(), 4*float64(rep.RebuiltBytes)/1e6/repairTime.Seconds())
	}
}
