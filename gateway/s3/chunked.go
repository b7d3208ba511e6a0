package s3

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxChunkHeader bounds a chunk header or trailer line.
const maxChunkHeader = 4096

// maxSignedChunk bounds a signed chunk, which is held in memory until its
// signature is checked (SDKs send 64 KiB to 8 MiB).
const maxSignedChunk = 16 << 20

// ChunkedBody is the decoded body of an aws-chunked request. After Read
// returned io.EOF, Trailers holds the trailing headers the client sent
// (x-amz-checksum-*), verified when the stream was signed.
type ChunkedBody struct {
	br      *bufio.Reader
	closer  io.Closer
	signed  bool
	trailer bool
	key     []byte
	amzDate string
	scope   scope
	prevSig string

	left     int64     // bytes left in the current chunk
	chunkSig string    // signature claimed for the current chunk
	h        hash.Hash // SHA-256 of the current chunk (signed streams)
	pending  []byte    // verified bytes not yet returned (signed streams)
	done     bool
	err      error
	trailers http.Header
}

// Trailers returns the trailing headers; valid after EOF.
func (c *ChunkedBody) Trailers() http.Header { return c.trailers }

// Close closes the underlying body.
func (c *ChunkedBody) Close() error { return c.closer.Close() }

// wrapChunked replaces r.Body by its decoded form.
func wrapChunked(r *http.Request, mode string, key []byte, amzDate string, sc scope, seed string) error {
	cb := NewChunkedBody(r.Body, mode != StreamingUnsignedTrailer, mode != StreamingSigned, key, amzDate, sc, seed)
	r.Body = cb
	r.ContentLength = -1
	if d := r.Header.Get("X-Amz-Decoded-Content-Length"); d != "" {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 {
			return Errorf(ErrInvalidArgument, "x-amz-decoded-content-length %q", d)
		}
		r.ContentLength = n
	}
	return nil
}

// NewChunkedBody decodes an aws-chunked stream. With signed set, every chunk
// (and the trailer, with trailer set) must carry a valid signature chained
// from seed; a chunk's bytes are returned only after its signature checked.
func NewChunkedBody(body io.ReadCloser, signed, trailer bool, key []byte, amzDate string, sc scope, seed string) *ChunkedBody {
	return &ChunkedBody{br: bufio.NewReaderSize(body, 64<<10), closer: body, signed: signed, trailer: trailer,
		key: key, amzDate: amzDate, scope: sc, prevSig: seed, h: sha256.New(), trailers: http.Header{}}
}

// Read implements io.Reader. Errors wrap ErrInvalidChunk or
// ErrSignatureDoesNotMatch; a truncated body is ErrInvalidChunk.
func (c *ChunkedBody) Read(p []byte) (int, error) {
	for {
		if c.err != nil {
			return 0, c.err
		}
		if len(c.pending) > 0 {
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		}
		if c.done {
			return 0, io.EOF
		}
		if c.left > 0 && !c.signed {
			n, err := c.br.Read(p[:min(int64(len(p)), c.left)])
			c.left -= int64(n)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err != nil && c.left > 0 {
				c.err = Wrapf(ErrInvalidChunk, err, "truncated chunk")
				return n, c.err
			}
			if c.left == 0 {
				c.err = c.endChunk()
			}
			return n, nil
		}
		if c.left > 0 { // signed: read the whole chunk, verify, then hand it out
			buf := make([]byte, c.left)
			if _, err := io.ReadFull(c.br, buf); err != nil {
				c.err = Wrapf(ErrInvalidChunk, err, "truncated chunk")
				return 0, c.err
			}
			c.left = 0
			c.h.Reset()
			c.h.Write(buf)
			if c.err = c.verifyChunk(hex.EncodeToString(c.h.Sum(nil))); c.err != nil {
				return 0, c.err
			}
			if c.err = c.endChunk(); c.err != nil {
				return 0, c.err
			}
			c.pending = buf
			continue
		}
		c.err = c.nextChunk()
	}
}

// endChunk consumes the CRLF after a chunk's data.
func (c *ChunkedBody) endChunk() error {
	var crlf [2]byte
	if _, err := io.ReadFull(c.br, crlf[:]); err != nil || crlf != [2]byte{'\r', '\n'} {
		return Errorf(ErrInvalidChunk, "missing CRLF after chunk data")
	}
	return nil
}

func (c *ChunkedBody) readLine() (string, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxChunkHeader {
		return "", Errorf(ErrInvalidChunk, "line too long")
	}
	if err != nil {
		if err == io.EOF && len(line) == 0 {
			return "", io.EOF
		}
		return "", Wrapf(ErrInvalidChunk, err, "truncated line")
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"), nil
}

// nextChunk parses "hex-size[;chunk-signature=sig]" and, at the final
// zero-size chunk, the trailers.
func (c *ChunkedBody) nextChunk() error {
	line, err := c.readLine()
	if err != nil {
		if err == io.EOF {
			return Errorf(ErrInvalidChunk, "body ended before the final chunk")
		}
		return err
	}
	sizeStr, ext, _ := strings.Cut(line, ";")
	size, perr := strconv.ParseInt(sizeStr, 16, 64)
	if perr != nil || size < 0 || size > 1<<30 || len(sizeStr) > 16 {
		return Errorf(ErrInvalidChunk, "chunk size %q", sizeStr)
	}
	if c.signed {
		sig, ok := strings.CutPrefix(ext, "chunk-signature=")
		if !ok || !isHex64(sig) {
			return Errorf(ErrInvalidChunk, "chunk without signature")
		}
		c.chunkSig = sig
	}
	if c.signed && size > maxSignedChunk {
		return Errorf(ErrInvalidChunk, "signed chunk of %d bytes exceeds %d", size, maxSignedChunk)
	}
	if size > 0 {
		c.left = size
		return nil
	}
	if c.signed {
		if err := c.verifyChunk(EmptySHA256); err != nil {
			return err
		}
	}
	if err := c.readTrailers(); err != nil {
		return err
	}
	c.done = true
	return nil
}

func (c *ChunkedBody) verifyChunk(dataHash string) error {
	sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + c.amzDate + "\n" + c.scope.String() + "\n" + c.prevSig + "\n" + EmptySHA256 + "\n" + dataHash
	want := hmacHex(c.key, sts)
	if !hmac.Equal([]byte(want), []byte(c.chunkSig)) {
		return Errorf(ErrSignatureDoesNotMatch, "chunk signature")
	}
	c.prevSig = want
	return nil
}

// readTrailers reads "name:value" lines up to an empty line or the end.
// In a signed stream the last one is x-amz-trailer-signature, over the
// trailers as "name:value\n".
func (c *ChunkedBody) readTrailers() error {
	var signedPart strings.Builder
	for {
		line, err := c.readLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if line == "" {
			if c.trailer && len(c.trailers) == 0 && signedPart.Len() == 0 {
				continue // the CRLF some clients put after the final chunk
			}
			if c.signed && c.trailer && c.trailers.Get("x-amz-trailer-signature") == "" && len(c.trailers) > 0 {
				continue // minio-go ends trailers with "\n\r\n" before the signature
			}
			break
		}
		if c.trailers.Get("x-amz-trailer-signature") != "" {
			// The signature covers what came before it only.
			return Errorf(ErrSignatureDoesNotMatch, "trailer %q after the trailer signature", line)
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok || !c.trailer || len(c.trailers) > 16 {
			return Errorf(ErrInvalidChunk, "unexpected trailer %q", line)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		if name == "x-amz-trailer-signature" {
			if !c.signed {
				return Errorf(ErrInvalidChunk, "trailer signature in an unsigned stream")
			}
			sts := "AWS4-HMAC-SHA256-TRAILER\n" + c.amzDate + "\n" + c.scope.String() + "\n" + c.prevSig + "\n" + sha256Hex([]byte(signedPart.String()))
			if !hmac.Equal([]byte(hmacHex(c.key, sts)), []byte(val)) {
				return Errorf(ErrSignatureDoesNotMatch, "trailer signature")
			}
			c.trailers.Set(name, val)
			continue
		}
		signedPart.WriteString(name + ":" + val + "\n")
		c.trailers.Set(name, val)
	}
	if c.signed && c.trailer && len(c.trailers) > 0 && c.trailers.Get("x-amz-trailer-signature") == "" {
		return Errorf(ErrSignatureDoesNotMatch, "trailers without signature")
	}
	c.trailers.Del("x-amz-trailer-signature")
	return nil
}
