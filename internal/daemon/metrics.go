package daemon

// The process metrics of nodes, gateways and healers (docs/operations.md
// lists them): registered on the process's registry, read from the
// workers' own counters at scrape time, so nothing is counted twice.

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/internal/telemetry"
	"github.com/sherdstore/sherd/metadata"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
	"github.com/sherdstore/sherd/repair"
	"github.com/sherdstore/sherd/storagenode"
)

// NewObservedMetadataStore is the etcd metadata store with the latency of every
// etcd call recorded in reg (sherd_etcd_request_duration_seconds).
func NewObservedMetadataStore(cli *clientv3.Client, reg prometheus.Registerer) metadata.Store {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sherd_etcd_request_duration_seconds",
		Help: "etcd calls of the metadata store by kind (get, put, delete, txn) and outcome.", Buckets: telemetry.Buckets()}, []string{"op", "outcome"})
	reg.MustRegister(h)
	return metaetcd.New(cli, metaetcd.Options{KV: metaetcd.ObserveKV(cli.KV, func(op string, took time.Duration, err error) {
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		h.WithLabelValues(op, outcome).Observe(took.Seconds())
	})})
}

func gauge(reg prometheus.Registerer, name, help string, f func() float64) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

func counter(reg prometheus.Registerer, name, help string, f func() float64) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

func unixOrZero(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// registerNodeMetrics: the node's disk and scrubber.
func registerNodeMetrics(reg prometheus.Registerer, st *storagenode.Store, sc *storagenode.Scrubber) {
	disk := func() *metadata.DiskReport { return diskReport(st) }
	gauge(reg, "sherd_node_shards", "Shards in the node's index.", func() float64 { n, _ := st.Usage(); return float64(n) })
	gauge(reg, "sherd_node_shard_bytes", "Bytes of the shards in the node's index.", func() float64 { _, b := st.Usage(); return float64(b) })
	counter(reg, "sherd_node_index_commits_total", "Commits of the node's index (each fsyncs; concurrent writes share one).", func() float64 { c, _ := st.IndexCommits(); return float64(c) })
	counter(reg, "sherd_node_index_changes_total", "Changes committed to the node's index (shard writes and deletes); over commits: the group commit's batching.", func() float64 { _, n := st.IndexCommits(); return float64(n) })
	gauge(reg, "sherd_node_disk_used_bytes", "Bytes used on the file system holding the shards.", func() float64 { return float64(disk().Used) })
	gauge(reg, "sherd_node_disk_total_bytes", "Size of the file system holding the shards.", func() float64 { return float64(disk().Total) })
	if sc == nil {
		return
	}
	p := func() storagenode.ScrubProgress { return sc.Progress() }
	counter(reg, "sherd_scrub_passes_total", "Scrub passes completed.", func() float64 { return float64(p().Passes) })
	gauge(reg, "sherd_scrub_running", "1 while a scrub pass runs.", func() float64 {
		if p().Running {
			return 1
		}
		return 0
	})
	gauge(reg, "sherd_scrub_progress_ratio", "Fraction of the current scrub pass done.", func() float64 { return p().Fraction })
	gauge(reg, "sherd_scrub_last_pass_timestamp_seconds", "When the last scrub pass ended.", func() float64 { return unixOrZero(p().LastPass) })
	gauge(reg, "sherd_scrub_last_pass_corrupt_shards", "Shards the last scrub pass quarantined.", func() float64 { return float64(p().LastCorrupt) })
	gauge(reg, "sherd_scrub_pass_bytes", "Bytes read by the current (or last) scrub pass.", func() float64 { return float64(p().Bytes) })
}

// registerGCMetrics: the gateway's garbage collector.
func registerGCMetrics(reg prometheus.Registerer, gc *repair.Collector) {
	tot := func() repair.GCTotals { return gc.Totals() }
	counter(reg, "sherd_gc_passes_total", "Garbage collection passes.", func() float64 { return float64(tot().Passes) })
	counter(reg, "sherd_gc_entries_total", "Garbage collection entries finished (released segments and keys deleted).", func() float64 { return float64(tot().Entries) })
	counter(reg, "sherd_gc_shards_deleted_total", "Shard files deleted by garbage collection, parked deletes included.", func() float64 { return float64(tot().Shards + tot().Late) })
	gauge(reg, "sherd_gc_deferred_entries", "Entries the last gc pass left for later (in their grace period, or failed).", func() float64 { return float64(tot().Deferred) })
	gauge(reg, "sherd_gc_last_pass_timestamp_seconds", "When the last gc pass ended.", func() float64 { return unixOrZero(tot().LastPass) })
}

// registerHealerMetrics: the repairer, anti-entropy and the mover of a
// healer over cl.
func registerHealerMetrics(reg prometheus.Registerer, h *Healer, cl *cluster.Cluster) {
	st := func() repair.Stats { return h.Repairer.Stats.Snapshot() }
	counter(reg, "sherd_repair_passes_total", "Passes over the repair queue.", func() float64 { return float64(st().Passes) })
	counter(reg, "sherd_repair_shards_rebuilt_total", "Shards rebuilt by repairs.", func() float64 { return float64(st().ShardsRebuilt) })
	counter(reg, "sherd_repair_read_bytes_total", "Segment bytes read to rebuild shards.", func() float64 { return float64(st().BytesRead) })
	counter(reg, "sherd_repair_written_bytes_total", "Shard bytes rebuilt.", func() float64 { return float64(st().BytesWritten) })
	gauge(reg, "sherd_repair_waiting_shards", "Shards the last repair pass could not rebuild yet (a node down, too few shards).", func() float64 { return float64(st().Waiting) })
	gauge(reg, "sherd_repair_last_pass_timestamp_seconds", "When the last repair pass ended.", func() float64 { return unixOrZero(st().LastPass) })
	round := func() (metadata.AntiEntropyRound, int) { return h.AntiEntropy.Last() }
	counter(reg, "sherd_antientropy_rounds_total", "Anti-entropy rounds made.", func() float64 { _, n := round(); return float64(n) })
	gauge(reg, "sherd_antientropy_last_round_timestamp_seconds", "When the last anti-entropy round started.", func() float64 { r, _ := round(); return unixOrZero(r.Started) })
	gauge(reg, "sherd_antientropy_last_round_duration_seconds", "How long the last anti-entropy round took.", func() float64 { r, _ := round(); return r.Took.Seconds() })
	for name, f := range map[string]func(r metadata.AntiEntropyRound) int{
		"missing": func(r metadata.AntiEntropyRound) int { return r.Missing }, "wrong": func(r metadata.AntiEntropyRound) int { return r.Wrong },
		"unexpected": func(r metadata.AntiEntropyRound) int { return r.Unexpected }, "rebuilt": func(r metadata.AntiEntropyRound) int { return r.Rebuilt },
		"swept": func(r metadata.AntiEntropyRound) int { return r.Swept }, "waiting": func(r metadata.AntiEntropyRound) int { return r.Waiting },
	} {
		gauge(reg, "sherd_antientropy_last_round_"+name+"_shards", "Shards the last anti-entropy round found "+name+".", func() float64 { r, _ := round(); return float64(f(r)) })
	}
	mv := func() metadata.MoveReport { return h.Mover.Report() }
	counter(reg, "sherd_mover_shards_moved_total", "Shards moved off draining or removed nodes, or by rebalancing.", func() float64 { return float64(mv().Moved) })
	counter(reg, "sherd_mover_bytes_total", "Shard bytes moved.", func() float64 { return float64(mv().Bytes) })
	gauge(reg, "sherd_mover_waiting_shards", "Moves the last mover pass could not make.", func() float64 { return float64(mv().Waiting) })
	reg.MustRegister(&segmentHealth{h: h, cl: cl, desc: prometheus.NewDesc("sherd_segments",
		"Segments by recorded shards on live nodes (healthy) of shards, k needed to read; from the anti-entropy expected trees.",
		[]string{"healthy", "shards", "k"}, nil),
		degraded:   prometheus.NewDesc("sherd_segments_degraded", "Segments with fewer healthy shards (recorded, on live nodes) than shards.", nil, nil),
		edge:       prometheus.NewDesc("sherd_segments_at_edge", "Segments with exactly k healthy shards: one more loss makes them unreadable.", nil, nil),
		unreadable: prometheus.NewDesc("sherd_segments_unreadable", "Segments with fewer than k healthy shards.", nil, nil)})
}

// segmentHealth reports segments by healthy-shard count.
type segmentHealth struct {
	h                          *Healer
	cl                         *cluster.Cluster
	desc                       *prometheus.Desc
	degraded, edge, unreadable *prometheus.Desc
}

func (c *segmentHealth) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.degraded
	ch <- c.edge
	ch <- c.unreadable
}

func (c *segmentHealth) Collect(ch chan<- prometheus.Metric) {
	live := map[string]bool{}
	for _, n := range c.cl.Nodes() {
		live[n.ID] = n.Live && n.State != metadata.NodeRemoved
	}
	counts, ok := c.h.AntiEntropy.SegmentHealth(func(id string) bool { return live[id] })
	if !ok {
		return
	}
	var degraded, edge, unreadable int
	for h, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), strconv.Itoa(h.Healthy), strconv.Itoa(h.Shards), strconv.Itoa(h.K))
		switch {
		case h.Healthy < h.K:
			unreadable += n
		case h.Healthy == h.K:
			edge += n
		}
		if h.Healthy < h.Shards {
			degraded += n
		}
	}
	ch <- prometheus.MustNewConstMetric(c.degraded, prometheus.GaugeValue, float64(degraded))
	ch <- prometheus.MustNewConstMetric(c.edge, prometheus.GaugeValue, float64(edge))
	ch <- prometheus.MustNewConstMetric(c.unreadable, prometheus.GaugeValue, float64(unreadable))
}

// queueBacklog reports the work queues' lengths, read from etcd at most
// every 10 s (a scrape never waits on etcd for longer than 2 s).
type queueBacklog struct {
	store metadata.Store
	desc  *prometheus.Desc
	mu    sync.Mutex
	at    time.Time
	last  []prometheus.Metric
}

func newQueueBacklog(store metadata.Store) *queueBacklog {
	return &queueBacklog{store: store, desc: prometheus.NewDesc("sherd_queue_items",
		"Items in a work queue (repair, gc, events): all of them, and those due now.", []string{"queue", "state"}, nil)}
}

func (q *queueBacklog) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queueBacklog) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if time.Since(q.at) > 10*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var out []prometheus.Metric
		for _, name := range []string{"repair", "gc", "events"} {
			total, due, err := q.store.QueueLength(ctx, name, time.Now())
			if err != nil {
				out = nil
				break
			}
			out = append(out, prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(total), name, "all"),
				prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(due), name, "due"))
		}
		if out != nil {
			q.last, q.at = out, time.Now()
		}
	}
	for _, m := range q.last {
		ch <- m
	}
}

// registerClusterMetrics: what the process's view of the members says.
func registerClusterMetrics(reg prometheus.Registerer, cl *cluster.Cluster) {
	desc := prometheus.NewDesc("sherd_nodes", "Storage nodes by administrative state and liveness, as this process sees them.", []string{"state", "live"}, nil)
	reg.MustRegister(collectorFunc{desc, func(ch chan<- prometheus.Metric) {
		counts := map[[2]string]int{}
		for _, st := range []metadata.NodeState{metadata.NodeActive, metadata.NodeDraining, metadata.NodeRemoved} {
			counts[[2]string{string(st), "true"}], counts[[2]string{string(st), "false"}] = 0, 0
		}
		for _, n := range cl.Nodes() {
			st := n.State
			if st == "" {
				st = metadata.NodeActive
			}
			counts[[2]string{string(st), strconv.FormatBool(n.Live)}]++
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n), k[0], k[1])
		}
	}})
	up := prometheus.NewDesc("sherd_node_up", "1 if the storage node is live (holds its registration), by node.", []string{"node", "state"}, nil)
	reg.MustRegister(collectorFunc{up, func(ch chan<- prometheus.Metric) {
		for _, n := range cl.Nodes() {
			v := 0.0
			if n.Live {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(up, prometheus.GaugeValue, v, n.ID, string(n.State))
		}
	}})
}

type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// registerLeaseMetrics: whether each worker of ls holds a claim lease,
// and how many it lost (role: a fixed set, never request data). Once per
// registry.
func registerLeaseMetrics(reg prometheus.Registerer, ls ...*Leases) {
	reg.MustRegister(&leaseCollector{ls: ls,
		live: prometheus.NewDesc("sherd_worker_lease_live", "1 while the background worker holds an etcd lease for its claims; 0: it claims nothing (no healing, no expiry through it) until it makes a new one.", []string{"role"}, nil),
		lost: prometheus.NewDesc("sherd_worker_lease_lost_total", "Claim leases the background worker lost (etcd unreachable past the lease TTL) and made again.", []string{"role"}, nil)})
}

type leaseCollector struct {
	ls         []*Leases
	live, lost *prometheus.Desc
}

func (c *leaseCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.live
	ch <- c.lost
}

func (c *leaseCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.ls {
		for role, h := range l.Health() {
			v := 0.0
			if h.Live {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, v, role)
			ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(h.Lapses), role)
		}
	}
}
