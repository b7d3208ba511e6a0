package s3

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"
)

func TestChecksumCheckValues(t *testing.T) {
	// The standard check values of each CRC over "123456789".
	for algo, want := range map[string]uint64{CRC32: 0xcbf43926, CRC32C: 0xe3069283, CRC64NVME: 0xae8b14860a799888} {
		h := NewChecksum(algo)
		h.Write([]byte("123456789"))
		sum := h.Sum(nil)
		var got uint64
		if len(sum) == 4 {
			got = uint64(binary.BigEndian.Uint32(sum))
		} else {
			got = binary.BigEndian.Uint64(sum)
		}
		if got != want {
			t.Errorf("%s = %x, want %x", algo, got, want)
		}
	}
	if NewChecksum("MD4") != nil {
		t.Error("unknown algorithm accepted")
	}
}

func sumB64(algo, data string) string {
	h := NewChecksum(algo)
	h.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestBodyVerifier(t *testing.T) {
	const body = "hello, sherd"
	md5 := "rdmRSDlbPJ9vaxK+v8GsAw==" // placeholder, replaced below
	{
		v, _ := NewBodyVerifier(strings.NewReader(body), http.Header{}, nil, "")
		io.Copy(io.Discard, v)
		md5 = base64.StdEncoding.EncodeToString(v.MD5())
	}
	trailer := func(algo, val string) func() http.Header {
		return func() http.Header {
			h := http.Header{}
			h.Set(ChecksumHeader(algo), val)
			return h
		}
	}
	cases := []struct {
		name     string
		hdr      map[string]string
		trailers func() http.Header
		want     error // from reading to the end
		newErr   error // from NewBodyVerifier
		algo     string
	}{
		{name: "nothing", algo: CRC64NVME},
		{name: "content-md5 ok", hdr: map[string]string{"Content-MD5": md5}, algo: CRC64NVME},
		{name: "content-md5 wrong", hdr: map[string]string{"Content-MD5": base64.StdEncoding.EncodeToString(make([]byte, 16))}, want: ErrBadDigest},
		{name: "content-md5 malformed", hdr: map[string]string{"Content-MD5": "nope"}, newErr: ErrInvalidDigest},
		{name: "content-md5 empty", hdr: map[string]string{"Content-MD5": ""}, newErr: ErrInvalidDigest},
		{name: "crc32 header ok", hdr: map[string]string{"x-amz-checksum-crc32": sumB64(CRC32, body)}, algo: CRC32},
		{name: "crc32c header wrong", hdr: map[string]string{"x-amz-checksum-crc32c": sumB64(CRC32C, "other")}, want: ErrBadDigest},
		{name: "sha256 header ok", hdr: map[string]string{"x-amz-checksum-sha256": sumB64(SHA256, body)}, algo: SHA256},
		{name: "sha1 header wrong", hdr: map[string]string{"x-amz-checksum-sha1": sumB64(SHA1, "x")}, want: ErrBadDigest},
		{name: "two checksums", hdr: map[string]string{"x-amz-checksum-sha1": sumB64(SHA1, body), "x-amz-checksum-crc32": sumB64(CRC32, body)}, newErr: ErrInvalidArgument},
		{name: "trailer ok", hdr: map[string]string{"x-amz-trailer": "x-amz-checksum-crc64nvme"}, trailers: trailer(CRC64NVME, sumB64(CRC64NVME, body)), algo: CRC64NVME},
		{name: "trailer wrong", hdr: map[string]string{"x-amz-trailer": "x-amz-checksum-crc32"}, trailers: trailer(CRC32, sumB64(CRC32, "x")), want: ErrBadDigest},
		{name: "trailer missing", hdr: map[string]string{"x-amz-trailer": "x-amz-checksum-crc32"}, trailers: func() http.Header { return nil }, want: ErrInvalidChunk},
		{name: "trailer unknown", hdr: map[string]string{"x-amz-trailer": "x-amz-checksum-md4"}, newErr: ErrInvalidChecksumRequest},
		{name: "header unknown", hdr: map[string]string{"x-amz-checksum-md4": "AAAA"}, newErr: ErrInvalidChecksumRequest},
		{name: "sdk algorithm unknown", hdr: map[string]string{"x-amz-sdk-checksum-algorithm": "md4"}, newErr: ErrInvalidChecksumRequest},
		{name: "type and mode are no algorithms", hdr: map[string]string{"x-amz-checksum-type": "FULL_OBJECT", "x-amz-checksum-mode": "ENABLED"}, algo: CRC64NVME},
		{name: "md5 header ok", hdr: map[string]string{"x-amz-checksum-md5": sumB64(MD5, body)}, algo: MD5},
		{name: "sha512 header wrong", hdr: map[string]string{"x-amz-checksum-sha512": sumB64(SHA512, "x")}, want: ErrBadDigest},
		{name: "xxhash128 trailer ok", hdr: map[string]string{"x-amz-trailer": "x-amz-checksum-xxhash128"}, trailers: trailer(XXHASH128, sumB64(XXHASH128, body)), algo: XXHASH128},
		{name: "sdk algorithm", hdr: map[string]string{"x-amz-sdk-checksum-algorithm": "crc32c"}, algo: CRC32C},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.hdr {
				h.Set(k, v)
			}
			v, err := NewBodyVerifier(strings.NewReader(body), h, c.trailers, CRC64NVME)
			if !errors.Is(err, c.newErr) || (c.newErr == nil) != (err == nil) {
				t.Fatalf("new: %v, want %v", err, c.newErr)
			}
			if err != nil {
				return
			}
			got, err := io.ReadAll(v)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("read: %v, want %v", err, c.want)
				}
				return
			}
			if err != nil || string(got) != body {
				t.Fatalf("read %q %v", got, err)
			}
			if c.algo != "" && v.Checksums()[c.algo] != sumB64(c.algo, body) {
				t.Fatalf("checksums %v", v.Checksums())
			}
		})
	}
}

func TestParseRange(t *testing.T) {
	cases := []struct {
		h        string
		size     int64
		off, n   int64
		ok       bool
		rangeErr bool
	}{
		{"", 10, 0, 0, false, false},
		{"bytes=0-0", 10, 0, 1, true, false},
		{"bytes=2-5", 10, 2, 4, true, false},
		{"bytes=5-", 10, 5, 5, true, false},
		{"bytes=5-100", 10, 5, 5, true, false},
		{"bytes=-3", 10, 7, 3, true, false},
		{"bytes=-30", 10, 0, 10, true, false},
		{"bytes=10-", 10, 0, 0, false, true},
		{"bytes=10-20", 10, 0, 0, false, true},
		{"bytes=-0", 10, 0, 0, false, true},
		{"bytes=0-", 0, 0, 0, false, true},
		{"bytes=-5", 0, 0, 0, false, true},
		{"bytes=5-2", 10, 0, 0, false, false},
		{"bytes=0-1,3-4", 10, 0, 0, false, false},
		{"items=0-1", 10, 0, 0, false, false},
		{"bytes=a-b", 10, 0, 0, false, false},
		{"bytes=--1", 10, 0, 0, false, false},
	}
	for _, c := range cases {
		off, n, ok, err := ParseRange(c.h, c.size)
		if off != c.off || n != c.n || ok != c.ok || (err != nil) != c.rangeErr {
			t.Errorf("ParseRange(%q, %d) = %d %d %v %v", c.h, c.size, off, n, ok, err)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=3-", "bytes=9223372036854775807-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		off, n, ok, err := ParseRange(h, size)
		if ok && (err != nil || off < 0 || n <= 0 || off+n > size) {
			t.Fatalf("ParseRange(%q, %d) = %d %d", h, size, off, n)
		}
	})
}

func FuzzDecodeXML(f *testing.F) {
	f.Add(`<Delete><Object><Key>a</Key></Object><Quiet>true</Quiet></Delete>`)
	f.Add(`<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>`)
	f.Fuzz(func(t *testing.T, s string) {
		var d DeleteRequest
		if err := UnmarshalXML([]byte(s), &d); err != nil && !errors.Is(err, ErrMalformedXML) {
			t.Fatal(err)
		}
	})
}

// TestSigV2 checks the AWS documentation's SigV2 example and requests
// signed by minio-go's SignV2 and PreSignV2.
func TestSigV2(t *testing.T) {
	// docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html, "Object GET".
	r := httptest.NewRequest("GET", "http://johnsmith.s3.amazonaws.com/photos/puppy.jpg", nil)
	r.Header.Set("Date", "Tue, 27 Mar 2007 19:36:42 +0000")
	r.Header.Set("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=")
	docNow := func() time.Time { return time.Date(2007, 3, 27, 19, 40, 0, 0, time.UTC) }
	v := NewVerifier(exampleCreds, docNow)
	if !IsV2(r) {
		t.Fatal("not recognized as v2")
	}
	if _, err := v.VerifyV2(r, "johnsmith"); err != nil {
		t.Fatalf("AWS example: %v", err)
	}
	if _, err := v.VerifyV2(r, "other"); !errors.Is(err, ErrSignatureDoesNotMatch) {
		t.Fatalf("wrong bucket: %v", err)
	}

	creds := staticCreds{"sherdkey": "sherd/secret+key"}
	lv := NewVerifier(creds, nil)
	mk := func(target string, body string) *http.Request {
		r, _ := http.NewRequest("PUT", target, strings.NewReader(body))
		r.Header.Set("Content-Type", "text/plain")
		r.Header.Set("X-Amz-Meta-Color", "blue")
		r.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
		return r
	}
	signed := signer.SignV2(*mk("http://127.0.0.1:9000/bucket/some%20key/x?uploads", "data"), "sherdkey", "sherd/secret+key", false)
	if _, err := lv.VerifyV2(signed, ""); err != nil {
		t.Fatalf("minio-go SignV2: %v", err)
	}
	vh := signer.SignV2(*mk("http://bucket.localhost:9000/k", "data"), "sherdkey", "sherd/secret+key", true)
	if _, err := lv.VerifyV2(vh, "bucket"); err != nil {
		t.Fatalf("minio-go SignV2 virtual host: %v", err)
	}
	tampered := signer.SignV2(*mk("http://127.0.0.1:9000/bucket/k", "data"), "sherdkey", "sherd/secret+key", false)
	tampered.Header.Set("X-Amz-Meta-Color", "red")
	if _, err := lv.VerifyV2(tampered, ""); !errors.Is(err, ErrSignatureDoesNotMatch) {
		t.Fatalf("tampered: %v", err)
	}
	wrong := signer.SignV2(*mk("http://127.0.0.1:9000/bucket/k", "data"), "sherdkey", "wrong", false)
	if _, err := lv.VerifyV2(wrong, ""); !errors.Is(err, ErrSignatureDoesNotMatch) {
		t.Fatalf("wrong secret: %v", err)
	}
	old := mk("http://127.0.0.1:9000/bucket/k", "")
	old.Header.Set("Date", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
	if _, err := lv.VerifyV2(signer.SignV2(*old, "sherdkey", "sherd/secret+key", false), ""); !errors.Is(err, ErrRequestTimeTooSkewed) {
		t.Fatalf("skewed: %v", err)
	}

	newGet := func() *http.Request { // PreSignV2 rewrites the URL it is given
		r, _ := http.NewRequest("GET", "http://127.0.0.1:9000/bucket/k?response-content-type=text%2Fhtml", nil)
		return r
	}
	p := signer.PreSignV2(*newGet(), "sherdkey", "sherd/secret+key", 600, false)
	pr, _ := http.NewRequest("GET", p.URL.String(), nil)
	if id, err := lv.VerifyV2(pr, ""); err != nil || !id.Presigned {
		t.Fatalf("minio-go PreSignV2: %v", err)
	}
	expired := signer.PreSignV2(*newGet(), "sherdkey", "sherd/secret+key", -10, false)
	er, _ := http.NewRequest("GET", expired.URL.String(), nil)
	if _, err := lv.VerifyV2(er, ""); !errors.Is(err, ErrExpiredPresign) {
		t.Fatalf("expired: %v", err)
	}
	alt, _ := http.NewRequest("GET", strings.Replace(p.URL.String(), "/k?", "/j?", 1), nil)
	if _, err := lv.VerifyV2(alt, ""); !errors.Is(err, ErrSignatureDoesNotMatch) {
		t.Fatalf("altered: %v", err)
	}
}

// TestCombineCRC checks CombineCRC against the plain CRC of the concatenation.
func TestCombineCRC(t *testing.T) {
	for _, algo := range []string{CRC32, CRC32C, CRC64NVME} {
		for _, sizes := range [][2]int{{0, 5}, {5, 0}, {1, 1}, {1000, 1}, {3, 70000}, {1 << 20, 12345}} {
			a, b := bytes.Repeat([]byte{0x5a}, sizes[0]), make([]byte, sizes[1])
			for i := range b {
				b[i] = byte(i * 7)
			}
			crc := func(p []byte) uint64 {
				v, _ := DecodeCRC(algo, sumB64(algo, string(p)))
				return v
			}
			want := crc(append(append([]byte{}, a...), b...))
			if got := CombineCRC(algo, crc(a), crc(b), int64(len(b))); got != want {
				t.Errorf("%s %v: %x, want %x", algo, sizes, got, want)
			}
		}
	}
}

func FuzzVerifyV2(f *testing.F) {
	f.Add("AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=", "", "Tue, 27 Mar 2007 19:36:42 +0000")
	f.Add("", "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=x", "")
	f.Add("AWS :", "acl&uploads&partNumber=1", "garbage")
	v := NewVerifier(exampleCreds, func() time.Time { return time.Date(2007, 3, 27, 19, 40, 0, 0, time.UTC) })
	f.Fuzz(func(t *testing.T, auth, query, date string) {
		r := httptest.NewRequest("GET", "http://johnsmith.s3.amazonaws.com/photos/puppy.jpg", nil)
		r.URL.RawQuery = query
		if auth != "" {
			r.Header["Authorization"] = []string{auth}
		}
		r.Header["Date"] = []string{date}
		if _, err := v.VerifyV2(r, "johnsmith"); err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("non-S3 error %v", err)
			}
		}
	})
}

func TestCORSMatch(t *testing.T) {
	c, err := ParseCORS([]byte(`<CORSConfiguration>
 <CORSRule><AllowedOrigin>http://*.example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>
  <AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>content-type</AllowedHeader><MaxAgeSeconds>300</MaxAgeSeconds><ExposeHeader>ETag</ExposeHeader></CORSRule>
 <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>
</CORSConfiguration>`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		origin, method string
		headers        []string
		ok             bool
		rule           int
	}{
		{"http://app.example.com", "PUT", []string{"content-type", "x-amz-date"}, true, 0},
		{"http://app.example.com", "PUT", []string{"authorization"}, false, 0},
		{"http://evil.com", "PUT", nil, false, 0},
		{"http://evil.com", "GET", nil, true, 1},
		{"http://app.example.com", "DELETE", nil, false, 0},
	}
	for _, cs := range cases {
		r, ok := c.Match(cs.origin, cs.method, cs.headers)
		if ok != cs.ok || (ok && r.AllowedOrigins[0] != c.Rules[cs.rule].AllowedOrigins[0]) {
			t.Errorf("%+v: %v %+v", cs, ok, r)
		}
	}
	for _, bad := range []string{
		`<CORSConfiguration></CORSConfiguration>`,
		`<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>`,
		`<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>`,
		`<CORSConfiguration><CORSRule><AllowedOrigin>*.*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>`,
		`<CORSConfig`,
	} {
		if _, err := ParseCORS([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func FuzzParseCORS(f *testing.F) {
	f.Add(`<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>`, "http://a", "GET")
	f.Fuzz(func(t *testing.T, body, origin, method string) {
		c, err := ParseCORS([]byte(body))
		if err != nil {
			return
		}
		c.Match(origin, method, RequestHeaders(origin))
	})
}

func FuzzParsePostPolicy(f *testing.F) {
	f.Add(`{"expiration":"2030-01-01T00:00:00Z","conditions":[{"bucket":"b"},["starts-with","$key","u/"],["content-length-range",1,10]]}`)
	f.Add(`{"expiration":"x","conditions":[["eq"]]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := ParsePostPolicy(base64.StdEncoding.EncodeToString([]byte(doc)))
		if err != nil {
			return
		}
		if p.MaxSize >= 0 && p.MinSize > p.MaxSize {
			t.Fatalf("range %d-%d", p.MinSize, p.MaxSize)
		}
		p.check(map[string]string{"key": "u/x", "bucket": "b"}, "b")
	})
}

func TestURLEncode(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"foo/bar.txt", "foo/bar.txt"},
		{"run books/x+y%z", "run+books/x%2By%25z"},
		{"a~b-c_d", "a~b-c_d"},
		{"é\n&=?", "%C3%A9%0A%26%3D%3F"},
	} {
		if got := URLEncode(c.in); got != c.want {
			t.Errorf("URLEncode(%q) = %q, want %q", c.in, got, c.want)
		}
		if back, err := url.QueryUnescape(URLEncode(c.in)); err != nil || back != c.in {
			t.Errorf("QueryUnescape(URLEncode(%q)) = %q, %v", c.in, back, err)
		}
	}
}
