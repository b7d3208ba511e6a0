package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	clientv3 "go.etcd.io/etcd/client/v3"

	sherdcluster "github.com/sherdstore/sherd/cluster"
	"github.com/sherdstore/sherd/internal/clustertls"
	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/metadata"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
	"github.com/sherdstore/sherd/repair"
	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode/client"
)

// putWatch counts, across every repairer, the Puts of each shard in
// flight, and remembers the most ever seen at once.
type putWatch struct {
	mu       sync.Mutex
	inFlight map[string]int
	most     int
}

type watchedStore struct {
	shard.Store
	w *putWatch
}

// Replace is how a repair writes a shard.
func (s watchedStore) Replace(ctx context.Context, id shard.ID, blockLen int, r io.Reader, want string) (shard.Info, error) {
	defer s.watch(id)()
	return s.Store.Replace(ctx, id, blockLen, r, want)
}

func (s watchedStore) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	defer s.watch(id)()
	return s.Store.Put(ctx, id, blockLen, r)
}

// watch counts a write of id in flight until the returned func is called.
func (s watchedStore) watch(id shard.ID) func() {
	s.w.mu.Lock()
	s.w.inFlight[id.String()]++
	s.w.most = max(s.w.most, s.w.inFlight[id.String()])
	s.w.mu.Unlock()
	return func() {
		s.w.mu.Lock()
		s.w.inFlight[id.String()]--
		s.w.mu.Unlock()
	}
}

// repairProcess is a repairer as a separate process would run it: its own
// etcd client (so it can die without a word), cluster view and claims.
type repairProcess struct {
	cli *clientv3.Client
	cl  *sherdcluster.Cluster
	r   *repair.Repairer
}

func startRepairProcess(t *testing.T, s *daemon.Server, w *putWatch, rate float64) *repairProcess {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.EtcdURL()}, DialTimeout: 5 * time.Second})
	noErr(t, err)
	store := metaetcd.New(cli, metaetcd.Options{})
	hc, err := clustertls.NodeClient(s.Key, "")
	noErr(t, err)
	cl := sherdcluster.New(sherdcluster.Config{Dial: func(n metadata.Node) shard.Store {
		return watchedStore{client.New(n.Address, s.Key, hc, nil), w}
	}, Records: store})
	t.Cleanup(func() { cl.Close() })
	noErr(t, cl.Watch(store))
	claims, err := store.NewClaimer(context.Background(), "test repairer", time.Second)
	noErr(t, err)
	t.Cleanup(func() { claims.Close() })
	r, err := repair.New(repair.Config{Meta: store, Cluster: cl, Claims: claims, Rate: rate})
	noErr(t, err)
	return &repairProcess{cli: cli, cl: cl, r: r}
}

// TestRepairerKilledMidRepair: a repairer dies in the middle of a slow
// rebuild (its etcd client gone without revoking its lease, its work
// cancelled). Another repairer waits while the dead one's claim stands,
// never rebuilds a shard at the same time as it, then resumes once the
// lease runs out: everything is rebuilt and nothing is lost.
func TestRepairerKilledMidRepair(t *testing.T) {
	s := startServer(t, "") // the gateway's own repairer is off
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "kill", minio.MakeBucketOptions{}))
	noErr(t, s.StopNode(4))
	waitFor(t, "5 live nodes", 10*time.Second, func() bool { return liveCount(s) == 5 })
	objects := map[string][]byte{}
	for i := range 3 {
		key := fmt.Sprintf("k%d", i)
		objects[key] = randomBytes(2<<20, uint64(40+i))
		must(t)(c.PutObject(ctx, "kill", key, bytes.NewReader(objects[key]), int64(len(objects[key])), minio.PutObjectOptions{}))
	}
	waitFor(t, "3 repair entries", 10*time.Second, func() bool {
		rs, _ := s.Store.ListRepairs(ctx, 10)
		return len(rs) == 3
	})
	noErr(t, s.RestartNode(ctx, 4))
	waitFor(t, "6 live nodes", 10*time.Second, func() bool { return liveCount(s) == 6 })

	w := &putWatch{inFlight: map[string]int{}}
	slow := startRepairProcess(t, s, w, 256<<10) // 2 MiB segments: seconds each
	actx, kill := context.WithCancel(context.Background())
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		slow.r.RunOnce(actx)
	}()
	// Wait until it holds a claim and is rebuilding, then kill it.
	look, err := clientv3.New(clientv3.Config{Endpoints: []string{s.EtcdURL()}, DialTimeout: 5 * time.Second})
	noErr(t, err)
	defer look.Close()
	waitFor(t, "the slow repairer at work", 10*time.Second, func() bool {
		resp, err := look.Get(ctx, metaetcd.DefaultPrefix+"claims/repair/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count > 0
	})
	claimed, err := look.Get(ctx, metaetcd.DefaultPrefix+"claims/repair/", clientv3.WithPrefix())
	noErr(t, err)
	killedAt := time.Now()
	slow.cli.Close() // no revoke: its lease runs out on etcd's clock
	kill()
	held := string(claimed.Kvs[0].Key)[len(metaetcd.DefaultPrefix+"claims/repair/"):]

	// While the dead repairer's lease lives, its segment is left alone.
	fast := startRepairProcess(t, s, w, 0)
	fast.r.RunOnce(ctx)
	if resp, _ := look.Get(ctx, string(claimed.Kvs[0].Key)); len(resp.Kvs) == 1 {
		rs, _ := s.Store.ListRepairs(ctx, 10)
		if !slices.ContainsFunc(rs, func(e metadata.RepairEntry) bool { return e.Segment.ID == held }) {
			t.Fatal("the second repairer took a segment whose claim was still held")
		}
		t.Logf("second repairer's first pass, %v after the kill: the claimed segment was left alone", time.Since(killedAt))
	} else {
		t.Fatalf("the claim expired before the second repairer looked (%v after the kill): nothing tested", time.Since(killedAt))
	}
	<-slowDone
	start := time.Now()
	waitFor(t, "the queue healed by the second repairer", 30*time.Second, func() bool {
		fast.r.RunOnce(ctx)
		return repairBacklog(t, s) == 0
	})
	t.Logf("resumed and finished %v after the kill (%v after the second repairer started)", time.Since(killedAt), time.Since(start))
	if w.most != 1 {
		t.Fatalf("a shard was being rebuilt by %d repairers at once", w.most)
	}
	for key, want := range objects {
		if !fullyHealthy(t, s, "kill", key) {
			t.Fatalf("%s: not fully rebuilt", key)
		}
		o, err := c.GetObject(ctx, "kill", key, minio.GetObjectOptions{})
		noErr(t, err)
		if !bytes.Equal(readAll(t, o), want) {
			t.Fatalf("%s: wrong bytes", key)
		}
	}
}
