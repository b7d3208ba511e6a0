package test

import (
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestVersioning drives S3 versioning with aws-sdk-go-v2 as AWS documents
// it: version ids on PUT, COPY and Complete; GET, HEAD, DELETE and copy
// source by version; delete markers; ListObjectVersions with prefix,
// delimiter and markers; DeleteObjects with version ids; the null version
// of a suspended bucket; an unversioned bucket's objects as null versions.
func TestVersioning(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	b := aws.String("vers")
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}))
	put := func(key, body string) string {
		t.Helper()
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(key), Body: strings.NewReader(body)})
		noErr(t, err)
		return aws.ToString(out.VersionId)
	}
	get := func(key, vid string) (string, error) {
		t.Helper()
		in := &s3.GetObjectInput{Bucket: b, Key: aws.String(key)}
		if vid != "" {
			in.VersionId = aws.String(vid)
		}
		out, err := c.GetObject(ctx, in)
		if err != nil {
			return "", err
		}
		defer out.Body.Close()
		data, _ := io.ReadAll(out.Body)
		if vid != "" && aws.ToString(out.VersionId) != vid {
			t.Errorf("GET version %s answered version %s", vid, aws.ToString(out.VersionId))
		}
		return string(data), nil
	}
	versions := func(in *s3.ListObjectVersionsInput) []string {
		t.Helper()
		in.Bucket = b
		var out []string
		p := s3.NewListObjectVersionsPaginator(c, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			noErr(t, err)
			for _, v := range page.Versions {
				out = append(out, aws.ToString(v.Key)+" "+aws.ToString(v.VersionId)+" v "+map[bool]string{true: "latest", false: ""}[aws.ToBool(v.IsLatest)])
			}
			for _, d := range page.DeleteMarkers {
				out = append(out, aws.ToString(d.Key)+" "+aws.ToString(d.VersionId)+" dm "+map[bool]string{true: "latest", false: ""}[aws.ToBool(d.IsLatest)])
			}
		}
		return out
	}

	// Unversioned: no version ids; its objects list as null versions.
	if vid := put("plain", "p"); vid != "" {
		t.Fatalf("unversioned PUT answered version %q", vid)
	}
	if got := versions(&s3.ListObjectVersionsInput{}); len(got) != 1 || got[0] != "plain null v latest" {
		t.Fatalf("unversioned listing %q", got)
	}
	st, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: b})
	noErr(t, err)
	if st.Status != "" {
		t.Fatalf("status %q", st.Status)
	}

	must(t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}))
	st, err = c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: b})
	noErr(t, err)
	if st.Status != types.BucketVersioningStatusEnabled {
		t.Fatalf("status %q", st.Status)
	}
	v1, v2 := put("k", "one"), put("k", "two")
	if v1 == "" || v2 == "" || v1 == v2 || v1 == "null" {
		t.Fatalf("version ids %q %q", v1, v2)
	}
	for vid, want := range map[string]string{"": "two", v1: "one", v2: "two"} {
		if got, err := get("k", vid); err != nil || got != want {
			t.Fatalf("GET version %q: %q, %v", vid, got, err)
		}
	}
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(v1)})
	noErr(t, err)
	if aws.ToString(h.VersionId) != v1 || aws.ToInt64(h.ContentLength) != 3 {
		t.Fatalf("HEAD version: %+v", h)
	}
	_, err = get("k", "0123456789abcdef0123456789abcdef")
	wantErr(t, "GET of a version that does not exist", err, "NoSuchVersion", 404)

	// A delete marker hides the object; its versions stay readable.
	del, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("k")})
	noErr(t, err)
	dm := aws.ToString(del.VersionId)
	if !aws.ToBool(del.DeleteMarker) || dm == "" {
		t.Fatalf("delete: %+v", del)
	}
	_, err = get("k", "")
	wantErr(t, "GET behind a delete marker", err, "NoSuchKey", 404)
	_, err = get("k", dm)
	wantErr(t, "GET of a delete marker", err, "MethodNotAllowed", 405)
	if got, err := get("k", v1); err != nil || got != "one" {
		t.Fatalf("GET old version behind a delete marker: %q %v", got, err)
	}
	lo, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b})
	noErr(t, err)
	if len(lo.Contents) != 1 || aws.ToString(lo.Contents[0].Key) != "plain" {
		t.Fatalf("ListObjects shows deleted keys: %+v", lo.Contents)
	}
	want := []string{"k " + v2 + " v ", "k " + v1 + " v ", "plain null v latest", "k " + dm + " dm latest"}
	if got := versions(&s3.ListObjectVersionsInput{MaxKeys: aws.Int32(1)}); !sameSet(got, want) || len(got) != 4 {
		t.Fatalf("versions (pages of 1):\n got %q\nwant %q", got, want)
	}
	// Removing the delete marker brings the last version back.
	rm, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("k"), VersionId: aws.String(dm)})
	noErr(t, err)
	if !aws.ToBool(rm.DeleteMarker) || aws.ToString(rm.VersionId) != dm {
		t.Fatalf("delete of the delete marker: %+v", rm)
	}
	if got, err := get("k", ""); err != nil || got != "two" {
		t.Fatalf("after removing the delete marker: %q %v", got, err)
	}

	// Copy from a version.
	cp, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: aws.String("vers/k?versionId=" + v1)})
	noErr(t, err)
	if aws.ToString(cp.CopySourceVersionId) != v1 || aws.ToString(cp.VersionId) == "" {
		t.Fatalf("copy: source version %q, version %q", aws.ToString(cp.CopySourceVersionId), aws.ToString(cp.VersionId))
	}
	if got, _ := get("copy", ""); got != "one" {
		t.Fatalf("copy of version 1: %q", got)
	}

	// Multipart: Complete answers the version.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp")})
	noErr(t, err)
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part")})
	noErr(t, err)
	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}})
	noErr(t, err)
	if aws.ToString(done.VersionId) == "" {
		t.Fatal("Complete answered no version")
	}

	// DeleteObjects by version id.
	dd, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("k"), VersionId: aws.String(v1)}, {Key: aws.String("copy")}}}})
	noErr(t, err)
	if len(dd.Deleted) != 2 || len(dd.Errors) != 0 {
		t.Fatalf("DeleteObjects: %+v", dd)
	}
	for _, d := range dd.Deleted {
		switch aws.ToString(d.Key) {
		case "k":
			if aws.ToString(d.VersionId) != v1 || aws.ToBool(d.DeleteMarker) {
				t.Errorf("DeleteObjects k: %+v", d)
			}
		case "copy":
			if !aws.ToBool(d.DeleteMarker) || aws.ToString(d.DeleteMarkerVersionId) == "" {
				t.Errorf("DeleteObjects copy: %+v", d)
			}
		}
	}
	_, err = get("k", v1)
	wantErr(t, "GET of a deleted version", err, "NoSuchVersion", 404)

	// Prefix and delimiter.
	put("dir/a", "a")
	put("dir/sub/b", "b")
	got := versions(&s3.ListObjectVersionsInput{Prefix: aws.String("dir/"), Delimiter: aws.String("/")})
	if len(got) != 1 || !strings.HasPrefix(got[0], "dir/a ") {
		t.Fatalf("prefix and delimiter: %q", got)
	}

	// Suspended: writes make the null version, which the next one replaces.
	must(t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}}))
	if vid := put("k", "three"); vid != "null" {
		t.Fatalf("suspended PUT version %q", vid)
	}
	put("k", "four")
	got = versions(&s3.ListObjectVersionsInput{Prefix: aws.String("k")})
	if want := []string{"k null v latest", "k " + v2 + " v "}; !sameSet(got, want) || len(got) != 2 {
		t.Fatalf("suspended versions:\n got %q\nwant %q", got, want)
	}
	if got, err := get("k", "null"); err != nil || got != "four" {
		t.Fatalf("GET null version: %q %v", got, err)
	}

	// A bucket with versions left is not empty.
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: b})
	wantErr(t, "DeleteBucket with versions", err, "BucketNotEmpty", 409)
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s]--; seen[s] < 0 {
			return false
		}
	}
	return true
}
