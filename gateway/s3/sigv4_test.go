package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/minio/minio-go/v7/pkg/signer"
)

const (
	exampleKey    = "AKIAIOSFODNN7EXAMPLE"
	exampleSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

type staticCreds map[string]string

func (c staticCreds) SecretKey(ak string) (string, error) {
	if s, ok := c[ak]; ok {
		return s, nil
	}
	return "", Errorf(ErrInvalidAccessKeyID, "%s", ak)
}

var exampleCreds = staticCreds{exampleKey: exampleSecret}

func at(ts string) func() time.Time {
	t, _ := time.Parse(amzDateFormat, ts)
	return func() time.Time { return t }
}

func authHdr(signed, sig string) string {
	return "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=" + signed + ",Signature=" + sig
}

// TestAWSExampleVectors checks the worked examples of the AWS S3 SigV4
// documentation (header-based auth, presigned URL, chunked upload).
func TestAWSExampleVectors(t *testing.T) {
	v := NewVerifier(exampleCreds, at("20130524T000000Z"))
	type vec struct {
		name   string
		req    func() *http.Request
		body   string
		wantOK bool
	}
	get := func(target, signed, sig string, hdr map[string]string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "http://examplebucket.s3.amazonaws.com"+target, nil)
			r.Header.Set("X-Amz-Date", "20130524T000000Z")
			r.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
			for k, val := range hdr {
				r.Header.Set(k, val)
			}
			if signed != "" {
				r.Header.Set("Authorization", authHdr(signed, sig))
			}
			return r
		}
	}
	putBody := "Welcome to Amazon S3."
	vecs := []vec{
		{"GET object with Range", get("/test.txt", "host;range;x-amz-content-sha256;x-amz-date", "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", map[string]string{"Range": "bytes=0-9"}), "", true},
		{"GET ?lifecycle", get("/?lifecycle", "host;x-amz-content-sha256;x-amz-date", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543", nil), "", true},
		{"GET ?max-keys=2&prefix=J", get("/?max-keys=2&prefix=J", "host;x-amz-content-sha256;x-amz-date", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7", nil), "", true},
		{"GET with a tampered Range", get("/test.txt", "host;range;x-amz-content-sha256;x-amz-date", "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", map[string]string{"Range": "bytes=0-10"}), "", false},
		{"PUT object", func() *http.Request {
			r := httptest.NewRequest(http.MethodPut, "http://examplebucket.s3.amazonaws.com/test$file.text", strings.NewReader(putBody))
			r.Header.Set("Date", "Fri, 24 May 2013 00:00:00 GMT")
			r.Header.Set("X-Amz-Date", "20130524T000000Z")
			r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
			r.Header.Set("X-Amz-Content-Sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
			r.Header.Set("Authorization", authHdr("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class", "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"))
			return r
		}, putBody, true},
		{"presigned GET", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, "http://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", nil)
		}, "", true},
	}
	for _, tc := range vecs {
		r := tc.req()
		id, err := v.Verify(r)
		if tc.wantOK != (err == nil) {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if err == nil {
			got, err := io.ReadAll(r.Body)
			if err != nil || string(got) != tc.body || id.AccessKey != exampleKey {
				t.Errorf("%s: body %q err %v id %+v", tc.name, got, err, id)
			}
		}
	}
	// A presigned URL is refused once expired.
	late := NewVerifier(exampleCreds, at("20130525T000001Z"))
	if _, err := late.Verify(vecs[5].req()); !errors.Is(err, ErrExpiredPresign) {
		t.Errorf("expired presign: %v", err)
	}
}

// TestAWSChunkedExample is the aws-chunked worked example: 66,560 bytes of
// 'a' in a 64 KiB chunk and a 1 KiB chunk.
func TestAWSChunkedExample(t *testing.T) {
	chunk := func(n int, sig string) string {
		return fmt.Sprintf("%x;chunk-signature=%s\r\n%s\r\n", n, sig, strings.Repeat("a", n))
	}
	body := chunk(65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648") +
		chunk(1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497") +
		"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
	mk := func(body string) *http.Request {
		r := httptest.NewRequest(http.MethodPut, "http://s3.amazonaws.com/examplebucket/chunkObject.txt", strings.NewReader(body))
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
		r.Header.Set("Content-Encoding", "aws-chunked")
		r.Header.Set("X-Amz-Decoded-Content-Length", "66560")
		r.Header.Set("Content-Length", "66824")
		r.Header.Set("X-Amz-Content-Sha256", StreamingSigned)
		r.Header.Set("Authorization", authHdr("content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class", "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"))
		return r
	}
	v := NewVerifier(exampleCreds, at("20130524T000000Z"))
	r := mk(body)
	if _, err := v.Verify(r); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r.Body)
	if err != nil || string(got) != strings.Repeat("a", 66560) || r.ContentLength != 66560 {
		t.Fatalf("decoded %d bytes, err %v, content length %d", len(got), err, r.ContentLength)
	}
	// One byte changed in the second chunk: its signature fails, and the
	// bytes of that chunk are never returned.
	bad := []byte(body)
	bad[65536+100+90] = 'b'
	r = mk(string(bad))
	v.Verify(r)
	got, err = io.ReadAll(r.Body)
	if !errors.Is(err, ErrSignatureDoesNotMatch) || len(got) != 65536 {
		t.Fatalf("tampered chunk: %d bytes, err %v", len(got), err)
	}
	// Truncated before the final chunk.
	r = mk(body[:66000])
	v.Verify(r)
	if _, err := io.ReadAll(r.Body); !errors.Is(err, ErrInvalidChunk) {
		t.Fatalf("truncated: %v", err)
	}
}

// verifyServer answers 200 with the SHA-256 of the decoded body and the
// trailers it saw, or the S3 error code.
func verifyServer(t *testing.T, v *Verifier) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := v.Verify(r)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(r.Body)
		}
		if err != nil {
			var e *Error
			errors.As(err, &e)
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, e.Code)
			return
		}
		sum := sha256.Sum256(body)
		fmt.Fprintf(w, "%x", sum)
		if cb, ok := r.Body.(*ChunkedBody); ok && cb.Trailers().Get("x-amz-checksum-crc32") != "" {
			fmt.Fprintf(w, " %s", cb.Trailers().Get("x-amz-checksum-crc32"))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func send(t *testing.T, r *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSDKSignedRequests signs real requests with aws-sdk-go-v2's and
// minio-go's signers and sends them over loopback.
func TestSDKSignedRequests(t *testing.T) {
	creds := staticCreds{"sherdkey": "sherd/secret+key"}
	srv := verifyServer(t, NewVerifier(creds, nil))
	data := bytes.Repeat([]byte("sherd-data-"), 20000) // 220 KB: several chunks
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	awsCreds := aws.Credentials{AccessKeyID: "sherdkey", SecretAccessKey: "sherd/secret+key"}
	ctx := context.Background()
	newReq := func(method, path string, body []byte) *http.Request {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		r, _ := http.NewRequest(method, srv.URL+path, rd)
		return r
	}
	key := "/bucket/dir/a%20key%2Bwith%E2%82%ACodd%3Dchars%21" // as SDKs escape it
	rawKey := "/bucket/dir/odd=chars!(raw)"                    // left unescaped by a client
	cases := map[string]struct {
		req     func() *http.Request
		wantErr string
		body    string
	}{
		"aws-sdk signed payload": {req: func() *http.Request {
			r := newReq("PUT", key+"?x-id=PutObject", data)
			r.Header.Set("X-Amz-Content-Sha256", want)
			s3Signer().SignHTTP(ctx, awsCreds, r, want, "s3", "us-east-1", time.Now())
			return r
		}, body: want},
		"aws-sdk path sent unescaped": {req: func() *http.Request {
			r := newReq("GET", rawKey, nil)
			r.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
			s3Signer().SignHTTP(ctx, awsCreds, r, EmptySHA256, "s3", "us-east-1", time.Now())
			return r
		}, body: EmptySHA256},
		"aws-sdk unsigned payload": {req: func() *http.Request {
			r := newReq("PUT", key, data)
			r.Header.Set("X-Amz-Content-Sha256", UnsignedPayload)
			s3Signer().SignHTTP(ctx, awsCreds, r, UnsignedPayload, "s3", "eu-west-3", time.Now())
			return r
		}, body: want},
		"aws-sdk wrong payload hash": {req: func() *http.Request {
			other := sha256Hex([]byte("other"))
			r := newReq("PUT", key, data)
			r.Header.Set("X-Amz-Content-Sha256", other)
			s3Signer().SignHTTP(ctx, awsCreds, r, other, "s3", "us-east-1", time.Now())
			return r
		}, wantErr: "XAmzContentSHA256Mismatch"},
		"aws-sdk wrong secret": {req: func() *http.Request {
			r := newReq("GET", "/bucket?list-type=2&prefix=a%2Fb&delimiter=%2F", nil)
			r.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
			s3Signer().SignHTTP(ctx, aws.Credentials{AccessKeyID: "sherdkey", SecretAccessKey: "wrong"}, r, EmptySHA256, "s3", "us-east-1", time.Now())
			return r
		}, wantErr: "SignatureDoesNotMatch"},
		"aws-sdk unknown key": {req: func() *http.Request {
			r := newReq("GET", "/bucket", nil)
			r.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
			s3Signer().SignHTTP(ctx, aws.Credentials{AccessKeyID: "nobody", SecretAccessKey: "x"}, r, EmptySHA256, "s3", "us-east-1", time.Now())
			return r
		}, wantErr: "InvalidAccessKeyId"},
		"aws-sdk skewed clock": {req: func() *http.Request {
			r := newReq("GET", "/bucket", nil)
			r.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
			s3Signer().SignHTTP(ctx, awsCreds, r, EmptySHA256, "s3", "us-east-1", time.Now().Add(-time.Hour))
			return r
		}, wantErr: "RequestTimeTooSkewed"},
		"aws-sdk tampered header": {req: func() *http.Request {
			r := newReq("GET", "/bucket/k", nil)
			r.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
			r.Header.Set("Range", "bytes=0-9")
			s3Signer().SignHTTP(ctx, awsCreds, r, EmptySHA256, "s3", "us-east-1", time.Now())
			r.Header.Set("Range", "bytes=0-99")
			return r
		}, wantErr: "SignatureDoesNotMatch"},
		"aws-sdk presigned": {req: func() *http.Request {
			r := newReq("GET", key+"?X-Amz-Expires=300", nil)
			u, _, err := s3Signer().PresignHTTP(ctx, awsCreds, r, UnsignedPayload, "s3", "us-east-1", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			p, _ := http.NewRequest("GET", u, nil)
			return p
		}, body: EmptySHA256},
		"aws-sdk presigned expired": {req: func() *http.Request {
			r := newReq("GET", key+"?X-Amz-Expires=60", nil)
			u, _, _ := s3Signer().PresignHTTP(ctx, awsCreds, r, UnsignedPayload, "s3", "us-east-1", time.Now().Add(-2*time.Minute))
			p, _ := http.NewRequest("GET", u, nil)
			return p
		}, wantErr: "AccessDenied"},
		"aws-sdk x-amz header added after signing": {req: func() *http.Request {
			r := newReq("PUT", key, nil)
			r.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
			s3Signer().SignHTTP(ctx, awsCreds, r, EmptySHA256, "s3", "us-east-1", time.Now())
			r.Header.Set("X-Amz-Copy-Source", "private/db-backup.tar")
			return r
		}, wantErr: "AccessDenied"},
		"aws-sdk presigned with an unsigned x-amz header": {req: func() *http.Request {
			r := newReq("PUT", key+"?X-Amz-Expires=300", nil)
			u, _, _ := s3Signer().PresignHTTP(ctx, awsCreds, r, UnsignedPayload, "s3", "us-east-1", time.Now())
			p, _ := http.NewRequest("PUT", u, nil)
			p.Header.Set("X-Amz-Copy-Source", "private/db-backup.tar")
			return p
		}, wantErr: "AccessDenied"},
		"aws-sdk presigned with unsigned x-amz-content-sha256": {req: func() *http.Request {
			r := newReq("PUT", key+"?X-Amz-Expires=300", nil)
			u, _, _ := s3Signer().PresignHTTP(ctx, awsCreds, r, UnsignedPayload, "s3", "us-east-1", time.Now())
			p, _ := http.NewRequest("PUT", u, bytes.NewReader(data))
			p.Header.Set("X-Amz-Content-Sha256", UnsignedPayload)
			return p
		}, body: want},
		"aws-sdk presigned with a signed x-amz header": {req: func() *http.Request {
			r := newReq("PUT", key+"?X-Amz-Expires=300", nil)
			r.Header.Set("X-Amz-Meta-Owner", "alice")
			u, hdr, _ := s3Signer().PresignHTTP(ctx, awsCreds, r, UnsignedPayload, "s3", "us-east-1", time.Now())
			p, _ := http.NewRequest("PUT", u, nil)
			for k, v := range hdr {
				if k != "Host" {
					p.Header[k] = v
				}
			}
			return p
		}, body: EmptySHA256},
		"minio-go PreSignV4 with an unsigned x-amz header": {req: func() *http.Request {
			r := newReq("GET", key, nil)
			p := signer.PreSignV4(*r, "sherdkey", "sherd/secret+key", "", "us-east-1", 600)
			p.Header.Set("X-Amz-Meta-Owner", "mallory")
			return p
		}, wantErr: "AccessDenied"},
		"minio-go SignV4": {req: func() *http.Request {
			r := newReq("PUT", key, data)
			r.Header.Set("X-Amz-Content-Sha256", want)
			return signer.SignV4(*r, "sherdkey", "sherd/secret+key", "", "us-east-1")
		}, body: want},
		"minio-go PreSignV4": {req: func() *http.Request {
			r := newReq("GET", key, nil)
			return signer.PreSignV4(*r, "sherdkey", "sherd/secret+key", "", "us-east-1", 600)
		}, body: EmptySHA256},
		"minio-go presigned URL altered": {req: func() *http.Request {
			r := newReq("GET", key, nil)
			p := signer.PreSignV4(*r, "sherdkey", "sherd/secret+key", "", "us-east-1", 600)
			p.URL.Path = "/bucket/other"
			return p
		}, wantErr: "SignatureDoesNotMatch"},
		"minio-go streaming signed": {req: func() *http.Request {
			r := newReq("PUT", key, data)
			return signer.StreamingSignV4(r, "sherdkey", "sherd/secret+key", "", "us-east-1", int64(len(data)), time.Now().UTC(), sha256Hasher{sha256.New()})
		}, body: want},
		"minio-go streaming signed with trailer": {req: func() *http.Request {
			r := newReq("PUT", key, data)
			r.Trailer = http.Header{"X-Amz-Checksum-Crc32": {"AAAAAA=="}}
			return signer.StreamingSignV4(r, "sherdkey", "sherd/secret+key", "", "us-east-1", int64(len(data)), time.Now().UTC(), sha256Hasher{sha256.New()})
		}, body: want + " AAAAAA=="},
		"minio-go streaming unsigned with trailer": {req: func() *http.Request {
			r := newReq("PUT", key, data)
			r.Trailer = http.Header{"X-Amz-Checksum-Crc32": {"BBBBBB=="}}
			r.Header.Set("X-Amz-Content-Sha256", StreamingUnsignedTrailer)
			r = signer.StreamingUnsignedV4(r, "", int64(len(data)), time.Now().UTC())
			return signer.SignV4Trailer(*r, "sherdkey", "sherd/secret+key", "", "us-east-1", r.Trailer)
		}, body: want + " BBBBBB=="},
	}
	for name, tc := range cases {
		status, body := send(t, tc.req())
		switch {
		case tc.wantErr != "" && (status != http.StatusForbidden || body != tc.wantErr):
			t.Errorf("%s: got %d %q, want error %s", name, status, body, tc.wantErr)
		case tc.wantErr == "" && (status != http.StatusOK || body != tc.body):
			t.Errorf("%s: got %d %q, want %q", name, status, body, tc.body)
		}
	}
}

func TestParseAuthHeader(t *testing.T) {
	good := authHdr("host;x-amz-date", strings.Repeat("a", 64))
	if _, err := parseAuthHeader(good); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{
		"AWS4-HMAC-SHA256 ",
		"AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=" + strings.Repeat("a", 64),
		strings.Replace(good, "host;x-amz-date", "x-amz-date;host", 1), // not sorted
		strings.Replace(good, "host;x-amz-date", "x-amz-date", 1),      // host not signed
		good + ",Signature=" + strings.Repeat("b", 64),                 // repeated field
		strings.Replace(good, "/s3/", "/ec2/", 1),
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=zz",
	} {
		if _, err := parseAuthHeader(h); err == nil {
			t.Errorf("accepted %q", h)
		}
	}
}

func FuzzParseAuthHeader(f *testing.F) {
	f.Add(authHdr("host;range;x-amz-content-sha256;x-amz-date", "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"))
	f.Add("AWS4-HMAC-SHA256 Credential=/,,,=")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthHeader(h)
		if err == nil && (a.scope.accessKey == "" || !validSignedHeaders(a.signedHeaders) || !isHex64(a.signature)) {
			t.Fatalf("accepted malformed %q: %+v", h, a)
		}
	})
}

func FuzzChunkedBody(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"), false)
	f.Add([]byte("5;chunk-signature="+strings.Repeat("0", 64)+"\r\nhello\r\n0;chunk-signature="+strings.Repeat("0", 64)+"\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, in []byte, signed bool) {
		cb := NewChunkedBody(io.NopCloser(bytes.NewReader(in)), signed, true, []byte("k"), "20130524T000000Z", scope{"a", "20130524", "r", "s3"}, strings.Repeat("0", 64))
		out, err := io.ReadAll(cb)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error not an S3 error: %v", err)
			}
			return
		}
		if len(out) > len(in) {
			t.Fatalf("decoded %d bytes from %d", len(out), len(in))
		}
	})
}

func FuzzCanonicalQuery(f *testing.F) {
	f.Add("max-keys=2&prefix=J")
	f.Add("a=%zz&&b&=c")
	f.Fuzz(func(t *testing.T, q string) {
		c := canonicalQuery(q, true)
		if canonicalQuery(c, true) != c {
			t.Fatalf("not idempotent: %q → %q → %q", q, c, canonicalQuery(c, true))
		}
	})
}

// sha256Hasher adapts hash.Hash to minio-go's md5simd.Hasher.
type sha256Hasher struct{ hash.Hash }

func (sha256Hasher) Close() {}

// s3Signer is aws-sdk-go-v2's signer configured as its S3 client uses it:
// the path is escaped once, not twice.
func s3Signer() *v4.Signer {
	return v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
}

// TestTrailerAfterSignatureRefused: the trailer signature covers the
// trailers before it; a trailer after it would be accepted unsigned.
func TestTrailerAfterSignatureRefused(t *testing.T) {
	key, date, sc, seed := []byte("signing-key"), "20130524T000000Z", scope{"a", "20130524", "r", "s3"}, strings.Repeat("0", 64)
	sig := func(prev, data string) string {
		return hmacHex(key, "AWS4-HMAC-SHA256-PAYLOAD\n"+date+"\n"+sc.String()+"\n"+prev+"\n"+EmptySHA256+"\n"+sha256Hex([]byte(data)))
	}
	s1 := sig(seed, "hello")
	s2 := sig(s1, "")
	trailer := "x-amz-checksum-crc32:NhCmhg==\n"
	ts := hmacHex(key, "AWS4-HMAC-SHA256-TRAILER\n"+date+"\n"+sc.String()+"\n"+s2+"\n"+sha256Hex([]byte(trailer)))
	stream := "5;chunk-signature=" + s1 + "\r\nhello\r\n0;chunk-signature=" + s2 + "\r\n" +
		"x-amz-checksum-crc32:NhCmhg==\r\nx-amz-trailer-signature:" + ts + "\r\n"
	for _, tc := range []struct {
		name  string
		extra string
		ok    bool
	}{
		{"signed trailers", "\r\n", true},
		{"a trailer after the signature", "x-amz-meta-evil:1\r\n\r\n", false},
		{"a second signature", "x-amz-trailer-signature:" + ts + "\r\n\r\n", false},
	} {
		cb := NewChunkedBody(io.NopCloser(strings.NewReader(stream+tc.extra)), true, true, key, date, sc, seed)
		got, err := io.ReadAll(cb)
		if tc.ok != (err == nil) {
			t.Fatalf("%s: err %v", tc.name, err)
		}
		if tc.ok && (string(got) != "hello" || cb.Trailers().Get("x-amz-checksum-crc32") != "NhCmhg==") {
			t.Fatalf("%s: body %q trailers %v", tc.name, got, cb.Trailers())
		}
		if !tc.ok && !errors.Is(err, ErrSignatureDoesNotMatch) {
			t.Fatalf("%s: err %v, want SignatureDoesNotMatch", tc.name, err)
		}
	}
}
