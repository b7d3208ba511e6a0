package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/notify"
)

// receiver records the S3 event records POSTed to it.
type receiver struct {
	mu      sync.Mutex
	got     map[string]string // sequencer → event name and key
	block   chan struct{}     // while open, the first request hangs here
	started chan struct{}
	once    sync.Once
	fails   int // answer 500 to this many requests first
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	first := false
	rv.once.Do(func() { first = true })
	if first && rv.block != nil {
		close(rv.started)
		<-rv.block // the gateway dies while we hang
		return
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.fails > 0 {
		rv.fails--
		w.WriteHeader(500)
		return
	}
	var m notify.EventMessage
	if err := json.Unmarshal(body, &m); err != nil || len(m.Records) != 1 {
		w.WriteHeader(400)
		return
	}
	rec := m.Records[0]
	rv.got[rec.S3.Object.Sequencer] = rec.EventName + " " + rec.S3.Bucket.Name + "/" + rec.S3.Object.Key
}

func (rv *receiver) count() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return len(rv.got)
}

// TestNotifications: ObjectCreated (Put, Copy, CompleteMultipartUpload)
// and ObjectRemoved events reach a webhook at least once, with retries,
// from the etcd queue, across a gateway that dies mid-delivery.
func TestNotifications(t *testing.T) {
	s := startServer(t, "")
	rv := &receiver{got: map[string]string{}, block: make(chan struct{}), started: make(chan struct{}), fails: 2}
	hook := httptest.NewServer(rv)
	defer hook.Close()
	defer close(rv.block)
	cfg, _ := json.Marshal(notify.Config{Webhooks: []notify.Webhook{{ID: "app", URL: hook.URL, Events: []string{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}, Prefix: "in/"}}})
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("events")}))
	if err := s.Store.UpdateBucket(ctx, "events", func(b *metadata.Bucket) error { b.Notify = string(cfg); return nil }); err != nil {
		t.Fatal(err)
	}
	// The embedded server's gateway is replaced by ones whose claims run
	// out fast, so the test does not wait 30 s for a dead gateway's claim.
	s.Gateway.Close()
	start := func() *daemon.Gateway {
		g, err := daemon.StartGateway(ctx, daemon.GatewayConfig{Addr: "127.0.0.1:0", Key: s.Key, Store: s.Store,
			Credentials: map[string]string{rootUser: rootPass}, NotifyInterval: 50 * time.Millisecond, NotifyClaim: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g1 := start()
	c = awsClient(t, g1.URL, true, rootPass)
	put := func(key string) {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("events"), Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	put("in/a")
	// The first delivery hangs in the receiver: kill that gateway now.
	select {
	case <-rv.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery started")
	}
	g1.Close()
	g2 := start()
	defer g2.Close()
	c = awsClient(t, g2.URL, true, rootPass)
	put("in/b")
	put("out/ignored") // outside the webhook's prefix
	must(t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("events"), Key: aws.String("in/copy"), CopySource: aws.String("events/in/b")}))
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("events"), Key: aws.String("in/mp")})
	noErr(t, err)
	p, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("events"), Key: aws.String("in/mp"), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part")})
	noErr(t, err)
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("events"), Key: aws.String("in/mp"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p.ETag}}}}); err != nil {
		t.Fatal(err)
	}
	must(t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("events"), Key: aws.String("in/b")}))
	must(t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("events"), Key: aws.String("in/never-existed")}))
	want := map[string]bool{
		"ObjectCreated:Put events/in%2Fa": true, "ObjectCreated:Put events/in%2Fb": true, "ObjectCreated:Copy events/in%2Fcopy": true,
		"ObjectCreated:CompleteMultipartUpload events/in%2Fmp": true, "ObjectRemoved:Delete events/in%2Fb": true,
	}
	waitFor(t, "every event delivered", 30*time.Second, func() bool { return rv.count() >= len(want) })
	rv.mu.Lock()
	for _, v := range rv.got {
		if !want[v] {
			t.Errorf("unexpected event %s", v)
		}
		delete(want, v)
	}
	rv.mu.Unlock()
	if len(want) != 0 {
		t.Fatalf("missing events: %v", want)
	}
	waitFor(t, "empty queue", 10*time.Second, func() bool {
		total, _, err := s.Store.QueueLength(ctx, "events", time.Now())
		return err == nil && total == 0
	})
}

// TestWebhooksBounded: sherdctl's validation refuses a 17th webhook, and a
// bucket whose stored configuration has 200 (written before the bound)
// still takes writes: a commit carries at most 16 events, not 200 (an
// etcd transaction takes 128 operations).
func TestWebhooksBounded(t *testing.T) {
	s := startServer(t, "")
	var hooks []notify.Webhook
	for i := range 200 {
		hooks = append(hooks, notify.Webhook{ID: fmt.Sprintf("h%d", i), URL: "http://127.0.0.1:9/", Events: []string{"s3:ObjectCreated:*"}})
	}
	cfg, _ := json.Marshal(notify.Config{Webhooks: hooks})
	if _, err := notify.ParseConfig(string(cfg)); err == nil {
		t.Fatal("200 webhooks accepted")
	}
	c := awsClient(t, s.Gateway.URL, true, rootPass)
	must(t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("many")}))
	noErr(t, s.Store.UpdateBucket(ctx, "many", func(b *metadata.Bucket) error { b.Notify = string(cfg); return nil }))
	must(t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("many"), Key: aws.String("k"), Body: strings.NewReader("x")}))
}
