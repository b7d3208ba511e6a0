package gateway

// Request metrics and the request log: one line per S3 request, with the
// request id the client sees (x-amz-request-id), which also goes to the
// storage nodes with every shard call the request makes.

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's request metrics (nil-safe: no registerer, no
// metrics).
type metrics struct {
	requests *prometheus.CounterVec   // op, code
	latency  *prometheus.HistogramVec // op
	bytesIn  *prometheus.CounterVec   // op
	bytesOut *prometheus.CounterVec   // op
	inflight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, buckets []float64) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sherd_s3_requests_total", Help: "S3 requests by operation and HTTP status."}, []string{"op", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sherd_s3_request_duration_seconds",
			Help: "S3 request latency, from the first byte read to the last byte written.", Buckets: buckets}, []string{"op"}),
		bytesIn:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sherd_s3_received_bytes_total", Help: "Request body bytes read, by operation."}, []string{"op"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sherd_s3_sent_bytes_total", Help: "Response body bytes written, by operation."}, []string{"op"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sherd_s3_requests_in_flight", Help: "S3 requests being served."}),
	}
	reg.MustRegister(m.requests, m.latency, m.bytesIn, m.bytesOut, m.inflight)
	return m
}

// Operation names an S3 request by its API operation, from the method,
// the path, the query and headers; vhost is the bucket the Host header
// names ("" for path-style requests). Unknown shapes get the method alone,
// so the label's values stay few. Pure.
func Operation(r *http.Request, vhost string) string {
	path := strings.TrimPrefix(r.URL.Path, "/")
	if vhost != "" {
		path = vhost + "/" + path
	}
	bucket, key, _ := strings.Cut(path, "/")
	q := r.URL.Query()
	has := func(k string) bool { _, ok := q[k]; return ok }
	if bucket == "_sherd" {
		return "Sherd" + strings.ToUpper(key[:min(1, len(key))]) + key[min(1, len(key)):]
	}
	if r.Method == http.MethodOptions {
		return "PreflightCORS"
	}
	switch {
	case bucket == "":
		if r.Method == http.MethodGet {
			return "ListBuckets"
		}
	case key == "":
		for _, sub := range []string{"cors", "acl", "location", "versioning", "uploads", "policy", "lifecycle", "tagging", "notification", "website", "encryption", "object-lock", "delete"} {
			if has(sub) {
				name := map[string]string{"cors": "BucketCors", "acl": "BucketAcl", "location": "BucketLocation", "versioning": "BucketVersioning",
					"policy": "BucketPolicy", "lifecycle": "BucketLifecycle", "tagging": "BucketTagging", "notification": "BucketNotification",
					"website": "BucketWebsite", "encryption": "BucketEncryption", "object-lock": "ObjectLockConfiguration"}[sub]
				switch {
				case sub == "uploads":
					return "ListMultipartUploads"
				case sub == "delete":
					return "DeleteObjects"
				case r.Method == http.MethodGet:
					return "Get" + name
				case r.Method == http.MethodPut:
					return "Put" + name
				case r.Method == http.MethodDelete:
					return "Delete" + name
				}
			}
		}
		switch r.Method {
		case http.MethodGet:
			if q.Get("list-type") == "2" {
				return "ListObjectsV2"
			}
			return "ListObjects"
		case http.MethodHead:
			return "HeadBucket"
		case http.MethodPut:
			return "CreateBucket"
		case http.MethodDelete:
			return "DeleteBucket"
		case http.MethodPost:
			return "PostObject"
		}
	default:
		switch r.Method {
		case http.MethodGet:
			if has("uploadId") {
				return "ListParts"
			}
			if has("acl") {
				return "GetObjectAcl"
			}
			if has("tagging") {
				return "GetObjectTagging"
			}
			return "GetObject"
		case http.MethodHead:
			return "HeadObject"
		case http.MethodPut:
			copySrc := r.Header.Get("X-Amz-Copy-Source") != ""
			switch {
			case has("partNumber") && copySrc:
				return "UploadPartCopy"
			case has("partNumber"):
				return "UploadPart"
			case copySrc:
				return "CopyObject"
			case has("tagging"):
				return "PutObjectTagging"
			case has("acl"):
				return "PutObjectAcl"
			}
			return "PutObject"
		case http.MethodPost:
			switch {
			case has("uploads"):
				return "CreateMultipartUpload"
			case has("uploadId"):
				return "CompleteMultipartUpload"
			}
		case http.MethodDelete:
			if has("uploadId") {
				return "AbortMultipartUpload"
			}
			return "DeleteObject"
		}
	}
	return "Other" + r.Method
}

// recorder records the status and the bytes of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps io.Copy's fast path to the connection.
func (w *recorder) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// counter counts the bytes read from a request body.
type counter struct {
	io.ReadCloser
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// observe wraps one request: it counts it, times it and logs it.
func (g *Gateway) observe(w http.ResponseWriter, r *http.Request, rid string, serve func(http.ResponseWriter, *http.Request)) {
	start := g.now()
	op := Operation(r, g.vhostBucket(r.Host))
	rec := &recorder{ResponseWriter: w}
	body := &counter{ReadCloser: r.Body}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = body
	}
	if g.metrics != nil {
		g.metrics.inflight.Inc()
		defer g.metrics.inflight.Dec()
	}
	serve(rec, r)
	took := g.now().Sub(start)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if m := g.metrics; m != nil {
		m.requests.WithLabelValues(op, strconv.Itoa(rec.status)).Inc()
		m.latency.WithLabelValues(op).Observe(took.Seconds())
		m.bytesIn.WithLabelValues(op).Add(float64(body.n))
		m.bytesOut.WithLabelValues(op).Add(float64(rec.bytes))
	}
	level := slog.LevelDebug
	if rec.status >= 500 {
		level = slog.LevelWarn
	}
	g.log.Log(r.Context(), level, "s3 request", "request_id", rid, "op", op, "method", r.Method, "path", r.URL.Path,
		"status", rec.status, "in", body.n, "out", rec.bytes, "took", took, "remote", r.RemoteAddr)
}
