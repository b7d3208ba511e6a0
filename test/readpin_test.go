package test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/storagenode/antientropy"
)

// TestSlowGetSurvivesOverwrite (#23 item 7): a GET that reads slowly
// while its object is overwritten and the released shards' grace ends is
// not cut: it pinned its segments, the collector defers their entry, and
// collects it once the GET is done.
func TestSlowGetSurvivesOverwrite(t *testing.T) {
	s := startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.ScrubInterval = -1, -1
		c.PinAfter = 200 * time.Millisecond
	})
	pins, ok := s.Store.(antientropy.Pins)
	if !ok {
		t.Fatal("the store keeps no read pins")
	}
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "pin", minio.MakeBucketOptions{}))
	old := randomBytes(30<<20, 7) // 6 parts of 5 MiB: 6 segments
	must(t)(c.PutObject(ctx, "pin", "big", bytes.NewReader(old), int64(len(old)), minio.PutObjectOptions{PartSize: 5 << 20}))

	obj, err := c.GetObject(ctx, "pin", "big", minio.GetObjectOptions{})
	noErr(t, err)
	defer obj.Close()
	h := sha256.New()
	// Read a little at a time until the gateway has pinned the version.
	buf := make([]byte, 32<<10)
	waitFor(t, "the GET pins its segments", 20*time.Second, func() bool {
		n, err := io.ReadFull(obj, buf)
		h.Write(buf[:n])
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		p, err := pins.Pinned(ctx)
		return err == nil && len(p) == 6
	})

	// Overwrite it; the collector, past its grace (0), must leave the
	// pinned segments alone.
	repl := randomBytes(1000, 8)
	must(t)(c.PutObject(ctx, "pin", "big", bytes.NewReader(repl), int64(len(repl)), minio.PutObjectOptions{}))
	gc := &antientropy.Collector{Meta: s.Store, Nodes: s.Gateway.Cluster, Grace: 0, Pins: pins}
	st, err := gc.RunOnce(ctx)
	if err != nil || st.Shards != 0 || st.Deferred < 6 {
		t.Fatalf("gc pass during the GET: %+v %v", st, err)
	}
	if _, err := io.Copy(h, obj); err != nil {
		t.Fatalf("GET cut after the overwrite: %v", err)
	}
	if want := sha256.Sum256(old); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("GET returned other bytes than the version it began reading")
	}
	obj.Close()
	// The GET done, its pin goes and the entry is collected.
	waitFor(t, "the pin ended", 10*time.Second, func() bool {
		p, err := pins.Pinned(ctx)
		return err == nil && len(p) == 0
	})
	if st, err := gc.RunOnce(ctx); err != nil || st.Entries == 0 || st.Shards == 0 {
		t.Fatalf("gc pass after the GET: %+v %v", st, err)
	}
}
