package test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// errCode is the S3 error code and HTTP status of err.
func errCode(err error) (string, int) {
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	code, status := "", 0
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

func wantErr(t *testing.T, what string, err error, code string, status int) {
	t.Helper()
	c, s := errCode(err)
	if c != code || s != status {
		t.Fatalf("%s: got %q %d (%v), want %q %d", what, c, s, err, code, status)
	}
}

// TestAWSSDK drives the gateway with aws-sdk-go-v2 in its default
// configuration (it sends CRC32 checksum trailers on uploads), path-style
// and virtual-hosted-style.
func TestAWSSDK(t *testing.T) {
	s := startServer(t, "")
	for _, pathStyle := range []bool{true, false} {
		t.Run(fmt.Sprintf("pathStyle=%v", pathStyle), func(t *testing.T) {
			c := awsClient(t, s.Gateway.URL, pathStyle, rootPass)
			bucket := fmt.Sprintf("sdk-path-%v", pathStyle)
			if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
				t.Fatal(err)
			}
			_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("Bad_Name")})
			wantErr(t, "invalid bucket name", err, "InvalidBucketName", 400)
			if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}); err != nil {
				t.Fatal(err)
			}
			loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: &bucket})
			if err != nil || loc.LocationConstraint != "" {
				t.Fatalf("location %v %v", loc, err)
			}
			data := randomBytes(3<<20+17, 7)
			put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("a/b c+d.bin"), Body: bytes.NewReader(data),
				ContentType: aws.String("application/octet-stream"), CacheControl: aws.String("max-age=3600"),
				ContentDisposition: aws.String(`attachment; filename="x.bin"`), ContentLanguage: aws.String("en"),
				Expires: aws.Time(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), Metadata: map[string]string{"k": "v"},
				ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
			if err != nil {
				t.Fatal(err)
			}
			key := aws.String("a/b c+d.bin")
			get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: key, ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, get.Body); !bytes.Equal(got, data) {
				t.Fatal("body differs")
			}
			if *get.ETag != *put.ETag || aws.ToString(get.CacheControl) != "max-age=3600" || aws.ToString(get.ContentLanguage) != "en" ||
				get.Metadata["k"] != "v" || aws.ToString(get.ChecksumSHA256) != aws.ToString(put.ChecksumSHA256) || get.ChecksumSHA256 == nil {
				t.Fatalf("get headers: %+v", get)
			}
			// Conditional reads.
			_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: key, IfNoneMatch: put.ETag})
			wantErr(t, "If-None-Match", err, "NotModified", 304)
			_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: key, IfMatch: aws.String(`"0000"`)})
			wantErr(t, "If-Match", err, "PreconditionFailed", 412)
			_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: key, IfModifiedSince: aws.Time(time.Now().Add(time.Hour))})
			wantErr(t, "If-Modified-Since", err, "NotModified", 304)
			_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: key, IfUnmodifiedSince: aws.Time(time.Now().Add(-time.Hour))})
			wantErr(t, "If-Unmodified-Since", err, "PreconditionFailed", 412)
			if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: key, IfMatch: put.ETag, IfModifiedSince: aws.Time(time.Now().Add(-time.Hour))}); err != nil {
				t.Fatal(err)
			}
			// Ranges and overrides.
			rg, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: key, Range: aws.String("bytes=-100"),
				ResponseContentType: aws.String("text/csv"), ResponseCacheControl: aws.String("no-store")})
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, rg.Body); !bytes.Equal(got, data[len(data)-100:]) || aws.ToString(rg.ContentType) != "text/csv" ||
				aws.ToString(rg.CacheControl) != "no-store" || aws.ToString(rg.ContentRange) != fmt.Sprintf("bytes %d-%d/%d", len(data)-100, len(data)-1, len(data)) {
				t.Fatalf("suffix range: %+v", rg)
			}
			_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: key, Range: aws.String(fmt.Sprintf("bytes=%d-", len(data)))})
			wantErr(t, "unsatisfiable range", err, "InvalidRange", 416)
			// Conditional writes are etcd compares.
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: key, Body: strings.NewReader("x"), IfNoneMatch: aws.String("*")})
			wantErr(t, "If-None-Match: * on existing", err, "PreconditionFailed", 412)
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("new"), Body: strings.NewReader("x"), IfNoneMatch: aws.String("*")}); err != nil {
				t.Fatal(err)
			}
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("new"), Body: strings.NewReader("y"), IfMatch: aws.String(`"wrong"`)})
			wantErr(t, "If-Match wrong", err, "PreconditionFailed", 412)
			// If-Match on a key that does not exist: 404 NoSuchKey, as AWS.
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("absent"), Body: strings.NewReader("y"), IfMatch: aws.String(`"0123"`)})
			wantErr(t, "If-Match on an absent key", err, "NoSuchKey", 404)
			head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("new")})
			noErr(t, err)
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("new"), Body: strings.NewReader("y"), IfMatch: head.ETag}); err != nil {
				t.Fatal(err)
			}
			// Copy with REPLACE.
			cp, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &bucket, Key: aws.String("copied"), CopySource: aws.String(bucket + "/a/b%20c%2Bd.bin"),
				MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"new": "meta"}, ContentType: aws.String("text/plain")})
			if err != nil {
				t.Fatal(err)
			}
			ch, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("copied")})
			if err != nil || ch.Metadata["new"] != "meta" || ch.Metadata["k"] != "" || aws.ToString(ch.ContentType) != "text/plain" ||
				aws.ToInt64(ch.ContentLength) != int64(len(data)) || *ch.ETag != *cp.CopyObjectResult.ETag {
				t.Fatalf("copy: %+v %v", ch, err)
			}
			_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &bucket, Key: aws.String("copied"), CopySource: aws.String(bucket + "/copied")})
			wantErr(t, "copy onto itself", err, "InvalidRequest", 400)
			// Listing, paginated with encoding-type=url (this SDK leaves keys encoded).
			for i := range 7 {
				must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(fmt.Sprintf("list/%d é", i)), Body: strings.NewReader("")}))
			}
			var keys []string
			p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("list/"), MaxKeys: aws.Int32(3), EncodingType: types.EncodingTypeUrl})
			pages := 0
			for p.HasMorePages() {
				out, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, o := range out.Contents {
					k, err := url.QueryUnescape(*o.Key)
					if err != nil {
						t.Fatal(err)
					}
					keys = append(keys, k)
				}
			}
			if len(keys) != 7 || keys[6] != "list/6 é" || pages != 3 {
				t.Fatalf("paginated %d pages: %q", pages, keys)
			}
			v1, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: &bucket, Delimiter: aws.String("/"), Marker: aws.String("a/")})
			if err != nil || len(v1.CommonPrefixes) != 1 || *v1.CommonPrefixes[0].Prefix != "list/" || len(v1.Contents) != 2 {
				t.Fatalf("v1 delimiter: %+v %v", v1, err)
			}
			// Errors.
			_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("missing")})
			wantErr(t, "missing key", err, "NoSuchKey", 404)
			_, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("no-such-bucket")})
			wantErr(t, "missing bucket", err, "NoSuchBucket", 404)
			_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket})
			wantErr(t, "delete non-empty", err, "BucketNotEmpty", 409)
			_, err = c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &bucket})
			wantErr(t, "bucket policy", err, "NoSuchBucketPolicy", 404)
			_, err = c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
			wantErr(t, "unsupported operation", err, "NotImplemented", 501)
			bad := awsClient(t, s.Gateway.URL, pathStyle, "wrong-secret")
			_, err = bad.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
			wantErr(t, "wrong secret", err, "SignatureDoesNotMatch", 403)
			_, err = bad.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("evil"), Body: strings.NewReader("x")})
			wantErr(t, "wrong secret put", err, "SignatureDoesNotMatch", 403)
			// Delete everything with DeleteObjects, then the bucket.
			all, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket})
			noErr(t, err)
			var ids []types.ObjectIdentifier
			for _, o := range all.Contents {
				ids = append(ids, types.ObjectIdentifier{Key: o.Key})
			}
			del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &types.Delete{Objects: ids}})
			if err != nil || len(del.Deleted) != len(ids) || len(del.Errors) != 0 {
				t.Fatalf("DeleteObjects %+v %v", del, err)
			}
			if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
				t.Fatal(err)
			}
		})
	}
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	lb, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(lb.Buckets) != 0 {
		t.Fatalf("ListBuckets %+v %v", lb, err)
	}
	// Anonymous requests are refused (no bucket is public).
	resp, err := http.Get(s.Gateway.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("anonymous ListBuckets: %d", resp.StatusCode)
	}
}
