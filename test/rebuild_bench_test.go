package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
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

// startFilled starts sherd server with a healer that only makes the
// rounds the benchmark asks for, at SHERD_BENCH_RATE, and fills bucket.
func startFilled(b *testing.B, bucket string, gib float64) (*daemon.Server, *minio.Client) {
	b.Helper()
	rate := benchEnv("SHERD_BENCH_RATE", 0)
	s := startServerWith(b, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.Heal.AntiEntropyInterval, c.ScrubInterval = time.Hour, time.Hour, -1
		c.Heal.Rate = rate * (1 << 20)
	})
	c := minioClient(b, s.Gateway.URL, false)
	fill(b, c, bucket, gib)
	return s, c
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
	st.Walk(ctx, func(info shard.Info) error {
		n++
		bytes += info.Size
		return nil
	})
	return n, bytes
}

// BenchmarkRebuildWipedNode: fill, wipe one node, and time one
// anti-entropy round: detection (no data read) and the rebuild.
func BenchmarkRebuildWipedNode(b *testing.B) {
	s, _ := startFilled(b, "rebuild", benchEnv("SHERD_BENCH_GIB", 1))
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

// latencies runs a client load until stop closes: 2 workers, each a 1 MiB
// PUT then a GET of it, and returns the sorted latencies of each.
func latencies(b *testing.B, c *minio.Client, bucket string, stop <-chan struct{}) (puts, gets []time.Duration) {
	b.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	payload := randomBytes(1<<20, 3)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("lat-%d-%d", w, i%50)
				t0 := time.Now()
				_, err := c.PutObject(ctx, bucket, key, bytes.NewReader(payload), int64(len(payload)), minio.PutObjectOptions{DisableMultipart: true})
				t1 := time.Now()
				if err != nil {
					b.Error(err)
					return
				}
				o, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
				if err == nil {
					readAll(b, o)
				}
				t2 := time.Now()
				mu.Lock()
				puts, gets = append(puts, t1.Sub(t0)), append(gets, t2.Sub(t1))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(puts)
	slices.Sort(gets)
	return puts, gets
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(p*float64(len(d))))]
}

// BenchmarkLatencyDuringRepair: client PUT/GET latency of 1 MiB objects
// (2 clients) while idle, then during the rebuild of a wiped node at the
// repair rate (default: repair.DefaultRate).
func BenchmarkLatencyDuringRepair(b *testing.B) {
	s, c := startFilled(b, "lat", benchEnv("SHERD_BENCH_GIB", 2))
	b.ResetTimer()
	for range b.N {
		stop := make(chan struct{})
		go func() { time.Sleep(15 * time.Second); close(stop) }()
		puts, gets := latencies(b, c, "lat", stop)
		b.Logf("idle:          %d PUT p50 %v p99 %v; GET p50 %v p99 %v", len(puts), pct(puts, .5), pct(puts, .99), pct(gets, .5), pct(gets, .99))
		b.ReportMetric(float64(pct(puts, .99).Milliseconds()), "ms-PUT-p99-idle")
		b.ReportMetric(float64(pct(gets, .99).Milliseconds()), "ms-GET-p99-idle")

		wipe(b, s, 2)
		stop = make(chan struct{})
		var rep metadata.AntiEntropyRound
		done := make(chan struct{})
		go func() {
			defer close(done)
			r, err := s.Gateway.Healer.AntiEntropy.RunOnce(ctx)
			noErr(b, err)
			rep = r
			close(stop)
		}()
		puts, gets = latencies(b, c, "lat", stop)
		<-done
		b.Logf("during repair: %d PUT p50 %v p99 %v; GET p50 %v p99 %v (round: %d shards, %.0f MB/s rebuilt, took %v)",
			len(puts), pct(puts, .5), pct(puts, .99), pct(gets, .5), pct(gets, .99),
			rep.Rebuilt, float64(rep.RebuiltBytes)/1e6/(rep.Took-rep.Detect).Seconds(), rep.Took.Round(time.Millisecond))
		b.ReportMetric(float64(pct(puts, .99).Milliseconds()), "ms-PUT-p99-repair")
		b.ReportMetric(float64(pct(gets, .99).Milliseconds()), "ms-GET-p99-repair")
	}
}

// BenchmarkScrub: one scrub pass over a node's shards, unthrottled
// (SHERD_BENCH_SCRUB_RATE, MiB/s, to throttle), and its rate; with
// SHERD_BENCH_DROP_CACHES=1 (root) from a cold page cache.
func BenchmarkScrub(b *testing.B) {
	gib := benchEnv("SHERD_BENCH_GIB", 1)
	s := startServerWith(b, "", func(c *daemon.ServerConfig) { c.Heal.Interval, c.ScrubInterval = -1, -1 })
	c := minioClient(b, s.Gateway.URL, false)
	fill(b, c, "scrub", gib)
	st := s.Nodes[0].Shards()
	n, size := nodeBytes(st)
	rate := benchEnv("SHERD_BENCH_SCRUB_RATE", 1<<20) * (1 << 20)
	b.ResetTimer()
	for range b.N {
		sc := storagenode.NewScrubber(st, storagenode.ScrubConfig{Rate: rate, Interval: time.Hour})
		if os.Getenv("SHERD_BENCH_DROP_CACHES") != "" { // root only: measure the disk, not the page cache
			exec.Command("sync").Run()
			noErr(b, os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0))
		}
		t0 := time.Now()
		noErr(b, sc.Pass(ctx))
		took := time.Since(t0)
		b.ReportMetric(float64(size)/1e6/took.Seconds(), "MB/s-scrubbed")
		b.Logf("scrubbed %d shards, %.2f GiB in %v: %.0f MB/s", n, float64(size)/(1<<30), took.Round(time.Millisecond), float64(size)/1e6/took.Seconds())
	}
}
