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

// operations are every value Operation returns: the op label of the
// request metrics and the "op" of the request log. A fixed set, never
// request data, so anonymous clients cannot add series (DESIGN.md §8).
var operations = func() map[string]bool {
	ops := map[string]bool{}
	for _, op := range []string{
		"ListBuckets", "PreflightCORS", "ListMultipartUploads", "DeleteObjects",
		"ListObjectsV2", "ListObjects", "ListObjectVersions", "HeadBucket", "CreateBucket", "DeleteBucket", "PostObject",
		"ListParts", "GetObjectAcl", "GetObjectTagging", "GetObjectRetention", "GetObjectLegalHold", "GetObjectAttributes",
		"GetObject", "HeadObject", "UploadPartCopy", "UploadPart", "CopyObject",
		"PutObjectTagging", "PutObjectAcl", "PutObjectRetention", "PutObjectLegalHold", "PutObject",
		"CreateMultipartUpload", "CompleteMultipartUpload", "AbortMultipartUpload", "DeleteObjectTagging", "DeleteObject",
		"SherdPresign", opSherdOther, opOther,
	} {
		ops[op] = true
	}
	for _, name := range bucketConfigOps {
		for _, verb := range []string{"Get", "Put", "Delete"} {
			ops[verb+name] = true
		}
	}
	return ops
}()

// The operations of requests of no known shape.
const (
	opOther      = "Other"      // any method and path that names no S3 operation
	opSherdOther = "SherdOther" // a /_sherd/ path other than those served
)

// bucketConfigOps name the bucket configuration subresources (GET, PUT
// and DELETE of each are operations).
var bucketConfigOps = map[string]string{"cors": "BucketCors", "acl": "BucketAcl", "location": "BucketLocation", "versioning": "BucketVersioning",
	"policy": "BucketPolicy", "lifecycle": "BucketLifecycle", "tagging": "BucketTagging", "notification": "BucketNotification",
	"website": "BucketWebsite", "encryption": "BucketEncryption", "object-lock": "ObjectLockConfiguration"}

// Operation names an S3 request by its API operation, from the method,
// the path, the query and headers; vhost is the bucket the Host header
// names ("" for path-style requests). The name is always one of
// operations, whatever the request holds: requests of no known shape are
// Other (SherdOther under /_sherd/). Pure.
func Operation(r *http.Request, vhost string) string {
	path := strings.TrimPrefix(r.URL.Path, "/")
	if vhost != "" {
		path = vhost + "/" + path
	}
	bucket, key, _ := strings.Cut(path, "/")
	q := r.URL.Query()
	has := func(k string) bool { _, ok := q[k]; return ok }
	if bucket == "_sherd" {
		if "/"+path == presignPath {
			return "SherdPresign"
		}
		return opSherdOther
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
		for _, sub := range []string{"cors", "acl", "location", "versioning", "uploads", "policy", "lifecycle", "tagging", "notification", "website", "encryption", "object-lock", "delete", "versions"} {
			if !has(sub) {
				continue
			}
			switch {
			case sub == "uploads":
				return "ListMultipartUploads"
			case sub == "delete":
				return "DeleteObjects"
			case sub == "versions":
				return "ListObjectVersions"
			case r.Method == http.MethodGet:
				return "Get" + bucketConfigOps[sub]
			case r.Method == http.MethodPut:
				return "Put" + bucketConfigOps[sub]
			case r.Method == http.MethodDelete:
				return "Delete" + bucketConfigOps[sub]
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
			switch {
			case has("uploadId"):
				return "ListParts"
			case has("acl"):
				return "GetObjectAcl"
			case has("tagging"):
				return "GetObjectTagging"
			case has("retention"):
				return "GetObjectRetention"
			case has("legal-hold"):
				return "GetObjectLegalHold"
			case has("attributes"):
				return "GetObjectAttributes"
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
			case has("retention"):
				return "PutObjectRetention"
			case has("legal-hold"):
				return "PutObjectLegalHold"
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
			switch {
			case has("uploadId"):
				return "AbortMultipartUpload"
			case has("tagging"):
				return "DeleteObjectTagging"
			}
			return "DeleteObject"
		}
	}
	return opOther
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
	if !operations[op] { // never request data in a label or a log key
		op = opOther
	}
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
