package test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestPublicReadAndCORS: a public-read bucket serves anonymous GET/HEAD
// and nothing else; CORS rules answer preflights and decorate responses.
func TestPublicReadAndCORS(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	b := aws.String("web")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("index.html"), Body: strings.NewReader("<h1>hi</h1>"), ContentType: aws.String("text/html")}))
	anon := func(method, path string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(method, s.Gateway.URL+path, strings.NewReader(""))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := anon("GET", "/web/index.html", nil); r.StatusCode != 403 {
		t.Fatalf("anonymous GET on a private bucket: %d", r.StatusCode)
	}
	if _, err := c.PutBucketAcl(ctx, &s3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPublicRead}); err != nil {
		t.Fatal(err)
	}
	acl, err := c.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: b})
	if err != nil || len(acl.Grants) != 2 || aws.ToString(acl.Grants[1].Grantee.URI) != "http://acs.amazonaws.com/groups/global/AllUsers" {
		t.Fatalf("acl %+v %v", acl, err)
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/web/index.html", 200}, {"HEAD", "/web/index.html", 200}, {"GET", "/web/missing", 404},
		{"PUT", "/web/new", 403}, {"DELETE", "/web/index.html", 403}, {"GET", "/web", 403}, {"GET", "/", 403},
		{"GET", "/web/index.html?response-content-type=x", 400},
		// Public read is READ on objects, not READ_ACP: the ACL names the
		// owner's access key.
		{"GET", "/web/index.html?acl", 403}, {"GET", "/web?acl", 403},
	} {
		if r := anon(tc.method, tc.path, nil); r.StatusCode != tc.status {
			t.Errorf("anonymous %s %s: %d, want %d", tc.method, tc.path, r.StatusCode, tc.status)
		}
	}

	// CORS.
	pre := map[string]string{"Origin": "http://app.example.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type, x-amz-date"}
	if r := anon("OPTIONS", "/web/index.html", pre); r.StatusCode != 403 {
		t.Fatalf("preflight without CORS: %d", r.StatusCode)
	}
	_, err = c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{
		{AllowedOrigins: []string{"http://*.example.com"}, AllowedMethods: []string{"GET", "PUT"}, AllowedHeaders: []string{"*"}, ExposeHeaders: []string{"ETag"}, MaxAgeSeconds: aws.Int32(600)},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: b})
	if err != nil || len(got.CORSRules) != 1 || got.CORSRules[0].AllowedOrigins[0] != "http://*.example.com" {
		t.Fatalf("GetBucketCors %+v %v", got, err)
	}
	r := anon("OPTIONS", "/web/index.html", pre)
	if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "http://app.example.com" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "PUT") || r.Header.Get("Access-Control-Max-Age") != "600" {
		t.Fatalf("preflight: %d %v", r.StatusCode, r.Header)
	}
	// A preflight for a presigned URL carries the signature query but no
	// signature for OPTIONS: it must not be verified.
	if r := anon("OPTIONS", "/web/index.html?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00", pre); r.StatusCode != 200 {
		t.Fatalf("preflight of a presigned URL: %d", r.StatusCode)
	}
	pre["Origin"] = "http://evil.com"
	if r := anon("OPTIONS", "/web/index.html", pre); r.StatusCode != 403 {
		t.Fatalf("preflight from another origin: %d", r.StatusCode)
	}
	r = anon("GET", "/web/index.html", map[string]string{"Origin": "http://app.example.com"})
	if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "http://app.example.com" || r.Header.Get("Access-Control-Expose-Headers") != "ETag" {
		t.Fatalf("GET with Origin: %d %v", r.StatusCode, r.Header)
	}
	if _, err := c.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: b})
	wantErr(t, "cors after delete", err, "NoSuchCORSConfiguration", 404)
}
