package gateway

// Regression tests of issue 23: bounded metric labels, signed bodies that
// are always verified, forged unsigned-trailer uploads, and the smaller
// gateway defects of its item 11.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

const (
	testAK     = "ak"
	testSecret = "secret-key"
)

func (f *fixture) endpoint() string { return f.mc.EndpointURL().String() }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// signedRequest is a SigV4-signed request for body (its SHA-256 signed).
func (f *fixture) signedRequest(t *testing.T, method, target string, body []byte, hdr http.Header) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, f.endpoint()+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("X-Amz-Content-Sha256", sha256Hex(body))
	return signer.SignV4(*req, testAK, testSecret, "", "us-east-1")
}

// withBody is req with another body (what a replay on the wire does).
func withBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = nil
	return r
}

// do sends req and returns the status and the S3 error code, if any.
func do(t *testing.T, req *http.Request) (int, s3.ErrorResponse) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e s3.ErrorResponse
	if resp.StatusCode >= 300 {
		xml.Unmarshal(body, &e)
	}
	return resp.StatusCode, e
}

func aclDoc(public bool) []byte {
	grants := `<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>ak</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>`
	if public {
		grants += `<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>` + groupAllUsers + `</URI></Grantee><Permission>READ</Permission></Grant>`
	}
	return []byte(`<AccessControlPolicy><Owner><ID>ak</ID></Owner><AccessControlList>` + grants + `</AccessControlList></AccessControlPolicy>`)
}

// sameLength pads (or cuts) b with spaces to n bytes.
func sameLength(b []byte, n int) []byte {
	out := append(bytes.Clone(b), bytes.Repeat([]byte(" "), max(0, n-len(b)))...)
	return out[:n]
}

// TestSignedBodyReplay (issue 23 item 6): a correctly signed request
// whose body is replaced on the wire (padded past the body limit, or
// swapped for another of the same length) is refused and changes nothing.
func TestSignedBodyReplay(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if _, err := f.mc.PutObject(ctx, "faults", "obj", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	bucketPublic := func() bool {
		b, err := f.meta.GetBucket(ctx, "faults")
		if err != nil {
			t.Fatal(err)
		}
		return b.PublicRead
	}
	objectACL := func() string {
		o, err := f.meta.GetObject(ctx, "faults", "obj")
		if err != nil {
			t.Fatal(err)
		}
		return o.ACL
	}
	bucketExists := func() bool {
		_, err := f.meta.GetBucket(ctx, "replayed")
		return err == nil
	}
	// The signed body says private (or no location); the replayed one
	// public-read (or another location), then padding past 2 MiB.
	createBody := []byte(`<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>`)
	evilCreate := []byte(`<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>`)
	reset := func() {
		if err := f.meta.UpdateBucket(ctx, "faults", func(b *metadata.Bucket) error { b.PublicRead = false; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := f.meta.UpdateObject(ctx, "faults", "obj", "", func(o *metadata.Object) error { o.ACL = ""; return nil }); err != nil {
			t.Fatal(err)
		}
		f.meta.DeleteBucket(ctx, "replayed")
	}
	padded := func(b []byte) []byte { return sameLength(b, s3.MaxXMLBody+1024) }
	for _, tc := range []struct {
		name         string
		target       string
		signed, sent []byte
		changed      func() bool
		wantStatus   int
		wantCode     []string
	}{
		{"PutBucketAcl padded", "/faults?acl", aclDoc(false), padded(aclDoc(true)), bucketPublic, 400, []string{"MaxMessageLengthExceeded"}},
		{"PutBucketAcl swapped", "/faults?acl", sameLength(aclDoc(false), len(aclDoc(true))), aclDoc(true), bucketPublic, 400, []string{"XAmzContentSHA256Mismatch"}},
		{"PutObjectAcl padded", "/faults/obj?acl", aclDoc(false), padded(aclDoc(true)), func() bool { return objectACL() != "" }, 400, []string{"MaxMessageLengthExceeded"}},
		{"PutObjectAcl swapped", "/faults/obj?acl", sameLength(aclDoc(false), len(aclDoc(true))), aclDoc(true), func() bool { return objectACL() != "" }, 400, []string{"XAmzContentSHA256Mismatch"}},
		{"CreateBucket padded", "/replayed", createBody, padded(evilCreate), bucketExists, 400, []string{"MaxMessageLengthExceeded"}},
		{"CreateBucket swapped", "/replayed", createBody, evilCreate, bucketExists, 400, []string{"XAmzContentSHA256Mismatch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reset()
			req := f.signedRequest(t, http.MethodPut, tc.target, tc.signed, nil)
			status, e := do(t, withBody(req, tc.sent))
			if tc.changed() {
				t.Errorf("the replayed body took effect (status %d %s)", status, e.Code)
			}
			if status != tc.wantStatus || !strings.Contains(strings.Join(tc.wantCode, " "), e.Code) || e.Code == "" {
				t.Errorf("status %d %s %q, want %d %v", status, e.Code, e.Message, tc.wantStatus, tc.wantCode)
			}
		})
	}
	// The bodies as signed are accepted: the refusals above are the
	// replays', not the requests'.
	reset()
	if status, e := do(t, f.signedRequest(t, http.MethodPut, "/faults?acl", aclDoc(true), nil)); status != 200 || !bucketPublic() {
		t.Errorf("signed PutBucketAcl: %d %s", status, e.Code)
	}
}

// TestLifecycleBounded (issue 23 item 11): a lifecycle configuration
// bigger than maxLifecycleBody is a clean 400, and nothing is stored.
func TestLifecycleBounded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	rules := func(n, prefix int) []byte {
		var b strings.Builder
		b.WriteString("<LifecycleConfiguration>")
		for i := range n {
			fmt.Fprintf(&b, "<Rule><ID>r%d</ID><Status>Enabled</Status><Filter><Prefix>%s%d</Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule>", i, strings.Repeat("p", prefix), i)
		}
		b.WriteString("</LifecycleConfiguration>")
		return []byte(b.String())
	}
	for _, tc := range []struct {
		name       string
		body       []byte
		wantStatus int
		wantCode   string
	}{
		{"1000 rules of 300-byte prefixes", rules(1000, 300), 400, "MaxMessageLengthExceeded"},
		{"1001 small rules", rules(1001, 1), 400, "InvalidArgument"},
		{"1000 small rules", rules(1000, 1), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.meta.UpdateBucket(ctx, "faults", func(b *metadata.Bucket) error { b.Lifecycle = nil; return nil }); err != nil {
				t.Fatal(err)
			}
			status, e := do(t, f.signedRequest(t, http.MethodPut, "/faults?lifecycle", tc.body, nil))
			if status != tc.wantStatus || e.Code != tc.wantCode {
				t.Fatalf("%d bytes: status %d %s, want %d %s", len(tc.body), status, e.Code, tc.wantStatus, tc.wantCode)
			}
			b, err := f.meta.GetBucket(ctx, "faults")
			if err != nil {
				t.Fatal(err)
			}
			if stored := len(b.Lifecycle) > 0; stored != (tc.wantStatus == 200) {
				t.Fatalf("%d rules stored", len(b.Lifecycle))
			}
		})
	}
}

// TestForgedUnsignedTrailer (issue 23 item 13): STREAMING-UNSIGNED-
// PAYLOAD-TRAILER uploads whose signature is garbage or missing, in the
// Authorization header or in the query, are refused on PutObject and
// UploadPart and write nothing.
func TestForgedUnsignedTrailer(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	core := minio.Core{Client: f.mc}
	uploadID, err := core.NewMultipartUpload(ctx, "faults", "mp", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	date, amzDate := now.Format("20060102"), now.Format("20060102T150405Z")
	cred := testAK + "/" + date + "/us-east-1/s3/aws4_request"
	garbage := strings.Repeat("0", 64)
	const chunked = "5\r\nhello\r\n0\r\n\r\n"
	build := func(target, auth, query string) *http.Request {
		if query != "" {
			if strings.Contains(target, "?") {
				target += "&" + query
			} else {
				target += "?" + query
			}
		}
		req, err := http.NewRequest(http.MethodPut, f.endpoint()+target, strings.NewReader(chunked))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Content-Sha256", s3.StreamingUnsignedTrailer)
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Decoded-Content-Length", "5")
		req.Header.Set("X-Amz-Date", amzDate)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return req
	}
	presign := func(sig string) string {
		q := url.Values{"X-Amz-Algorithm": {"AWS4-HMAC-SHA256"}, "X-Amz-Credential": {cred}, "X-Amz-Date": {amzDate},
			"X-Amz-Expires": {"300"}, "X-Amz-SignedHeaders": {"host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length"}}
		if sig != "" {
			q.Set("X-Amz-Signature", sig)
		}
		return q.Encode()
	}
	forgeries := []struct {
		name, auth, query string
		status            int
		code              string
	}{
		{"garbage signature in the header", "AWS4-HMAC-SHA256 Credential=" + cred + ", SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length, Signature=" + garbage, "", 403, "SignatureDoesNotMatch"},
		{"non-hex signature in the header", "AWS4-HMAC-SHA256 Credential=" + cred + ", SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length, Signature=garbage", "", 400, "AuthorizationHeaderMalformed"},
		{"no signature in the header", "AWS4-HMAC-SHA256 Credential=" + cred + ", SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length", "", 400, "AuthorizationHeaderMalformed"},
		{"garbage signature in the query", "", presign(garbage), 403, "SignatureDoesNotMatch"},
		{"non-hex signature in the query", "", presign("garbage"), 400, "AuthorizationQueryParametersError"},
		{"no signature in the query", "", presign(""), 400, "AuthorizationQueryParametersError"},
		{"credential in the query, no algorithm, no signature", "", "X-Amz-Credential=" + url.QueryEscape(cred) + "&X-Amz-Date=" + amzDate, 403, "AccessDenied"},
	}
	targets := []struct {
		name, target string
		written      func() bool
	}{
		{"PutObject", "/faults/forged", func() bool {
			_, err := f.meta.GetObject(ctx, "faults", "forged")
			return !errors.Is(err, metadata.ErrNoSuchKey)
		}},
		{"UploadPart", "/faults/mp?partNumber=1&uploadId=" + url.QueryEscape(uploadID), func() bool {
			parts, err := core.ListObjectParts(ctx, "faults", "mp", uploadID, 0, 100)
			return err != nil || len(parts.ObjectParts) > 0
		}},
	}
	shards := f.shardFiles(t)
	for _, tg := range targets {
		for _, fc := range forgeries {
			t.Run(tg.name+"/"+fc.name, func(t *testing.T) {
				status, e := do(t, build(tg.target, fc.auth, fc.query))
				if status != fc.status || e.Code != fc.code {
					t.Errorf("status %d %s, want %d %s", status, e.Code, fc.status, fc.code)
				}
				if tg.written() {
					t.Errorf("a forged upload was written")
				}
			})
		}
	}
	if n := f.shardFiles(t); n != shards {
		t.Errorf("%d shard files after the forgeries, %d before", n, shards)
	}
	// The same requests correctly signed are accepted: the refusals are
	// the forgeries'.
	for _, tg := range targets {
		req := build(tg.target, "", "")
		req = signer.SignV4(*req, testAK, testSecret, "", "us-east-1")
		if status, e := do(t, req); status != 200 || !tg.written() {
			t.Errorf("%s correctly signed: %d %s", tg.name, status, e.Code)
		}
	}
}

// TestPresignedPlusDecoding (issue 23 item 11): in a query string '+' is
// a space, for the signature as for the handler (as AWS, which accepts a
// URL signed with %20 and sent with '+'); a presigned ListObjectsV2 lists
// exactly the prefix it signed.
func TestPresignedPlusDecoding(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, k := range []string{"a+b1", "a b1"} {
		if _, err := f.mc.PutObject(ctx, "faults", k, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(t *testing.T, rawURL string) (int, []string) {
		req, err := http.NewRequest(http.MethodGet, rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res s3.ListBucketResult
		body, _ := io.ReadAll(resp.Body)
		xml.Unmarshal(body, &res)
		var keys []string
		for _, c := range res.Contents {
			keys = append(keys, c.Key)
		}
		return resp.StatusCode, keys
	}
	presigned := func(prefix string) string {
		req, err := http.NewRequest(http.MethodGet, f.endpoint()+"/faults?list-type=2&prefix="+url.QueryEscape(prefix), nil)
		if err != nil {
			t.Fatal(err)
		}
		return signer.PreSignV4(*req, testAK, testSecret, "", "us-east-1", 300).URL.String()
	}
	for _, tc := range []struct {
		name   string
		url    func() string
		status int
		keys   string
	}{
		// As SDKs send them: '+' as %2B, ' ' as %20.
		{"signed a+b, sent %2B", func() string { return presigned("a+b") }, 200, "a+b1"},
		{"signed a b, sent %20", func() string { return strings.ReplaceAll(presigned("a b"), "+", "%20") }, 200, "a b1"},
		// A space sent as '+' is a space.
		{"signed a b, sent +", func() string { return presigned("a b") }, 200, "a b1"},
		// A signature over a literal plus does not hold for a '+' on the
		// wire, which the handler reads as a space.
		{"signed a+b, sent +", func() string { return strings.ReplaceAll(presigned("a+b"), "%2B", "+") }, 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.url()
			status, keys := list(t, u)
			if status != tc.status || strings.Join(keys, ",") != tc.keys {
				t.Errorf("%s: status %d, keys %q; want %d %q", u, status, keys, tc.status, tc.keys)
			}
		})
	}
}

// TestAnonymousVersionRead (issue 23 item 11): public read of a bucket
// grants GetObject, not GetObjectVersion: an anonymous GET or HEAD naming
// a version, null included, is AccessDenied.
func TestAnonymousVersionRead(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// A null version, then versioning and two more versions.
	if _, err := f.mc.PutObject(ctx, "faults", "k", strings.NewReader("null version"), 12, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.mc.EnableVersioning(ctx, "faults"); err != nil {
		t.Fatal(err)
	}
	old, err := f.mc.PutObject(ctx, "faults", "k", strings.NewReader("old"), 3, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.mc.PutObject(ctx, "faults", "k", strings.NewReader("current"), 7, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if status, e := do(t, f.signedRequest(t, http.MethodPut, "/faults?acl", nil, http.Header{"X-Amz-Acl": {"public-read"}})); status != 200 {
		t.Fatalf("PutBucketAcl public-read: %d %s", status, e.Code)
	}
	for _, tc := range []struct {
		method, query string
		want          int
	}{
		{http.MethodGet, "", 200},
		{http.MethodHead, "", 200},
		{http.MethodGet, "?versionId=" + old.VersionID, 403},
		{http.MethodHead, "?versionId=" + old.VersionID, 403},
		{http.MethodGet, "?versionId=null", 403},
		{http.MethodHead, "?versionId=null", 403},
		{http.MethodGet, "?versionId=nonexistent", 403},
	} {
		req, _ := http.NewRequest(tc.method, f.endpoint()+"/faults/k"+tc.query, nil)
		if status, e := do(t, req); status != tc.want {
			t.Errorf("anonymous %s %s: %d %s, want %d", tc.method, tc.query, status, e.Code, tc.want)
		}
	}
	// The owner still reads versions.
	req := f.signedRequest(t, http.MethodGet, "/faults/k?versionId=null", nil, nil)
	if status, e := do(t, req); status != 200 {
		t.Errorf("signed GET of the null version: %d %s", status, e.Code)
	}
}

// TestObjectCannedACLExact (issue 23 item 11): an object's x-amz-acl is
// one of the canned ACLs exactly, never a part of one.
func TestObjectCannedACLExact(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true}, {"private", "", true}, {"public-read", "public-read", true},
		{"public-read-write", "public-read-write", true}, {"authenticated-read", "authenticated-read", true},
		{"aws-exec-read", "aws-exec-read", true}, {"bucket-owner-read", "bucket-owner-read", true},
		{"bucket-owner-full-control", "bucket-owner-full-control", true},
		{"ead", "", false}, {"read", "", false}, {"public", "", false}, {"-read", "", false},
		{"public-read private", "", false}, {"owner-full-control", "", false}, {"Public-Read", "", false}, {" ", "", false},
	} {
		got, err := objectACL(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("objectACL(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, s3.ErrInvalidArgument) {
			t.Errorf("objectACL(%q): %v, want InvalidArgument", tc.in, err)
		}
	}
}

// TestWriteErrorMessage (issue 23 item 11): a refusal tells the client
// why; a server error never shows internal error text.
func TestWriteErrorMessage(t *testing.T) {
	g := &Gateway{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       string
		has, hasnt string
	}{
		{"detail of a refusal", s3.Errorf(s3.ErrInvalidArgument, "max-keys must be a non-negative integer"), 400, "InvalidArgument", "max-keys must be a non-negative integer", ""},
		{"wrapped refusal", fmt.Errorf("list: %w", s3.Errorf(errInvalidRequest, "Request specific response headers cannot be used for anonymous GET requests.")), 400, "InvalidRequest", "Request specific response headers cannot be used for anonymous GET requests.", "list:"},
		{"plain refusal", errNoSuchKey, 404, "NoSuchKey", errNoSuchKey.Message, ""},
		{"internal error", fmt.Errorf("etcd at 10.9.8.7:2379: %w", errors.New("connection refused")), 500, "InternalError", s3.ErrInternal.Message, "10.9.8.7"},
		{"server error with detail", s3.Errorf(s3.ErrInternal, "dial 10.9.8.7:2379"), 500, "InternalError", s3.ErrInternal.Message, "10.9.8.7"},
		{"unavailable with detail", s3.Errorf(errServiceUnavailable, "node 10.9.8.7:7001 down"), 503, "ServiceUnavailable", errServiceUnavailable.Message, "10.9.8.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			g.writeError(w, httptest.NewRequest(http.MethodGet, "/b/k", nil), tc.err)
			var e s3.ErrorResponse
			if err := xml.Unmarshal(w.Body.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.has) || (tc.hasnt != "" && strings.Contains(e.Message, tc.hasnt)) {
				t.Errorf("%d %s %q; want %d %s with %q, without %q", w.Code, e.Code, e.Message, tc.status, tc.code, tc.has, tc.hasnt)
			}
		})
	}
}

// TestSourceReaderJoined (issue 23 item 11): done stops and waits for the
// goroutine that reads a copy source, even while its shard reads hang.
func TestSourceReaderJoined(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	data := bytes.Repeat([]byte("z"), 3<<20)
	if _, err := f.mc.PutObject(ctx, "faults", "src", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	src, err := f.meta.GetObject(ctx, "faults", "src")
	if err != nil {
		t.Fatal(err)
	}
	for _, fs := range f.faults {
		fs.hangOpen.Store(true)
	}
	// The request outlives done, as a handler's request does.
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := httptest.NewRequest(http.MethodPut, "/faults/dst", nil).WithContext(reqCtx)
	_, done, err := f.gw.sourceReader(r, src, 0, src.Size, s3.CRC64NVME)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a shard read to start", func() bool {
		for _, fs := range f.faults {
			if fs.opens.Load() > 0 {
				return true
			}
		}
		return false
	})
	done()
	waitFor(t, "the source goroutine to end", func() bool { return !goroutineRunning("(*Gateway).sourceReader.func") })
	if reqCtx.Err() != nil {
		t.Fatal("the request context ended: done did not stop the read itself")
	}
}

func goroutineRunning(fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Contains(buf[:n], []byte(fn))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitFor waits up to 5 s for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMetricLabelsBounded (issue 23 item 2): 10,000 anonymous requests of
// random methods and paths (invalid UTF-8 included) add no series beyond
// the fixed set of operations, and none panics.
func TestMetricLabelsBounded(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	gw, err := New(Config{Store: f.meta, Cluster: f.gw.cluster, Credentials: StaticCredentials{testAK: testSecret}, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	randString := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	methods := []string{"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "TRACE", "CONNECT", "get", "\xff\xfe"}
	panics := 0
	for i := range 10_000 {
		method := methods[rng.IntN(len(methods))]
		if i%5 == 0 {
			method = randString(1 + rng.IntN(8))
		}
		var path string
		switch i % 4 {
		case 0:
			path = "/_sherd/" + randString(rng.IntN(20))
		case 1:
			path = "/" + randString(rng.IntN(30))
		case 2:
			path = "/faults/" + randString(rng.IntN(30))
		default:
			path = "/_sherd/" + fmt.Sprint(i)
		}
		r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: subresourceQuery(rng)}, Header: http.Header{},
			Host: "127.0.0.1", RemoteAddr: "192.0.2.1:1234", Body: http.NoBody, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		r = r.WithContext(context.Background())
		func() {
			defer func() {
				if p := recover(); p != nil {
					if panics++; panics == 1 {
						t.Errorf("%q %q: panic %v", method, path, p)
					}
				}
			}()
			gw.ServeHTTP(httptest.NewRecorder(), r)
		}()
	}
	if panics > 0 {
		t.Errorf("%d requests panicked", panics)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series, ops := 0, map[string]bool{}
	for _, mf := range mfs {
		series += len(mf.GetMetric())
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" {
					ops[l.GetValue()] = true
					if !operations[l.GetValue()] {
						t.Errorf("%s: op %q is not an operation", mf.GetName(), l.GetValue())
					}
				}
			}
		}
	}
	// requests_total has a series per op and status; the others one per op.
	if limit := len(operations)*(3+20) + 1; series > limit {
		t.Errorf("%d series (%d ops), more than %d", series, len(ops), limit)
	}
}

// subresourceQuery is a random query: nothing, a subresource, or junk.
func subresourceQuery(rng *rand.Rand) string {
	switch rng.IntN(4) {
	case 0:
		return ""
	case 1:
		return s3.SubResources[rng.IntN(len(s3.SubResources))]
	case 2:
		return "uploadId=u&partNumber=1"
	}
	return "x=" + url.QueryEscape(fmt.Sprint(rng.Int()))
}

// TestOperationsFixed (issue 23 item 2): every value Operation returns,
// for any method, level, subresource and copy header, is in operations.
func TestOperationsFixed(t *testing.T) {
	methods := []string{"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "", "\xff"}
	paths := []string{"/", "/b", "/b/", "/b/k", "/b/k/x", "/_sherd", "/_sherd/", "/_sherd/presign", "/_sherd/ready", "/_sherd/\xff\xfe", "/_sherd/x/y"}
	queries := append([]string{"", "list-type=2", "uploadId=u&partNumber=1", "x-id=GetObject", "uploadId=u"}, s3.SubResources...)
	for _, m := range methods {
		for _, p := range paths {
			for _, q := range queries {
				for _, copySrc := range []bool{false, true} {
					for _, vhost := range []string{"", "vb"} {
						r := &http.Request{Method: m, URL: &url.URL{Path: p, RawQuery: q}, Header: http.Header{}}
						if copySrc {
							r.Header.Set("X-Amz-Copy-Source", "/s/k")
						}
						if op := Operation(r, vhost); !operations[op] {
							t.Errorf("%q %s?%s (copy %v, vhost %q): %q is not in operations", m, p, q, copySrc, vhost, op)
						}
					}
				}
			}
		}
	}
}

// TestBodiesReadThroughReadBody (issue 23 item 6): no handler reads a
// request body but through readBody (or requestBody, for object data):
// a body cut at a limit is never checked against its signed hash.
func TestBodiesReadThroughReadBody(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") || name == "body.go" {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		{
			ast.Inspect(file, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				fn := types.ExprString(sel)
				if fn != "io.ReadAll" && fn != "io.LimitReader" && fn != "io.ReadFull" && fn != "xml.NewDecoder" && fn != "s3.UnmarshalXML" && fn != "io.Copy" && fn != "io.CopyN" {
					return true
				}
				for _, a := range call.Args {
					if strings.Contains(types.ExprString(a), ".Body") {
						t.Errorf("%s: %s reads a request body directly; use readBody", fset.Position(call.Pos()), types.ExprString(call))
					}
				}
				return true
			})
		}
	}
}
