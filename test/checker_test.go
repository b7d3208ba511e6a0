package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// The checker runs a bounded S3 load (PUT, overwrite, DELETE, GET with
// byte comparison, multipart) and keeps a model of what was acknowledged,
// to catch what a fault must never cause:
//
//   - a read that returns bytes (or an absence) that no acknowledged write
//     explains: a lost acknowledged write, a resurrected delete, wrong
//     bytes;
//   - a read of acknowledged data that fails after every retry.
//
// Each worker owns its keys, so the operations on one key are sequential
// and the model is exact: after an acknowledged write the key holds that
// version and nothing else; after a write that failed (after every retry)
// it may hold the old or the new one (the write may have committed before
// the failure), and a read may return either until the next acknowledged
// write. Clients retry as the SDKs do: 5xx and connection errors, with
// backoff, up to checkAttempts times; every failed attempt is counted by
// status, so the cost of a fault shows even when the retries hide it.

const checkAttempts = 8

// objVersion is one state a key may be in.
type objVersion struct {
	absent bool
	size   int
	sum    [32]byte
}

func (v objVersion) String() string {
	if v.absent {
		return "absent"
	}
	return fmt.Sprintf("%d bytes %x", v.size, v.sum[:4])
}

type keyState struct {
	name     string
	possible []objVersion // what a read may find
}

func (k *keyState) acked(v objVersion) { k.possible = []objVersion{v} }

func (k *keyState) inDoubt(v objVersion) {
	if !slices.Contains(k.possible, v) {
		k.possible = append(k.possible, v)
	}
}

func (k *keyState) surely() (objVersion, bool) {
	if len(k.possible) == 1 {
		return k.possible[0], true
	}
	return objVersion{}, false
}

// checkStats is what the checker saw in a window of time.
type checkStats struct {
	ops          map[string]int             // acknowledged operations by kind
	lat          map[string][]time.Duration // their latency, retries included
	attempts     map[string]int             // failed attempts, by status and code ("conn": no HTTP answer)
	failed       map[string]int             // operations failed after every retry, by kind
	wrong        int                        // reads no acknowledged or in-doubt write explains
	readFailures int                        // reads of acknowledged data failed after every retry
	notes        []string                   // the first violations and failures
}

func newCheckStats() *checkStats {
	return &checkStats{ops: map[string]int{}, lat: map[string][]time.Duration{}, attempts: map[string]int{}, failed: map[string]int{}}
}

func (s *checkStats) note(format string, args ...any) {
	if len(s.notes) < 12 {
		s.notes = append(s.notes, fmt.Sprintf(format, args...))
	}
}

// quantile of the acknowledged operations of the given kinds.
func (s *checkStats) quantile(q float64, kinds ...string) time.Duration {
	var ds []time.Duration
	for _, k := range kinds {
		ds = append(ds, s.lat[k]...)
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

func (s *checkStats) total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// byKey formats a count map as "k n, k n" (sorted), or "0".
func byKey(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

type checker struct {
	t       *testing.T
	c       *s3.Client
	bucket  string
	keys    [][]*keyState
	stopped chan struct{}
	wg      sync.WaitGroup

	mu sync.Mutex
	st *checkStats

	multipartInFlight atomic.Int32
	ops               atomic.Int64
}

// startChecker runs workers, each over keysPer keys of its own, until stop.
func startChecker(t *testing.T, c *s3.Client, bucket string, workers, keysPer int) *checker {
	ck := &checker{t: t, c: c, bucket: bucket, stopped: make(chan struct{}), st: newCheckStats()}
	for w := range workers {
		var ks []*keyState
		for i := range keysPer {
			ks = append(ks, &keyState{name: fmt.Sprintf("w%d/k%02d", w, i), possible: []objVersion{{absent: true}}})
		}
		ck.keys = append(ck.keys, ks)
		ck.wg.Add(1)
		go ck.work(rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano()))), ks)
	}
	t.Cleanup(ck.stop)
	return ck
}

func (ck *checker) stop() {
	select {
	case <-ck.stopped:
	default:
		close(ck.stopped)
	}
	ck.wg.Wait()
}

// window returns what was seen since the last call and starts anew.
func (ck *checker) window() *checkStats {
	ck.mu.Lock()
	defer ck.mu.Unlock()
	st := ck.st
	ck.st = newCheckStats()
	return st
}

func (ck *checker) record(f func(st *checkStats)) {
	ck.mu.Lock()
	f(ck.st)
	ck.mu.Unlock()
}

// content is n pseudo-random bytes from seed.
func content(n int, seed uint64) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

func objectSize(rng *rand.Rand) int {
	switch r := rng.Float64(); {
	case r < 0.5:
		return rng.IntN(16 << 10)
	case r < 0.88:
		return 16<<10 + rng.IntN(1<<20)
	default:
		return 1<<20 + rng.IntN(3<<20)
	}
}

func (ck *checker) work(rng *rand.Rand, keys []*keyState) {
	defer ck.wg.Done()
	for {
		select {
		case <-ck.stopped:
			return
		default:
		}
		k := keys[rng.IntN(len(keys))]
		switch r := rng.Float64(); {
		case r < 0.45:
			ck.get(ck.c, k, ck.record)
		case r < 0.80:
			ck.put(k, content(objectSize(rng), rng.Uint64()))
		case r < 0.92:
			ck.delete(k)
		default:
			ck.multipart(k, rng)
		}
		ck.ops.Add(1)
	}
}

// retryable: what the SDKs retry (5xx, throttling, no answer).
func retryable(err error) bool {
	code, status := errCode(err)
	return status == 0 || status >= 500 || code == "SlowDown"
}

func attemptLabel(err error) string {
	code, status := errCode(err)
	if status == 0 {
		return "conn"
	}
	return fmt.Sprintf("%d %s", status, code)
}

// retry runs f until it succeeds, fails with an error not worth retrying,
// or has failed checkAttempts times, each attempt with a 1-minute deadline.
func (ck *checker) retry(f func(ctx context.Context) error) error {
	var err error
	for i := range checkAttempts {
		if i > 0 {
			time.Sleep(min(100*time.Millisecond<<i, 2*time.Second))
		}
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		err = f(actx)
		cancel()
		if err == nil || !retryable(err) {
			return err
		}
		ck.record(func(st *checkStats) { st.attempts[attemptLabel(err)]++ })
	}
	return err
}

func (ck *checker) done(kind string, start time.Time) {
	d := time.Since(start)
	ck.record(func(st *checkStats) { st.ops[kind]++; st.lat[kind] = append(st.lat[kind], d) })
}

func (ck *checker) fail(kind, key string, err error) {
	ck.record(func(st *checkStats) { st.failed[kind]++; st.note("%s %s failed: %v", kind, key, err) })
}

func (ck *checker) put(k *keyState, data []byte) {
	v := objVersion{size: len(data), sum: sha256.Sum256(data)}
	start := time.Now()
	err := ck.retry(func(ctx context.Context) error {
		_, err := ck.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &ck.bucket, Key: &k.name, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
		return err
	})
	if err != nil {
		k.inDoubt(v)
		ck.fail("put", k.name, err)
		return
	}
	k.acked(v)
	ck.done("put", start)
}

func (ck *checker) delete(k *keyState) {
	start := time.Now()
	err := ck.retry(func(ctx context.Context) error {
		_, err := ck.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &ck.bucket, Key: &k.name})
		return err
	})
	if err != nil {
		k.inDoubt(objVersion{absent: true})
		ck.fail("delete", k.name, err)
		return
	}
	k.acked(objVersion{absent: true})
	ck.done("delete", start)
}

// read fetches a key: its version as found (absent, or size and hash).
func read(c *s3.Client, bucket, key string, retry func(func(context.Context) error) error) (objVersion, error) {
	var got objVersion
	err := retry(func(ctx context.Context) error {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			got = objVersion{absent: true}
			return nil
		}
		if err != nil {
			return err
		}
		defer out.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, out.Body)
		if err != nil {
			return err // a cut body: no HTTP status, retried
		}
		got = objVersion{size: int(n)}
		h.Sum(got.sum[:0])
		return nil
	})
	return got, err
}

// get reads a key through c and checks it against the model; record
// receives the outcome (the load's window, or a verification's stats).
func (ck *checker) get(c *s3.Client, k *keyState, record func(func(*checkStats))) {
	start := time.Now()
	got, err := read(c, ck.bucket, k.name, ck.retry)
	if err != nil {
		record(func(st *checkStats) {
			st.failed["get"]++
			if v, sure := k.surely(); !sure || !v.absent {
				st.readFailures++
			}
			st.note("get %s failed: %v", k.name, err)
		})
		return
	}
	if !slices.Contains(k.possible, got) {
		record(func(st *checkStats) {
			st.wrong++
			st.note("get %s: found %v; acknowledged or in doubt: %v", k.name, got, k.possible)
		})
		return
	}
	d := time.Since(start)
	record(func(st *checkStats) { st.ops["get"]++; st.lat["get"] = append(st.lat["get"], d) })
}

// multipart uploads a 5 MiB part and a small one and completes them.
func (ck *checker) multipart(k *keyState, rng *rand.Rand) {
	ck.multipartInFlight.Add(1)
	defer ck.multipartInFlight.Add(-1)
	start := time.Now()
	parts := [][]byte{content(5<<20, rng.Uint64()), content(1+rng.IntN(512<<10), rng.Uint64())}
	v := objVersion{size: len(parts[0]) + len(parts[1]), sum: sha256.Sum256(append(slices.Clip(parts[0]), parts[1]...))}
	var id *string
	err := ck.retry(func(ctx context.Context) error {
		out, err := ck.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &ck.bucket, Key: &k.name})
		if err == nil {
			id = out.UploadId
		}
		return err
	})
	if err != nil {
		ck.fail("multipart", k.name, err)
		return
	}
	var done []types.CompletedPart
	for i, p := range parts {
		err = ck.retry(func(ctx context.Context) error {
			out, err := ck.c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &ck.bucket, Key: &k.name, UploadId: id,
				PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p), ContentLength: aws.Int64(int64(len(p)))})
			if err == nil {
				done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
			}
			return err
		})
		if err != nil {
			ck.fail("multipart", k.name, err)
			ck.retry(func(ctx context.Context) error {
				_, err := ck.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &ck.bucket, Key: &k.name, UploadId: id})
				return err
			})
			return
		}
	}
	err = ck.retry(func(ctx context.Context) error {
		_, err := ck.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &ck.bucket, Key: &k.name, UploadId: id,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
		return err
	})
	if err != nil {
		k.inDoubt(v)
		ck.fail("multipart", k.name, err)
		return
	}
	k.acked(v)
	ck.done("multipart", start)
}

// verify reads every key through each client and lists the bucket
// through the first: after stop, with the faults healed.
func (ck *checker) verify(clients ...*s3.Client) *checkStats {
	st := newCheckStats()
	rec := func(f func(*checkStats)) { f(st) }
	for _, c := range clients {
		for _, ks := range ck.keys {
			for _, k := range ks {
				ck.get(c, k, rec)
			}
		}
	}
	listed := map[string]bool{}
	p := s3.NewListObjectsV2Paginator(clients[0], &s3.ListObjectsV2Input{Bucket: &ck.bucket})
	for p.HasMorePages() {
		var page *s3.ListObjectsV2Output
		err := ck.retry(func(ctx context.Context) error {
			var err error
			page, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			st.failed["list"]++
			st.note("list: %v", err)
			break
		}
		for _, o := range page.Contents {
			listed[*o.Key] = true
		}
	}
	for _, ks := range ck.keys {
		for _, k := range ks {
			if v, sure := k.surely(); sure && v.absent == listed[k.name] {
				st.wrong++
				st.note("list: %s listed %v, acknowledged %v", k.name, listed[k.name], v)
			}
		}
	}
	return st
}
