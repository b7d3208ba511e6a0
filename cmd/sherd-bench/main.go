// Command sherd-bench is a load generator: PUT, GET and mixed throughput, latency and server CPU against an S3 endpoint, with minio-go.
package main

// Usage:
//
//	sherd-bench [--sizes 4KiB,1MiB] …              PUT then GET of each size, a table
//	sherd-bench --workload get --size 1MiB --json … one workload, one JSON line
//	sherd-bench report results.jsonl               medians and ratios of many runs
//
// A workload run measures, besides throughput and latency, the CPU time
// the server's processes used meanwhile (--cpu-pids: their trees, read
// from /proc), so servers can be compared per GiB and per operation.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "report" {
		if err := report(os.Args[2:], os.Stdout); err != nil {
			fail(err)
		}
		return
	}
	endpoint := flag.String("endpoint", "127.0.0.1:9000", "S3 endpoint host:port")
	bucket := flag.String("bucket", "sherd-bench", "bucket (created if missing)")
	sizes := flag.String("sizes", "4KiB,1MiB,64MiB", "object sizes, comma-separated (without --workload: PUT then GET of each)")
	workload := flag.String("workload", "", "one workload: put, get or mixed (45% GET, 30% HEAD, 15% PUT, 10% DELETE)")
	size := flag.String("size", "1MiB", "object size of --workload")
	objects := flag.Int("objects", 0, "objects read by get and mixed, written first if missing (default: 2 GiB worth, 16 to 1000)")
	label := flag.String("label", "", "name of the server in --json output")
	asJSON := flag.Bool("json", false, "print the result of --workload as one JSON line")
	prepareOnly := flag.Bool("prepare", false, "only write the objects --workload get or mixed reads (those missing), measure nothing")
	pids := flag.String("cpu-pids", "", "comma-separated pids whose process trees' CPU time is measured (the server)")
	conc := flag.Int("concurrency", 8, "concurrent requests")
	dur := flag.Duration("duration", 15*time.Second, "time per size and operation")
	maxObjs := flag.Int("max-objects", 2000, "most objects written per size (GETs read them back)")
	flag.Parse()
	ak, sk := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if ak == "" {
		ak, sk = os.Getenv("SHERD_ROOT_USER"), os.Getenv("SHERD_ROOT_PASSWORD")
	}
	if ak == "" {
		ak, sk = "sherdadmin", "sherdadmin-secret"
	}
	c, err := minio.New(*endpoint, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), Region: "us-east-1"})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	if ok, err := c.BucketExists(ctx, *bucket); err != nil {
		fail(err)
	} else if !ok {
		if err := c.MakeBucket(ctx, *bucket, minio.MakeBucketOptions{}); err != nil {
			fail(err)
		}
	}
	b := &bench{c: c, bucket: *bucket}
	if *workload != "" {
		n, err := humanize.ParseBytes(*size)
		if err != nil {
			fail(err)
		}
		w := workloadSpec{Kind: *workload, Size: int64(n), SizeName: *size, Conc: *conc, Duration: *dur, Objects: *objects}
		if *prepareOnly {
			if err := b.prepare(ctx, w, readPrefix(w.Size), newPayload(w.Size)); err != nil {
				fail(err)
			}
			return
		}
		cpu, err := parsePids(*pids)
		if err != nil {
			fail(err)
		}
		res, err := b.workload(ctx, w, cpu)
		if err != nil {
			fail(err)
		}
		res.Label = *label
		if *asJSON {
			json.NewEncoder(os.Stdout).Encode(res)
		} else {
			fmt.Println(header)
			fmt.Println(res.row())
		}
		return
	}
	fmt.Println(header)
	for _, s := range strings.Split(*sizes, ",") {
		n, err := humanize.ParseBytes(strings.TrimSpace(s))
		if err != nil {
			fail(err)
		}
		payload := newPayload(int64(n))
		prefix := fmt.Sprintf("bench-%d/", n)
		var written atomic.Int64
		put := func(i int64) (int64, error) {
			err := b.put(ctx, fmt.Sprintf("%s%08d", prefix, i), payload)
			if err == nil {
				written.Add(1)
			}
			return int64(n), err
		}
		r := run(*conc, *dur, int64(*maxObjs), put)
		fmt.Println(r.result(workloadSpec{Kind: "put", SizeName: s, Size: int64(n), Conc: *conc}, 0).row())
		m := written.Load()
		if m == 0 {
			continue
		}
		get := func(i int64) (int64, error) { return b.get(ctx, fmt.Sprintf("%s%08d", prefix, i%m), int64(n)) }
		r = run(*conc, *dur, 1<<62, get)
		fmt.Println(r.result(workloadSpec{Kind: "get", SizeName: s, Size: int64(n), Conc: *conc}, 0).row())
	}
}

// bench issues the requests of a run.
type bench struct {
	c      *minio.Client
	bucket string
}

// put writes key as a single PUT (no multipart), payload not SHA-256
// signed (UNSIGNED-PAYLOAD), as minio-go and most SDKs do over TLS.
func (b *bench) put(ctx context.Context, key string, payload []byte) error {
	_, err := b.c.PutObject(ctx, b.bucket, key, bytes.NewReader(payload), int64(len(payload)),
		minio.PutObjectOptions{DisableMultipart: true, DisableContentSha256: true})
	return err
}

// get reads key whole and checks its length; it returns the bytes read.
func (b *bench) get(ctx context.Context, key string, size int64) (int64, error) {
	o, err := b.c.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return 0, err
	}
	defer o.Close()
	m, err := io.Copy(io.Discard, o)
	if err == nil && m != size {
		err = fmt.Errorf("%s: short read %d of %d", key, m, size)
	}
	return m, err
}

// newPayload returns size pseudo-random bytes (incompressible, the same
// for every run of a size).
func newPayload(size int64) []byte {
	payload := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 1))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	return payload
}

// workloadSpec is one measured workload.
type workloadSpec struct {
	Kind     string // put, get, mixed
	Size     int64
	SizeName string
	Conc     int
	Duration time.Duration
	Objects  int
}

// readSet is how many objects get and mixed read: 2 GiB worth, 16 to 1000.
func (w workloadSpec) readSet() int {
	if w.Objects > 0 {
		return w.Objects
	}
	return int(min(1000, max(16, (2<<30)/max(w.Size, 1))))
}

// readPrefix is where the objects get and mixed read are.
func readPrefix(size int64) string { return fmt.Sprintf("read-%d/", size) }

// prepare writes the objects get and mixed read, those that are missing.
func (b *bench) prepare(ctx context.Context, w workloadSpec, prefix string, payload []byte) error {
	n := w.readSet()
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(w.Conc, 8) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || firstErr.Load() != nil {
					return
				}
				key := fmt.Sprintf("%s%08d", prefix, i)
				if st, err := b.c.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{}); err == nil && st.Size == w.Size {
					continue
				}
				if err := b.put(ctx, key, payload); err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return fmt.Errorf("prepare: %w", *p)
	}
	return nil
}

// workload runs w and measures the CPU time of the cpu process trees.
func (b *bench) workload(ctx context.Context, w workloadSpec, cpu []int) (result, error) {
	payload := newPayload(w.Size)
	readPrefix := readPrefix(w.Size)
	if w.Kind == "get" || w.Kind == "mixed" {
		if err := b.prepare(ctx, w, readPrefix, payload); err != nil {
			return result{}, err
		}
	}
	n := int64(w.readSet())
	// New keys each run, so PUTs never overwrite (the same for every server).
	runID := fmt.Sprintf("put-%d/%x/", w.Size, time.Now().UnixNano())
	var op func(int64) (int64, error)
	switch w.Kind {
	case "put":
		op = func(i int64) (int64, error) {
			return w.Size, b.put(ctx, fmt.Sprintf("%s%08d", runID, i), payload)
		}
	case "get":
		op = func(i int64) (int64, error) {
			return b.get(ctx, fmt.Sprintf("%s%08d", readPrefix, rand.Int64N(n)), w.Size)
		}
	case "mixed":
		var mu sync.Mutex
		var mine []string // keys PUT by this run, not yet deleted
		var seq atomic.Int64
		op = func(int64) (int64, error) {
			switch p := rand.IntN(100); {
			case p < 45:
				return b.get(ctx, fmt.Sprintf("%s%08d", readPrefix, rand.Int64N(n)), w.Size)
			case p < 75:
				_, err := b.c.StatObject(ctx, b.bucket, fmt.Sprintf("%s%08d", readPrefix, rand.Int64N(n)), minio.StatObjectOptions{})
				return 0, err
			case p < 90:
				key := fmt.Sprintf("%s%08d", runID, seq.Add(1))
				err := b.put(ctx, key, payload)
				if err == nil {
					mu.Lock()
					mine = append(mine, key)
					mu.Unlock()
				}
				return w.Size, err
			default:
				mu.Lock()
				var key string
				if len(mine) > 0 {
					key, mine = mine[0], mine[1:]
				}
				mu.Unlock()
				if key == "" {
					_, err := b.c.StatObject(ctx, b.bucket, fmt.Sprintf("%s%08d", readPrefix, rand.Int64N(n)), minio.StatObjectOptions{})
					return 0, err
				}
				return 0, b.c.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{})
			}
		}
	default:
		return result{}, fmt.Errorf("unknown workload %q (put, get, mixed)", w.Kind)
	}
	before, err := cpuSeconds(cpu)
	if err != nil {
		return result{}, err
	}
	r := run(w.Conc, w.Duration, 1<<62, op)
	after, err := cpuSeconds(cpu)
	if err != nil {
		return result{}, err
	}
	if w.Kind == "put" && r.ops > 0 { // leave the disks as they were
		cleanup(ctx, b, runID)
	}
	return r.result(w, after-before), nil
}

// cleanup deletes what a put run wrote (not measured).
func cleanup(ctx context.Context, b *bench, prefix string) {
	objs := b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true})
	for e := range b.c.RemoveObjects(ctx, b.bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", e.Err)
		}
	}
}

// runStats is what run measured.
type runStats struct {
	lat     []time.Duration
	ops     int64
	bytes   int64
	errs    int64
	elapsed time.Duration
}

// run calls op(i) for i = 0, 1, … from conc workers until d has passed or
// limit calls were made; op returns the payload bytes it moved.
func run(conc int, d time.Duration, limit int64, op func(int64) (int64, error)) runStats {
	var next, errs, nbytes atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Since(start) < d {
				i := next.Add(1) - 1
				if i >= limit {
					break
				}
				t := time.Now()
				n, err := op(i)
				if err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "first error:", err)
					}
					continue
				}
				nbytes.Add(n)
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return runStats{lat: lat, ops: int64(len(lat)), bytes: nbytes.Load(), errs: errs.Load(), elapsed: time.Since(start)}
}

// result is one workload run (a JSON line with --json).
type result struct {
	Label      string  `json:"label,omitempty"`
	Workload   string  `json:"workload"`
	Size       string  `json:"size"`
	Conc       int     `json:"concurrency"`
	Ops        int64   `json:"ops"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	Errors     int64   `json:"errors"`
	CPUSeconds float64 `json:"server_cpu_seconds"`
}

func (r runStats) result(w workloadSpec, cpu float64) result {
	slices.Sort(r.lat)
	pct := func(p float64) float64 {
		if len(r.lat) == 0 {
			return 0
		}
		return float64(r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]) / 1e6
	}
	return result{Workload: w.Kind, Size: w.SizeName, Conc: w.Conc, Ops: r.ops, Bytes: r.bytes, Seconds: r.elapsed.Seconds(),
		P50: pct(0.50), P99: pct(0.99), Errors: r.errs, CPUSeconds: cpu}
}

const header = "size     op     conc       MB/s      ops/s     p50 ms     p99 ms   errors  cpu s"

func (r result) row() string {
	return fmt.Sprintf("%-8s %-6s %4d %10.1f %10.1f %10.2f %10.2f %8d %6.2f", r.Size, r.Workload, r.Conc,
		float64(r.Bytes)/r.Seconds/1e6, float64(r.Ops)/r.Seconds, r.P50, r.P99, r.Errors, r.CPUSeconds)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sherd-bench:", err)
	os.Exit(1)
}
