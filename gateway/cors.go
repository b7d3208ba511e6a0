package gateway

import (
	"encoding/xml"
	"io"
	"net/http"
	"sync"

	"github.com/sherdstore/sherd/gateway/s3"
	"github.com/sherdstore/sherd/metadata"
)

var errCORSForbidden = &s3.Error{Code: "AccessForbidden", Message: "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.", Status: http.StatusForbidden}

// maxCORSCache bounds the parsed configurations kept.
const maxCORSCache = 1024

// corsCache keeps parsed CORS configurations by their text, so a request
// with an Origin does not parse its bucket's rules again.
type corsCache struct {
	mu sync.Mutex
	m  map[string]corsEntry
}

type corsEntry struct {
	c  s3.CORSConfiguration
	ok bool
}

// bucketCORS is the bucket's parsed CORS configuration, if any.
func (g *Gateway) bucketCORS(b metadata.Bucket) (s3.CORSConfiguration, bool) {
	if b.CORS == "" {
		return s3.CORSConfiguration{}, false
	}
	cc := &g.cors
	cc.mu.Lock()
	e, hit := cc.m[b.CORS]
	cc.mu.Unlock()
	if hit {
		return e.c, e.ok
	}
	c, err := s3.ParseCORS([]byte(b.CORS))
	e = corsEntry{c: c, ok: err == nil}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.m == nil || len(cc.m) >= maxCORSCache {
		cc.m = map[string]corsEntry{}
	}
	cc.m[b.CORS] = e
	g.corsParses.Add(1)
	return e.c, e.ok
}

// corsHeaders adds the CORS answer to a request from a browser (one with
// an Origin) on a bucket with a matching rule. Errors are ignored: no
// headers is the safe answer.
func (g *Gateway) corsHeaders(w http.ResponseWriter, r *http.Request, bucket string) {
	origin := r.Header.Get("Origin")
	if origin == "" || bucket == "" || r.Method == http.MethodOptions {
		return
	}
	b, err := g.store.GetBucket(r.Context(), bucket)
	if err != nil {
		return
	}
	if c, ok := g.bucketCORS(b); ok {
		if rule, ok := c.Match(origin, r.Method, nil); ok {
			rule.SetHeaders(w.Header(), origin, false, nil)
		}
	}
}

// preflight answers an OPTIONS request (unauthenticated, as browsers send it).
func (g *Gateway) preflight(w http.ResponseWriter, r *http.Request) {
	origin, method := r.Header.Get("Origin"), r.Header.Get("Access-Control-Request-Method")
	if origin == "" || method == "" {
		g.writeError(w, r, s3.Errorf(errInvalidRequest, "Insufficient information. Origin request header needed."))
		return
	}
	b, err := g.store.GetBucket(r.Context(), reqOf(r).bucket)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	c, ok := g.bucketCORS(b)
	if !ok {
		g.writeError(w, r, errCORSForbidden)
		return
	}
	hdrs := s3.RequestHeaders(r.Header.Get("Access-Control-Request-Headers"))
	rule, ok := c.Match(origin, method, hdrs)
	if !ok {
		g.writeError(w, r, errCORSForbidden)
		return
	}
	rule.SetHeaders(w.Header(), origin, true, hdrs)
	w.WriteHeader(http.StatusOK)
}

func (g *Gateway) putBucketCors(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	body, err := readBody(r, s3.MaxCORSBody)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	c, err := s3.ParseCORS(body)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	c.XMLNS = s3.XMLNS
	out, _ := xml.Marshal(c)
	if err := g.store.UpdateBucket(r.Context(), b.Name, func(b *metadata.Bucket) error { b.CORS = string(out); return nil }); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (g *Gateway) getBucketCors(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if b.CORS == "" {
		g.writeError(w, r, errNoSuchCORS)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, xml.Header+b.CORS)
}

func (g *Gateway) deleteBucketCors(w http.ResponseWriter, r *http.Request) {
	b, err := g.bucket(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.store.UpdateBucket(r.Context(), b.Name, func(b *metadata.Bucket) error { b.CORS = ""; return nil }); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
