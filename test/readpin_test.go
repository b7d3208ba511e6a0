package test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/daemon"
	"github.com/sherdstore/sherd/repair"
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
	pins, ok := s.Store.(repair.Pins)
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
	gc := &repair.Collector{Meta: s.Store, Nodes: s.Gateway.Cluster, Grace: 0, Pins: pins}
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

// TestReadPinOutlivesClientPause (#23 item 7, review): a GET whose client
// stops reading for longer than the pin's TTL keeps its pin (the gateway
// renews it on a timer, not on the client's reads), and an object of 40
// segments (an out-of-line list) is pinned by one name, its version.
// Before: the pin was renewed only on writes and lapsed during a 7 s
// pause, the collector then deleted what the GET read and it was cut
// with unexpected EOF; the pin held all 40 segment ids.
func TestReadPinOutlivesClientPause(t *testing.T) {
	s := startServerWith(t, "", func(c *daemon.ServerConfig) {
		c.Heal.Interval, c.ScrubInterval = -1, -1
		c.PinAfter = time.Second // lease TTL 5 s (etcd's floor here)
		c.MinPartSize = 1 << 20
	})
	pins := s.Store.(repair.Pins)
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "pin", minio.MakeBucketOptions{}))
	core := minio.Core{Client: c}
	uid, err := core.NewMultipartUpload(ctx, "pin", "forty", minio.PutObjectOptions{})
	noErr(t, err)
	var old []byte
	var parts []minio.CompletePart
	for i := 1; i <= 40; i++ {
		part := randomBytes(1<<20, uint64(900+i))
		old = append(old, part...)
		p, err := core.PutObjectPart(ctx, "pin", "forty", uid, i, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{})
		noErr(t, err)
		parts = append(parts, minio.CompletePart{PartNumber: i, ETag: p.ETag})
	}
	must(t)(core.CompleteMultipartUpload(ctx, "pin", "forty", uid, parts, minio.PutObjectOptions{}))

	obj, err := c.GetObject(ctx, "pin", "forty", minio.GetObjectOptions{})
	noErr(t, err)
	defer obj.Close()
	h := sha256.New()
	buf := make([]byte, 32<<10)
	var pinned map[string]bool
	waitFor(t, "the GET pins its version", 20*time.Second, func() bool {
		n, err := io.ReadFull(obj, buf)
		h.Write(buf[:n])
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		pinned, err = pins.Pinned(ctx)
		return err == nil && len(pinned) > 0
	})
	if len(pinned) != 1 {
		t.Fatalf("a read of 40 segments pinned %d names, want its version alone", len(pinned))
	}
	// The client pauses past the lease's TTL (the pause is the scenario,
	// not a wait for a condition).
	time.Sleep(7 * time.Second)
	if p, err := pins.Pinned(ctx); err != nil || len(p) != 1 {
		t.Fatalf("after a 7 s client pause the pins are %v (%v)", p, err)
	}
	repl := randomBytes(1000, 8)
	must(t)(c.PutObject(ctx, "pin", "forty", bytes.NewReader(repl), int64(len(repl)), minio.PutObjectOptions{}))
	gc := &repair.Collector{Meta: s.Store, Nodes: s.Gateway.Cluster, Grace: 0, Pins: pins}
	if st, err := gc.RunOnce(ctx); err != nil || st.Shards != 0 {
		t.Fatalf("gc pass during the GET: %+v %v", st, err)
	}
	if _, err := io.Copy(h, obj); err != nil {
		t.Fatalf("GET cut after the overwrite: %v", err)
	}
	if want := sha256.Sum256(old); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("GET returned other bytes than the version it began reading")
	}
	obj.Close()
	waitFor(t, "the pin ended", 10*time.Second, func() bool {
		p, err := pins.Pinned(ctx)
		return err == nil && len(p) == 0
	})
	if st, err := gc.RunOnce(ctx); err != nil || st.Shards == 0 {
		t.Fatalf("gc pass after the GET: %+v %v", st, err)
	}
}
