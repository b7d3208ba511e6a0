package test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"mime"
	"mime/multipart"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/daemon"
)

// TestLocationConstraint: a client configured for another region makes
// buckets (any LocationConstraint by default, as the gateway cannot know
// which regions its users name); the constraint is stored and returned by
// GetBucketLocation and HeadBucket. With a list configured, others are
// refused with InvalidLocationConstraint.
func TestLocationConstraint(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	eu := func(o *s3.Options) { o.Region = "eu-west-1" }
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("in-eu"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintEuWest1}}, eu)
	noErr(t, err)
	loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("in-eu")}, eu)
	noErr(t, err)
	if loc.LocationConstraint != types.BucketLocationConstraintEuWest1 {
		t.Fatalf("location %q", loc.LocationConstraint)
	}
	head, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("in-eu")}, eu)
	noErr(t, err)
	if aws.ToString(head.BucketRegion) != "eu-west-1" {
		t.Fatalf("HeadBucket region %q", aws.ToString(head.BucketRegion))
	}
	// A bucket made without a constraint is in the gateway's region: "".
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("plain")}))
	loc, err = c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("plain")})
	noErr(t, err)
	if loc.LocationConstraint != "" {
		t.Fatalf("default location %q", loc.LocationConstraint)
	}

	r := startServerWith(t, "", func(c *daemon.ServerConfig) { c.Locations = []string{"eu-west-1"} })
	rc := awsClient(t, r.Gateway.URL, true, rootPass)
	_, err = rc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("on-mars"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "mars-1"}})
	wantErr(t, "a constraint not in the list", err, "InvalidLocationConstraint", 400)
	_, err = rc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("in-eu"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintEuWest1}}, eu)
	noErr(t, err)
}

// TestListEncodingURL: with encoding-type=url, exactly the fields AWS
// encodes are encoded (the fields botocore decodes: V1 Delimiter, Marker,
// NextMarker, keys and common prefixes, but not Prefix; V2 also Prefix and
// StartAfter), with S3's encoding ('/' kept, a space as '+').
func TestListEncodingURL(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("enc")}))
	for _, k := range []string{"sp ace/a+b", "sp ace/c%d", "sp ace/sub dir/x", "sp ace/z"} {
		must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("enc"), Key: aws.String(k), Body: strings.NewReader("")}))
	}
	type listing struct {
		Prefix, Delimiter, Marker, NextMarker, StartAfter string
		Keys                                              []string `xml:"Contents>Key"`
		CommonPrefixes                                    []string `xml:"CommonPrefixes>Prefix"`
	}
	get := func(query string) listing {
		t.Helper()
		resp, body := signed(t, "GET", s.Gateway.URL+"/enc?"+query, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", query, resp.StatusCode, body)
		}
		var l listing
		if err := xml.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	v1 := get("encoding-type=url&prefix=sp%20ace%2F&delimiter=%2F&marker=sp%20ace%2Fa%2Bb&max-keys=2")
	want1 := listing{Prefix: "sp ace/", Delimiter: "/", Marker: "sp+ace/a%2Bb", NextMarker: "sp+ace/sub+dir/",
		Keys: []string{"sp+ace/c%25d"}, CommonPrefixes: []string{"sp+ace/sub+dir/"}}
	if !reflect.DeepEqual(v1, want1) {
		t.Errorf("V1:\n got %+v\nwant %+v", v1, want1)
	}
	v2 := get("list-type=2&encoding-type=url&prefix=sp%20ace%2F&delimiter=%20&start-after=sp%20ace%2Fa%2Bb")
	want2 := listing{Prefix: "sp+ace/", Delimiter: "+", StartAfter: "sp+ace/a%2Bb",
		Keys: []string{"sp+ace/c%25d", "sp+ace/z"}, CommonPrefixes: []string{"sp+ace/sub+"}}
	if !reflect.DeepEqual(v2, want2) {
		t.Errorf("V2:\n got %+v\nwant %+v", v2, want2)
	}
	plain := get("list-type=2&prefix=sp%20ace%2F")
	if len(plain.Keys) != 4 || plain.Keys[0] != "sp ace/a+b" || plain.Prefix != "sp ace/" {
		t.Errorf("without encoding: %+v", plain)
	}
}

// TestUserMetadataBytes: user metadata and stored headers come back byte
// for byte: UTF-8 (with whitespace other than ' ', which signers trim two
// ways), Latin-1 octets (Node and Python's http send those), and RFC 2047
// encoded words, from aws-sdk-go-v2 (trims only ' '), minio-go (trims all
// whitespace) and a plain signed request.
func TestUserMetadataBytes(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	mc := minioClient(t, s.Gateway.URL, false)
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("meta")}))
	values := []string{"héllo 日本", "a\u3000b\u00a0c", "tab\there", "=?UTF-8?B?5pel5pys?=", "plain  two  spaces"}
	for i, v := range values {
		key := fmt.Sprintf("aws-%d", i)
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("meta"), Key: &key, Body: strings.NewReader("x"),
			Metadata: map[string]string{"v": v}, ContentDisposition: aws.String(`attachment; filename="` + v + `"`)})
		noErr(t, err)
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("meta"), Key: &key})
		noErr(t, err)
		if h.Metadata["v"] != v || aws.ToString(h.ContentDisposition) != `attachment; filename="`+v+`"` {
			t.Errorf("aws-sdk-go-v2 %q: got %q, %q", v, h.Metadata["v"], aws.ToString(h.ContentDisposition))
		}
		key = fmt.Sprintf("minio-%d", i)
		_, err = mc.PutObject(ctx, "meta", key, strings.NewReader("x"), 1, minio.PutObjectOptions{UserMetadata: map[string]string{"v": v}})
		noErr(t, err)
		st, err := mc.StatObject(ctx, "meta", key, minio.StatObjectOptions{})
		noErr(t, err)
		want, _ := new(mime.WordDecoder).DecodeHeader(v) // minio-go decodes RFC 2047 words
		if st.UserMetadata["V"] != want {
			t.Errorf("minio-go %q: got %q", v, st.UserMetadata["V"])
		}
	}
	// Latin-1 octets (not UTF-8) are kept as sent.
	latin1 := "h\xe9llo wr\xf6ld"
	resp, body := signed(t, "PUT", s.Gateway.URL+"/meta/latin1", []byte("x"), map[string]string{"X-Amz-Meta-V": latin1})
	if resp.StatusCode != 200 {
		t.Fatalf("latin-1 PUT: %d %s", resp.StatusCode, body)
	}
	for _, method := range []string{"HEAD", "GET"} {
		resp, _ = signed(t, method, s.Gateway.URL+"/meta/latin1", nil, nil)
		if got := resp.Header.Get("X-Amz-Meta-V"); got != latin1 {
			t.Errorf("latin-1 %s: got %q", method, got)
		}
	}
}

// TestPostFilenameKey: a form whose key holds ${filename}, with the policy
// aws-sdk-go-v2 presigns for it, stores the object under the file's name
// (a name with spaces and non-ASCII included).
func TestPostFilenameKey(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("forms")}))
	pc := s3.NewPresignClient(c)
	for _, tc := range []struct{ key, file, want string }{
		{"uploads/${filename}", "photo.png", "uploads/photo.png"},
		{"${filename}", "my résumé.pdf", "my résumé.pdf"},
		{"a/${filename}/b-${filename}", "x.txt", "a/x.txt/b-x.txt"},
	} {
		p, err := pc.PresignPostObject(ctx, &s3.PutObjectInput{Bucket: aws.String("forms"), Key: aws.String(tc.key)})
		noErr(t, err)
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range p.Values {
			mw.WriteField(k, v)
		}
		fw, _ := mw.CreateFormFile("file", tc.file)
		fw.Write([]byte("contents"))
		mw.Close()
		r, b := do(t, "POST", p.URL, &buf, map[string]string{"Content-Type": mw.FormDataContentType()})
		if r.StatusCode != 204 {
			t.Fatalf("%s: %d %s", tc.key, r.StatusCode, b)
		}
		got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("forms"), Key: aws.String(tc.want)})
		noErr(t, err)
		got.Body.Close()
		if want := s.Gateway.URL + "/forms/" + url.PathEscape(tc.want); r.Header.Get("Location") != want {
			t.Errorf("%s: Location %q, want %q", tc.key, r.Header.Get("Location"), want)
		}
	}
}

// TestCompleteUnquotedETags: CompleteMultipartUpload takes part ETags with
// or without their quotes (clients strip them; AWS accepts both).
func TestCompleteUnquotedETags(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("parts")}))
	part := bytes.Repeat([]byte("p"), 5<<20)
	for _, quoted := range []bool{false, true} {
		up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("parts"), Key: aws.String("k")})
		noErr(t, err)
		var xmlParts string
		for n := 1; n <= 2; n++ {
			out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("parts"), Key: aws.String("k"), UploadId: up.UploadId,
				PartNumber: aws.Int32(int32(n)), Body: bytes.NewReader(part)})
			noErr(t, err)
			etag := aws.ToString(out.ETag)
			if !quoted {
				etag = strings.Trim(etag, `"`)
			}
			xmlParts += fmt.Sprintf("<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", n, etag)
		}
		body := []byte("<CompleteMultipartUpload>" + xmlParts + "</CompleteMultipartUpload>")
		resp, b := signed(t, "POST", s.Gateway.URL+"/parts/k?uploadId="+aws.ToString(up.UploadId), body, nil)
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte("-2&#34;</ETag>")) && !bytes.Contains(b, []byte(`-2"</ETag>`)) {
			t.Fatalf("quoted %v: %d %s", quoted, resp.StatusCode, b)
		}
	}
}

// TestObjectCannedACLs: canned ACLs on objects (x-amz-acl on PUT, COPY,
// CreateMultipartUpload and POST; PutObjectAcl with the header or with an
// ACL document; GetObjectAcl grants). A public-read object of a private
// bucket is readable anonymously, nothing else is: not its ACL, not its
// neighbours, not a missing key (403, revealing nothing).
func TestObjectCannedACLs(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	b := aws.String("acls")
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}))
	anon := func(method, key string) int {
		t.Helper()
		r, _ := do(t, method, s.Gateway.URL+"/acls/"+key, nil, nil)
		return r.StatusCode
	}
	grants := func(key string) []string {
		t.Helper()
		out, err := c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: b, Key: aws.String(key)})
		noErr(t, err)
		var gs []string
		for _, g := range out.Grants {
			who := aws.ToString(g.Grantee.ID)
			if g.Grantee.URI != nil {
				who = *g.Grantee.URI
			}
			gs = append(gs, string(g.Grantee.Type)+":"+who+":"+string(g.Permission))
		}
		return gs
	}
	owner := "CanonicalUser:" + rootUser + ":FULL_CONTROL"
	allRead := "Group:http://acs.amazonaws.com/groups/global/AllUsers:READ"

	must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("public"), Body: strings.NewReader("hi"), ACL: types.ObjectCannedACLPublicRead}))
	must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("private"), Body: strings.NewReader("hi")}))
	if got := grants("public"); !reflect.DeepEqual(got, []string{owner, allRead}) {
		t.Errorf("public-read grants %q", got)
	}
	if got := grants("private"); !reflect.DeepEqual(got, []string{owner}) {
		t.Errorf("private grants %q", got)
	}
	for _, tc := range []struct {
		method, key string
		want        int
	}{
		{"GET", "public", 200}, {"HEAD", "public", 200}, {"GET", "private", 403}, {"GET", "absent", 403},
		{"GET", "public?acl", 403}, {"PUT", "public", 403}, {"DELETE", "public", 403}, {"GET", "", 403},
	} {
		if got := anon(tc.method, tc.key); got != tc.want {
			t.Errorf("anonymous %s %s: %d, want %d", tc.method, tc.key, got, tc.want)
		}
	}
	// PutObjectAcl: the header, then a document (what s3cmd setacl sends).
	must(t)(c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: b, Key: aws.String("private"), ACL: types.ObjectCannedACLPublicRead}))
	if anon("GET", "private") != 200 {
		t.Error("PutObjectAcl public-read: not readable")
	}
	must(t)(c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: b, Key: aws.String("private"), AccessControlPolicy: &types.AccessControlPolicy{
		Owner:  &types.Owner{ID: aws.String(rootUser)},
		Grants: []types.Grant{{Grantee: &types.Grantee{Type: types.TypeCanonicalUser, ID: aws.String(rootUser)}, Permission: types.PermissionFullControl}}}}))
	if anon("GET", "private") != 403 || !reflect.DeepEqual(grants("private"), []string{owner}) {
		t.Error("PutObjectAcl with a private document")
	}
	_, err := c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: b, Key: aws.String("private"), GrantRead: aws.String(`id="someone-else"`)})
	wantErr(t, "a grant to another account", err, "NotImplemented", 501)
	_, err = c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: b, Key: aws.String("absent"), ACL: types.ObjectCannedACLPublicRead})
	wantErr(t, "PutObjectAcl of a missing key", err, "NoSuchKey", 404)
	resp, body := signed(t, "PUT", s.Gateway.URL+"/acls/private", []byte("x"), map[string]string{"X-Amz-Acl": "everyone-may-write"})
	if resp.StatusCode != 400 || !strings.Contains(string(body), "InvalidArgument") {
		t.Errorf("unknown canned ACL: %d %s", resp.StatusCode, body)
	}

	// COPY: the copy has the ACL the request names, not the source's.
	must(t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: aws.String("acls/public")}))
	must(t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy-public"), CopySource: aws.String("acls/private"), ACL: types.ObjectCannedACLPublicRead}))
	if anon("GET", "copy") != 403 || anon("GET", "copy-public") != 200 {
		t.Error("COPY ACLs")
	}
	// CreateMultipartUpload: the completed object has the upload's ACL.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp"), ACL: types.ObjectCannedACLPublicRead})
	noErr(t, err)
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part")})
	noErr(t, err)
	must(t)(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}}))
	if anon("GET", "mp") != 200 {
		t.Error("multipart ACL")
	}
	// POST: the acl field.
	p, err := s3.NewPresignClient(c).PresignPostObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("posted")},
		func(o *s3.PresignPostOptions) { o.Conditions = []any{map[string]string{"acl": "public-read"}} })
	noErr(t, err)
	p.Values["acl"] = "public-read"
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
	if anon("GET", "posted") != 200 {
		t.Error("POST ACL")
	}
}

// TestGetObjectAttributes: ETag, checksum, size, storage class and the
// parts of a multipart object (paged), of the current version or one by
// id, without the data.
func TestGetObjectAttributes(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	b := aws.String("attrs")
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}))
	all := []types.ObjectAttributes{types.ObjectAttributesEtag, types.ObjectAttributesChecksum, types.ObjectAttributesObjectParts,
		types.ObjectAttributesStorageClass, types.ObjectAttributesObjectSize}
	put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("simple"), Body: strings.NewReader("hello"),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	noErr(t, err)
	a, err := c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: aws.String("simple"), ObjectAttributes: all})
	noErr(t, err)
	if `"`+aws.ToString(a.ETag)+`"` != aws.ToString(put.ETag) || aws.ToInt64(a.ObjectSize) != 5 || a.StorageClass != types.StorageClassStandard ||
		a.Checksum == nil || aws.ToString(a.Checksum.ChecksumCRC32) != aws.ToString(put.ChecksumCRC32) || a.ObjectParts != nil {
		t.Fatalf("simple object attributes: %+v", a)
	}

	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("mp")})
	noErr(t, err)
	var parts []types.CompletedPart
	sizes := []int{5 << 20, 5 << 20, 7}
	for i, n := range sizes {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)),
			Body: bytes.NewReader(make([]byte, n))})
		noErr(t, err)
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
	}
	must(t)(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("mp"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}))
	var got []int64
	var marker *string
	for pages := 0; ; pages++ {
		a, err = c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: aws.String("mp"), ObjectAttributes: all,
			MaxParts: aws.Int32(2), PartNumberMarker: marker})
		noErr(t, err)
		if a.ObjectParts == nil || aws.ToInt32(a.ObjectParts.TotalPartsCount) != 3 || aws.ToInt64(a.ObjectSize) != 10<<20+7 {
			t.Fatalf("multipart attributes: %+v", a)
		}
		for _, p := range a.ObjectParts.Parts {
			got = append(got, aws.ToInt64(p.Size))
		}
		if !aws.ToBool(a.ObjectParts.IsTruncated) {
			break
		}
		marker = a.ObjectParts.NextPartNumberMarker
		if pages > 3 {
			t.Fatal("parts do not end")
		}
	}
	if len(got) != 3 || got[0] != 5<<20 || got[2] != 7 {
		t.Fatalf("part sizes %v", got)
	}
	_, err = c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: aws.String("absent"), ObjectAttributes: all})
	wantErr(t, "attributes of a missing key", err, "NoSuchKey", 404)
}
