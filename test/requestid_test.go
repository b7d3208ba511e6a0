package test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/daemon"
)

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRequestIDFollowsTheRequest: the x-amz-request-id a client sees is
// in the gateway's log line for the request and in the log lines of the
// node calls it made, so a request can be followed across processes.
func TestRequestIDFollowsTheRequest(t *testing.T) {
	var logs syncBuffer
	s := startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.ScrubInterval = -1, -1
		c.Log = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "traced", minio.MakeBucketOptions{}))
	data := randomBytes(100_000, 3)
	must(t)(c.PutObject(ctx, "traced", "k", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{DisableMultipart: true}))
	// The id the client sees, from aws-sdk-go-v2's response metadata.
	ac := awsClient(t, s.Gateway.URL, true, rootPass)
	out, err := ac.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("traced"), Key: aws.String("k")})
	noErr(t, err)
	readAll(t, out.Body)
	out.Body.Close()
	rid, ok := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	if !ok || rid == "" {
		t.Fatal("no request id in the response")
	}
	// The gateway logs a request when its handler returns, which may be
	// just after the client has the whole answer.
	waitFor(t, "the gateway's GetObject line for the request", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), `"request_id":"`+rid+`","op":"GetObject"`)
	})
	// The nodes log a call when it ends, which may be just after the
	// gateway has answered.
	nodeLines := 0
	waitFor(t, "the node calls of the request to be logged with its id (k shards at least)", 5*time.Second, func() bool {
		nodeLines = 0
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"msg":"node request"`) && strings.Contains(line, `"request_id":"`+rid+`"`) {
				nodeLines++
			}
		}
		return nodeLines >= 4
	})
	t.Logf("request %s: %d node calls logged with its id", rid, nodeLines)
}
