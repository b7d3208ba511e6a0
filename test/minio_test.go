package test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestMinioGo drives the gateway with minio-go (SigV4 with streaming
// signatures and checksum trailers, and SigV2) the way an application does.
func TestMinioGo(t *testing.T) {
	s := startServer(t, "")
	for _, v2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("sigv2=%v", v2), func(t *testing.T) {
			c := minioClient(t, s.Gateway.URL, v2)
			bucket := fmt.Sprintf("minio-v2-%v", v2)
			if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
				t.Fatal(err)
			}
			err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
			if minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
				t.Fatalf("second MakeBucket: %v", err)
			}
			if ok, err := c.BucketExists(ctx, bucket); !ok || err != nil {
				t.Fatalf("BucketExists %v %v", ok, err)
			}
			sizes := []int{0, 1, 4095, 1 << 20, 1<<20 + 1, 4<<20 + 3, 9 << 20}
			for i, n := range sizes {
				data := randomBytes(n, uint64(i))
				key := fmt.Sprintf("dir/obj-%d", n)
				opts := minio.PutObjectOptions{ContentType: "application/x-test", UserMetadata: map[string]string{"Origin": "minio"}}
				if i%2 == 1 && !v2 {
					opts.Checksum = minio.ChecksumCRC32C
				}
				info, err := c.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(n), opts)
				if err != nil {
					t.Fatalf("put %d: %v", n, err)
				}
				if info.Size != int64(n) {
					t.Fatalf("put %d: size %d", n, info.Size)
				}
				obj, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				got := readAll(t, obj)
				if !bytes.Equal(got, data) {
					t.Fatalf("get %d: %d bytes differ", n, len(got))
				}
				st, err := obj.Stat()
				if err != nil || st.ContentType != "application/x-test" || st.UserMetadata["Origin"] != "minio" {
					t.Fatalf("stat %d: %+v %v", n, st, err)
				}
				if n > 10 {
					var ro minio.GetObjectOptions
					ro.SetRange(int64(n/3), int64(n/2))
					r, err := c.GetObject(ctx, bucket, key, ro)
					if err != nil {
						t.Fatal(err)
					}
					if got := readAll(t, r); !bytes.Equal(got, data[n/3:n/2+1]) {
						t.Fatalf("range of %d: %d bytes", n, len(got))
					}
				}
			}
			// Listing with prefix and delimiter, recursively and not.
			var keys []string
			for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "dir/", Recursive: true}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				keys = append(keys, o.Key)
			}
			if len(keys) != len(sizes) {
				t.Fatalf("listed %v", keys)
			}
			var top []string
			for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{UseV1: true}) {
				top = append(top, o.Key)
			}
			if !slices.Equal(top, []string{"dir/"}) {
				t.Fatalf("top level %v", top)
			}
			// Server-side copy, and conditionals on the copy source.
			src := minio.CopySrcOptions{Bucket: bucket, Object: "dir/obj-4095"}
			if _, err := c.CopyObject(ctx, minio.CopyDestOptions{Bucket: bucket, Object: "copy"}, src); err != nil {
				t.Fatal(err)
			}
			src.MatchETag = "nope"
			_, err = c.CopyObject(ctx, minio.CopyDestOptions{Bucket: bucket, Object: "copy2"}, src)
			if minio.ToErrorResponse(err).Code != "PreconditionFailed" {
				t.Fatalf("copy with wrong If-Match: %v", err)
			}
			// Presigned GET, fetched with plain HTTP.
			u, err := c.PresignedGetObject(ctx, bucket, "copy", time.Minute, url.Values{"response-content-type": {"text/plain"}})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(body, randomBytes(4095, 2)) || resp.Header.Get("Content-Type") != "text/plain" {
				t.Fatalf("presigned GET: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			err = c.RemoveBucket(ctx, bucket)
			if minio.ToErrorResponse(err).Code != "BucketNotEmpty" {
				t.Fatalf("RemoveBucket non-empty: %v", err)
			}
			objs := make(chan minio.ObjectInfo)
			go func() {
				defer close(objs)
				for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
					objs <- o
				}
			}()
			for e := range c.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
				t.Fatalf("RemoveObjects: %v", e.Err)
			}
			if err := c.RemoveBucket(ctx, bucket); err != nil {
				t.Fatal(err)
			}
			_, err = c.StatObject(ctx, bucket, "copy", minio.StatObjectOptions{})
			if minio.ToErrorResponse(err).StatusCode != http.StatusNotFound {
				t.Fatalf("stat in removed bucket: %v", err)
			}
			if ok, err := c.BucketExists(ctx, bucket); ok || err != nil {
				t.Fatalf("removed bucket exists: %v %v", ok, err)
			}
			for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{}) {
				if minio.ToErrorResponse(o.Err).Code != "NoSuchBucket" {
					t.Fatalf("list removed bucket: %+v", o)
				}
			}
		})
	}
}
