package erasure

// Design of the stream codec.
//
// Invariants:
//   - Memory is O(BlockSize * (K+M)/K) per Encode or ReadRange call, whatever
//     the segment's size: nothing buffers a whole segment.
//   - Every shard block is written as hash || block; a reader never returns
//     bytes whose block failed its hash.
//   - ReadRange reads only the stripes that overlap the range, and only the K
//     data shards while they are healthy; parity is opened (at the current
//     stripe) only when a data shard is missing, failing or corrupt.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/xxh3"
)

// Codec encodes and decodes segments for one Profile. It is safe for
// concurrent use.
type Codec struct {
	p  Profile
	rs reedsolomon.Encoder
}

// New returns a Codec for p.
func New(p Profile) (*Codec, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Codec{p: p}
	if p.M > 0 {
		rs, err := reedsolomon.New(p.K, p.M)
		if err != nil {
			return nil, fmt.Errorf("erasure: %w", err)
		}
		c.rs = rs
	}
	return c, nil
}

// Profile returns the codec's profile.
func (c *Codec) Profile() Profile { return c.p }

// EncodeResult is what Encode learned about the segment it wrote.
type EncodeResult struct {
	Size        int64            // object bytes read from r
	ShardHashes [][HashSize]byte // XXH3-128 of each whole shard file
	ShardErrs   []error          // per shard: the first write error, or nil
}

// Healthy is the number of shards written without error.
func (r EncodeResult) Healthy() int {
	n := 0
	for _, err := range r.ShardErrs {
		if err == nil {
			n++
		}
	}
	return n
}

// Encode reads r to EOF and writes the K+M shard files to w (len(w) must be
// K+M), block by block, to all shards in parallel. A writer that fails is
// dropped for the rest of the segment and its error recorded; encoding goes
// on while at least minHealthy writers remain, else Encode stops with an
// error wrapping ErrTooFewShards. A nil writer counts as failed from the
// start. Encode never closes the writers. An error reading r is returned as
// is (wrapped); the shards written so far are then garbage.
func (c *Codec) Encode(r io.Reader, w []io.Writer, minHealthy int) (EncodeResult, error) {
	n := c.p.Shards()
	if len(w) != n {
		return EncodeResult{}, fmt.Errorf("erasure: encode: %d writers for %d shards", len(w), n)
	}
	res := EncodeResult{ShardHashes: make([][HashSize]byte, n), ShardErrs: make([]error, n)}
	hashers := make([]*xxh3.Hasher128, n)
	for i := range w {
		hashers[i] = xxh3.New128()
		if w[i] == nil {
			res.ShardErrs[i] = errors.New("erasure: no writer")
		}
	}
	full := c.p.FullShardBlock()
	data := make([]byte, c.p.BlockSize)
	records := make([][]byte, n)
	for i := range records {
		records[i] = make([]byte, HashSize+full)
	}
	shards := make([][]byte, n)
	var wg sync.WaitGroup
	for {
		got, rerr := io.ReadFull(r, data)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return res, fmt.Errorf("erasure: encode: read: %w", rerr)
		}
		if got == 0 {
			break
		}
		res.Size += int64(got)
		per := ceilDiv(got, c.p.K)
		for i := range shards {
			shards[i] = records[i][HashSize : HashSize+per]
			if i < c.p.K {
				lo := min(i*per, got)
				hi := min(lo+per, got)
				m := copy(shards[i], data[lo:hi])
				clear(shards[i][m:])
			}
		}
		if c.rs != nil {
			if err := c.rs.Encode(shards); err != nil {
				return res, fmt.Errorf("erasure: encode: %w", err)
			}
		}
		for i := range shards {
			if res.ShardErrs[i] != nil {
				continue
			}
			h := BlockHash(shards[i])
			copy(records[i], h[:])
			rec := records[i][:HashSize+per]
			hashers[i].Write(rec)
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if _, err := w[i].Write(rec); err != nil {
					res.ShardErrs[i] = err
				}
			}(i)
		}
		wg.Wait()
		if h := res.Healthy(); h < minHealthy {
			return res, fmt.Errorf("erasure: encode: %d healthy shards, need %d: %w", h, minHealthy, ErrTooFewShards)
		}
		if rerr != nil {
			break
		}
	}
	for i := range hashers {
		res.ShardHashes[i] = hashers[i].Sum128().Bytes()
	}
	if h := res.Healthy(); h < minHealthy {
		return res, fmt.Errorf("erasure: encode: %d healthy shards, need %d: %w", h, minHealthy, ErrTooFewShards)
	}
	return res, nil
}

// OpenFunc opens n bytes of shard i's file starting at byte off. The caller
// closes the returned reader. An error (or a short read later) marks the
// shard bad for the rest of the read.
type OpenFunc func(ctx context.Context, shard int, off, n int64) (io.ReadCloser, error)

// ReadRange writes bytes [off, off+length) of a segment of the given size to
// w, reading shard files through open. It returns the shards it found bad
// (missing, failing or corrupt), sorted, whether or not it succeeded, so the
// caller can queue them for repair. The error wraps ErrTooFewShards when
// fewer than K shards were healthy for some stripe; an error from w is
// returned as is (wrapped). The range must lie within the segment.
func (c *Codec) ReadRange(ctx context.Context, w io.Writer, size, off, length int64, open OpenFunc) (bad []int, err error) {
	if off < 0 || length < 0 || off+length > size {
		return nil, fmt.Errorf("erasure: range [%d,+%d) outside segment of %d bytes", off, length, size)
	}
	if length == 0 {
		return nil, nil
	}
	l := Layout{Profile: c.p, Size: size}
	bs := int64(c.p.BlockSize)
	first, last := off/bs, (off+length-1)/bs
	end := l.RecordOffset(last + 1)

	r := &rangeReader{c: c, ctx: ctx, l: l, open: open, end: end,
		streams: make([]io.ReadCloser, c.p.Shards()), bad: make([]bool, c.p.Shards())}
	defer r.closeAll()
	full := c.p.FullShardBlock()
	records := make([][]byte, c.p.Shards())
	for i := range records {
		records[i] = make([]byte, HashSize+full)
	}
	shards := make([][]byte, c.p.Shards())
	data := make([]byte, 0, c.p.K*full) // k shard blocks may exceed BlockSize when k does not divide it
	for s := first; s <= last; s++ {
		if err := ctx.Err(); err != nil {
			return r.badList(), err
		}
		if err := r.readStripe(s, records, shards); err != nil {
			return r.badList(), err
		}
		data = data[:0]
		for i := 0; i < c.p.K; i++ {
			data = append(data, shards[i]...)
		}
		data = data[:l.StripeData(s)]
		lo, hi := int64(0), int64(len(data))
		if s == first {
			lo = off - s*bs
		}
		if s == last {
			hi = off + length - s*bs
		}
		if _, err := w.Write(data[lo:hi]); err != nil {
			return r.badList(), fmt.Errorf("erasure: read: write: %w", err)
		}
	}
	return r.badList(), nil
}

// rangeReader holds the open shard streams of one ReadRange call.
type rangeReader struct {
	c       *Codec
	ctx     context.Context
	l       Layout
	open    OpenFunc
	end     int64 // shard file offset where the range's last record ends
	streams []io.ReadCloser
	bad     []bool
}

// readStripe fills shards[0:K] with stripe s's data shard blocks, verified,
// reconstructing from parity when needed.
func (r *rangeReader) readStripe(s int64, records, shards [][]byte) error {
	k, n := r.c.p.K, r.c.p.Shards()
	per := r.l.ShardBlock(s)
	for i := range shards {
		shards[i] = nil
	}
	good := 0
	next := 0 // next shard index to try
	for good < k {
		// Choose shards to read now: untried, not bad, enough to reach k.
		var batch []int
		for ; next < n && good+len(batch) < k; next++ {
			if !r.bad[next] {
				batch = append(batch, next)
			}
		}
		if len(batch) == 0 {
			return fmt.Errorf("erasure: stripe %d: %d of %d needed shards healthy: %w", s, good, k, ErrTooFewShards)
		}
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for j, i := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[j] = r.readRecord(i, s, records[i][:HashSize+per])
			}()
		}
		wg.Wait()
		for j, i := range batch {
			if errs[j] != nil {
				r.markBad(i)
				continue
			}
			shards[i] = records[i][HashSize : HashSize+per]
			good++
		}
	}
	for i := 0; i < k; i++ {
		if shards[i] == nil {
			if err := r.c.rs.ReconstructData(shards); err != nil {
				return fmt.Errorf("erasure: stripe %d: reconstruct: %w", s, err)
			}
			break
		}
	}
	return nil
}

// readRecord reads and verifies shard i's record of stripe s into rec,
// opening the shard's stream at that stripe if it is not open yet.
func (r *rangeReader) readRecord(i int, s int64, rec []byte) error {
	if r.streams[i] == nil {
		at := r.l.RecordOffset(s)
		rc, err := r.open(r.ctx, i, at, r.end-at)
		if err != nil {
			return err
		}
		r.streams[i] = rc
	}
	if _, err := io.ReadFull(r.streams[i], rec); err != nil {
		return err
	}
	if BlockHash(rec[HashSize:]) != [HashSize]byte(rec[:HashSize]) {
		return errors.New("erasure: block hash mismatch")
	}
	return nil
}

func (r *rangeReader) markBad(i int) {
	r.bad[i] = true
	if r.streams[i] != nil {
		r.streams[i].Close()
		r.streams[i] = nil
	}
}

func (r *rangeReader) badList() []int {
	var out []int
	for i, b := range r.bad {
		if b {
			out = append(out, i)
		}
	}
	return slices.Clip(out)
}

func (r *rangeReader) closeAll() {
	for i, s := range r.streams {
		if s != nil {
			s.Close()
			r.streams[i] = nil
		}
	}
}
