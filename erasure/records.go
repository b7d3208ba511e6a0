package erasure

import (
	"errors"
	"fmt"
	"io"
)

// ErrCorrupt means a shard record failed its hash or was torn.
var ErrCorrupt = errors.New("erasure: corrupt shard record")

// CopyRecords copies a shard file's (hash || block) records from r to w,
// verifying each block against its hash before writing it. blockLen is the
// shard block length of a full stripe; only the last record may be shorter
// (but not empty). It returns the bytes written. A record that fails its hash
// or is torn yields an error wrapping ErrCorrupt; an error reading r or
// writing w is returned wrapped as is. The caller owns r and w.
func CopyRecords(w io.Writer, r io.Reader, blockLen int) (int64, error) {
	if blockLen < 1 {
		return 0, fmt.Errorf("erasure: block length %d: %w", blockLen, ErrCorrupt)
	}
	// The buffer starts small and grows to a full record only when a
	// record is that long: small shards cost small buffers.
	rec := make([]byte, HashSize+min(blockLen, 16<<10))
	var total int64
	for {
		n, err := readRecord(r, &rec, HashSize+blockLen)
		switch {
		case err == io.EOF:
			return total, nil
		case err == io.ErrUnexpectedEOF:
			if n <= HashSize {
				return total, fmt.Errorf("erasure: torn record at %d (%d bytes): %w", total, n, ErrCorrupt)
			}
		case err != nil:
			return total, fmt.Errorf("erasure: read records: %w", err)
		}
		if BlockHash(rec[HashSize:n]) != [HashSize]byte(rec[:HashSize]) {
			return total, fmt.Errorf("erasure: record at %d fails its hash: %w", total, ErrCorrupt)
		}
		if _, werr := w.Write(rec[:n]); werr != nil {
			return total, fmt.Errorf("erasure: write records: %w", werr)
		}
		total += int64(n)
		if err == io.ErrUnexpectedEOF {
			return total, nil
		}
	}
}

// readRecord reads one record of at most want bytes into *buf, growing it
// to want when the record outgrows it; errors as io.ReadFull's (EOF: no
// byte, ErrUnexpectedEOF: a record shorter than want).
func readRecord(r io.Reader, buf *[]byte, want int) (int, error) {
	b := *buf
	n, err := io.ReadFull(r, b[:min(len(b), want)])
	if err != nil || n == want {
		return n, err
	}
	nb := make([]byte, want)
	copy(nb, b[:n])
	*buf = nb
	m, err := io.ReadFull(r, nb[n:])
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n + m, err
}

// AppendRecords reads records from r as CopyRecords does, checks each
// against its block hash, writes it to w (a hasher) and appends it to dst, until r ends (more is
// false) or dst holds more than max bytes after a whole record (more is
// true: the rest of r is further records, for CopyRecords). When dst is
// full, grow returns a buffer with dst's bytes and room for at least n
// more (it may recycle dst). dst is read into directly: no record is
// copied. Errors as CopyRecords'.
func AppendRecords(dst []byte, r io.Reader, blockLen int, max int64, w io.Writer, grow func(dst []byte, n int) []byte) (out []byte, more bool, err error) {
	if blockLen < 1 {
		return dst, false, fmt.Errorf("erasure: block length %d: %w", blockLen, ErrCorrupt)
	}
	want := HashSize + blockLen
	var total int64
	for {
		start := len(dst)
		var rerr error
		for len(dst)-start < want && rerr == nil {
			if len(dst) == cap(dst) {
				dst = grow(dst, min(want-(len(dst)-start), 64<<10))
			}
			var m int
			m, rerr = r.Read(dst[len(dst):min(cap(dst), start+want)])
			dst = dst[:len(dst)+m]
		}
		n := len(dst) - start
		switch {
		case rerr != nil && rerr != io.EOF:
			return dst[:start], false, fmt.Errorf("erasure: read records: %w", rerr)
		case n == 0:
			return dst, false, nil
		case n <= HashSize:
			return dst[:start], false, fmt.Errorf("erasure: torn record at %d (%d bytes): %w", total, n, ErrCorrupt)
		}
		rec := dst[start:]
		if BlockHash(rec[HashSize:]) != [HashSize]byte(rec[:HashSize]) {
			return dst[:start], false, fmt.Errorf("erasure: record at %d fails its hash: %w", total, ErrCorrupt)
		}
		if _, err := w.Write(rec); err != nil {
			return dst[:start], false, fmt.Errorf("erasure: write records: %w", err)
		}
		total += int64(n)
		if n < want || rerr == io.EOF { // a short record is the last
			return dst, false, nil
		}
		if int64(len(dst)) > max {
			return dst, true, nil
		}
	}
}
