package repair

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// memNode is a reference shard inventory: a map of shard infos and a
// Merkle tree built the plain way. It serves the calls anti-entropy makes
// (Children, Leaf, Stat, Delete) and counts them.
type memNode struct {
	mu     sync.Mutex
	shards map[string]shard.Info
	tree   *merkle.Incremental
	calls  map[string]int
}

func newMemNode() *memNode {
	return &memNode{shards: map[string]shard.Info{}, tree: merkle.NewIncremental(), calls: map[string]int{}}
}

func (m *memNode) add(info shard.Info) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, _ := shard.ParseID(info.ID)
	if old, ok := m.shards[info.ID]; ok {
		m.tree.Xor(id.Leaf(), old.EntryDigest())
	}
	m.shards[info.ID] = info
	m.tree.Xor(id.Leaf(), info.EntryDigest())
}

func (m *memNode) remove(shardID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.shards[shardID]; ok {
		id, _ := shard.ParseID(shardID)
		m.tree.Xor(id.Leaf(), old.EntryDigest())
		delete(m.shards, shardID)
	}
}

func (m *memNode) count(op string) {
	m.mu.Lock()
	m.calls[op]++
	m.mu.Unlock()
}

func (m *memNode) total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		n += c
	}
	return n
}

func (m *memNode) Put(context.Context, shard.ID, int, io.Reader) (shard.Info, error) {
	return shard.Info{}, fmt.Errorf("memNode: no data: %w", shard.ErrInvalid)
}
func (m *memNode) Replace(context.Context, shard.ID, int, io.Reader, string) (shard.Info, error) {
	return shard.Info{}, fmt.Errorf("memNode: no data: %w", shard.ErrInvalid)
}
func (m *memNode) Open(context.Context, shard.ID, int64, int64) (io.ReadCloser, error) {
	return nil, fmt.Errorf("memNode: no data: %w", shard.ErrNotFound)
}
func (m *memNode) Stat(_ context.Context, id shard.ID) (shard.Info, error) {
	m.count("stat")
	m.mu.Lock()
	defer m.mu.Unlock()
	if info, ok := m.shards[id.String()]; ok {
		return info, nil
	}
	return shard.Info{}, shard.ErrNotFound
}
func (m *memNode) Delete(_ context.Context, id shard.ID) error {
	m.count("delete")
	m.remove(id.String())
	return nil
}
func (m *memNode) Leaf(_ context.Context, leaf uint32) ([]shard.Info, error) {
	m.count("leaf")
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []shard.Info
	for id, info := range m.shards {
		if sid, _ := shard.ParseID(id); sid.Leaf() == leaf {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
func (m *memNode) Children(_ context.Context, level int, idx uint32) ([merkle.Fanout]merkle.Digest, error) {
	m.count("children")
	return m.tree.Children(level, idx)
}

// memMeta holds segment records in memory.
type memMeta struct {
	mu       sync.Mutex
	segs     map[string]metadata.Segment
	pending  []metadata.PendingChunks
	released []string
}

func (m *memMeta) ScanSegments(_ context.Context, f func(metadata.Segment) error) (int64, error) {
	m.mu.Lock()
	segs := make([]metadata.Segment, 0, len(m.segs))
	for _, s := range m.segs {
		segs = append(segs, s)
	}
	m.mu.Unlock()
	for _, s := range segs {
		if err := f(s); err != nil {
			return 0, err
		}
	}
	return 1, nil
}
func (m *memMeta) WatchSegments(ctx context.Context, _ int64, _ func([]metadata.SegmentChange)) error {
	<-ctx.Done()
	return ctx.Err()
}
func (m *memMeta) LeafSegments(_ context.Context, leaf uint32) ([]metadata.Segment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []metadata.Segment
	for id, s := range m.segs {
		if l, _ := merkle.LeafOf(id); l == leaf {
			out = append(out, s)
		}
	}
	return out, nil
}
func (m *memMeta) ListPendingChunks(context.Context, int) ([]metadata.PendingChunks, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.pending), nil
}
func (m *memMeta) ReleasePendingChunks(_ context.Context, p metadata.PendingChunks) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.pending, func(q metadata.PendingChunks) bool { return q.VersionID == p.VersionID && q.Rev == p.Rev })
	if i < 0 {
		return false, nil
	}
	m.pending = slices.Delete(m.pending, i, i+1)
	m.released = append(m.released, p.VersionID)
	return true, nil
}
func (m *memMeta) ListRepairs(context.Context, int) ([]metadata.RepairEntry, error) { return nil, nil }
func (m *memMeta) DoneRepair(context.Context, metadata.RepairEntry) (bool, error)   { return true, nil }
func (m *memMeta) DeferRepair(context.Context, metadata.RepairEntry, time.Time) (bool, error) {
	return true, nil
}
func (m *memMeta) GetSegment(_ context.Context, id string) (metadata.Segment, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.segs[id]
	if !ok {
		return s, 0, metadata.ErrNoSuchSegment
	}
	return s, 1, nil
}
func (m *memMeta) UpdateSegment(context.Context, metadata.Segment, int64, metadata.Fence) error {
	return metadata.ErrConflict
}

// memClaims grants every claim not held by another memClaims sharing held.
type memClaims struct {
	mu   *sync.Mutex
	held map[string]*memClaims
	n    int
}

func (c *memClaims) Claim(_ context.Context, name string) (metadata.Fence, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.held[name]; ok && h != c {
		return metadata.Fence{}, false, nil
	}
	c.held[name] = c
	c.n++
	return metadata.Fence{}, true, nil
}
func (c *memClaims) Release(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[name] == c {
		delete(c.held, name)
	}
	return nil
}
func (c *memClaims) Close() error                 { return nil }
func (c *memClaims) Health() metadata.LeaseHealth { return metadata.LeaseHealth{Live: true} }

// aeRig is a cluster of memNodes holding exactly what the records say.
type aeRig struct {
	meta  *memMeta
	nodes map[string]*memNode
	ids   []string
	cl    *cluster.Cluster
	ae    *AntiEntropy
	now   time.Time
}

func hashOf(rng *rand.Rand) string {
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return hex.EncodeToString(b)
}

func newAERig(t *testing.T, rng *rand.Rand, nodes, segments int) *aeRig {
	t.Helper()
	r := &aeRig{meta: &memMeta{segs: map[string]metadata.Segment{}}, nodes: map[string]*memNode{}, now: time.Unix(1e9, 0)}
	var members []metadata.Node
	for i := range nodes {
		id := fmt.Sprintf("n%d", i)
		r.ids = append(r.ids, id)
		r.nodes[id] = newMemNode()
		members = append(members, metadata.Node{ID: id, State: metadata.NodeActive, Live: true})
	}
	for range segments {
		seg := metadata.Segment{ID: fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()), Size: 1 + rng.Int64N(1<<20),
			Profile: metadata.ECProfile{K: 4, M: 2, BlockSize: 1 << 20}}
		perm := rng.Perm(nodes)
		for i := range 6 {
			seg.Nodes = append(seg.Nodes, r.ids[perm[i%nodes]])
			seg.ShardHashes = append(seg.ShardHashes, hashOf(rng))
		}
		r.meta.segs[seg.ID] = seg
		for i, n := range seg.Nodes {
			r.nodes[n].add(shard.Info{ID: fmt.Sprintf("%s.%d", seg.ID, i), Size: ShardFileSize(seg), Hash: seg.ShardHashes[i]})
		}
	}
	r.cl = cluster.New(cluster.Config{Dial: func(n metadata.Node) shard.Store { return r.nodes[n.ID] }, CommitWindow: time.Minute})
	t.Cleanup(func() { r.cl.Close() })
	r.cl.Update(members)
	claims := &memClaims{mu: &sync.Mutex{}, held: map[string]*memClaims{}}
	rep, err := New(Config{Meta: r.meta, Cluster: r.cl, Claims: claims})
	if err != nil {
		t.Fatal(err)
	}
	r.ae, err = NewAntiEntropy(AntiEntropyConfig{Meta: r.meta, Cluster: r.cl, Claims: &memClaims{mu: claims.mu, held: claims.held},
		Repairer: rep, Grace: time.Hour, Now: func() time.Time { return r.now }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *aeRig) detect(t *testing.T) ([]Finding, RoundReport) {
	t.Helper()
	exp, _, err := r.ae.scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var rep RoundReport
	f, _, err := r.ae.detect(context.Background(), exp, &rep)
	if err != nil {
		t.Fatal(err)
	}
	return f, rep
}

func (r *aeRig) resetCalls() {
	for _, n := range r.nodes {
		n.mu.Lock()
		n.calls = map[string]int{}
		n.mu.Unlock()
	}
}

// TestOneMissingShardFoundCheaply: among 100,002 shards on 6 nodes, one
// lost shard is found with O(fan-out × depth) work: one Children call per
// level on the node that lost it (Depth calls) plus one inventory read,
// and one Children call on every node that agrees.
func TestOneMissingShardFoundCheaply(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	r := newAERig(t, rng, 6, 16_667)
	total := 0
	for _, n := range r.nodes {
		total += len(n.shards)
	}
	if total < 100_000 {
		t.Fatalf("only %d shards", total)
	}
	if f, rep := r.detect(t); len(f) != 0 || rep.NodeCalls != 6 {
		t.Fatalf("agreeing cluster: findings %v, %d node calls (want 6: one root per node)", f, rep.NodeCalls)
	}
	// Lose one shard.
	var victim string
	for id := range r.nodes["n3"].shards {
		victim = id
		break
	}
	r.nodes["n3"].remove(victim)
	r.resetCalls()
	f, rep := r.detect(t)
	if len(f) != 1 || f[0].Kind != MissingShard || f[0].Node != "n3" || f[0].ShardID() != victim {
		t.Fatalf("findings %+v, want %s missing on n3", f, victim)
	}
	n3 := r.nodes["n3"].calls
	if n3["children"] != merkle.Depth || n3["leaf"] != 1 || n3["stat"]+n3["delete"] != 0 {
		t.Fatalf("node n3 calls %v, want %d children and 1 leaf", n3, merkle.Depth)
	}
	for id, n := range r.nodes {
		if id != "n3" && n.total() != 1 {
			t.Fatalf("node %s answered %d calls, want 1 (its root agrees)", id, n.total())
		}
	}
	if want := int64(merkle.Depth + 1 + 5); rep.NodeCalls != want {
		t.Fatalf("round counted %d node calls, want %d", rep.NodeCalls, want)
	}
	t.Logf("%d shards; one missing found with %d node calls (%d digests compared on the node that lost it)",
		total, rep.NodeCalls, merkle.Depth*merkle.Fanout)
}

// TestDetectEqualsSetDifference is the property: whatever is lost, added
// or changed on the nodes, the findings are exactly the plain set
// difference between what the records put on each node and what it holds.
func TestDetectEqualsSetDifference(t *testing.T) {
	for trial := range 25 {
		rng := rand.New(rand.NewPCG(uint64(trial), 99))
		r := newAERig(t, rng, 6+rng.IntN(3), 50+rng.IntN(400))
		// Damage: drop, corrupt, add orphans, add a stale copy of a real shard.
		for _, id := range r.ids {
			n := r.nodes[id]
			var held []string
			for sid := range n.shards {
				held = append(held, sid)
			}
			slices.Sort(held)
			for _, sid := range held {
				switch rng.IntN(60) {
				case 0:
					n.remove(sid)
				case 1:
					info := n.shards[sid]
					info.Hash = hashOf(rng)
					n.add(info)
				case 2:
					info := n.shards[sid]
					info.Size++
					n.add(info)
				}
			}
			for range rng.IntN(4) {
				n.add(shard.Info{ID: fmt.Sprintf("%016x%016x.%d", rng.Uint64(), rng.Uint64(), rng.IntN(6)), Size: 10, Hash: hashOf(rng)})
			}
		}
		// Reference: plain set difference per node.
		type key struct {
			kind  FindingKind
			node  string
			shard string
		}
		want := map[key]bool{}
		for _, id := range r.ids {
			exp := map[string]shard.Info{}
			for _, seg := range r.meta.segs {
				for i, n := range seg.Nodes {
					if n == id {
						exp[fmt.Sprintf("%s.%d", seg.ID, i)] = shard.Info{Size: ShardFileSize(seg), Hash: seg.ShardHashes[i]}
					}
				}
			}
			for sid, e := range exp {
				h, ok := r.nodes[id].shards[sid]
				switch {
				case !ok:
					want[key{MissingShard, id, sid}] = true
				case h.Hash != e.Hash || h.Size != e.Size:
					want[key{WrongContent, id, sid}] = true
				}
			}
			for sid := range r.nodes[id].shards {
				if _, ok := exp[sid]; !ok {
					want[key{UnexpectedShard, id, sid}] = true
				}
			}
		}
		findings, _ := r.detect(t)
		got := map[key]bool{}
		for _, f := range findings {
			k := key{f.Kind, f.Node, f.ShardID()}
			if got[k] {
				t.Fatalf("trial %d: %v found twice", trial, k)
			}
			got[k] = true
		}
		for k := range want {
			if !got[k] {
				t.Errorf("trial %d: %v not found", trial, k)
			}
		}
		for k := range got {
			if !want[k] {
				t.Errorf("trial %d: %v found but not in the set difference", trial, k)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// TestClaimedPartitionsSkipped: a partition another repairer holds is not
// examined; once released it is.
func TestClaimedPartitionsSkipped(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	r := newAERig(t, rng, 6, 200)
	var victim string
	for id := range r.nodes["n1"].shards {
		victim = id
		break
	}
	r.nodes["n1"].remove(victim)
	sid, _ := shard.ParseID(victim)
	other := &memClaims{mu: r.ae.cfg.Claims.(*memClaims).mu, held: r.ae.cfg.Claims.(*memClaims).held}
	name := fmt.Sprintf("ae/%03x", sid.Partition())
	if _, ok, _ := other.Claim(context.Background(), name); !ok {
		t.Fatal("claim")
	}
	f, rep := r.detect(t)
	if len(f) != 0 || rep.Skipped != 1 || rep.Examined != 0 {
		t.Fatalf("held partition: findings %v, report %+v", f, rep)
	}
	other.Release(context.Background(), name)
	if f, rep := r.detect(t); len(f) != 1 || rep.Examined != 1 {
		t.Fatalf("released partition: findings %v, report %+v", f, rep)
	}
}

// TestSweepWaitsForGrace: an unexpected shard is deleted only once it has
// been seen unexpected for the grace period on the sweeper's clock, and
// never while a record puts it on its node.
func TestSweepWaitsForGrace(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	r := newAERig(t, rng, 6, 50)
	orphan := shard.Info{ID: "0123456789abcdef0123456789abcdef.2", Size: 10, Hash: hashOf(rng)}
	r.nodes["n0"].add(orphan)
	ctx := context.Background()
	round := func() RoundReport {
		rep, err := r.ae.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := round(); rep.Unexpected != 1 || rep.Swept != 0 {
		t.Fatalf("first sight: %+v", rep)
	}
	r.now = r.now.Add(time.Hour - time.Second)
	if rep := round(); rep.Swept != 0 {
		t.Fatalf("swept before the grace period: %+v", rep)
	}
	// Rewritten with other content: timed again from now.
	orphan.Hash = hashOf(rng)
	r.nodes["n0"].add(orphan)
	r.now = r.now.Add(2 * time.Second)
	if rep := round(); rep.Swept != 0 {
		t.Fatalf("a rewritten shard kept its old timer: %+v", rep)
	}
	// Committed meanwhile: a record now puts it on n0 (its content is
	// then "wrong" against nothing: not swept).
	seg := metadata.Segment{ID: "0123456789abcdef0123456789abcdef", Size: 1, Profile: metadata.ECProfile{K: 4, M: 2, BlockSize: 1 << 20},
		Nodes: []string{"n1", "n2", "n0", "n3", "n4", "n5"}, ShardHashes: []string{"", "", orphan.Hash, "", "", ""}}
	r.meta.mu.Lock()
	r.meta.segs[seg.ID] = seg
	r.meta.mu.Unlock()
	r.now = r.now.Add(2 * time.Hour)
	round()
	if _, ok := r.nodes["n0"].shards[orphan.ID]; !ok {
		t.Fatal("a referenced shard was swept")
	}
	r.meta.mu.Lock()
	delete(r.meta.segs, seg.ID)
	r.meta.mu.Unlock()
	round() // timed from here
	r.now = r.now.Add(time.Hour)
	if rep := round(); rep.Swept != 1 {
		t.Fatalf("not swept after the grace period: %+v", rep)
	}
	if _, ok := r.nodes["n0"].shards[orphan.ID]; ok {
		t.Fatal("orphan still there")
	}
}

// TestUncommittedListsWaitForGrace: an uncommitted segment list is
// released once it has stayed unchanged for the grace period on the
// sweeper's clock; one that changed (rewritten) is timed again, and one
// committed meanwhile (gone from the list) is forgotten.
func TestUncommittedListsWaitForGrace(t *testing.T) {
	r := newAERig(t, rand.New(rand.NewPCG(8, 8)), 6, 10)
	r.meta.pending = []metadata.PendingChunks{{VersionID: "v1", Rev: 10}, {VersionID: "v2", Rev: 11}, {VersionID: "v3", Rev: 12}}
	round := func() RoundReport {
		rep, err := r.ae.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := round(); rep.SweptLists != 0 {
		t.Fatalf("released at first sight: %+v", rep)
	}
	r.now = r.now.Add(30 * time.Minute)
	r.meta.mu.Lock()
	r.meta.pending[1].Rev = 20          // v2 rewritten
	r.meta.pending = r.meta.pending[:2] // v3 committed
	r.meta.mu.Unlock()
	round()
	r.now = r.now.Add(31 * time.Minute)
	if rep := round(); rep.SweptLists != 1 || !slices.Equal(r.meta.released, []string{"v1"}) {
		t.Fatalf("after the grace: %+v, released %v (want v1 only)", rep, r.meta.released)
	}
	r.now = r.now.Add(30 * time.Minute)
	if rep := round(); rep.SweptLists != 1 || !slices.Equal(r.meta.released, []string{"v1", "v2"}) {
		t.Fatalf("v2 after its own grace: %+v, released %v", rep, r.meta.released)
	}
}

// relapsing hands out a new fence token on every Claim after the first:
// the claimer's lease lapsed and was renewed between two calls.
type relapsing struct {
	metadata.Claimer
	mu    sync.Mutex
	calls map[string]int
}

func (c *relapsing) Claim(ctx context.Context, name string) (metadata.Fence, bool, error) {
	f, ok, err := c.Claimer.Claim(ctx, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[name]++
	f.Token = int64(c.calls[name])
	return f, ok, err
}

// TestSweepFenced (#23 item 11): an orphan is not deleted when the
// sweeper's claim changed between its checks and the delete (a repairer
// elsewhere may have rebuilt the shard onto the node meanwhile); it is
// deleted in a later round under an unchanged claim.
func TestSweepFenced(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	r := newAERig(t, rng, 6, 20)
	orphan := shard.Info{ID: "0123456789abcdef0123456789abcdef.2", Size: 10, Hash: hashOf(rng)}
	r.nodes["n0"].add(orphan)
	ctx := context.Background()
	if _, err := r.ae.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	steady := r.ae.cfg.Claims
	r.ae.cfg.Claims = &relapsing{Claimer: steady, calls: map[string]int{}}
	r.now = r.now.Add(2 * time.Hour)
	rep, err := r.ae.RunOnce(ctx)
	if err != nil || rep.Swept != 0 {
		t.Fatalf("swept under a lapsed claim: %+v %v", rep, err)
	}
	if _, ok := r.nodes["n0"].shards[orphan.ID]; !ok {
		t.Fatal("orphan deleted under a lapsed claim")
	}
	r.ae.cfg.Claims = steady
	if rep, err := r.ae.RunOnce(ctx); err != nil || rep.Swept != 1 {
		t.Fatalf("not swept under a steady claim: %+v %v", rep, err)
	}
}

// TestRepairOncePerProcess (#23 item 11): the queue loop and
// anti-entropy share one Repairer and one (re-entrant) claimer; a segment
// this process is already repairing is not taken up a second time.
func TestRepairOncePerProcess(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	r := newAERig(t, rng, 7, 1)
	rep := r.ae.cfg.Repairer
	var seg metadata.Segment
	for _, s := range r.meta.segs {
		seg = s
	}
	claims := rep.cfg.Claims.(*memClaims)
	if !rep.busy.take(seg.ID) { // the queue loop is at it
		t.Fatal("busy set not empty")
	}
	before := claims.n
	n, err := rep.repair(context.Background(), assessed{plan: Plan{Segment: seg, Rebuild: map[int]string{0: "n6"}}})
	if n != 0 || err != nil || claims.n != before {
		t.Fatalf("second repair of a segment in one process: %d rebuilt, %v, %d claims taken", n, err, claims.n-before)
	}
	rep.busy.put(seg.ID)
	if !rep.busy.take(seg.ID) {
		t.Fatal("busy set not released")
	}
}

// fixedWindows is a cluster whose largest published commit window is w.
type fixedWindows time.Duration

func (f fixedWindows) MaxCommitWindow(context.Context, time.Time) (time.Duration, string, error) {
	return time.Duration(f), "gw-1", nil
}

// TestSweepHonoursPublishedWindows (#23 item 11): a gateway in another
// process with a commit window at least the orphan grace stops the sweep
// (reported in the round), since a shard it wrote may still be committed.
func TestSweepHonoursPublishedWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	r := newAERig(t, rng, 6, 20)
	orphan := shard.Info{ID: "0123456789abcdef0123456789abcdef.2", Size: 10, Hash: hashOf(rng)}
	r.nodes["n0"].add(orphan)
	ctx := context.Background()
	r.ae.cfg.Windows = fixedWindows(2 * time.Hour) // grace is 1 h
	if _, err := r.ae.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	r.now = r.now.Add(2 * time.Hour)
	rep, _ := r.ae.RunOnce(ctx)
	if rep.Swept != 0 || !strings.Contains(rep.Error, "commit window") {
		t.Fatalf("swept with a gateway's window above the grace: %+v", rep)
	}
	r.ae.cfg.Windows = fixedWindows(15 * time.Minute)
	if rep, err := r.ae.RunOnce(ctx); err != nil || rep.Swept != 1 {
		t.Fatalf("not swept with every window below the grace: %+v %v", rep, err)
	}
}
