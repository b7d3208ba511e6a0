package erasure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// encodeAll encodes data into in-memory shard files.
func encodeAll(t testing.TB, c *Codec, data []byte) [][]byte {
	t.Helper()
	bufs := make([]*bytes.Buffer, c.p.Shards())
	ws := make([]io.Writer, len(bufs))
	for i := range bufs {
		bufs[i] = new(bytes.Buffer)
		ws[i] = bufs[i]
	}
	res, err := c.Encode(bytes.NewReader(data), ws, c.p.Shards())
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != int64(len(data)) {
		t.Fatalf("size %d, want %d", res.Size, len(data))
	}
	l := Layout{Profile: c.p, Size: int64(len(data))}
	out := make([][]byte, len(bufs))
	for i, b := range bufs {
		out[i] = b.Bytes()
		if int64(len(out[i])) != l.ShardSize() {
			t.Fatalf("shard %d: %d bytes, layout says %d", i, len(out[i]), l.ShardSize())
		}
		if res.ShardHashes[i] != NewShardHasherSum(out[i]) {
			t.Fatalf("shard %d: hash mismatch", i)
		}
	}
	return out
}

func NewShardHasherSum(b []byte) [HashSize]byte {
	h := NewShardHasher()
	h.Write(b)
	return h.Sum128().Bytes()
}

// opener serves shard files from memory; missing shards fail to open.
func opener(files [][]byte, missing map[int]bool) OpenFunc {
	return func(_ context.Context, i int, off, n int64) (io.ReadCloser, error) {
		if missing[i] {
			return nil, fmt.Errorf("shard %d missing", i)
		}
		return io.NopCloser(bytes.NewReader(files[i][off : off+n])), nil
	}
}

func readRange(t testing.TB, c *Codec, files [][]byte, size, off, n int64, missing map[int]bool) ([]byte, []int, error) {
	var out bytes.Buffer
	bad, err := c.ReadRange(context.Background(), &out, size, off, n, opener(files, missing))
	return out.Bytes(), bad, err
}

// subsets calls f with every set of shards of size m out of n.
func subsets(n, m int, f func(map[int]bool)) {
	var rec func(start int, cur map[int]bool)
	rec = func(start int, cur map[int]bool) {
		if len(cur) == m {
			f(cur)
			return
		}
		for i := start; i < n; i++ {
			cur[i] = true
			rec(i+1, cur)
			delete(cur, i)
		}
	}
	rec(0, map[int]bool{})
}

func TestEveryKSurvivorsRebuild(t *testing.T) {
	profiles := []Profile{
		{K: 2, M: 1, BlockSize: 4096},
		{K: 4, M: 2, BlockSize: 4096},
		{K: 8, M: 4, BlockSize: 4096},
		{K: 4, M: 2, BlockSize: DefaultBlockSize},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range profiles {
		bs := p.BlockSize
		sizes := []int{0, 1, p.K - 1, p.K + 1, bs - 1, bs, bs + 1, 3*bs + 17}
		if bs == DefaultBlockSize {
			sizes = []int{0, 1, bs, 5*bs + 12345}
		}
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%d+%d/bs=%d/size=%d", p.K, p.M, bs, size), func(t *testing.T) {
				c, err := New(p)
				if err != nil {
					t.Fatal(err)
				}
				data := make([]byte, size)
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
				files := encodeAll(t, c, data)
				// Every choice of exactly k survivors (m missing) reproduces the data.
				subsets(p.Shards(), p.M, func(missing map[int]bool) {
					got, _, err := readRange(t, c, files, int64(size), 0, int64(size), missing)
					if err != nil {
						t.Fatalf("missing %v: %v", missing, err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("missing %v: data differs", missing)
					}
					// And random ranges match.
					for range 3 {
						if size == 0 {
							break
						}
						off := rng.Int64N(int64(size))
						n := rng.Int64N(int64(size)-off) + 1
						got, _, err := readRange(t, c, files, int64(size), off, n, missing)
						if err != nil || !bytes.Equal(got, data[off:off+n]) {
							t.Fatalf("missing %v range [%d,+%d): err %v, equal %v", missing, off, n, err, bytes.Equal(got, data[off:off+n]))
						}
					}
				})
				// One more missing than m is unrecoverable (when there is data).
				if size > 0 && p.M+1 <= p.Shards() {
					subsets(p.Shards(), p.M+1, func(missing map[int]bool) {
						_, _, err := readRange(t, c, files, int64(size), 0, int64(size), missing)
						if !errors.Is(err, ErrTooFewShards) {
							t.Fatalf("missing %v: err %v, want ErrTooFewShards", missing, err)
						}
					})
				}
			})
		}
	}
}

func TestBitFlipDetectedAndRoutedAround(t *testing.T) {
	p := Profile{K: 4, M: 2, BlockSize: 4096}
	c, _ := New(p)
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 5*4096+100)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	files := encodeAll(t, c, data)
	l := Layout{Profile: p, Size: int64(len(data))}
	for shard := 0; shard < p.Shards(); shard++ {
		for s := int64(0); s < l.Stripes(); s++ {
			// flip one bit in the hash and one in the block of this record
			for _, at := range []int64{l.RecordOffset(s) + 3, l.RecordOffset(s) + HashSize + int64(l.ShardBlock(s))/2} {
				corrupt := make([][]byte, len(files))
				copy(corrupt, files)
				corrupt[shard] = bytes.Clone(files[shard])
				corrupt[shard][at] ^= 0x10
				got, bad, err := readRange(t, c, corrupt, int64(len(data)), 0, int64(len(data)), nil)
				if err != nil {
					t.Fatalf("shard %d stripe %d: %v", shard, s, err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("shard %d stripe %d: wrong data", shard, s)
				}
				// A data shard's corruption is always seen; a parity shard's only if read.
				if shard < p.K && (len(bad) != 1 || bad[0] != shard) {
					t.Fatalf("shard %d stripe %d: bad = %v", shard, s, bad)
				}
			}
		}
	}
}

func TestShortShardIsBad(t *testing.T) {
	p := Profile{K: 2, M: 1, BlockSize: 1024}
	c, _ := New(p)
	data := bytes.Repeat([]byte("sherd"), 1000)
	files := encodeAll(t, c, data)
	files[0] = files[0][:len(files[0])/2] // truncated shard file
	open := func(_ context.Context, i int, off, n int64) (io.ReadCloser, error) {
		f := files[i]
		end := min(off+n, int64(len(f)))
		return io.NopCloser(bytes.NewReader(f[min(off, end):end])), nil
	}
	var out bytes.Buffer
	bad, err := c.ReadRange(context.Background(), &out, int64(len(data)), 0, int64(len(data)), open)
	if err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("err %v equal %v", err, bytes.Equal(out.Bytes(), data))
	}
	if len(bad) != 1 || bad[0] != 0 {
		t.Fatalf("bad = %v", bad)
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(b []byte) (int, error) {
	if w.n < len(b) {
		return 0, errors.New("injected write failure")
	}
	w.n -= len(b)
	return len(b), nil
}

func TestEncodeToleratesFailedWritersDownToQuorum(t *testing.T) {
	p := Profile{K: 4, M: 2, BlockSize: 1024}
	c, _ := New(p)
	data := make([]byte, 10*1024)
	mk := func(failing int) []io.Writer {
		ws := make([]io.Writer, 6)
		for i := range ws {
			ws[i] = io.Discard
		}
		for i := 0; i < failing; i++ {
			ws[i] = &failingWriter{n: 2000}
		}
		return ws
	}
	res, err := c.Encode(bytes.NewReader(data), mk(1), 5)
	if err != nil || res.Healthy() != 5 || res.ShardErrs[0] == nil {
		t.Fatalf("one failure: err %v healthy %d", err, res.Healthy())
	}
	_, err = c.Encode(bytes.NewReader(data), mk(2), 5)
	if !errors.Is(err, ErrTooFewShards) {
		t.Fatalf("two failures with quorum 5: err %v", err)
	}
}

func TestLayout(t *testing.T) {
	tests := []struct {
		p                Profile
		size             int64
		stripes, shardSz int64
	}{
		{Profile{4, 2, 1 << 20}, 0, 0, 0},
		{Profile{4, 2, 1 << 20}, 1, 1, HashSize + 1},
		{Profile{4, 2, 1 << 20}, 1 << 20, 1, HashSize + 1<<18},
		{Profile{4, 2, 1 << 20}, 1<<20 + 5, 2, 2*HashSize + 1<<18 + 2},
		{Profile{3, 1, 10}, 25, 3, 3*HashSize + 4 + 4 + 2},
	}
	for _, tt := range tests {
		l := Layout{Profile: tt.p, Size: tt.size}
		if l.Stripes() != tt.stripes || l.ShardSize() != tt.shardSz {
			t.Errorf("%+v size %d: stripes %d shard size %d, want %d %d", tt.p, tt.size, l.Stripes(), l.ShardSize(), tt.stripes, tt.shardSz)
		}
	}
}

func TestProfileValidate(t *testing.T) {
	for _, p := range []Profile{{0, 1, 10}, {1, -1, 10}, {200, 100, 1 << 20}, {4, 2, 3}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := DefaultProfile().Validate(); err != nil {
		t.Error(err)
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, p := range []Profile{{4, 2, DefaultBlockSize}, {8, 4, DefaultBlockSize}} {
		b.Run(fmt.Sprintf("%d+%d", p.K, p.M), func(b *testing.B) {
			c, _ := New(p)
			data := make([]byte, 64<<20)
			ws := make([]io.Writer, p.Shards())
			for i := range ws {
				ws[i] = io.Discard
			}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := c.Encode(bytes.NewReader(data), ws, p.Shards()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	p := DefaultProfile()
	c, _ := New(p)
	data := make([]byte, 64<<20)
	files := encodeAll(b, c, data)
	for _, tc := range []struct {
		name    string
		missing map[int]bool
	}{{"healthy", nil}, {"2-data-shards-missing", map[int]bool{0: true, 2: true}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := c.ReadRange(context.Background(), io.Discard, int64(len(data)), 0, int64(len(data)), opener(files, tc.missing)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestCopyRecords(t *testing.T) {
	p := Profile{K: 4, M: 2, BlockSize: 4096}
	c, _ := New(p)
	data := make([]byte, 3*4096+77)
	for i := range data {
		data[i] = byte(i * 7)
	}
	files := encodeAll(t, c, data)
	for i, f := range files {
		var out bytes.Buffer
		n, err := CopyRecords(&out, bytes.NewReader(f), p.FullShardBlock())
		if err != nil || n != int64(len(f)) || !bytes.Equal(out.Bytes(), f) {
			t.Fatalf("shard %d: n=%d err=%v", i, n, err)
		}
	}
	bad := bytes.Clone(files[1])
	bad[len(bad)-1] ^= 1
	if _, err := CopyRecords(io.Discard, bytes.NewReader(bad), p.FullShardBlock()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
	torn := files[1][:HashSize+p.FullShardBlock()+HashSize-3]
	if _, err := CopyRecords(io.Discard, bytes.NewReader(torn), p.FullShardBlock()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("torn: %v", err)
	}
}

func FuzzCopyRecords(f *testing.F) {
	c, _ := New(Profile{K: 2, M: 1, BlockSize: 64})
	var b bytes.Buffer
	c.Encode(bytes.NewReader(bytes.Repeat([]byte("x"), 150)), []io.Writer{&b, io.Discard, io.Discard}, 3)
	f.Add(b.Bytes(), 32)
	f.Fuzz(func(t *testing.T, in []byte, blockLen int) {
		if blockLen > 1<<16 {
			return
		}
		var out bytes.Buffer
		n, err := CopyRecords(&out, bytes.NewReader(in), blockLen)
		if int64(out.Len()) != n {
			t.Fatalf("reported %d, wrote %d", n, out.Len())
		}
		if err == nil && !bytes.Equal(out.Bytes(), in) {
			t.Fatal("accepted input not copied verbatim")
		}
	})
}

// TestCopyRecordsBufferGrowth: records shorter than, equal to and longer
// than CopyRecords' starting buffer (16 KiB), whole and short last
// stripes, all copy verbatim; a record torn right at the buffer's end is
// corrupt.
func TestCopyRecordsBufferGrowth(t *testing.T) {
	for _, tc := range []struct {
		name      string
		blockSize int
		size      int
	}{
		{"small shards", 4096, 5000},
		{"block exactly the starting buffer", 4 * (16 << 10), 3*4*(16<<10) + 100},
		{"last record exactly the starting buffer", 4 * (64 << 10), 4*(64<<10) + 4*(16<<10)},
		{"1 MiB blocks", 1 << 20, 2<<20 + 12345},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Profile{K: 4, M: 2, BlockSize: tc.blockSize}
			c, err := New(p)
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, tc.size)
			for i := range data {
				data[i] = byte(i*13 + i>>8)
			}
			for i, f := range encodeAll(t, c, data) {
				var out bytes.Buffer
				n, err := CopyRecords(&out, bytes.NewReader(f), p.FullShardBlock())
				if err != nil || n != int64(len(f)) || !bytes.Equal(out.Bytes(), f) {
					t.Fatalf("shard %d: n=%d of %d, err=%v", i, n, len(f), err)
				}
			}
		})
	}
	p := Profile{K: 4, M: 2, BlockSize: 4 * (64 << 10)}
	c, _ := New(p)
	f := encodeAll(t, c, make([]byte, p.BlockSize))[0]
	torn := f[:HashSize+16<<10] // ends where the first buffer does, inside the record
	if _, err := CopyRecords(io.Discard, bytes.NewReader(torn), p.FullShardBlock()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("torn at the buffer's end: %v", err)
	}
}

// appendThenCopy reads a shard as the storage node does: AppendRecords up
// to max bytes into a buffer grown by small steps, then CopyRecords for
// the rest.
func appendThenCopy(r io.Reader, blockLen int, max int64) ([]byte, error) {
	var hashed bytes.Buffer
	grow := func(b []byte, n int) []byte { return append(make([]byte, 0, len(b)+n), b...) }
	buf, more, err := AppendRecords(nil, r, blockLen, max, &hashed, grow)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(hashed.Bytes(), buf) {
		return nil, errors.New("hasher did not see exactly the buffered records")
	}
	if more {
		var rest bytes.Buffer
		if _, err := CopyRecords(&rest, r, blockLen); err != nil {
			return nil, err
		}
		buf = append(buf, rest.Bytes()...)
	}
	return buf, nil
}

// AppendRecords (+ CopyRecords past max) accepts exactly what CopyRecords,
// the reference, accepts, with the same bytes, whatever the reads' sizes.
func FuzzAppendRecords(f *testing.F) {
	c, _ := New(Profile{K: 2, M: 1, BlockSize: 64})
	var b bytes.Buffer
	c.Encode(bytes.NewReader(bytes.Repeat([]byte("x"), 150)), []io.Writer{&b, io.Discard, io.Discard}, 3)
	f.Add(b.Bytes(), 32, int64(40), false)
	f.Add(b.Bytes(), 32, int64(-1), true)
	f.Add(b.Bytes(), 32, int64(1000), true)
	f.Fuzz(func(t *testing.T, in []byte, blockLen int, max int64, oneByte bool) {
		if blockLen > 1<<16 {
			return
		}
		var want bytes.Buffer
		_, werr := CopyRecords(&want, bytes.NewReader(in), blockLen)
		var r io.Reader = bytes.NewReader(in)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		got, gerr := appendThenCopy(r, blockLen, max)
		if (werr == nil) != (gerr == nil) || (werr != nil && errors.Is(werr, ErrCorrupt) != errors.Is(gerr, ErrCorrupt)) {
			t.Fatalf("CopyRecords: %v; AppendRecords: %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want.Bytes()) {
			t.Fatal("accepted input differs")
		}
	})
}

// The storage node's way of reading shards matches CopyRecords on real
// shards of every shape, for thresholds below, inside and above them.
func TestAppendRecordsMatchesCopyRecords(t *testing.T) {
	for _, blockSize := range []int{4096, 4 * (64 << 10)} {
		p := Profile{K: 4, M: 2, BlockSize: blockSize}
		c, _ := New(p)
		for _, size := range []int{1, 5000, 3*blockSize + 77, 4 * blockSize} {
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(i*7 + i>>9)
			}
			for i, file := range encodeAll(t, c, data) {
				for _, max := range []int64{-1, 0, int64(len(file) / 2), int64(len(file)), 1 << 30} {
					got, err := appendThenCopy(bytes.NewReader(file), p.FullShardBlock(), max)
					if err != nil || !bytes.Equal(got, file) {
						t.Fatalf("block %d size %d shard %d max %d: %v", blockSize, size, i, max, err)
					}
				}
				if len(file) > HashSize+1 {
					bad := bytes.Clone(file)
					bad[len(bad)-1] ^= 1
					if _, err := appendThenCopy(bytes.NewReader(bad), p.FullShardBlock(), 1<<30); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("flipped bit: %v", err)
					}
				}
			}
		}
	}
}
