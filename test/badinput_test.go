package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/minio/minio-go/v7"
)

// signed sends a request signed with SigV4 (payload hash of body).
func signed(t *testing.T, method, url string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	return sendSigned(t, method, url, body, hdr, nil)
}

// signedThenAdd signs a request without a body, then adds headers the
// signer never saw.
func signedThenAdd(t *testing.T, method, url string, unsigned map[string]string) (*http.Response, []byte) {
	t.Helper()
	return sendSigned(t, method, url, nil, nil, unsigned)
}

func sendSigned(t *testing.T, method, url string, body []byte, hdr, unsigned map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	sum := sha256.Sum256(body)
	ph := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", ph)
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(ctx, aws.Credentials{AccessKeyID: rootUser, SecretAccessKey: rootPass}, req, ph, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	for k, v := range unsigned {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestBadInput: malformed or refused requests get a clean S3 XML error
// with the right status, and never a partial object.
func TestBadInput(t *testing.T) {
	s := startServer(t, "")
	u := s.Gateway.URL
	if r, b := signed(t, "PUT", u+"/bad", nil, nil); r.StatusCode != 200 {
		t.Fatalf("create: %d %s", r.StatusCode, b)
	}
	longKey := strings.Repeat("k", 1025)
	bigMeta := strings.Repeat("m", 2100)
	cases := []struct {
		name, method, path string
		body               string
		hdr                map[string]string
		status             int
		code               string
		key                string // must not exist afterwards
	}{
		{"malformed DeleteObjects", "POST", "/bad?delete", "<Delete><Object>", nil, 400, "MalformedXML", ""},
		{"DeleteObjects of nothing", "POST", "/bad?delete", "<Delete></Delete>", nil, 400, "MalformedXML", ""},
		{"Content-MD5 mismatch", "PUT", "/bad/md5", "hello", map[string]string{"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="}, 400, "BadDigest", "md5"},
		{"Content-MD5 malformed", "PUT", "/bad/md5b", "hello", map[string]string{"Content-MD5": "zz"}, 400, "InvalidDigest", "md5b"},
		{"Content-MD5 empty", "PUT", "/bad/md5e", "hello", map[string]string{"Content-MD5": ""}, 400, "InvalidDigest", "md5e"},
		{"crc32 mismatch", "PUT", "/bad/crc", "hello", map[string]string{"x-amz-checksum-crc32": "AAAAAA=="}, 400, "BadDigest", "crc"},
		{"key too long", "PUT", "/bad/" + longKey, "x", nil, 400, "KeyTooLongError", ""},
		{"metadata too large", "PUT", "/bad/meta", "x", map[string]string{"x-amz-meta-big": bigMeta}, 400, "MetadataTooLarge", "meta"},
		{"tag key twice", "PUT", "/bad/tag", "x", map[string]string{"x-amz-tagging": "a=b&a=c"}, 400, "InvalidTag", "tag"},
		{"eleven tags", "PUT", "/bad/tag", "x", map[string]string{"x-amz-tagging": "a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11"}, 400, "BadRequest", "tag"},
		{"tag key too long", "PUT", "/bad/tag", "x", map[string]string{"x-amz-tagging": strings.Repeat("k", 129) + "=v"}, 400, "InvalidTag", "tag"},
		{"tag value too long", "PUT", "/bad/tag", "x", map[string]string{"x-amz-tagging": "k=" + strings.Repeat("v", 257)}, 400, "InvalidTag", "tag"},
		{"tagging badly encoded", "PUT", "/bad/tag", "x", map[string]string{"x-amz-tagging": "a=%zz"}, 400, "InvalidArgument", "tag"},
		{"If-None-Match etag on write", "PUT", "/bad/inm", "x", map[string]string{"If-None-Match": `"abc"`}, 501, "NotImplemented", "inm"},
		{"bad bucket name", "PUT", "/a", "", nil, 400, "InvalidBucketName", ""},
		{"bad max-keys", "GET", "/bad?max-keys=-1", "", nil, 400, "InvalidArgument", ""},
		{"bad continuation token", "GET", "/bad?list-type=2&continuation-token=%25%25", "", nil, 400, "InvalidArgument", ""},
		{"bad copy source", "PUT", "/bad/cp", "", map[string]string{"x-amz-copy-source": "nokey"}, 400, "InvalidArgument", "cp"},
		{"bad metadata directive", "PUT", "/bad/cp2", "", map[string]string{"x-amz-copy-source": "bad/x", "x-amz-metadata-directive": "MOVE"}, 404, "NoSuchKey", "cp2"},
		{"unknown subresource", "GET", "/bad?analytics", "", nil, 501, "NotImplemented", ""},
		{"method not allowed", "PATCH", "/bad/x", "", nil, 405, "MethodNotAllowed", ""},
		{"no such bucket", "PUT", "/nobucket/x", "x", nil, 404, "NoSuchBucket", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, b := signed(t, c.method, u+c.path, []byte(c.body), c.hdr)
			var e struct {
				Code string `xml:"Code"`
			}
			if err := xml.Unmarshal(b, &e); err != nil || r.StatusCode != c.status || e.Code != c.code {
				t.Fatalf("got %d %q (%s), want %d %s", r.StatusCode, e.Code, b, c.status, c.code)
			}
			if c.key != "" {
				if r, _ := signed(t, "HEAD", u+"/bad/"+c.key, nil, nil); r.StatusCode != 404 {
					t.Fatalf("object %s exists after a refused write: %d", c.key, r.StatusCode)
				}
			}
		})
	}
	// A body cut short: the client promised more bytes than it sent.
	t.Run("truncated body", func(t *testing.T) {
		c := minioClient(t, u, false)
		_, err := c.PutObject(ctx, "bad", "short", io.LimitReader(bytes.NewReader(make([]byte, 100)), 50), 100, minio.PutObjectOptions{})
		if err == nil {
			t.Fatal("short body accepted")
		}
		if r, _ := signed(t, "HEAD", u+"/bad/short", nil, nil); r.StatusCode != 404 {
			t.Fatalf("short object visible: %d", r.StatusCode)
		}
	})
	// Transfer-Encoding: chunked and no Content-Length (some SDKs send
	// it): the object is what was sent.
	t.Run("chunked transfer without Content-Length", func(t *testing.T) {
		data := bytes.Repeat([]byte("chunky "), 100_000)
		req, _ := http.NewRequest("PUT", u+"/bad/chunked", io.MultiReader(bytes.NewReader(data))) // length unknown: chunked
		req.ContentLength = -1                                                                    // unknown: the transport sends it chunked
		req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
		if err := signer.SignHTTP(ctx, aws.Credentials{AccessKeyID: rootUser, SecretAccessKey: rootPass}, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("chunked PUT: %d %s", resp.StatusCode, b)
		}
		if r, got := signed(t, "GET", u+"/bad/chunked", nil, nil); r.StatusCode != 200 || !bytes.Equal(got, data) {
			t.Fatalf("GET after chunked PUT: %d, %d bytes", r.StatusCode, len(got))
		}
	})
	// Unauthenticated and wrongly signed requests.
	resp, err := http.Post(u+"/bad?delete", "application/xml", strings.NewReader("<Delete/>"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !bytes.Contains(b, []byte("<Code>AccessDenied</Code>")) {
		t.Fatalf("anonymous DeleteObjects: %d %s", resp.StatusCode, b)
	}
}

// TestRestartKeepsData stops the whole embedded server and starts it on
// the same directory: buckets and objects are all there.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "keep", minio.MakeBucketOptions{}))
	data := randomBytes(1<<20+7, 11)
	if _, err := c.PutObject(ctx, "keep", "obj", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, dir)
	c2 := minioClient(t, s2.Gateway.URL, false)
	o, err := c2.GetObject(ctx, "keep", "obj", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, o); !bytes.Equal(got, data) {
		t.Fatal("object differs after restart")
	}
}
