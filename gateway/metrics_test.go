package gateway

import (
	"net/http/httptest"
	"testing"
)

func TestOperation(t *testing.T) {
	for _, tc := range []struct {
		method, target, copySrc, vhost, want string
	}{
		{"GET", "/", "", "", "ListBuckets"},
		{"GET", "/b?list-type=2&prefix=x", "", "", "ListObjectsV2"},
		{"GET", "/b", "", "", "ListObjects"},
		{"GET", "/?list-type=2", "", "b", "ListObjectsV2"},
		{"GET", "/k", "", "b", "GetObject"},
		{"PUT", "/b", "", "", "CreateBucket"},
		{"HEAD", "/b", "", "", "HeadBucket"},
		{"DELETE", "/b", "", "", "DeleteBucket"},
		{"GET", "/b?cors", "", "", "GetBucketCors"},
		{"PUT", "/b?cors", "", "", "PutBucketCors"},
		{"GET", "/b?location", "", "", "GetBucketLocation"},
		{"GET", "/b?uploads", "", "", "ListMultipartUploads"},
		{"POST", "/b?delete", "", "", "DeleteObjects"},
		{"POST", "/b", "", "", "PostObject"},
		{"GET", "/b/k/x", "", "", "GetObject"},
		{"HEAD", "/b/k", "", "", "HeadObject"},
		{"PUT", "/b/k", "", "", "PutObject"},
		{"PUT", "/b/k", "/src/k", "", "CopyObject"},
		{"PUT", "/b/k?partNumber=1&uploadId=u", "", "", "UploadPart"},
		{"PUT", "/b/k?partNumber=1&uploadId=u", "/src/k", "", "UploadPartCopy"},
		{"POST", "/b/k?uploads", "", "", "CreateMultipartUpload"},
		{"POST", "/b/k?uploadId=u", "", "", "CompleteMultipartUpload"},
		{"DELETE", "/b/k?uploadId=u", "", "", "AbortMultipartUpload"},
		{"GET", "/b/k?uploadId=u", "", "", "ListParts"},
		{"DELETE", "/b/k", "", "", "DeleteObject"},
		{"OPTIONS", "/b/k", "", "", "PreflightCORS"},
		{"GET", "/_sherd/presign", "", "", "SherdPresign"},
		{"GET", "/_sherd/anything", "", "", "SherdOther"},
		{"GET", "/_sherd/presign/x", "", "", "SherdOther"},
		{"GET", "/b?versions", "", "", "ListObjectVersions"},
		{"GET", "/b/k?retention", "", "", "GetObjectRetention"},
		{"PUT", "/b/k?legal-hold", "", "", "PutObjectLegalHold"},
		{"DELETE", "/b/k?tagging", "", "", "DeleteObjectTagging"},
		{"PATCH", "/b/k", "", "", "Other"},
		{"PROPFIND", "/", "", "", "Other"},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		if tc.copySrc != "" {
			r.Header.Set("X-Amz-Copy-Source", tc.copySrc)
		}
		if got := Operation(r, tc.vhost); got != tc.want {
			t.Errorf("%s %s (vhost %q): %s, want %s", tc.method, tc.target, tc.vhost, got, tc.want)
		}
	}
}
