package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/metadata"
)

// TestToS3 maps the sentinel errors, wrapped as callers wrap them, to S3
// errors: what is transient is 503 (retry), never 500.
func TestToS3(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   string
		status int
	}{
		{metadata.ErrNoSuchKey, "NoSuchKey", http.StatusNotFound},
		{metadata.ErrUnavailable, "ServiceUnavailable", http.StatusServiceUnavailable},
		{fmt.Errorf("%w: %w", metadata.ErrUnavailable, errors.New("etcdserver: leader changed")), "ServiceUnavailable", http.StatusServiceUnavailable},
		{fmt.Errorf("put: %w: %w", metadata.ErrUnknownOutcome, metadata.ErrUnavailable), "ServiceUnavailable", http.StatusServiceUnavailable},
		{cluster.ErrUnavailable, "ServiceUnavailable", http.StatusServiceUnavailable},
		{context.DeadlineExceeded, "ServiceUnavailable", http.StatusServiceUnavailable},
		{errors.New("a bug"), "InternalError", http.StatusInternalServerError},
	} {
		got := toS3(fmt.Errorf("op: %w", tc.err))
		if got.Code != tc.code || got.Status != tc.status {
			t.Errorf("%v: %s %d, want %s %d", tc.err, got.Code, got.Status, tc.code, tc.status)
		}
	}
}
