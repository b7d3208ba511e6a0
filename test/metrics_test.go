package test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sherdstore/sherd/internal/clustertls"
	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/internal/telemetry"
)

// scrape fetches and parses a metrics endpoint.
func scrape(t *testing.T, url, token string) map[string]*dto {
	t.Helper()
	return scrapeWith(t, http.DefaultClient, url, token)
}

// scrapeNode scrapes a node's endpoint (HTTPS with a certificate of the
// cluster CA of key).
func scrapeNode(t *testing.T, url string, key []byte, token string) map[string]*dto {
	t.Helper()
	hc, err := clustertls.NodeClient(key, "")
	noErr(t, err)
	return scrapeWith(t, hc, url, token)
}

func scrapeWith(t *testing.T, hc *http.Client, url, token string) map[string]*dto {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+telemetry.MetricsPath, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	noErr(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %d %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	noErr(t, err)
	out := map[string]*dto{}
	for name, f := range fams {
		out[name] = &dto{f}
	}
	return out
}

// value sums the samples of a family whose labels include want.
func value(fams map[string]*dto, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	return f.sum(want)
}

// TestMetricsAfterTraffic scrapes the gateway and a node after S3 traffic
// and checks that the counters moved: requests by operation and status,
// latency, bytes in and out, shard calls per node, etcd latency, node
// disk use, segments by healthy shards, queue backlogs. It checks the
// scrape restriction (a token) and the health and readiness endpoints.
func TestMetricsAfterTraffic(t *testing.T) {
	s := startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.ScrubInterval, c.StatusInterval = time.Hour, 200*time.Millisecond
		c.Heal = daemon.HealConfig{Interval: 200 * time.Millisecond, AntiEntropyInterval: 500 * time.Millisecond}
		c.MetricsAccess = telemetry.Access{Token: "scrape-secret"}
	})
	gw := s.Gateway.URL
	for _, path := range []string{telemetry.HealthPath, telemetry.ReadyPath} {
		resp, err := http.Get(gw + path)
		noErr(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	// Without the token: refused, and the refusal is not an S3 error.
	resp, err := http.Get(gw + telemetry.MetricsPath)
	noErr(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("scrape without the token: %d, want 403", resp.StatusCode)
	}

	before := scrape(t, gw, "scrape-secret")
	c := minioClient(t, gw, false)
	noErr(t, c.MakeBucket(ctx, "metered", minio.MakeBucketOptions{}))
	data := randomBytes(3<<20, 1)
	for i := range 5 {
		must(t)(c.PutObject(ctx, "metered", fmt.Sprintf("k%d", i), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{DisableMultipart: true}))
	}
	for i := range 5 {
		o, err := c.GetObject(ctx, "metered", fmt.Sprintf("k%d", i), minio.GetObjectOptions{})
		noErr(t, err)
		readAll(t, o)
	}
	if _, err := c.StatObject(ctx, "metered", "absent", minio.StatObjectOptions{}); err == nil {
		t.Fatal("stat of an absent key succeeded")
	}
	var after map[string]*dto
	waitFor(t, "the segments gauge to count the 5 segments, and an anti-entropy round", 20*time.Second, func() bool {
		after = scrape(t, gw, "scrape-secret")
		return value(after, "sherd_segments", map[string]string{"healthy": "6"}) == 5 &&
			value(after, "sherd_antientropy_rounds_total", nil) > value(before, "sherd_antientropy_rounds_total", nil)
	})
	moved := func(name string, labels map[string]string, atLeast float64) {
		t.Helper()
		d := value(after, name, labels) - value(before, name, labels)
		if d < atLeast {
			t.Errorf("%s%v moved by %v, want at least %v", name, labels, d, atLeast)
		}
	}
	moved("sherd_s3_requests_total", map[string]string{"op": "PutObject", "code": "200"}, 5)
	moved("sherd_s3_requests_total", map[string]string{"op": "GetObject", "code": "200"}, 5)
	moved("sherd_s3_requests_total", map[string]string{"op": "HeadObject", "code": "404"}, 1)
	moved("sherd_s3_requests_total", map[string]string{"op": "CreateBucket", "code": "200"}, 1)
	moved("sherd_s3_request_duration_seconds", map[string]string{"op": "PutObject"}, 5) // the histogram's count
	moved("sherd_s3_received_bytes_total", map[string]string{"op": "PutObject"}, 5*3<<20)
	moved("sherd_s3_sent_bytes_total", map[string]string{"op": "GetObject"}, 5*3<<20)
	moved("sherd_shard_calls_total", map[string]string{"node": "node-1", "call": "put", "outcome": "ok"}, 1)
	moved("sherd_shard_call_duration_seconds", map[string]string{"call": "open"}, 20)
	moved("sherd_etcd_request_duration_seconds", map[string]string{"op": "txn"}, 5)
	moved("sherd_antientropy_rounds_total", nil, 1)
	if v := value(after, "sherd_nodes", map[string]string{"state": "active", "live": "true"}); v != 6 {
		t.Errorf("sherd_nodes{active,live} = %v, want 6", v)
	}
	if _, ok := after["sherd_queue_items"]; !ok {
		t.Error("no sherd_queue_items")
	}

	// A node's own endpoint: its API calls and its disk.
	node := scrapeNode(t, s.Nodes[0].URL, s.Key, "scrape-secret")
	if v := value(node, "sherd_node_requests_total", map[string]string{"route": "PUT /v1/shards/{id}", "code": "201"}); v < 1 {
		t.Errorf("node-1 served %v shard puts, want at least 1", v)
	}
	if c, n := value(node, "sherd_node_index_commits_total", nil), value(node, "sherd_node_index_changes_total", nil); c < 1 || n < c {
		t.Errorf("node index: %v commits of %v changes", c, n)
	}
	if v := value(node, "sherd_node_shard_bytes", nil); v <= 0 {
		t.Errorf("node-1 shard bytes %v", v)
	}
	if v := value(node, "sherd_node_disk_total_bytes", nil); v <= 0 {
		t.Errorf("node-1 disk size %v", v)
	}
	// Every sherd_ metric the alert rules and the dashboard use is one a
	// gateway or a node exports.
	for _, file := range []string{"../ops/prometheus/sherd-alerts.yml", "../ops/grafana/sherd-dashboard.json"} {
		b, err := os.ReadFile(file)
		noErr(t, err)
		for _, name := range regexp.MustCompile(`sherd_[a-z0-9_]+`).FindAllString(string(b), -1) {
			base := name
			for _, suf := range []string{"_bucket", "_count", "_sum"} {
				base = strings.TrimSuffix(base, suf)
			}
			if after[base] == nil && node[base] == nil {
				t.Errorf("%s uses %s, which no process exports", file, name)
			}
		}
	}
	t.Logf("the gateway exports %d metric families, a node %d", len(after), len(node))
}
