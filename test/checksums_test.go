package test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash/crc64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestEveryChecksumAlgorithmVerified: every checksum algorithm a current
// AWS SDK can send (its ChecksumAlgorithm enum: CRC32, CRC32C, CRC64NVME,
// SHA1, SHA256, SHA512, MD5, XXHASH64, XXHASH3, XXHASH128) is verified on
// PUT: a wrong value is BadDigest and no object, a right one is stored and
// returned with checksum mode. A checksum header of an algorithm Sherd does
// not know is refused (400 InvalidRequest), never stored unverified.
// Before the fix, a wrong x-amz-checksum-md5 / -sha512 / -xxhash* was
// accepted and nothing checked it.
func TestEveryChecksumAlgorithmVerified(t *testing.T) {
	s := startServer(t, "")
	u := s.Gateway.URL
	if r, b := signed(t, "PUT", u+"/sums", nil, nil); r.StatusCode != 200 {
		t.Fatalf("create bucket: %d %s", r.StatusCode, b)
	}
	body := []byte("The quick brown fox jumps over the lazy dog")
	b64 := func(h string) string { raw, _ := hex.DecodeString(h); return base64.StdEncoding.EncodeToString(raw) }
	md5sum, sha512sum := md5.Sum(body), sha512.Sum512(body)
	right := map[string]string{
		// Reference values: xxhsum 0.8 (-H1, -H3, -H2), Go's crypto, and
		// the CRC/SHA values the other tests already check.
		"XXHASH64":  b64("0b242d361fda71bc"),
		"XXHASH3":   b64("ce7d19a5418fb365"),
		"XXHASH128": b64("ddd650205ca3e7fa24a1cc2e3a8a7651"),
		"MD5":       base64.StdEncoding.EncodeToString(md5sum[:]),
		"SHA512":    base64.StdEncoding.EncodeToString(sha512sum[:]),
		"CRC32":     b64("414fa339"),
		"SHA256":    b64("d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"),
		"SHA1":      b64("2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"),
	}
	for algo, val := range right {
		hdr := "X-Amz-Checksum-" + strings.ToLower(algo)
		key := "/sums/" + strings.ToLower(algo)
		raw, _ := base64.StdEncoding.DecodeString(val)
		raw[0] ^= 1
		wrong := base64.StdEncoding.EncodeToString(raw)
		if r, b := signed(t, "PUT", u+key, body, map[string]string{hdr: wrong}); r.StatusCode != 400 || !strings.Contains(string(b), "BadDigest") {
			t.Errorf("%s: wrong value answered %d %s, want 400 BadDigest", algo, r.StatusCode, b)
		}
		if r, _ := signed(t, "HEAD", u+key, nil, nil); r.StatusCode != 404 {
			t.Errorf("%s: object visible after a wrong checksum: %d", algo, r.StatusCode)
		}
		// The SDK way: the algorithm named, the value in a header.
		if r, b := signed(t, "PUT", u+key, body, map[string]string{hdr: val, "X-Amz-Sdk-Checksum-Algorithm": algo}); r.StatusCode != 200 || r.Header.Get(hdr) != val {
			t.Errorf("%s: right value answered %d %s (%s: %q)", algo, r.StatusCode, b, hdr, r.Header.Get(hdr))
		}
		if r, _ := signed(t, "HEAD", u+key, nil, map[string]string{"X-Amz-Checksum-Mode": "ENABLED"}); r.StatusCode != 200 || r.Header.Get(hdr) != val {
			t.Errorf("%s: HEAD with checksum mode: %d %q, want %q", algo, r.StatusCode, r.Header.Get(hdr), val)
		}
	}
	// Algorithms nobody implements: refused before anything is stored.
	for name, hdr := range map[string]map[string]string{
		"x-amz-checksum-blake3":        {"X-Amz-Checksum-Blake3": "AAAA"},
		"x-amz-sdk-checksum-algorithm": {"X-Amz-Sdk-Checksum-Algorithm": "BLAKE3"},
		"x-amz-checksum-algorithm":     {"X-Amz-Checksum-Algorithm": "BLAKE3"},
	} {
		if r, b := signed(t, "PUT", u+"/sums/unknown", body, hdr); r.StatusCode != 400 || !strings.Contains(string(b), "InvalidRequest") {
			t.Errorf("%s: %d %s, want 400 InvalidRequest", name, r.StatusCode, b)
		}
	}
	if r, _ := signed(t, "HEAD", u+"/sums/unknown", nil, nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("object stored with an unknown checksum: %d", r.StatusCode)
	}
}

// TestMultipartDefaultChecksums: an upload created without a checksum
// algorithm, its parts sent as the SDK does by default (CRC32 trailers),
// gets a CRC64NVME FULL_OBJECT checksum, answered by Complete and by HEAD
// and GET in checksum mode (the SDK verifies the GET body against it). A
// part sent with another algorithm than its upload's is refused.
func TestMultipartDefaultChecksums(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	b := aws.String("cksums")
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}))
	data := bytes.Repeat([]byte("0123456789abcdef"), (11<<20)/16)
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("k")})
	noErr(t, err)
	var parts []types.CompletedPart
	for n, lo := int32(1), 0; lo < len(data); n, lo = n+1, lo+(5<<20) {
		hi := min(lo+(5<<20), len(data))
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("k"), UploadId: up.UploadId, PartNumber: aws.Int32(n),
			Body: bytes.NewReader(data[lo:hi])})
		noErr(t, err)
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	}
	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("k"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	noErr(t, err)
	want := crc64nvme(data)
	if aws.ToString(done.ChecksumCRC64NVME) != want || done.ChecksumType != types.ChecksumTypeFullObject {
		t.Fatalf("Complete: checksum %q type %q, want %q FULL_OBJECT", aws.ToString(done.ChecksumCRC64NVME), done.ChecksumType, want)
	}
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("k"), ChecksumMode: types.ChecksumModeEnabled})
	noErr(t, err)
	if aws.ToString(h.ChecksumCRC64NVME) != want {
		t.Fatalf("HEAD: %q, want %q", aws.ToString(h.ChecksumCRC64NVME), want)
	}
	g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("k"), ChecksumMode: types.ChecksumModeEnabled})
	noErr(t, err)
	got, err := io.ReadAll(g.Body) // the SDK fails the read on a mismatch
	noErr(t, err)
	if aws.ToString(g.ChecksumCRC64NVME) != want || !bytes.Equal(got, data) {
		t.Fatalf("GET: %q, %d bytes", aws.ToString(g.ChecksumCRC64NVME), len(got))
	}

	up, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("sha"), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	noErr(t, err)
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("sha"), UploadId: up.UploadId, PartNumber: aws.Int32(1),
		Body: bytes.NewReader(data[:100]), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	wantErr(t, "a CRC32 part of a SHA256 upload", err, "InvalidRequest", 400)
}

func crc64nvme(b []byte) string {
	h := crc64.New(crc64.MakeTable(0x9a6c9329ac4bc9b5))
	h.Write(b)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}
