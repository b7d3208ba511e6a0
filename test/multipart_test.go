package test

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/repair"
	"github.com/sherdstore/sherd/shard"
)

// TestMultipart: parts uploaded in parallel through two gateways, a part
// replaced, UploadPartCopy with a range, the completion checks, the S3
// multipart ETag and FULL_OBJECT / COMPOSITE checksums.
func TestMultipart(t *testing.T) {
	s := startServer(t, "")
	g2, err := daemon.StartGateway(ctx, daemon.GatewayConfig{Addr: "127.0.0.1:0", Key: s.Key, Store: s.Store, Credentials: map[string]string{rootUser: rootPass}})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	c1, c2 := awsClient(t, s.Gateway.URL, true, rootPass), awsClient(t, g2.URL, true, rootPass)
	b := aws.String("mpu")
	if _, err := c1.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	const partSize = 5 << 20
	data := randomBytes(4*partSize+1234, 31)
	src := randomBytes(partSize+100, 32)
	if _, err := c1.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("src"), Body: bytes.NewReader(src)}); err != nil {
		t.Fatal(err)
	}

	crc := func(p []byte) string {
		v := make([]byte, 4)
		binary.BigEndian.PutUint32(v, crc32.ChecksumIEEE(p))
		return base64.StdEncoding.EncodeToString(v)
	}
	key := aws.String("big object")
	up, err := c1.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: key,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32, ChecksumType: types.ChecksumTypeFullObject, Metadata: map[string]string{"m": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	// Parts 1..5 in parallel, alternating gateways; part 5 is the short tail.
	etags := make([]string, 5)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := c1
			if i%2 == 1 {
				c = c2
			}
			body := data[i*partSize : min((i+1)*partSize, len(data))]
			out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)),
				Body: bytes.NewReader(body), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
			if err != nil {
				errs <- err
				return
			}
			etags[i] = *out.ETag
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Replace part 2 with the same bytes uploaded again: the old segment goes to gc.
	out, err := c2.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(2),
		Body: bytes.NewReader(data[partSize : 2*partSize]), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil || *out.ETag != etags[1] {
		t.Fatalf("replace part 2: %v", err)
	}
	// Listing parts, two per page.
	var listed []int32
	lp := s3.NewListPartsPaginator(c1, &s3.ListPartsInput{Bucket: b, Key: key, UploadId: up.UploadId, MaxParts: aws.Int32(2)})
	for lp.HasMorePages() {
		page, err := lp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Parts {
			listed = append(listed, *p.PartNumber)
		}
	}
	if fmt.Sprint(listed) != "[1 2 3 4 5]" {
		t.Fatalf("ListParts %v", listed)
	}
	ups, err := c1.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: b})
	if err != nil || len(ups.Uploads) != 1 || *ups.Uploads[0].UploadId != *up.UploadId {
		t.Fatalf("ListMultipartUploads %+v %v", ups, err)
	}
	parts := func(nums ...int) *types.CompletedMultipartUpload {
		var cp []types.CompletedPart
		for _, n := range nums {
			cp = append(cp, types.CompletedPart{PartNumber: aws.Int32(int32(n)), ETag: aws.String(etags[n-1])})
		}
		return &types.CompletedMultipartUpload{Parts: cp}
	}
	complete := func(mp *types.CompletedMultipartUpload, full string) error {
		in := &s3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId, MultipartUpload: mp}
		if full != "" {
			in.ChecksumCRC32, in.ChecksumType = aws.String(full), types.ChecksumTypeFullObject
		}
		_, err := c1.CompleteMultipartUpload(ctx, in)
		return err
	}
	wantErr(t, "out of order", complete(parts(2, 1, 3, 4, 5), ""), "InvalidPartOrder", 400)
	bad := parts(1, 2, 3, 4, 5)
	bad.Parts[2].ETag = aws.String(`"00000000000000000000000000000000"`)
	wantErr(t, "wrong etag", complete(bad, ""), "InvalidPart", 400)
	wantErr(t, "missing part", complete(&types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(9), ETag: aws.String(etags[0])}}}, ""), "InvalidPart", 400)
	wantErr(t, "small part not last", complete(parts(1, 5, 5), ""), "EntityTooSmall", 400)
	wantErr(t, "full-object checksum mismatch", complete(parts(1, 2, 3, 4, 5), crc([]byte("nope"))), "BadDigest", 400)
	// A conditional completion that fails leaves the upload in place.
	must(t)(c1.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: key, Body: bytes.NewReader([]byte("existing"))}))
	_, err = c1.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId, MultipartUpload: parts(1, 2, 3, 4, 5), IfNoneMatch: aws.String("*")})
	wantErr(t, "If-None-Match on complete", err, "PreconditionFailed", 412)
	must(t)(c1.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: key}))
	if err := complete(parts(1, 2, 3, 4, 5), crc(data)); err != nil {
		t.Fatal(err)
	}
	// The S3 multipart ETag, the combined CRC, the bytes, part reads.
	h := md5.New()
	for i := range 5 {
		sum := md5.Sum(data[i*partSize : min((i+1)*partSize, len(data))])
		h.Write(sum[:])
	}
	wantETag := `"` + hex.EncodeToString(h.Sum(nil)) + `-5"`
	get, err := c2.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: key, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, get.Body); !bytes.Equal(got, data) || *get.ETag != wantETag || aws.ToString(get.ChecksumCRC32) != crc(data) ||
		get.ChecksumType != types.ChecksumTypeFullObject || get.Metadata["m"] != "1" {
		t.Fatalf("completed object: etag %s want %s, crc %s want %s, type %s", *get.ETag, wantETag, aws.ToString(get.ChecksumCRC32), crc(data), get.ChecksumType)
	}
	p3, err := c1.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: key, PartNumber: aws.Int32(3)})
	if err != nil || !bytes.Equal(readAll(t, p3.Body), data[2*partSize:3*partSize]) || aws.ToInt32(p3.PartsCount) != 5 {
		t.Fatalf("part 3: %v", err)
	}
	_, err = c1.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: key, UploadId: up.UploadId})
	wantErr(t, "parts after completion", err, "NoSuchUpload", 404)

	// COMPOSITE SHA256 with UploadPartCopy (a range of src) and an empty-ish tail.
	up2, err := c1.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("composite"), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := c1.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: b, Key: aws.String("composite"), UploadId: up2.UploadId, PartNumber: aws.Int32(1),
		CopySource: aws.String("mpu/src"), CopySourceRange: aws.String(fmt.Sprintf("bytes=50-%d", partSize+49))})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := c1.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("composite"), UploadId: up2.UploadId, PartNumber: aws.Int32(2),
		Body: bytes.NewReader([]byte("tail")), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c1.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("composite"), UploadId: up2.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{
			{PartNumber: aws.Int32(1), ETag: cp.CopyPartResult.ETag, ChecksumSHA256: cp.CopyPartResult.ChecksumSHA256},
			{PartNumber: aws.Int32(2), ETag: p2.ETag, ChecksumSHA256: p2.ChecksumSHA256}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ChecksumType != types.ChecksumTypeComposite || !bytes.HasSuffix([]byte(aws.ToString(res.ChecksumSHA256)), []byte("-2")) {
		t.Fatalf("composite result %+v", res)
	}
	g, err := c1.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("composite")})
	noErr(t, err)
	if !bytes.Equal(readAll(t, g.Body), append(append([]byte{}, src[50:partSize+50]...), "tail"...)) {
		t.Fatal("composite object bytes")
	}
	// Abort.
	up3, err := c1.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("aborted")})
	noErr(t, err)
	if _, err := c1.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("aborted"), UploadId: up3.UploadId}); err != nil {
		t.Fatal(err)
	}
	_, err = c1.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("aborted"), UploadId: up3.UploadId})
	wantErr(t, "abort twice", err, "NoSuchUpload", 404)
}

// shardFiles counts shard files on every node of s.
func shardFiles(t *testing.T, s *daemon.Server) int {
	t.Helper()
	n := 0
	for _, node := range s.Nodes {
		node.Shards().Walk(ctx, func(shard.Info) error { n++; return nil })
	}
	return n
}

// TestMultipartGarbage: aborted uploads, replaced parts and parts left out
// of the completion leave no shard behind once gc has run; the completed
// object and a plain one are intact.
func TestMultipartGarbage(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	b := aws.String("garbage")
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}))
	part := randomBytes(5<<20, 40)
	upload := func(key string, parts ...int) (*string, []types.CompletedPart) {
		up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		var done []types.CompletedPart
		for _, n := range parts {
			out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(int32(n)), Body: bytes.NewReader(part)})
			if err != nil {
				t.Fatal(err)
			}
			done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(n)), ETag: out.ETag})
		}
		return up.UploadId, done
	}
	// Aborted: 2 parts.
	id, _ := upload("aborted", 1, 2)
	must(t)(c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("aborted"), UploadId: id}))
	// Completed with parts 1 and 3 of 1, 2, 3, part 1 uploaded twice.
	id, done := upload("kept", 1, 1, 2, 3)
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("kept"), UploadId: id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{done[1], done[3]}}}); err != nil {
		t.Fatal(err)
	}
	// A plain object, overwritten once.
	for range 2 {
		must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("plain"), Body: bytes.NewReader(part[:1000])}))
	}
	if n := shardFiles(t, s); n != 8*6 {
		t.Fatalf("%d shard files before gc, want %d", n, 8*6)
	}
	gc := &repair.Collector{Meta: s.Store, Nodes: s.Gateway.Cluster, Grace: time.Hour}
	if st, err := gc.RunOnce(ctx); err != nil || st.Entries != 0 {
		t.Fatalf("within the grace period: %+v %v", st, err)
	}
	gc.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	st, err := gc.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Left: "kept" (2 segments) and "plain" (1 segment).
	if n := shardFiles(t, s); n != 3*6 || st.Shards != 5*6 {
		t.Fatalf("%d shard files after gc (%+v), want %d", n, st, 3*6)
	}
	if left, _ := s.Store.ListGC(ctx, 10); len(left) != 0 {
		t.Fatalf("gc entries left: %+v", left)
	}
	g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("kept")})
	if err != nil || !bytes.Equal(readAll(t, g.Body), append(append([]byte{}, part...), part...)) {
		t.Fatalf("kept object after gc: %v", err)
	}
	// Index entries exist exactly for the live segments.
	segs := 0
	for p := uint32(0); p < 4096; p++ {
		ss, _ := s.Store.PartitionSegments(ctx, p)
		segs += len(ss)
	}
	if segs != 3 {
		t.Fatalf("%d indexed segments, want 3", segs)
	}
}

// TestTenThousandParts: an object of 10,000 parts completes, lists and
// reads back (parts of 1 KiB: the gateway under test allows small parts).
func TestTenThousandParts(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 part uploads")
	}
	s := startServer(t, "")
	g, err := daemon.StartGateway(ctx, daemon.GatewayConfig{Addr: "127.0.0.1:0", Key: s.Key, Store: s.Store,
		Credentials: map[string]string{rootUser: rootPass}, MinPartSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c := awsClient(t, g.URL, true, rootPass)
	b, key := aws.String("tenk"), aws.String("many-parts")
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}))
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 10000, 1024
	data := randomBytes(n*size, 50)
	etags := make([]*string, n)
	var wg sync.WaitGroup
	work := make(chan int)
	var failed error
	var mu sync.Mutex
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)),
					Body: bytes.NewReader(data[i*size : (i+1)*size])})
				mu.Lock()
				if err != nil && failed == nil {
					failed = err
				} else if err == nil {
					etags[i] = out.ETag
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if failed != nil {
		t.Fatal(failed)
	}
	listed := 0
	lp := s3.NewListPartsPaginator(c, &s3.ListPartsInput{Bucket: b, Key: key, UploadId: up.UploadId})
	for lp.HasMorePages() {
		page, err := lp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		listed += len(page.Parts)
	}
	if listed != n {
		t.Fatalf("ListParts: %d parts", listed)
	}
	parts := make([]types.CompletedPart, n)
	for i := range parts {
		parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: etags[i]}
	}
	res, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(*res.ETag, "-10000\"") {
		t.Fatalf("ETag %s", *res.ETag)
	}
	lo, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b})
	if err != nil || len(lo.Contents) != 1 || aws.ToInt64(lo.Contents[0].Size) != n*size {
		t.Fatalf("listing %+v %v", lo, err)
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: key})
	if err != nil || !bytes.Equal(readAll(t, get.Body), data) {
		t.Fatalf("read back: %v", err)
	}
	rg, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: key, Range: aws.String("bytes=5119000-5121047")})
	if err != nil || !bytes.Equal(readAll(t, rg.Body), data[5119000:5121048]) {
		t.Fatalf("range across parts: %v", err)
	}
}

// TestCompleteOverFiveTiBRefused: parts adding up to more than 5 TiB
// (recorded directly: 1,025 parts of 5 GiB) cannot be completed.
func TestCompleteOverFiveTiBRefused(t *testing.T) {
	s := startServer(t, "")
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("huge")}))
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("huge"), Key: aws.String("k")})
	noErr(t, err)
	u, err := s.Store.GetUpload(ctx, "huge", "k", aws.ToString(up.UploadId))
	noErr(t, err)
	var done []types.CompletedPart
	for n := 1; n <= 1025; n++ {
		etag := fmt.Sprintf("%032x", n)
		noErr(t, s.Store.PutPart(ctx, u, metadata.Part{Number: n, Size: 5 << 30, ETag: etag, Modified: time.Now()}))
		done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(n)), ETag: aws.String(`"` + etag + `"`)})
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("huge"), Key: aws.String("k"),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
	if code, status := errCode(err); code != "EntityTooLarge" || status != 400 {
		t.Fatalf("complete of 5 TiB + 5 GiB: %v, want EntityTooLarge", err)
	}
}
