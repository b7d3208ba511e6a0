// Command sherd-bench is a load generator: PUT and GET throughput and latency against an S3 endpoint, with minio-go.
package main

import (
	"bytes"
	"context"
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
	endpoint := flag.String("endpoint", "127.0.0.1:9000", "S3 endpoint host:port")
	bucket := flag.String("bucket", "sherd-bench", "bucket (created if missing)")
	sizes := flag.String("sizes", "4KiB,1MiB,64MiB", "object sizes, comma-separated")
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
	fmt.Printf("%-8s %-4s %4s %10s %10s %10s %10s %8s\n", "size", "op", "conc", "MB/s", "objects/s", "p50", "p99", "errors")
	for _, s := range strings.Split(*sizes, ",") {
		size, err := humanize.ParseBytes(strings.TrimSpace(s))
		if err != nil {
			fail(err)
		}
		prefix := fmt.Sprintf("bench-%d/", size)
		payload := make([]byte, size)
		r := rand.New(rand.NewPCG(size, 1))
		for i := range payload {
			payload[i] = byte(r.Uint32())
		}
		var written atomic.Int64
		put := func(i int64) error {
			_, err := c.PutObject(ctx, *bucket, fmt.Sprintf("%s%08d", prefix, i), bytes.NewReader(payload), int64(size),
				minio.PutObjectOptions{DisableMultipart: true, DisableContentSha256: true})
			if err == nil {
				written.Add(1)
			}
			return err
		}
		report(s, "PUT", *conc, size, run(*conc, *dur, int64(*maxObjs), put))
		n := written.Load()
		if n == 0 {
			continue
		}
		get := func(i int64) error {
			o, err := c.GetObject(ctx, *bucket, fmt.Sprintf("%s%08d", prefix, i%n), minio.GetObjectOptions{})
			if err != nil {
				return err
			}
			defer o.Close()
			m, err := io.Copy(io.Discard, o)
			if err == nil && m != int64(size) {
				err = fmt.Errorf("short read %d", m)
			}
			return err
		}
		report(s, "GET", *conc, size, run(*conc, *dur, 1<<62, get))
	}
}

type result struct {
	lat     []time.Duration
	errs    int64
	elapsed time.Duration
}

// run calls op(i) for i = 0, 1, … from conc workers until d has passed or
// limit calls were made.
func run(conc int, d time.Duration, limit int64, op func(int64) error) result {
	var next, errs atomic.Int64
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
				if err := op(i); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "first error:", err)
					}
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return result{lat: lat, errs: errs.Load(), elapsed: time.Since(start)}
}

func report(size, op string, conc int, bytesPer uint64, r result) {
	slices.Sort(r.lat)
	pct := func(p float64) time.Duration {
		if len(r.lat) == 0 {
			return 0
		}
		return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
	}
	secs := r.elapsed.Seconds()
	n := float64(len(r.lat))
	fmt.Printf("%-8s %-4s %4d %10.1f %10.1f %10s %10s %8d\n", size, op, conc, n*float64(bytesPer)/secs/1e6, n/secs,
		pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), r.errs)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sherd-bench:", err)
	os.Exit(1)
}
