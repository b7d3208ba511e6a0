package erasure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// stallingReader blocks every Read until its context ends.
type stallingReader struct{ ctx context.Context }

func (s stallingReader) Read([]byte) (int, error) {
	<-s.ctx.Done()
	return 0, context.Cause(s.ctx)
}
func (stallingReader) Close() error { return nil }

// causes records the cancel cause each shard's context ended with.
type causes struct {
	mu sync.Mutex
	m  map[int]error
}

func (c *causes) watch(ctx context.Context, i int) {
	go func() {
		<-ctx.Done()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.m == nil {
			c.m = map[int]error{}
		}
		c.m[i] = context.Cause(ctx)
	}()
}

func (c *causes) get(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[i]
}

func TestReadRangeHedgesAndAbandonsStalls(t *testing.T) {
	c, err := New(Profile{K: 4, M: 2, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 5*4096+100)
	rand.NewChaCha8([32]byte{1}).Read(data)
	files := encodeAll(t, c, data)
	for _, tc := range []struct {
		name      string
		stall     map[int]bool // opens that hang
		stallRead map[int]bool // opens fine, then reads hang
		opt       ReadOptions
		wantCause error
		wantErr   error
	}{
		{"hedge past a hung open", map[int]bool{1: true}, nil, ReadOptions{Hedge: 20 * time.Millisecond}, errHedged, nil},
		{"hedge past a hung read", nil, map[int]bool{0: true}, ReadOptions{Hedge: 20 * time.Millisecond}, errHedged, nil},
		{"stall timeout without hedging", map[int]bool{2: true}, nil, ReadOptions{Stall: 30 * time.Millisecond}, ErrStalled, nil},
		{"two hung, both hedged", map[int]bool{0: true, 3: true}, nil, ReadOptions{Hedge: 10 * time.Millisecond, Stall: time.Second}, errHedged, nil},
		{"three hung: too few", map[int]bool{0: true, 1: true, 4: true}, nil, ReadOptions{Hedge: 10 * time.Millisecond, Stall: 50 * time.Millisecond}, ErrStalled, ErrTooFewShards},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cs causes
			open := func(ctx context.Context, i int, off, n int64) (io.ReadCloser, error) {
				if tc.stall[i] || tc.stallRead[i] {
					cs.watch(ctx, i)
				}
				if tc.stall[i] {
					<-ctx.Done()
					return nil, context.Cause(ctx)
				}
				if tc.stallRead[i] {
					return stallingReader{ctx}, nil
				}
				return io.NopCloser(bytes.NewReader(files[i][off : off+n])), nil
			}
			var out bytes.Buffer
			bad, err := c.ReadRangeWith(context.Background(), &out, int64(len(data)), 0, int64(len(data)), open, tc.opt)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatal("wrong bytes")
			}
			if len(bad) != 0 {
				t.Fatalf("bad %v: a late shard is not a bad one", bad)
			}
			// Every goroutine has ended: the hung shards' contexts are done.
			for i := range 6 {
				if tc.stall[i] || tc.stallRead[i] {
					deadline := time.Now().Add(2 * time.Second)
					for cs.get(i) == nil && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
					if got := cs.get(i); !errors.Is(got, tc.wantCause) && !errors.Is(got, errHedged) {
						t.Fatalf("shard %d cancelled with %v, want %v", i, got, tc.wantCause)
					}
				}
			}
		})
	}
}

// TestReadRangeWithRandomDelaysMatchesData checks the hedging reader
// against the plain answer: whatever the delays and failures, as long as K
// shards answer the bytes are the data's.
func TestReadRangeWithRandomDelaysMatchesData(t *testing.T) {
	c, err := New(Profile{K: 3, M: 2, BlockSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 7*1024+33)
	rand.NewChaCha8([32]byte{2}).Read(data)
	files := encodeAll(t, c, data)
	for trial := range 60 {
		delays := make([]time.Duration, 5)
		failing := map[int]bool{}
		for i := range delays {
			delays[i] = time.Duration(rng.IntN(4)) * time.Millisecond
		}
		if trial%3 == 0 {
			failing[rng.IntN(5)] = true
		}
		open := func(ctx context.Context, i int, off, n int64) (io.ReadCloser, error) {
			if failing[i] {
				return nil, fmt.Errorf("shard %d gone", i)
			}
			select {
			case <-time.After(delays[i]):
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
			return io.NopCloser(bytes.NewReader(files[i][off : off+n])), nil
		}
		off := rng.Int64N(int64(len(data)))
		n := rng.Int64N(int64(len(data)) - off)
		var out bytes.Buffer
		if _, err := c.ReadRangeWith(context.Background(), &out, int64(len(data)), off, n, open, ReadOptions{Hedge: time.Millisecond, Stall: time.Second}); err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if !bytes.Equal(out.Bytes(), data[off:off+n]) {
			t.Fatalf("trial %d: wrong bytes", trial)
		}
	}
}
