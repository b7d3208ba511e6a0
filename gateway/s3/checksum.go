package s3

// Body verification: Content-MD5, the ETag's MD5 and the x-amz-checksum-*
// algorithms, computed as the body streams and checked at its end.
//
// Invariants:
//   - A mismatch is reported by Read in place of io.EOF, so a consumer that
//     reads to EOF before committing (the PUT path) never commits a body
//     whose digest does not match what the client said.
//   - Values a client sent in headers are checked; values it sends in
//     aws-chunked trailers are checked once the trailers have arrived.

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/minio/crc64nvme"
	"github.com/zeebo/xxh3"
)

// Checksum algorithms, as S3 names them: every value of the
// ChecksumAlgorithm enum of the current AWS SDKs.
const (
	CRC32     = "CRC32"
	CRC32C    = "CRC32C"
	CRC64NVME = "CRC64NVME"
	SHA1      = "SHA1"
	SHA256    = "SHA256"
	SHA512    = "SHA512"
	MD5       = "MD5"
	XXHASH64  = "XXHASH64"
	XXHASH3   = "XXHASH3"   // XXH3, 64 bits
	XXHASH128 = "XXHASH128" // XXH3, 128 bits
)

// Checksum types.
const (
	ChecksumComposite  = "COMPOSITE"
	ChecksumFullObject = "FULL_OBJECT"
)

// ChecksumAlgorithms lists the supported algorithms. A value is the
// algorithm's digest (seed 0 for the xxHashes), big-endian, in base64.
var ChecksumAlgorithms = []string{CRC32, CRC32C, CRC64NVME, SHA1, SHA256, SHA512, MD5, XXHASH64, XXHASH3, XXHASH128}

// Errors of body verification.
var (
	ErrBadDigest     = &Error{"BadDigest", "The Content-MD5 or checksum you specified did not match what we received.", http.StatusBadRequest}
	ErrInvalidDigest = &Error{"InvalidDigest", "The Content-MD5 or checksum you specified is not valid.", http.StatusBadRequest}
	// ErrInvalidChecksumRequest: a checksum algorithm this server does not know.
	ErrInvalidChecksumRequest = &Error{"InvalidRequest", "The checksum algorithm provided is not supported.", http.StatusBadRequest}
)

// NewChecksum returns a hash for algo (one of ChecksumAlgorithms), or nil.
func NewChecksum(algo string) hash.Hash {
	switch strings.ToUpper(algo) {
	case CRC32:
		return crc32.NewIEEE()
	case CRC32C:
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case CRC64NVME:
		return crc64nvme.New() // SIMD (PCLMULQDQ/VPCLMULQDQ); hash/crc64 is 10× slower
	case SHA1:
		return sha1.New()
	case SHA256:
		return sha256.New()
	case SHA512:
		return sha512.New()
	case MD5:
		return md5.New()
	case XXHASH64:
		return xxhash.New()
	case XXHASH3:
		return xxh3.New()
	case XXHASH128:
		return xxh3.New128()
	}
	return nil
}

// ChecksumHeader is the header carrying algo's value: x-amz-checksum-crc32, …
func ChecksumHeader(algo string) string { return "X-Amz-Checksum-" + strings.ToLower(algo) }

// BodyVerifier computes a body's MD5 and checksums as it is read.
type BodyVerifier struct {
	r         io.Reader
	md5       hash.Hash
	wantMD5   []byte
	sums      map[string]hash.Hash
	want      map[string]string // algo → base64 value from headers
	trailer   string            // algo whose value comes in the trailer
	trailers  func() http.Header
	n         int64
	done      bool
	doneErr   error
	computed  map[string]string
	md5Result []byte
}

// NewBodyVerifier wraps body. It reads the request's Content-MD5,
// x-amz-checksum-* values, x-amz-sdk-checksum-algorithm and x-amz-trailer;
// trailers returns the aws-chunked trailers once the body has ended (nil
// when the body has none). alwaysAlgo, if not empty, is computed even when
// the client asked for no checksum (S3 computes CRC64NVME for every new
// object). Errors: ErrInvalidDigest for a malformed value, ErrInvalidArgument
// for an unknown algorithm.
func NewBodyVerifier(body io.Reader, h http.Header, trailers func() http.Header, alwaysAlgo string) (*BodyVerifier, error) {
	v := &BodyVerifier{r: body, md5: md5.New(), sums: map[string]hash.Hash{}, want: map[string]string{}, trailers: trailers}
	if cms := h.Values("Content-Md5"); len(cms) > 0 { // present, even empty: AWS refuses an empty one
		b, err := base64.StdEncoding.DecodeString(cms[0])
		if err != nil || len(b) != md5.Size {
			return nil, ErrInvalidDigest
		}
		v.wantMD5 = b
	}
	if err := knownChecksumHeaders(h); err != nil {
		return nil, err
	}
	for _, algo := range ChecksumAlgorithms {
		if val := h.Get(ChecksumHeader(algo)); val != "" {
			if _, err := base64.StdEncoding.DecodeString(val); err != nil {
				return nil, Errorf(ErrInvalidDigest, "%s", ChecksumHeader(algo))
			}
			v.want[algo] = val
			v.sums[algo] = NewChecksum(algo)
		}
	}
	if len(v.want) > 1 {
		return nil, Errorf(ErrInvalidArgument, "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
	}
	if t := h.Get("X-Amz-Trailer"); t != "" {
		name := strings.ToLower(strings.TrimSpace(t))
		algo, ok := strings.CutPrefix(name, "x-amz-checksum-")
		algo = strings.ToUpper(algo)
		if !ok || !slices.Contains(ChecksumAlgorithms, algo) {
			return nil, Errorf(ErrInvalidChecksumRequest, "unsupported x-amz-trailer %q", t)
		}
		v.trailer = algo
		v.sums[algo] = NewChecksum(algo)
	}
	if a := h.Get("X-Amz-Sdk-Checksum-Algorithm"); a != "" {
		algo := strings.ToUpper(a)
		if !slices.Contains(ChecksumAlgorithms, algo) {
			return nil, Errorf(ErrInvalidChecksumRequest, "unsupported x-amz-sdk-checksum-algorithm %q", a)
		}
		if v.sums[algo] == nil {
			v.sums[algo] = NewChecksum(algo)
		}
	}
	if len(v.sums) == 0 && alwaysAlgo != "" {
		v.sums[alwaysAlgo] = NewChecksum(alwaysAlgo)
	}
	return v, nil
}

// Computes reports whether v computes algo's checksum.
func (v *BodyVerifier) Computes(algo string) bool { return v.sums[algo] != nil }

// Also makes v compute algo's checksum too; call it before the first Read.
func (v *BodyVerifier) Also(algo string) {
	if v.sums[algo] == nil {
		v.sums[algo] = NewChecksum(algo)
	}
}

// checksumHeaderParams are the x-amz-checksum-* headers that carry no
// value to verify.
var checksumHeaderParams = []string{"type", "algorithm", "mode"}

// knownChecksumHeaders refuses an x-amz-checksum-* header of an algorithm
// this package does not compute: its value could not be verified, and an
// unverified checksum is never stored.
func knownChecksumHeaders(h http.Header) error {
	for name := range h {
		suffix, ok := strings.CutPrefix(strings.ToLower(name), "x-amz-checksum-")
		if !ok || slices.Contains(checksumHeaderParams, suffix) {
			continue
		}
		if !slices.Contains(ChecksumAlgorithms, strings.ToUpper(suffix)) {
			return Errorf(ErrInvalidChecksumRequest, "unsupported checksum header %s", strings.ToLower(name))
		}
	}
	if a := h.Get("X-Amz-Checksum-Algorithm"); a != "" && !slices.Contains(ChecksumAlgorithms, strings.ToUpper(a)) {
		return Errorf(ErrInvalidChecksumRequest, "unsupported x-amz-checksum-algorithm %q", a)
	}
	return nil
}

// Read implements io.Reader; at the end of the body it returns a BadDigest
// error instead of io.EOF when a digest does not match.
func (v *BodyVerifier) Read(p []byte) (int, error) {
	if v.done {
		if v.doneErr != nil {
			return 0, v.doneErr
		}
		return 0, io.EOF
	}
	n, err := v.r.Read(p)
	if n > 0 {
		v.n += int64(n)
		v.md5.Write(p[:n])
		for _, h := range v.sums {
			h.Write(p[:n])
		}
	}
	if err == io.EOF {
		v.done = true
		v.doneErr = v.finish()
		if v.doneErr != nil {
			return n, v.doneErr
		}
	}
	return n, err
}

func (v *BodyVerifier) finish() error {
	v.md5Result = v.md5.Sum(nil)
	if v.wantMD5 != nil && string(v.wantMD5) != string(v.md5Result) {
		return Errorf(ErrBadDigest, "Content-MD5")
	}
	v.computed = map[string]string{}
	for algo, h := range v.sums {
		v.computed[algo] = base64.StdEncoding.EncodeToString(h.Sum(nil))
	}
	for algo, want := range v.want {
		if v.computed[algo] != want {
			return Errorf(ErrBadDigest, "The %s you specified did not match the calculated checksum.", algo)
		}
	}
	if v.trailer != "" {
		var got string
		if v.trailers != nil {
			if t := v.trailers(); t != nil {
				got = t.Get(ChecksumHeader(v.trailer))
			}
		}
		if got == "" {
			return Errorf(ErrInvalidChunk, "trailer %s missing", ChecksumHeader(v.trailer))
		}
		if got != v.computed[v.trailer] {
			return Errorf(ErrBadDigest, "The %s you specified did not match the calculated checksum.", v.trailer)
		}
	}
	return nil
}

// Size is the number of body bytes read so far.
func (v *BodyVerifier) Size() int64 { return v.n }

// MD5 is the body's MD5 (valid after EOF).
func (v *BodyVerifier) MD5() []byte { return v.md5Result }

// Checksums maps each computed algorithm to its base64 value (valid after EOF).
func (v *BodyVerifier) Checksums() map[string]string { return v.computed }

// crcPoly is the reflected polynomial and width of each CRC algorithm.
func crcPoly(algo string) (poly uint64, width int, ok bool) {
	switch algo {
	case CRC32:
		return uint64(crc32.IEEE), 32, true
	case CRC32C:
		return uint64(crc32.Castagnoli), 32, true
	case CRC64NVME:
		return 0x9a6c9329ac4bc9b5, 64, true
	}
	return 0, 0, false
}

// IsCRC says whether algo is a CRC (and so can be combined).
func IsCRC(algo string) bool { _, _, ok := crcPoly(algo); return ok }

func gf2Times(mat []uint64, vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat []uint64) {
	for n := range mat {
		square[n] = gf2Times(mat, mat[n])
	}
}

// CombineCRC returns the CRC of A||B from crc(A), crc(B) and len(B) (zlib's
// crc32_combine, for any reflected CRC with all-ones init and final xor).
func CombineCRC(algo string, crcA, crcB uint64, lenB int64) uint64 {
	poly, width, ok := crcPoly(algo)
	if !ok || lenB <= 0 {
		if lenB <= 0 {
			return crcA
		}
		return 0
	}
	odd, even := make([]uint64, width), make([]uint64, width)
	odd[0] = poly // the operator for one zero bit
	row := uint64(1)
	for n := 1; n < width; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(even, odd) // two zero bits
	gf2Square(odd, even) // four zero bits
	for {
		gf2Square(even, odd)
		if lenB&1 != 0 {
			crcA = gf2Times(even, crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
		gf2Square(odd, even)
		if lenB&1 != 0 {
			crcA = gf2Times(odd, crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
	}
	return crcA ^ crcB
}

// DecodeCRC parses a base64 CRC value of algo.
func DecodeCRC(algo, b64 string) (uint64, bool) {
	_, width, ok := crcPoly(algo)
	b, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(b) != width/8 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// EncodeCRC writes a CRC of algo as base64 (big-endian, as S3 does).
func EncodeCRC(algo string, v uint64) string {
	_, width, _ := crcPoly(algo)
	b := make([]byte, width/8)
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return base64.StdEncoding.EncodeToString(b)
}
