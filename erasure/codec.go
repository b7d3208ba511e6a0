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
	"time"

	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/xxh3"
)

// Codec encodes and decodes segments for one Profile. It is safe for
// concurrent use.
type Codec struct {
	p  Profile
	rs reedsolomon.Encoder
	// data and records recycle the stripe buffers of Encode and
	// ReadRange (*[]byte of cap K*FullShardBlock; *[][]byte of K+M
	// records of HashSize+FullShardBlock): a buffer goes back only once
	// no goroutine of its call can touch it.
	data, records sync.Pool
}

// New returns a Codec for p.
func New(p Profile) (*Codec, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Codec{p: p}
	full := p.FullShardBlock()
	c.data.New = func() any { b := make([]byte, p.K*full); return &b }
	c.records.New = func() any {
		recs := make([][]byte, p.Shards())
		for i := range recs {
			recs[i] = make([]byte, HashSize+full)
		}
		return &recs
	}
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
	dataBuf := c.data.Get().(*[]byte)
	defer c.data.Put(dataBuf)
	data := (*dataBuf)[:c.p.BlockSize]
	var records [][]byte // taken once a block has arrived: a stalled body holds only data
	defer func() {
		if records != nil {
			c.records.Put(&records)
		}
	}()
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
		if records == nil {
			records = *c.records.Get().(*[][]byte)
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
// shard bad for the rest of the read. ctx is the shard's own: ReadRange
// cancels it to abandon a late shard, with cause ErrStalled when the shard
// made no progress for ReadOptions.Stall, or errHedged when spare shards
// answered first.
type OpenFunc func(ctx context.Context, shard int, off, n int64) (io.ReadCloser, error)

// ErrStalled means a shard stream made no progress within its stall
// timeout (a hung node or disk); it is the cancel cause of the stream's
// context.
var ErrStalled = errors.New("erasure: shard stream stalled")

// errHedged is the cancel cause of a shard abandoned because spare shards
// answered first: the shard is slow, not bad.
var errHedged = errors.New("erasure: shard read hedged")

// ReadOptions bound how long ReadRange waits for a shard.
type ReadOptions struct {
	// Hedge: when a shard's record is this late, read one more shard (a
	// parity shard) as well, and use the first K that answer; 0: never.
	Hedge time.Duration
	// Stall: a shard whose record read (open included) takes longer is
	// abandoned as failed and its context cancelled with ErrStalled;
	// 0: wait as long as ctx allows.
	Stall time.Duration
}

// ReadRange is ReadRangeWith without hedging or stall timeouts.
func (c *Codec) ReadRange(ctx context.Context, w io.Writer, size, off, length int64, open OpenFunc) (bad []int, err error) {
	return c.ReadRangeWith(ctx, w, size, off, length, open, ReadOptions{})
}

// ReadRangeWith writes bytes [off, off+length) of a segment of the given
// size to w, reading shard files through open. It returns the shards it
// found bad (missing, failing or corrupt), sorted, whether or not it
// succeeded, so the caller can queue them for repair; shards abandoned for
// being late (hedged or stalled) are not known bad and not listed.
// The error wraps ErrTooFewShards when fewer than K shards were healthy
// for some stripe; an error from w is returned as is (wrapped). The range
// must lie within the segment. Every goroutine it starts has ended when
// it returns.
func (c *Codec) ReadRangeWith(ctx context.Context, w io.Writer, size, off, length int64, open OpenFunc, opt ReadOptions) (bad []int, err error) {
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

	n := c.p.Shards()
	r := &rangeReader{c: c, ctx: ctx, l: l, open: open, end: end, opt: opt,
		shards: make([]shardStream, n), results: make(chan recordResult, n)}
	// Buffers: exactly sized for a range within one short stripe (small
	// objects), else the codec's recycled full-stripe buffers, returned
	// after closeAll (deferred later, so run first) has waited for every
	// goroutine that writes into them.
	var records [][]byte
	var data []byte // k shard blocks may exceed BlockSize when k does not divide it
	full := c.p.FullShardBlock()
	if per := l.ShardBlock(first); per < full {
		records = make([][]byte, n)
		for i := range records {
			records[i] = make([]byte, HashSize+per)
		}
		data = make([]byte, 0, c.p.K*per)
	} else {
		recs, dataBuf := c.records.Get().(*[][]byte), c.data.Get().(*[]byte)
		defer c.records.Put(recs)
		defer c.data.Put(dataBuf)
		records, data = *recs, (*dataBuf)[:0]
	}
	defer r.closeAll()
	shards := make([][]byte, n)
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

// shardStream is one shard's state in a ReadRange call. While a record
// read of the shard is in flight (inFlight), only its goroutine touches
// rc; the reading loop only cancels.
type shardStream struct {
	rc       io.ReadCloser
	ctx      context.Context
	cancel   context.CancelCauseFunc
	bad      bool // not to be read again
	slow     bool // abandoned for being late, not for failing
	inFlight bool
	started  time.Time
}

type recordResult struct {
	shard  int
	stripe int64
	err    error
}

// rangeReader holds the open shard streams of one ReadRange call.
type rangeReader struct {
	c       *Codec
	ctx     context.Context
	l       Layout
	open    OpenFunc
	opt     ReadOptions
	end     int64 // shard file offset where the range's last record ends
	shards  []shardStream
	results chan recordResult // capacity K+M: one read per shard in flight at most
	wg      sync.WaitGroup
}

// readStripe fills shards[0:K] with stripe s's data shard blocks, verified,
// reconstructing from parity when needed. It reads the first K usable
// shards; a shard late by opt.Hedge brings in one more, one stalled for
// opt.Stall is abandoned; once K have answered, the others still in
// flight are abandoned as slow.
func (r *rangeReader) readStripe(s int64, records, shards [][]byte) error {
	k, n := r.c.p.K, r.c.p.Shards()
	per := r.l.ShardBlock(s)
	for i := range shards {
		shards[i] = nil
	}
	good, inFlight := 0, 0
	next := 0 // next shard index to try
	launch := func() bool {
		for ; next < n; next++ {
			if !r.shards[next].bad {
				r.start(next, s, records[next][:HashSize+per])
				next++
				inFlight++
				return true
			}
		}
		return false
	}
	for good+inFlight < k && launch() {
	}
	var timer *time.Timer
	var timerC <-chan time.Time
	lastLaunch, spare := time.Now(), true
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for good < k {
		if inFlight == 0 {
			return fmt.Errorf("erasure: stripe %d: %d of %d needed shards healthy: %w", s, good, k, ErrTooFewShards)
		}
		if wake, ok := r.nextWake(lastLaunch, spare); ok {
			d := time.Until(wake)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			timerC = timer.C
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case res := <-r.results:
			st := &r.shards[res.shard]
			st.inFlight = false
			if res.stripe != s || st.bad { // an abandoned read ending
				continue
			}
			inFlight--
			if res.err != nil {
				r.markBad(res.shard, false, nil)
				for good+inFlight < k && launch() {
				}
				continue
			}
			shards[res.shard] = records[res.shard][HashSize : HashSize+per]
			good++
		case now := <-timerC:
			timerC = nil
			for i := range r.shards {
				st := &r.shards[i]
				if st.inFlight && !st.bad && r.opt.Stall > 0 && now.Sub(st.started) >= r.opt.Stall {
					r.markBad(i, true, ErrStalled) // late, not known bad
					inFlight--
				}
			}
			if spare && r.opt.Hedge > 0 && now.Sub(lastLaunch) >= r.opt.Hedge && inFlight > 0 {
				spare = launch()
				lastLaunch = now
			}
			for good+inFlight < k && launch() {
				lastLaunch = now
			}
		}
	}
	// K answered: the rest are late, not bad.
	for i := range r.shards {
		if st := &r.shards[i]; st.inFlight && !st.bad {
			r.markBad(i, true, errHedged)
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

// nextWake is when the reading loop must look at the clock again: the
// next hedge or the earliest stall deadline.
func (r *rangeReader) nextWake(lastLaunch time.Time, spare bool) (time.Time, bool) {
	var wake time.Time
	set := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	if spare && r.opt.Hedge > 0 {
		set(lastLaunch.Add(r.opt.Hedge))
	}
	if r.opt.Stall > 0 {
		for i := range r.shards {
			if st := &r.shards[i]; st.inFlight && !st.bad {
				set(st.started.Add(r.opt.Stall))
			}
		}
	}
	return wake, !wake.IsZero()
}

// start reads and verifies shard i's record of stripe s into rec in a
// goroutine, opening the shard's stream at that stripe if it is not open
// yet; the result goes to r.results.
func (r *rangeReader) start(i int, s int64, rec []byte) {
	st := &r.shards[i]
	if st.ctx == nil {
		st.ctx, st.cancel = context.WithCancelCause(r.ctx)
	}
	st.inFlight, st.started = true, time.Now()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := r.readRecord(st, s, rec, i)
		r.results <- recordResult{shard: i, stripe: s, err: err}
	}()
}

// readRecord runs in shard i's goroutine: it may touch st.rc.
func (r *rangeReader) readRecord(st *shardStream, s int64, rec []byte, i int) error {
	if st.rc == nil {
		at := r.l.RecordOffset(s)
		rc, err := r.open(st.ctx, i, at, r.end-at)
		if err != nil {
			return err
		}
		st.rc = rc
	}
	if _, err := io.ReadFull(st.rc, rec); err != nil {
		return err
	}
	if BlockHash(rec[HashSize:]) != [HashSize]byte(rec[:HashSize]) {
		return errors.New("erasure: block hash mismatch")
	}
	return nil
}

// markBad takes shard i out of the read. A shard with a read in flight is
// cancelled with cause (its goroutine closes nothing; closeAll does, after
// it ends); slow marks it late rather than failed.
func (r *rangeReader) markBad(i int, slow bool, cause error) {
	st := &r.shards[i]
	st.bad, st.slow = true, slow
	if st.inFlight {
		st.cancel(cause)
		return
	}
	if st.cancel != nil {
		st.cancel(errors.New("erasure: shard failed"))
	}
	if st.rc != nil {
		st.rc.Close()
		st.rc = nil
	}
}

func (r *rangeReader) badList() []int {
	var out []int
	for i := range r.shards {
		if st := &r.shards[i]; st.bad && !st.slow {
			out = append(out, i)
		}
	}
	return slices.Clip(out)
}

// closeAll abandons the reads in flight, waits for their goroutines and
// closes every stream.
func (r *rangeReader) closeAll() {
	for i := range r.shards {
		if st := &r.shards[i]; st.cancel != nil && st.inFlight {
			st.cancel(errHedged)
		}
	}
	r.wg.Wait()
	for i := range r.shards {
		st := &r.shards[i]
		if st.rc != nil {
			st.rc.Close()
			st.rc = nil
		}
		if st.cancel != nil {
			st.cancel(nil)
		}
	}
}
