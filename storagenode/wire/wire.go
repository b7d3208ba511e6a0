// Package wire is the storage node API's wire protocol, what a node and
// its clients share: header names, the cluster-key request signature,
// error codes and bodies, and the encoding of Merkle digests. It links no
// shard store (sherdctl and the gateway's node client use it without a
// disk store).
package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/shard"
)

// ErrUnauthorized: a request to a node's API not signed with the cluster
// key (the shard contract's errors are in package shard).
var ErrUnauthorized = errors.New("request not signed with the cluster key")

// Wire names of the node API.
const (
	HeaderDate        = "X-Sherd-Date"
	HeaderContentHash = "X-Sherd-Content-Sha256"
	HeaderSize        = "X-Sherd-Size"
	HeaderHash        = "X-Sherd-Hash"
	HeaderBlock       = "X-Sherd-Block"
	HeaderVerified    = "X-Sherd-Verified" // when the shard was last read whole and found intact (RFC 3339)
	// authScheme is the Authorization scheme of requestMAC (version 2:
	// bound to the target host and to every header that changes the
	// answer); authSchemeV1 is the one of Sherd releases before it, which
	// a node accepts only while an upgrade needs it (AcceptV1Signatures).
	authScheme   = "Sherd2-HMAC-SHA256 "
	authSchemeV1 = "Sherd-HMAC-SHA256 "
	// UnsignedPayload is the content hash of a request whose body is not
	// covered by the signature: shard bodies carry a hash per block (and
	// TLS protects them on the wire).
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	// MaxClockSkew is how far a request's date may be from the node's clock.
	MaxClockSkew = 5 * time.Minute
)

// SignRequest signs r with the cluster key: an HMAC-SHA256 over method,
// escaped path, raw query, the host r is addressed to, and every header
// that changes the answer: Range and each X-Sherd-* header (among them
// the date and the content hash, which SignRequest sets). Call it last,
// after the URL and headers are final.
func SignRequest(r *http.Request, key []byte, now time.Time) {
	r.Header.Set(HeaderDate, strconv.FormatInt(now.Unix(), 10))
	if r.Header.Get(HeaderContentHash) == "" {
		r.Header.Set(HeaderContentHash, UnsignedPayload)
	}
	r.Header.Del("Authorization")
	r.Header.Set("Authorization", authScheme+hex.EncodeToString(requestMAC(r, key)))
}

// requestHost is the host (and port) r is addressed to: its Host header
// on a node, the URL's host on a client that has not set one.
func requestHost(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return r.URL.Host
}

// signedHeader reports whether the header named name (lower case) is
// covered by requestMAC: Range, and every X-Sherd-* header.
func signedHeader(name string) bool {
	return name == "range" || strings.HasPrefix(name, "x-sherd-")
}

// requestMAC is the version 2 signature of r. The string signed is one
// field per line: a version tag, method, escaped path, raw query, target
// host (lower case), then one "name:value" line for every value of every
// signed header (names lower case, sorted; values in order), so that
// adding, removing, splitting or changing any of them, or sending the
// request to another node, changes the MAC.
func requestMAC(r *http.Request, key []byte) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "sherd2\n%s\n%s\n%s\n%s\n", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, strings.ToLower(requestHost(r)))
	signed := map[string][]string{}
	var names []string
	for k, vs := range r.Header {
		name := strings.ToLower(k)
		if !signedHeader(name) {
			continue
		}
		if _, ok := signed[name]; !ok {
			names = append(names, name)
		}
		signed[name] = append(signed[name], vs...)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range signed[name] {
			fmt.Fprintf(m, "%s:%s\n", name, v)
		}
	}
	return m.Sum(nil)
}

// requestMACV1 is the signature of Sherd releases before version 2:
// method, path, query, date and content hash only.
func requestMACV1(r *http.Request, key []byte) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s\n%s\n%s\n%s\n%s", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get(HeaderDate), r.Header.Get(HeaderContentHash))
	return m.Sum(nil)
}

// VerifyRequest checks r's cluster-key signature (version 2; version 1
// too when v1 is set: a node started with --accept-v1-signatures) and
// date. It returns an error wrapping ErrUnauthorized. The comparison is
// constant-time.
func VerifyRequest(r *http.Request, key []byte, now time.Time, v1 bool) error {
	auth := r.Header.Get("Authorization")
	mac := requestMAC
	sig, ok := strings.CutPrefix(auth, authScheme)
	if !ok {
		if sig, ok = strings.CutPrefix(auth, authSchemeV1); !ok {
			return fmt.Errorf("no cluster signature: %w", ErrUnauthorized)
		}
		if !v1 {
			return fmt.Errorf("cluster signature of an older Sherd release (%s): upgrade the caller, or start this node with --accept-v1-signatures while the upgrade lasts: %w",
				strings.TrimSpace(authSchemeV1), ErrUnauthorized)
		}
		mac = requestMACV1
	}
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(r, key)) {
		return fmt.Errorf("bad cluster signature: %w", ErrUnauthorized)
	}
	secs, err := strconv.ParseInt(r.Header.Get(HeaderDate), 10, 64)
	if err != nil {
		return fmt.Errorf("bad %s: %w", HeaderDate, ErrUnauthorized)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > MaxClockSkew || d < -MaxClockSkew {
		return fmt.Errorf("request date off by %s: %w", d, ErrUnauthorized)
	}
	return nil
}

// ErrorBody is the JSON body of an error answer of the node API.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of the node API, one per sentinel error.
const (
	CodeNotFound     = "NotFound"
	CodeInvalid      = "Invalid"
	CodeCorrupt      = "Corrupt"
	CodeUnauthorized = "Unauthorized"
	CodeExists       = "Exists"
	CodeFull         = "Full"
	CodeInternal     = "Internal"
)

// ErrorForCode maps an API error code back to its sentinel (nil if unknown).
func ErrorForCode(code string) error {
	switch code {
	case CodeNotFound:
		return shard.ErrNotFound
	case CodeInvalid:
		return shard.ErrInvalid
	case CodeCorrupt:
		return shard.ErrCorrupt
	case CodeUnauthorized:
		return ErrUnauthorized
	case CodeExists:
		return shard.ErrExists
	case CodeFull:
		return shard.ErrFull
	}
	return nil
}

// DigestsToHex is the wire form of a node's children.
func DigestsToHex(ch [merkle.Fanout]merkle.Digest) []string {
	out := make([]string, len(ch))
	for i, d := range ch {
		out[i] = d.String()
	}
	return out
}

// DigestsFromHex parses the wire form of a node's children.
func DigestsFromHex(in []string) ([merkle.Fanout]merkle.Digest, error) {
	var out [merkle.Fanout]merkle.Digest
	if len(in) != len(out) {
		return out, fmt.Errorf("%d digests, want %d: %w", len(in), len(out), shard.ErrInvalid)
	}
	for i, h := range in {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != len(out[i]) {
			return out, fmt.Errorf("digest %q: %w", h, shard.ErrInvalid)
		}
		out[i] = merkle.Digest(b)
	}
	return out, nil
}
