package test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"

	s3sig "github.com/sherdstore/sherd/gateway/s3"
)

func do(t *testing.T, method, u string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
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

// TestPresignEndpoint: the gateway issues presigned GET, PUT and
// UploadPart URLs to a signed caller; plain HTTP uses them; altered,
// expired and wrongly scoped URLs are refused.
func TestPresignEndpoint(t *testing.T) {
	s := startServer(t, "")
	u := s.Gateway.URL
	c := awsClient(t, u, true, rootPass)
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("pre")}))
	issue := func(q string) (string, int) {
		r, b := signed(t, "GET", u+"/_sherd/presign?"+q, nil, nil)
		var a struct{ URL string }
		json.Unmarshal(b, &a)
		return a.URL, r.StatusCode
	}
	put, code := issue("method=PUT&bucket=pre&key=dir/file.txt&expires=60")
	if code != 200 {
		t.Fatalf("issue PUT: %d", code)
	}
	if r, b := do(t, "PUT", put, strings.NewReader("presigned body"), nil); r.StatusCode != 200 {
		t.Fatalf("PUT via URL: %d %s", r.StatusCode, b)
	}
	get, _ := issue("method=GET&bucket=pre&key=dir/file.txt")
	if r, b := do(t, "GET", get, nil, nil); r.StatusCode != 200 || string(b) != "presigned body" {
		t.Fatalf("GET via URL: %d %s", r.StatusCode, b)
	}
	// Scope: the URL is for one method, one key.
	if r, _ := do(t, "PUT", get, strings.NewReader("x"), nil); r.StatusCode != 403 {
		t.Fatalf("GET URL used for PUT: %d", r.StatusCode)
	}
	if r, _ := do(t, "GET", strings.Replace(get, "file.txt", "other.txt", 1), nil, nil); r.StatusCode != 403 {
		t.Fatalf("URL used for another key: %d", r.StatusCode)
	}
	if r, _ := do(t, "GET", strings.Replace(get, "X-Amz-Expires=3600", "X-Amz-Expires=7200", 1), nil, nil); r.StatusCode != 403 {
		t.Fatalf("altered expiry: %d", r.StatusCode)
	}
	// Expiry: the endpoint signs the asked-for lifetime; a URL signed the
	// same way an hour ago with a 60 s lifetime is refused.
	if short, _ := issue("method=GET&bucket=pre&key=dir/file.txt&expires=1"); !strings.Contains(short, "X-Amz-Expires=1&") {
		t.Fatalf("expires=1 not signed in: %s", short)
	}
	old, err := s3sig.Presign("GET", u, "/pre/dir/file.txt", nil, rootUser, rootPass, "us-east-1", time.Minute, time.Now().Add(-time.Hour))
	noErr(t, err)
	if r, b := do(t, "GET", old, nil, nil); r.StatusCode != 403 || !bytes.Contains(b, []byte("expired")) {
		t.Fatalf("expired URL: %d %s", r.StatusCode, b)
	}
	// UploadPart URLs for a browser-driven multipart upload.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("pre"), Key: aws.String("mp")})
	noErr(t, err)
	part, code := issue("method=PUT&bucket=pre&key=mp&uploadId=" + *up.UploadId + "&partNumber=1")
	if code != 200 {
		t.Fatalf("issue UploadPart: %d", code)
	}
	r, _ := do(t, "PUT", part, strings.NewReader("part one"), nil)
	if r.StatusCode != 200 {
		t.Fatalf("UploadPart via URL: %d", r.StatusCode)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("pre"), Key: aws.String("mp"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: aws.String(r.Header.Get("ETag"))}}}}); err != nil {
		t.Fatal(err)
	}
	// The endpoint itself needs a signature, a known bucket and sane values.
	if r, _ := do(t, "GET", u+"/_sherd/presign?method=GET&bucket=pre&key=k", nil, nil); r.StatusCode != 403 {
		t.Fatalf("anonymous presign: %d", r.StatusCode)
	}
	for _, q := range []string{"method=DELETE&bucket=pre&key=k", "bucket=nope-bucket&key=k", "bucket=pre&key=k&expires=999999", "method=PUT&bucket=pre&key=k&uploadId=missing&partNumber=1"} {
		if _, code := issue(q); code < 400 || code >= 500 {
			t.Errorf("%s: %d", q, code)
		}
	}
}

// postForm sends a multipart form built from fields and a file.
func postForm(t *testing.T, target string, fields map[string]string, file []byte) (*http.Response, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "photo.png")
	fw.Write(file)
	mw.Close()
	return do(t, "POST", target, &buf, map[string]string{"Content-Type": mw.FormDataContentType()})
}

// TestPostPolicy: HTML form uploads with a policy signed by minio-go.
func TestPostPolicy(t *testing.T) {
	s := startServer(t, "")
	mc := minioClient(t, s.Gateway.URL, false)
	noErr(t, mc.MakeBucket(ctx, "forms", minio.MakeBucketOptions{}))
	mkPolicy := func(expires time.Time) (*url.URL, map[string]string) {
		p := minio.NewPostPolicy()
		p.SetBucket("forms")
		p.SetKeyStartsWith("uploads/")
		p.SetExpires(expires)
		p.SetContentLengthRange(1, 1000)
		p.SetContentType("image/png")
		p.SetSuccessStatusAction("201")
		u, form, err := mc.PresignedPostPolicy(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return u, form
	}
	u, form := mkPolicy(time.Now().Add(time.Minute))
	withKey := func(extra map[string]string) map[string]string {
		f := map[string]string{}
		for k, v := range form {
			f[k] = v
		}
		f["key"] = "uploads/${filename}"
		for k, v := range extra {
			if v == "" {
				delete(f, k)
			} else {
				f[k] = v
			}
		}
		return f
	}
	r, b := postForm(t, u.String(), withKey(nil), []byte("PNG bytes"))
	if r.StatusCode != 201 || !bytes.Contains(b, []byte("<Key>uploads/photo.png</Key>")) {
		t.Fatalf("form upload: %d %s", r.StatusCode, b)
	}
	// Location is absolute, as AWS answers it (clients follow it).
	if loc, want := r.Header.Get("Location"), s.Gateway.URL+"/forms/uploads%2Fphoto.png"; loc != want {
		t.Errorf("Location %q, want %q", loc, want)
	}
	o, err := mc.GetObject(ctx, "forms", "uploads/photo.png", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := o.Stat()
	if got := readAll(t, o); string(got) != "PNG bytes" || st.ContentType != "image/png" {
		t.Fatalf("uploaded object %q %s", got, st.ContentType)
	}
	for name, tc := range map[string]struct {
		fields map[string]string
		file   []byte
		target string
		status int
	}{
		"key outside the prefix":  {withKey(map[string]string{"key": "other/x"}), []byte("x"), u.String(), 403},
		"wrong content type":      {withKey(map[string]string{"Content-Type": "text/html"}), []byte("x"), u.String(), 403},
		"field not in the policy": {withKey(map[string]string{"x-amz-meta-evil": "1"}), []byte("x"), u.String(), 403},
		"file too large":          {withKey(nil), bytes.Repeat([]byte("x"), 1001), u.String(), 400},
		"file too small":          {withKey(nil), nil, u.String(), 400},
		"policy altered":          {withKey(map[string]string{"policy": form["policy"][:len(form["policy"])-4] + "AAAA"}), []byte("x"), u.String(), 403},
		"other bucket":            {withKey(nil), []byte("x"), strings.Replace(u.String(), "/forms", "/forms2", 1), 403},
		"no signature":            {withKey(map[string]string{"x-amz-signature": ""}), []byte("x"), u.String(), 400},
		"no policy":               {withKey(map[string]string{"policy": ""}), []byte("x"), u.String(), 403},
	} {
		if name == "other bucket" {
			noErr(t, mc.MakeBucket(ctx, "forms2", minio.MakeBucketOptions{}))
		}
		r, b := postForm(t, tc.target, tc.fields, tc.file)
		if r.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", name, r.StatusCode, b, tc.status)
		}
	}
	u2, form2 := mkPolicy(time.Now().Add(-time.Second))
	form = form2
	if r, b := postForm(t, u2.String(), withKey(nil), []byte("x")); r.StatusCode != 403 || !bytes.Contains(b, []byte("AccessDenied")) {
		t.Fatalf("expired policy: %d %s", r.StatusCode, b)
	}
}
