package test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"

	s3sig "github.com/sherdstore/sherd/gateway/s3"
)

// TestUnsignedAmzHeadersRefused: whoever holds a presigned PUT or
// UploadPart URL cannot add x-amz-* headers the signer did not sign (an
// X-Amz-Copy-Source would copy any object in the cluster to the URL's key).
// Every x-amz-* header present must be signed, for header-signed and
// presigned requests, SigV4 and SigV2, as AWS does (403 AccessDenied).
func TestUnsignedAmzHeadersRefused(t *testing.T) {
	s := startServer(t, "")
	u := s.Gateway.URL
	c := awsClient(t, u, true, rootPass)
	for _, b := range []string{"private", "public"} {
		must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}))
	}
	must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("private"), Key: aws.String("db-backup.tar"), Body: strings.NewReader("secret rows")}))
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("public"), Key: aws.String("mp")})
	noErr(t, err)

	presignedPut, err := s3sig.Presign("PUT", u, "/public/upload.jpg", nil, rootUser, rootPass, "us-east-1", time.Hour, time.Now())
	noErr(t, err)
	presignedPart, err := s3sig.Presign("PUT", u, "/public/mp", url.Values{"uploadId": {*up.UploadId}, "partNumber": {"1"}}, rootUser, rootPass, "us-east-1", time.Hour, time.Now())
	noErr(t, err)
	// SigV2 presigned PUT, as older clients make them.
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	mac := hmac.New(sha1.New, []byte(rootPass))
	mac.Write([]byte("PUT\n\n\n" + exp + "\n/public/v2.jpg"))
	v2Put := u + "/public/v2.jpg?AWSAccessKeyId=" + rootUser + "&Expires=" + exp + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))

	copySrc := map[string]string{"X-Amz-Copy-Source": "private/db-backup.tar"}
	for _, tc := range []struct {
		name, url, key string
	}{
		{"presigned PUT + copy source", presignedPut, "upload.jpg"},
		{"presigned UploadPart + copy source", presignedPart, ""},
		{"SigV2 presigned PUT + copy source", v2Put, "v2.jpg"},
	} {
		r, body := do(t, "PUT", tc.url, strings.NewReader("my photo"), copySrc)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", tc.name, r.StatusCode, body)
		}
		if tc.key != "" {
			if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("public"), Key: aws.String(tc.key)}); err == nil {
				t.Errorf("%s: public/%s was written", tc.name, tc.key)
			}
		}
	}
	parts, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("public"), Key: aws.String("mp"), UploadId: up.UploadId})
	noErr(t, err)
	if len(parts.Parts) != 0 {
		t.Errorf("UploadPart URL copied a part: %+v", parts.Parts[0])
	}
	// AWS's wording, so clients and people recognise it.
	r, body := do(t, "PUT", presignedPut, strings.NewReader("my photo"), map[string]string{"X-Amz-Meta-Owner": "mallory"})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "headers present in the request which were not signed") || !strings.Contains(string(body), "x-amz-meta-owner") {
		t.Errorf("unsigned x-amz-meta-*: %d %s", r.StatusCode, body)
	}
	// What presigned URLs are for still works: no extra headers, or the
	// unsigned x-amz-content-sha256 that AWS allows on presigned requests.
	if r, body := do(t, "PUT", presignedPut, strings.NewReader("my photo"), map[string]string{"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"}); r.StatusCode != 200 {
		t.Fatalf("presigned PUT: %d %s", r.StatusCode, body)
	}
	if r, body := do(t, "PUT", presignedPart, strings.NewReader("part"), nil); r.StatusCode != 200 {
		t.Fatalf("presigned UploadPart: %d %s", r.StatusCode, body)
	}
	if r, body := do(t, "PUT", v2Put, strings.NewReader("v2"), nil); r.StatusCode != 200 {
		t.Fatalf("SigV2 presigned PUT: %d %s", r.StatusCode, body)
	}
	// A header-signed request whose signer left an x-amz-* header out.
	r, body = signed(t, "PUT", u+"/public/copied", nil, nil)
	if r.StatusCode != 200 {
		t.Fatalf("signed PUT: %d %s", r.StatusCode, body)
	}
	r, body = signedThenAdd(t, "PUT", u+"/public/copied", map[string]string{"X-Amz-Copy-Source": "private/db-backup.tar"})
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("signed PUT + unsigned copy source: %d %s", r.StatusCode, body)
	}
	// Copies that were signed as copies still work, with every client.
	must(t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("private"), Key: aws.String("copy"), CopySource: aws.String("private/db-backup.tar")}))
	mc := minioClient(t, u, false)
	must(t)(mc.CopyObject(ctx, minio.CopyDestOptions{Bucket: "private", Object: "copy2"}, minio.CopySrcOptions{Bucket: "private", Object: "db-backup.tar"}))
	mc2 := minioClient(t, u, true)
	must(t)(mc2.CopyObject(ctx, minio.CopyDestOptions{Bucket: "private", Object: "copy3"}, minio.CopySrcOptions{Bucket: "private", Object: "db-backup.tar"}))
}
