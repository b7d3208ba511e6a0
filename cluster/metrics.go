package cluster

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/shard"
)

// ShardCallMetrics count and time the calls a process makes to storage
// nodes, per node and call.
type ShardCallMetrics struct {
	calls   *prometheus.CounterVec   // node, call, outcome
	latency *prometheus.HistogramVec // node, call
}

// NewShardCallMetrics registers the metrics with reg.
func NewShardCallMetrics(reg prometheus.Registerer, buckets []float64) *ShardCallMetrics {
	m := &ShardCallMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sherd_shard_calls_total",
			Help: "Calls to storage nodes by node, call and outcome (ok, not_found, corrupt, error)."}, []string{"node", "call", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sherd_shard_call_duration_seconds",
			Help: "Storage node call latency by node and call (open: until the first byte; put: the whole stream).", Buckets: buckets}, []string{"node", "call"}),
	}
	reg.MustRegister(m.calls, m.latency)
	return m
}

// Wrap returns st with its calls counted and timed as node's.
func (m *ShardCallMetrics) Wrap(node string, st shard.Store) shard.Store {
	if m == nil {
		return st
	}
	return instrumented{st: st, node: node, m: m}
}

func (m *ShardCallMetrics) done(node, call string, start time.Time, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, shard.ErrNotFound):
		outcome = "not_found"
	case errors.Is(err, shard.ErrCorrupt):
		outcome = "corrupt"
	case errors.Is(err, context.Canceled):
		outcome = "canceled"
	default:
		outcome = "error"
	}
	m.calls.WithLabelValues(node, call, outcome).Inc()
	m.latency.WithLabelValues(node, call).Observe(time.Since(start).Seconds())
}

type instrumented struct {
	st   shard.Store
	node string
	m    *ShardCallMetrics
}

func (s instrumented) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	t := time.Now()
	info, err := s.st.Put(ctx, id, blockLen, r)
	s.m.done(s.node, "put", t, err)
	return info, err
}

func (s instrumented) Replace(ctx context.Context, id shard.ID, blockLen int, r io.Reader, want string) (shard.Info, error) {
	t := time.Now()
	info, err := s.st.Replace(ctx, id, blockLen, r, want)
	s.m.done(s.node, "replace", t, err)
	return info, err
}

func (s instrumented) Open(ctx context.Context, id shard.ID, off, n int64) (io.ReadCloser, error) {
	t := time.Now()
	rc, err := s.st.Open(ctx, id, off, n)
	s.m.done(s.node, "open", t, err)
	return rc, err
}

func (s instrumented) Stat(ctx context.Context, id shard.ID) (shard.Info, error) {
	t := time.Now()
	info, err := s.st.Stat(ctx, id)
	s.m.done(s.node, "stat", t, err)
	return info, err
}

func (s instrumented) Delete(ctx context.Context, id shard.ID) error {
	t := time.Now()
	err := s.st.Delete(ctx, id)
	s.m.done(s.node, "delete", t, err)
	return err
}

func (s instrumented) Leaf(ctx context.Context, leaf uint32) ([]shard.Info, error) {
	t := time.Now()
	out, err := s.st.Leaf(ctx, leaf)
	s.m.done(s.node, "leaf", t, err)
	return out, err
}

func (s instrumented) Children(ctx context.Context, level int, idx uint32) ([merkle.Fanout]merkle.Digest, error) {
	t := time.Now()
	out, err := s.st.Children(ctx, level, idx)
	s.m.done(s.node, "tree", t, err)
	return out, err
}

// Unwrap returns the store instrumented (for optional interfaces).
func (s instrumented) Unwrap() shard.Store { return s.st }
