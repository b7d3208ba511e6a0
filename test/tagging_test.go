package test

import (
	"bytes"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestTagging: object tags from x-amz-tagging on PUT, CreateMultipartUpload,
// COPY (tagging directive) and POST, Put/Get/DeleteObjectTagging (of the
// current version or one by id), x-amz-tagging-count on GET and HEAD,
// bucket tagging, and AWS's limits.
func TestTagging(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	b := aws.String("tags")
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}))
	tagsOf := func(key, vid string) map[string]string {
		t.Helper()
		in := &s3.GetObjectTaggingInput{Bucket: b, Key: aws.String(key)}
		if vid != "" {
			in.VersionId = aws.String(vid)
		}
		out, err := c.GetObjectTagging(ctx, in)
		noErr(t, err)
		m := map[string]string{}
		for _, tag := range out.TagSet {
			m[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
		return m
	}
	same := func(what string, got, want map[string]string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: tags %q, want %q", what, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: tags %q, want %q", what, got, want)
			}
		}
	}

	must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("x"),
		Tagging: aws.String("project=sherd&team=storage%20core&empty=")}))
	same("PUT", tagsOf("k", ""), map[string]string{"project": "sherd", "team": "storage core", "empty": ""})
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("k")})
	noErr(t, err)
	g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("k")})
	noErr(t, err)
	g.Body.Close()
	if aws.ToInt32(h.TagCount) != 3 || aws.ToInt32(g.TagCount) != 3 {
		t.Fatalf("tagging count: HEAD %d, GET %d", aws.ToInt32(h.TagCount), aws.ToInt32(g.TagCount))
	}

	must(t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: aws.String("k"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("new"), Value: aws.String("é")}}}}))
	same("PutObjectTagging", tagsOf("k", ""), map[string]string{"new": "é"})

	// COPY keeps the source's tags unless told to replace them.
	must(t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copied"), CopySource: aws.String("tags/k")}))
	same("COPY", tagsOf("copied", ""), map[string]string{"new": "é"})
	must(t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("replaced"), CopySource: aws.String("tags/k"),
		TaggingDirective: types.TaggingDirectiveReplace, Tagging: aws.String("a=1")}))
	same("COPY REPLACE", tagsOf("replaced", ""), map[string]string{"a": "1"})

	must(t)(c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: b, Key: aws.String("k")}))
	same("DeleteObjectTagging", tagsOf("k", ""), map[string]string{})
	h, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("k")})
	noErr(t, err)
	if h.TagCount != nil {
		t.Fatalf("tagging count of an untagged object: %d", aws.ToInt32(h.TagCount))
	}

	// Multipart: the upload's tags.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp"), Tagging: aws.String("m=p")})
	noErr(t, err)
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part")})
	noErr(t, err)
	must(t)(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}}))
	same("multipart", tagsOf("mp", ""), map[string]string{"m": "p"})

	// POST: the tagging field holds a Tagging document.
	tagging := `<Tagging><TagSet><Tag><Key>form</Key><Value>yes</Value></Tag></TagSet></Tagging>`
	p, err := s3.NewPresignClient(c).PresignPostObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("posted")},
		func(o *s3.PresignPostOptions) { o.Conditions = []any{map[string]string{"tagging": tagging}} })
	noErr(t, err)
	p.Values["tagging"] = tagging
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range p.Values {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "f")
	fw.Write([]byte("posted"))
	mw.Close()
	if r, body := do(t, "POST", p.URL, &buf, map[string]string{"Content-Type": mw.FormDataContentType()}); r.StatusCode != 204 {
		t.Fatalf("POST: %d %s", r.StatusCode, body)
	}
	same("POST", tagsOf("posted", ""), map[string]string{"form": "yes"})

	// Versions keep their own tags.
	must(t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}))
	v1, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("v"), Body: strings.NewReader("1"), Tagging: aws.String("v=1")})
	noErr(t, err)
	must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("v"), Body: strings.NewReader("2"), Tagging: aws.String("v=2")}))
	must(t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: aws.String("v"), VersionId: v1.VersionId,
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("v"), Value: aws.String("one")}}}}))
	same("old version", tagsOf("v", aws.ToString(v1.VersionId)), map[string]string{"v": "one"})
	same("current version", tagsOf("v", ""), map[string]string{"v": "2"})

	// Limits.
	var eleven []types.Tag
	for i := range 11 {
		eleven = append(eleven, types.Tag{Key: aws.String(string(rune('a' + i))), Value: aws.String("v")})
	}
	_, err = c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: aws.String("k"), Tagging: &types.Tagging{TagSet: eleven}})
	wantErr(t, "eleven tags", err, "BadRequest", 400)
	_, err = c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: aws.String("k"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String(strings.Repeat("é", 129)), Value: aws.String("v")}}}})
	wantErr(t, "a key of 129 characters", err, "InvalidTag", 400)
	_, err = c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: aws.String("absent"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}})
	wantErr(t, "tags of a missing key", err, "NoSuchKey", 404)
	r, _ := do(t, "GET", s.Gateway.URL+"/tags/k?tagging", nil, nil)
	if r.StatusCode != 403 {
		t.Fatalf("anonymous GetObjectTagging: %d", r.StatusCode)
	}

	// Bucket tags.
	_, err = c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b})
	wantErr(t, "a bucket without tags", err, "NoSuchTagSet", 404)
	must(t)(c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: b,
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("cost"), Value: aws.String("center-1")}}}}))
	bt, err := c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b})
	noErr(t, err)
	if len(bt.TagSet) != 1 || aws.ToString(bt.TagSet[0].Value) != "center-1" {
		t.Fatalf("bucket tags %+v", bt.TagSet)
	}
	must(t)(c.DeleteBucketTagging(ctx, &s3.DeleteBucketTaggingInput{Bucket: b}))
	_, err = c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b})
	wantErr(t, "bucket tags deleted", err, "NoSuchTagSet", 404)
}
