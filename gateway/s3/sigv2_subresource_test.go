package s3

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"
)

// TestSigV2SignsEverySubresource (issue 23 item 11): a SigV2 signature
// for one request does not hold once a subresource is added to it (a
// signature of CreateBucket is not one of PutObjectLockConfiguration),
// for every subresource the gateway routes on.
func TestSigV2SignsEverySubresource(t *testing.T) {
	v := NewVerifier(staticCreds{"sherdkey": "sherd-secret"}, nil)
	sign := func(target string) *http.Request {
		r, _ := http.NewRequest(http.MethodPut, target, nil)
		r.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
		return signer.SignV2(*r, "sherdkey", "sherd-secret", false)
	}
	base := sign("http://127.0.0.1:9000/bucket")
	if _, err := v.VerifyV2(base, ""); err != nil {
		t.Fatalf("the signed request: %v", err)
	}
	for _, sub := range append([]string{"object-lock"}, SubResources...) {
		r := base.Clone(base.Context())
		r.URL.RawQuery = sub
		if _, err := v.VerifyV2(r, ""); !errors.Is(err, ErrSignatureDoesNotMatch) {
			t.Errorf("PUT /bucket's signature for PUT /bucket?%s: %v", sub, err)
		}
	}
	// The canonical resource lists them sorted, as AWS does.
	if got := v2SubResourceString("versioning&acl&object-lock&uploadId=u"); got != "?acl&object-lock&uploadId=u&versioning" {
		t.Errorf("canonical subresources: %s", got)
	}
}
