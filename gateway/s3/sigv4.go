package s3

// SigV4 verification, server side.
//
// Invariants:
//   - A request is authenticated only by recomputing its signature from
//     what the server received (method, path, query, the signed headers,
//     the payload hash the client claims) with the secret the server holds;
//     the signature in the request is compared in constant time.
//   - A claimed payload hash is never trusted: a hex SHA-256 is checked as
//     the body streams (the error surfaces at EOF, before the gateway
//     commits anything), aws-chunked bodies have every chunk signature
//     checked before the chunk's bytes are returned.
//   - Time comes from the Verifier's clock: ±15 minutes for signed
//     requests, and presigned URLs expire (at most 7 days).

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Payload hash values with a meaning of their own.
const (
	UnsignedPayload          = "UNSIGNED-PAYLOAD"
	StreamingSigned          = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	StreamingSignedTrailer   = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	StreamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	EmptySHA256              = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

	algorithm        = "AWS4-HMAC-SHA256"
	amzDateFormat    = "20060102T150405Z"
	MaxClockSkew     = 15 * time.Minute
	MaxPresignExpiry = 7 * 24 * time.Hour
)

// Credentials looks up the secret of an access key. An unknown key is an
// error wrapping ErrInvalidAccessKeyID.
type Credentials interface {
	SecretKey(accessKey string) (string, error)
}

// Identity is who signed a request.
type Identity struct {
	AccessKey string
	Anonymous bool // no signature at all: allowed only where the bucket says so
	Presigned bool
	Region    string // from the credential scope
}

// Verifier authenticates S3 requests. It is safe for concurrent use.
type Verifier struct {
	creds Credentials
	now   func() time.Time
}

// NewVerifier returns a Verifier; now nil means time.Now.
func NewVerifier(creds Credentials, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{creds: creds, now: now}
}

// Verify authenticates r. For a signed payload it replaces r.Body with a
// reader that checks it (and, for aws-chunked, decodes it: the gateway then
// reads the object bytes only, and r.ContentLength is the decoded length or
// -1); that reader's errors wrap this package's Errors. A request with no
// signature at all returns an anonymous Identity and no error: the caller
// decides whether anonymous access is allowed. SigV2 is not handled here.
func (v *Verifier) Verify(r *http.Request) (Identity, error) {
	auth := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(auth, algorithm+" "):
		return v.verifyHeader(r, auth)
	case r.URL.Query().Get("X-Amz-Algorithm") != "":
		return v.verifyPresigned(r)
	case auth == "" && !r.URL.Query().Has("X-Amz-Signature"):
		return Identity{Anonymous: true}, nil
	}
	return Identity{}, ErrUnsupportedAlgorithm
}

// scope is a credential scope: AK/yyyymmdd/region/s3/aws4_request.
type scope struct {
	accessKey, date, region, service string
}

func (s scope) String() string { return s.date + "/" + s.region + "/" + s.service + "/aws4_request" }

func parseCredential(c string) (scope, bool) {
	// The access key itself may not contain '/', so split from the right.
	parts := strings.Split(c, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" || len(parts[1]) != 8 || parts[2] == "" || parts[3] != "s3" {
		return scope{}, false
	}
	return scope{accessKey: parts[0], date: parts[1], region: parts[2], service: parts[3]}, true
}

// authHeader is a parsed "AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…".
type authHeader struct {
	scope         scope
	signedHeaders []string
	signature     string
}

// parseAuthHeader parses an Authorization header value of SigV4.
func parseAuthHeader(h string) (authHeader, error) {
	var a authHeader
	rest, ok := strings.CutPrefix(h, algorithm+" ")
	if !ok {
		return a, ErrUnsupportedAlgorithm
	}
	seen := map[string]bool{}
	for _, f := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok || seen[k] {
			return a, ErrAuthHeaderMalformed
		}
		seen[k] = true
		switch k {
		case "Credential":
			if a.scope, ok = parseCredential(val); !ok {
				return a, Errorf(ErrAuthHeaderMalformed, "credential %q", val)
			}
		case "SignedHeaders":
			a.signedHeaders = strings.Split(val, ";")
		case "Signature":
			a.signature = val
		default:
			return a, Errorf(ErrAuthHeaderMalformed, "unknown field %q", k)
		}
	}
	if !seen["Credential"] || !seen["SignedHeaders"] || !seen["Signature"] || !validSignedHeaders(a.signedHeaders) || !isHex64(a.signature) {
		return a, ErrAuthHeaderMalformed
	}
	return a, nil
}

func validSignedHeaders(h []string) bool {
	if len(h) == 0 || !slices.Contains(h, "host") || !slices.IsSorted(h) {
		return false
	}
	for _, n := range h {
		if n == "" || strings.ToLower(n) != n {
			return false
		}
	}
	return true
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func (v *Verifier) verifyHeader(r *http.Request, auth string) (Identity, error) {
	a, err := parseAuthHeader(auth)
	if err != nil {
		return Identity{}, err
	}
	t, amzDate, err := requestTime(r)
	if err != nil {
		return Identity{}, err
	}
	if a.scope.date != amzDate[:8] {
		return Identity{}, Errorf(ErrAuthHeaderMalformed, "credential date %s differs from request date %s", a.scope.date, amzDate)
	}
	if d := v.now().Sub(t); d > MaxClockSkew || d < -MaxClockSkew {
		return Identity{}, ErrRequestTimeTooSkewed
	}
	secret, err := v.creds.SecretKey(a.scope.accessKey)
	if err != nil {
		return Identity{}, err
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		return Identity{}, ErrMissingContentSHA256
	}
	key := signingKey(secret, a.scope)
	if !signatureMatches(r, key, amzDate, a.scope, a.signedHeaders, payload, a.signature, false) {
		return Identity{}, ErrSignatureDoesNotMatch
	}
	if err := allAmzHeadersSigned(r, a.signedHeaders, false); err != nil {
		return Identity{}, err
	}
	id := Identity{AccessKey: a.scope.accessKey, Region: a.scope.region}
	switch payload {
	case UnsignedPayload:
	case StreamingSigned, StreamingSignedTrailer, StreamingUnsignedTrailer:
		if err := wrapChunked(r, payload, key, amzDate, a.scope, a.signature); err != nil {
			return Identity{}, err
		}
	default:
		if !isHex64(payload) {
			return Identity{}, Errorf(ErrInvalidArgument, "x-amz-content-sha256 %q", payload)
		}
		r.Body = &sha256Reader{r: r.Body, want: strings.ToLower(payload), h: sha256.New()}
	}
	return id, nil
}

func (v *Verifier) verifyPresigned(r *http.Request) (Identity, error) {
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") != algorithm {
		return Identity{}, ErrUnsupportedAlgorithm
	}
	for _, k := range []string{"X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		if len(q[k]) != 1 {
			return Identity{}, Errorf(ErrAuthQueryMalformed, "%s", k)
		}
	}
	sc, ok := parseCredential(q.Get("X-Amz-Credential"))
	if !ok {
		return Identity{}, Errorf(ErrAuthQueryMalformed, "X-Amz-Credential")
	}
	amzDate := q.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil || sc.date != amzDate[:8] {
		return Identity{}, Errorf(ErrAuthQueryMalformed, "X-Amz-Date %q", amzDate)
	}
	secs, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || secs < 0 {
		return Identity{}, Errorf(ErrAuthQueryMalformed, "X-Amz-Expires")
	}
	if time.Duration(secs)*time.Second > MaxPresignExpiry {
		return Identity{}, ErrPresignExpiryTooLong
	}
	signed := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	sig := q.Get("X-Amz-Signature")
	if !validSignedHeaders(signed) || !isHex64(sig) {
		return Identity{}, ErrAuthQueryMalformed
	}
	now := v.now()
	if now.Before(t.Add(-MaxClockSkew)) {
		return Identity{}, Errorf(ErrAccessDenied, "request is not valid yet")
	}
	if now.After(t.Add(time.Duration(secs) * time.Second)) {
		return Identity{}, ErrExpiredPresign
	}
	secret, err := v.creds.SecretKey(sc.accessKey)
	if err != nil {
		return Identity{}, err
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = UnsignedPayload
	}
	if !signatureMatches(r, signingKey(secret, sc), amzDate, sc, signed, payload, sig, true) {
		return Identity{}, ErrSignatureDoesNotMatch
	}
	if err := allAmzHeadersSigned(r, signed, true); err != nil {
		return Identity{}, err
	}
	if isHex64(payload) {
		r.Body = &sha256Reader{r: r.Body, want: strings.ToLower(payload), h: sha256.New()}
	}
	return Identity{AccessKey: sc.accessKey, Presigned: true, Region: sc.region}, nil
}

// allAmzHeadersSigned refuses a request carrying an x-amz-* header that its
// signature does not cover, as AWS does: a signature vouches only for what
// it signed, and the gateway acts on x-amz-* headers (X-Amz-Copy-Source,
// metadata, checksums), so an unsigned one would let whoever holds a
// presigned URL change what the request does. The one exception, as on
// AWS, is x-amz-content-sha256 on a presigned request: the payload hash is
// not part of a presigned signature and is checked against the body.
func allAmzHeadersSigned(r *http.Request, signed []string, presigned bool) error {
	var missing []string
	for name := range r.Header {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, "x-amz-") || slices.Contains(signed, lower) {
			continue
		}
		if presigned && lower == "x-amz-content-sha256" {
			continue
		}
		missing = append(missing, lower)
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return &UnsignedHeadersError{Headers: strings.Join(missing, ",")}
}

// UnsignedHeadersError names the x-amz-* headers a signature left out; it
// wraps ErrHeadersNotSigned (the S3 answer has them in HeadersNotSigned).
type UnsignedHeadersError struct{ Headers string }

func (e *UnsignedHeadersError) Error() string {
	return "headers not signed: " + e.Headers + ": " + ErrHeadersNotSigned.Error()
}

func (e *UnsignedHeadersError) Unwrap() error { return ErrHeadersNotSigned }

// requestTime is the request's X-Amz-Date (or Date) as a time and in the
// compact form the string to sign uses.
func requestTime(r *http.Request) (time.Time, string, error) {
	if d := r.Header.Get("X-Amz-Date"); d != "" {
		t, err := time.Parse(amzDateFormat, d)
		if err != nil {
			return t, "", Errorf(ErrAccessDenied, "bad X-Amz-Date %q", d)
		}
		return t, d, nil
	}
	if d := r.Header.Get("Date"); d != "" {
		t, err := http.ParseTime(d)
		if err != nil {
			return t, "", Errorf(ErrAccessDenied, "bad Date %q", d)
		}
		return t.UTC(), t.UTC().Format(amzDateFormat), nil
	}
	return time.Time{}, "", Errorf(ErrAccessDenied, "no X-Amz-Date or Date header")
}

func signingKey(secret string, s scope) []byte {
	k := hmacSum([]byte("AWS4"+secret), s.date)
	k = hmacSum(k, s.region)
	k = hmacSum(k, s.service)
	return hmacSum(k, "aws4_request")
}

func hmacSum(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	io.WriteString(m, data)
	return m.Sum(nil)
}

func hmacHex(key []byte, data string) string { return hex.EncodeToString(hmacSum(key, data)) }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func stringToSign(amzDate string, s scope, canonical string) string {
	return algorithm + "\n" + amzDate + "\n" + s.String() + "\n" + sha256Hex([]byte(canonical))
}

// canonicalURIs are the canonical paths a client may have signed: the path
// encoded the SigV4 way (what SDKs send), and, when it differs, the path
// exactly as received (a client that left e.g. '=' unescaped signed that).
func canonicalURIs(r *http.Request) []string {
	enc := uriEncode(r.URL.Path, false)
	if raw := r.URL.EscapedPath(); raw != enc {
		return []string{enc, raw}
	}
	return []string{enc}
}

// signatureMatches reports whether sig is the signature of r under key for
// one of its canonical URIs and header trimmings.
func signatureMatches(r *http.Request, key []byte, amzDate string, sc scope, signed []string, payload, sig string, presigned bool) bool {
	trims := []trimming{trimFields}
	if otherWhitespace(r, signed) {
		trims = append(trims, trimSpaces)
	}
	for _, uri := range canonicalURIs(r) {
		for _, trim := range trims {
			want := hmacHex(key, stringToSign(amzDate, sc, canonicalRequest(r, uri, signed, payload, presigned, trim)))
			if hmac.Equal([]byte(want), []byte(sig)) {
				return true
			}
		}
	}
	return false
}

// trimming is how a signer trims a header value: SigV4's "Trimall" is read
// two ways. botocore and minio-go split on every whitespace character (tab,
// no-break space, ideographic space, …), aws-sdk-go and the Java SDK collapse
// only ' '. The two differ only for values holding other whitespace, so the
// second is tried only for those.
type trimming int

const (
	trimFields trimming = iota // strings.Fields, joined by ' '
	trimSpaces                 // leading, trailing and runs of ' ' only
)

func (t trimming) apply(v string) string {
	if t == trimFields {
		return strings.Join(strings.Fields(v), " ")
	}
	v = strings.Trim(v, " ")
	for strings.Contains(v, "  ") {
		v = strings.ReplaceAll(v, "  ", " ")
	}
	return v
}

// otherWhitespace reports whether a signed header value holds whitespace
// other than ' ' (where the two trimmings differ).
func otherWhitespace(r *http.Request, signed []string) bool {
	for _, h := range signed {
		for _, v := range r.Header.Values(h) {
			if strings.IndexFunc(v, func(c rune) bool { return c != ' ' && unicode.IsSpace(c) }) >= 0 {
				return true
			}
		}
	}
	return false
}

// canonicalRequest builds the SigV4 canonical request of r. For a
// presigned request, X-Amz-Signature is left out of the query.
func canonicalRequest(r *http.Request, uri string, signedHeaders []string, payloadHash string, presigned bool, trim trimming) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery, presigned))
	b.WriteByte('\n')
	for _, h := range signedHeaders {
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(headerValue(r, h, trim))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// headerValue is a header's canonical value: values trimmed, inner runs of
// whitespace collapsed (as trim says), joined by commas. Go's server keeps Host, and
// Content-Length / Transfer-Encoding, outside r.Header.
func headerValue(r *http.Request, name string, trim trimming) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		vals = r.Header.Values("Content-Length")
		if len(vals) == 0 && r.ContentLength >= 0 {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	case "transfer-encoding":
		vals = r.TransferEncoding
	default:
		vals = r.Header.Values(name)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = trim.apply(v)
	}
	return strings.Join(out, ",")
}

// canonicalQuery sorts the query's parameters and re-encodes them the
// AWS way. Parameters are decoded as the handlers decode them
// (url.ParseQuery, r.URL.Query()): '+' is a space, as on AWS (which
// accepts a URL signed with %20 and sent with '+'); a literal plus is
// sent as %2B, as SDKs do. A signature thus covers the values the
// handlers act on.
func canonicalQuery(raw string, presigned bool) string {
	type kv struct{ k, v string }
	var params []kv
	for _, p := range strings.Split(raw, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			dk, dv = k, v // malformed escapes: keep as sent; the signature will tell
		}
		if presigned && dk == "X-Amz-Signature" {
			continue
		}
		params = append(params, kv{uriEncode(dk, true), uriEncode(dv, true)})
	}
	slices.SortFunc(params, func(a, b kv) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// uriEncode percent-encodes every byte except A-Z a-z 0-9 - _ . ~ (and '/'
// unless encodeSlash), uppercase hex, as SigV4 specifies.
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// sha256Reader checks the body against the claimed SHA-256 at EOF.
type sha256Reader struct {
	r    io.ReadCloser
	want string
	h    hash.Hash
}

func (s *sha256Reader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	if errors.Is(err, io.EOF) && hex.EncodeToString(s.h.Sum(nil)) != s.want {
		return n, ErrContentSHA256Mismatch
	}
	return n, err
}

func (s *sha256Reader) Close() error { return s.r.Close() }
