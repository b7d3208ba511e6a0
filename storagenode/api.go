// Package storagenode is a storage node: a shard store on local disk with a bbolt index, Merkle inventory, scrubber and HTTP API.
package storagenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sherdstore/sherd/internal/reqid"
	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode/wire"
)

// Server is the HTTP API of a storage node.
type Server struct {
	store *Store
	key   []byte
	// host is the host (and port) of the node's advertised URL: a
	// request addressed to any other is refused ("": any, for tests).
	host string
	// acceptV1 admits version 1 signatures (an upgrade in progress).
	acceptV1 bool
	now      func() time.Time
	log      *slog.Logger
	mux      *http.ServeMux
	// drain bounds what the HTTP server reads of a body after its
	// handler returns (BoundDrain; default DrainTimeout).
	drain time.Duration
	// Request metrics (nil: none).
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// Instrument registers the API's request metrics with reg: calls by
// route and status, and their latency.
func (s *Server) Instrument(reg prometheus.Registerer, buckets []float64) {
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sherd_node_requests_total", Help: "Node API requests by route and HTTP status."}, []string{"route", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sherd_node_request_duration_seconds",
		Help: "Node API request latency by route.", Buckets: buckets}, []string{"route"})
	reg.MustRegister(s.requests, s.latency)
}

// statusRecorder records a response's status.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusRecorder) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// RequireHost makes the server refuse every signed request not addressed
// to host, the host (and port, if any) of the node's advertised URL, so
// that a request signed for another node cannot be replayed to this one.
// Call it before serving.
func (s *Server) RequireHost(host string) { s.host = strings.ToLower(host) }

// AcceptV1Signatures makes the server accept the signatures of Sherd
// releases before version 2 (not bound to the host, Range or the X-Sherd
// headers), for a rolling upgrade only. Call it before serving.
func (s *Server) AcceptV1Signatures() { s.acceptV1 = true }

// DrainTimeout is how long the HTTP server may go on reading a request
// body after its handler has returned (BoundDrain).
const DrainTimeout = 30 * time.Second

// BoundDrain returns h with the bound of what the server reads of a
// request body after h returns: at most timeout. An HTTP/1.x server reads
// up to 256 KiB of a body its handler left unread (a refused request: a
// bad signature, an unknown path, a health check with a body), to reuse
// the connection, before it sends the response's header and again when it
// closes the body, under the connection's read deadline: none unless set
// here (no ReadTimeout: it would bound the longest shard upload too).
// Without it anyone who reaches the port, no key needed, holds a
// connection for ever with one chunk of a body and nothing more, and a
// file descriptor with it. Connection: close alone would not do: the
// server still reads the rest of a chunked body, or of one of at most
// 256 KiB, when it closes the body.
func BoundDrain(h http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer boundDrain(w, r, timeout)
		h.ServeHTTP(w, r)
	})
}

// boundDrain gives r's body at most timeout more from now, if it has one
// (the server clears the deadline before the connection's next request).
func boundDrain(w http.ResponseWriter, r *http.Request, timeout time.Duration) {
	if r.ProtoMajor != 1 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return // HTTP/2 reads no body after the handler
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
}

// SetDrainTimeout sets the BoundDrain bound of the server's requests
// (default DrainTimeout). Call it before serving.
func (s *Server) SetDrainTimeout(d time.Duration) {
	if d > 0 {
		s.drain = d
	}
}

// NewServer serves store's API to requests signed with key.
func NewServer(store *Store, key []byte, now func() time.Time, log *slog.Logger) *Server {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{store: store, key: key, now: now, log: log, mux: http.NewServeMux(), drain: DrainTimeout}
	s.mux.HandleFunc("GET /v1/health", s.health)
	s.mux.Handle("PUT /v1/shards/{id}", s.auth(s.put))
	s.mux.Handle("GET /v1/shards/{id}", s.auth(s.get))
	s.mux.Handle("HEAD /v1/shards/{id}", s.auth(s.head))
	s.mux.Handle("DELETE /v1/shards/{id}", s.auth(s.delete))
	s.mux.Handle("GET /v1/leaves/{leaf}", s.auth(s.leaf))
	s.mux.Handle("GET /v1/tree/{level}/{idx}", s.auth(s.tree))
	s.mux.Handle("POST /v1/verify/{id}", s.auth(s.verify))
	return s
}

// ServeHTTP implements http.Handler. The gateway's request id (header
// reqid.Header) goes into the context, so the node's log lines about the
// call name the S3 request. What the server reads of a body after the
// handler is bounded (BoundDrain), refusals above all.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer boundDrain(w, r, s.drain)
	if id := r.Header.Get(reqid.Header); reqid.Valid(id) {
		r = r.WithContext(reqid.With(r.Context(), id))
	}
	start := s.now()
	rec := &statusRecorder{ResponseWriter: w}
	s.mux.ServeHTTP(rec, r)
	route := r.Pattern // set by the mux on this request
	if route == "" {
		route = "unmatched"
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	s.observe(r.Context(), route, r.URL.Path, rec.status, start)
}

// observe counts, times and logs (debug) one call of the API, over HTTP
// or in process (Local).
func (s *Server) observe(ctx context.Context, route, path string, status int, start time.Time) {
	took := s.now().Sub(start)
	if s.requests != nil {
		s.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		s.latency.WithLabelValues(route).Observe(took.Seconds())
	}
	s.log.Debug("node request", "request_id", reqid.From(ctx), "route", route, "path", path, "status", status, "took", took)
}

func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A refused request's connection is closed after the answer: a
		// client without the key keeps no connection open (its body is
		// bounded all the same: BoundDrain).
		if s.host != "" && strings.ToLower(r.Host) != s.host {
			w.Header().Set("Connection", "close")
			s.fail(w, r, fmt.Errorf("request addressed to %q, this node is %q: %w", r.Host, s.host, wire.ErrUnauthorized))
			return
		}
		if err := wire.VerifyRequest(r, s.key, s.now(), s.acceptV1); err != nil {
			w.Header().Set("Connection", "close")
			s.fail(w, r, err)
			return
		}
		h(w, r)
	})
}

// errorStatus maps a store error to the API's error code and HTTP
// status, logging what the operator must see (full disks, failures).
func (s *Server) errorStatus(ctx context.Context, method, path string, err error) (string, int) {
	switch {
	case errors.Is(err, shard.ErrNotFound):
		return wire.CodeNotFound, http.StatusNotFound
	case errors.Is(err, shard.ErrInvalid):
		return wire.CodeInvalid, http.StatusBadRequest
	case errors.Is(err, shard.ErrCorrupt):
		return wire.CodeCorrupt, http.StatusUnprocessableEntity
	case errors.Is(err, wire.ErrUnauthorized):
		return wire.CodeUnauthorized, http.StatusForbidden
	case errors.Is(err, shard.ErrExists):
		return wire.CodeExists, http.StatusConflict
	case errors.Is(err, shard.ErrFull):
		s.log.Warn("disk full: shard refused", "request_id", reqid.From(ctx), "path", path, "err", err)
		return wire.CodeFull, http.StatusInsufficientStorage
	}
	s.log.Error("node request failed", "request_id", reqid.From(ctx), "method", method, "path", path, "err", err)
	return wire.CodeInternal, http.StatusInternalServerError
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, status := s.errorStatus(r.Context(), r.Method, r.URL.Path, err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		json.NewEncoder(w).Encode(wire.ErrorBody{Code: code, Message: err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	id, err := shard.ParseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	block, err := strconv.Atoi(r.URL.Query().Get("block"))
	if err != nil {
		s.fail(w, r, fmt.Errorf("block length: %w", shard.ErrInvalid))
		return
	}
	var info shard.Info
	if q := r.URL.Query(); q.Get("replace") == "1" {
		info, err = s.store.Replace(r.Context(), id, block, r.Body, q.Get("want"))
	} else {
		info, err = s.store.Put(r.Context(), id, block, r.Body)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, info)
}

func setInfoHeaders(w http.ResponseWriter, info shard.Info) {
	w.Header().Set(wire.HeaderSize, strconv.FormatInt(info.Size, 10))
	w.Header().Set(wire.HeaderHash, info.Hash)
	w.Header().Set(wire.HeaderBlock, strconv.Itoa(info.BlockLen))
	w.Header().Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
	if !info.Verified.IsZero() {
		w.Header().Set(wire.HeaderVerified, info.Verified.UTC().Format(time.RFC3339Nano))
	}
}

// verify re-reads a shard whole and checks it (sherdctl verify): 200 with
// its shard.Info, Verified the time of the check before this one; 422
// corrupt; 404 missing. A shard found intact is recorded as verified now.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	id, err := shard.ParseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	before, err := s.store.Stat(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.store.Verify(r.Context(), id, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.store.MarkVerified([]shard.ID{id}, s.now()); err != nil {
		s.log.Warn("verify: record time", "shard", id, "err", err)
	}
	writeJSON(w, http.StatusOK, before)
}

func (s *Server) head(w http.ResponseWriter, r *http.Request) {
	id, err := shard.ParseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	info, err := s.store.Stat(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setInfoHeaders(w, info)
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.WriteHeader(http.StatusOK)
}

// get serves the whole shard file, or one range "bytes=a-b" / "bytes=a-".
func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	id, err := shard.ParseID(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	off, n, status := int64(0), int64(-1), http.StatusOK
	if rng := r.Header.Get("Range"); rng != "" {
		if off, n, err = ParseRange(rng); err != nil {
			s.fail(w, r, err)
			return
		}
		status = http.StatusPartialContent
	}
	rc, err := s.store.Open(r.Context(), id, off, n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	size := int64(-1)
	if sz, ok := rc.(interface{ Size() int64 }); ok {
		size = sz.Size()
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(status)
	if _, err := copyBuffer(w, rc, size); err != nil {
		s.log.Debug("shard read aborted", "id", id, "err", err)
	}
}

// ParseRange parses the node API's Range header: "bytes=lo-" or
// "bytes=lo-hi" (inclusive), as an offset and a length (-1: to the end).
// Errors wrap shard.ErrInvalid.
func ParseRange(rng string) (off, n int64, err error) {
	a, b, ok := strings.Cut(strings.TrimPrefix(rng, "bytes="), "-")
	lo, err1 := strconv.ParseInt(a, 10, 64)
	if !ok || !strings.HasPrefix(rng, "bytes=") || err1 != nil || lo < 0 {
		return 0, 0, fmt.Errorf("range %q: %w", rng, shard.ErrInvalid)
	}
	if b == "" {
		return lo, -1, nil
	}
	hi, err := strconv.ParseInt(b, 10, 64)
	if err != nil || hi < lo || hi == math.MaxInt64 {
		return 0, 0, fmt.Errorf("range %q: %w", rng, shard.ErrInvalid)
	}
	return lo, hi - lo + 1, nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	id, err := shard.ParseID(r.PathValue("id"))
	if err == nil {
		err = s.store.Delete(r.Context(), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) leaf(w http.ResponseWriter, r *http.Request) {
	l, err := strconv.ParseUint(r.PathValue("leaf"), 10, 32)
	if err != nil {
		s.fail(w, r, fmt.Errorf("leaf: %w", shard.ErrInvalid))
		return
	}
	infos, err := s.store.Leaf(r.Context(), uint32(l))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if infos == nil {
		infos = []shard.Info{}
	}
	writeJSON(w, http.StatusOK, infos)
}

func (s *Server) tree(w http.ResponseWriter, r *http.Request) {
	level, err1 := strconv.Atoi(r.PathValue("level"))
	idx, err2 := strconv.ParseUint(r.PathValue("idx"), 10, 32)
	if err1 != nil || err2 != nil {
		s.fail(w, r, fmt.Errorf("tree node: %w", shard.ErrInvalid))
		return
	}
	ch, err := s.store.Children(r.Context(), level, uint32(idx))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.DigestsToHex(ch))
}

// copyBuffer copies n bytes (n < 0: to EOF) with a buffer of at most
// 256 KiB, no larger than n.
func copyBuffer(w io.Writer, r io.Reader, n int64) (int64, error) {
	size := int64(256 << 10)
	if n >= 0 {
		size = max(min(size, n), 512)
	}
	return io.CopyBuffer(w, r, make([]byte, size))
}
