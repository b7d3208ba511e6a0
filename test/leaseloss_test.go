package test

import (
	"bytes"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/daemon"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
	"github.com/sherdstore/sherd/shard"
)

// TestHealingAfterLeaseLoss: every etcd lease is lost at once (as when
// etcd or the process stalls past the TTL: etcd expires them on its own
// clock). The healer's claimers make new leases, and shards deleted
// afterwards are rebuilt by anti-entropy. Before the fix the claimers kept
// their dead sessions, every round logged "requested lease not found" and
// nothing was healed until a restart.
func TestHealingAfterLeaseLoss(t *testing.T) {
	s := startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.Heal.AntiEntropyInterval, c.ScrubInterval = 200*time.Millisecond, time.Second, -1
	})
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "lease", minio.MakeBucketOptions{}))
	data := randomBytes(3<<20+17, 5)
	must(t)(c.PutObject(ctx, "lease", "obj", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{DisableMultipart: true}))

	cli, err := metaetcd.Dial(s.EtcdURL())
	noErr(t, err)
	defer cli.Close()
	leases, err := cli.Leases(ctx)
	noErr(t, err)
	if len(leases.Leases) == 0 {
		t.Fatal("no leases to lose")
	}
	for _, l := range leases.Leases {
		cli.Revoke(ctx, l.ID) // some may be gone already
	}
	h := s.Gateway.Healer
	waitFor(t, "every healer worker to have a new lease", 30*time.Second, func() bool {
		for _, lh := range h.Leases.Health() {
			if !lh.Live || lh.Lapses == 0 {
				return false
			}
		}
		return true
	})

	// Now damage the object: two shards of its 4+2 segment deleted.
	obj, err := s.Store.GetObject(ctx, "lease", "obj")
	noErr(t, err)
	rec, _, err := s.Store.GetSegment(ctx, obj.Segments[0].ID)
	noErr(t, err)
	for _, i := range []int{1, 4} {
		for _, n := range s.Nodes {
			if n != nil && n.ID == rec.Nodes[i] {
				noErr(t, n.Shards().Delete(ctx, shard.ID{Segment: rec.ID, Index: i}))
			}
		}
	}
	if fullyHealthy(t, s, "lease", "obj") {
		t.Fatal("the damage did not take")
	}
	waitFor(t, "anti-entropy to rebuild the two shards", 60*time.Second, func() bool { return fullyHealthy(t, s, "lease", "obj") })
	o, err := c.GetObject(ctx, "lease", "obj", minio.GetObjectOptions{})
	noErr(t, err)
	if !bytes.Equal(readAll(t, o), data) {
		t.Fatal("wrong bytes after healing")
	}
}
