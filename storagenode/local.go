package storagenode

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/shard"
)

// Local returns the node's store for callers in the same process (sherd
// server's in-process transport): the same calls as the HTTP API without
// HTTP, and observed like the API's requests (counted and timed under
// the same routes and statuses, logged with the caller's request id), so
// a node's metrics and logs read the same whichever way it is called.
// Authentication does not apply: the caller is the process itself.
func (s *Server) Local() shard.Store { return local{s} }

type local struct{ s *Server }

const (
	routeShardPut    = "PUT /v1/shards/{id}"
	routeShardGet    = "GET /v1/shards/{id}"
	routeShardHead   = "HEAD /v1/shards/{id}"
	routeShardDelete = "DELETE /v1/shards/{id}"
	routeLeaf        = "GET /v1/leaves/{leaf}"
	routeTree        = "GET /v1/tree/{level}/{idx}"
)

// done observes a call that ended with err (ok: the status on success).
func (l local) done(ctx context.Context, route, path string, ok int, start time.Time, err error) {
	status := ok
	if err != nil {
		_, status = l.s.errorStatus(ctx, route, path, err)
	}
	l.s.observe(ctx, route, path, status, start)
}

func (l local) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	start := l.s.now()
	info, err := l.s.store.Put(ctx, id, blockLen, r)
	l.done(ctx, routeShardPut, "/v1/shards/"+id.String(), http.StatusCreated, start, err)
	return info, err
}

func (l local) Replace(ctx context.Context, id shard.ID, blockLen int, r io.Reader, want string) (shard.Info, error) {
	start := l.s.now()
	info, err := l.s.store.Replace(ctx, id, blockLen, r, want)
	l.done(ctx, routeShardPut, "/v1/shards/"+id.String(), http.StatusCreated, start, err)
	return info, err
}

// Open is observed when the reader is closed (as the API's GET, which
// ends when the body is sent).
func (l local) Open(ctx context.Context, id shard.ID, off, n int64) (io.ReadCloser, error) {
	start := l.s.now()
	ok := http.StatusOK
	if off != 0 || n >= 0 {
		ok = http.StatusPartialContent
	}
	rc, err := l.s.store.Open(ctx, id, off, n)
	if err != nil {
		l.done(ctx, routeShardGet, "/v1/shards/"+id.String(), ok, start, err)
		return nil, err
	}
	return &observedReader{ReadCloser: rc, done: func(err error) {
		l.done(ctx, routeShardGet, "/v1/shards/"+id.String(), ok, start, err)
	}}, nil
}

func (l local) Stat(ctx context.Context, id shard.ID) (shard.Info, error) {
	start := l.s.now()
	info, err := l.s.store.Stat(ctx, id)
	l.done(ctx, routeShardHead, "/v1/shards/"+id.String(), http.StatusOK, start, err)
	return info, err
}

func (l local) Delete(ctx context.Context, id shard.ID) error {
	start := l.s.now()
	err := l.s.store.Delete(ctx, id)
	l.done(ctx, routeShardDelete, "/v1/shards/"+id.String(), http.StatusNoContent, start, err)
	return err
}

func (l local) Leaf(ctx context.Context, leaf uint32) ([]shard.Info, error) {
	start := l.s.now()
	out, err := l.s.store.Leaf(ctx, leaf)
	l.done(ctx, routeLeaf, "/v1/leaves/"+strconv.FormatUint(uint64(leaf), 10), http.StatusOK, start, err)
	return out, err
}

func (l local) Children(ctx context.Context, level int, idx uint32) ([merkle.Fanout]merkle.Digest, error) {
	start := l.s.now()
	out, err := l.s.store.Children(ctx, level, idx)
	l.done(ctx, routeTree, fmt.Sprintf("/v1/tree/%d/%d", level, idx), http.StatusOK, start, err)
	return out, err
}

// observedReader reports the first read error other than io.EOF (nil if
// none) once, at Close.
type observedReader struct {
	io.ReadCloser
	err  error
	done func(error)
}

func (o *observedReader) Read(p []byte) (int, error) {
	n, err := o.ReadCloser.Read(p)
	if err != nil && err != io.EOF && o.err == nil {
		o.err = err
	}
	return n, err
}

func (o *observedReader) Close() error {
	err := o.ReadCloser.Close()
	if o.done != nil {
		o.done(o.err)
		o.done = nil
	}
	return err
}
