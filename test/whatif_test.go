package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sherdstore/sherd/internal/daemon"
)

// TestWhatIfMatchesBruteForce: `sherdctl what-if --lose` predicts, from
// metadata alone, which objects losing two nodes would make unreadable.
// Then the two nodes are really stopped and every object is read: exactly
// the predicted ones fail. Objects mix full segments (6 of 6 shards
// recorded: at the edge after losing 2) with segments written while a
// node was down (5 of 6: unreadable after losing 2 others), an empty
// object (no shards: never at risk), and a
// multipart object with one degraded part among full ones.
func TestWhatIfMatchesBruteForce(t *testing.T) {
	bin := buildSherd(t, t.TempDir())
	ctl := filepath.Join(filepath.Dir(bin), "sherdctl")
	s := startServerWith(t, "", func(c *daemon.ServerConfig) { c.Heal.Interval, c.ScrubInterval, c.MinPartSize = -1, -1, 4096 })
	c := minioClient(t, s.Gateway.URL, false)
	noErr(t, c.MakeBucket(ctx, "whatif", minio.MakeBucketOptions{}))
	objects := map[string][]byte{}
	put := func(key string, size int) {
		objects[key] = randomBytes(size, uint64(len(objects)+1))
		must(t)(c.PutObject(ctx, "whatif", key, bytes.NewReader(objects[key]), int64(size), minio.PutObjectOptions{DisableMultipart: true}))
	}
	for i := range 5 {
		put(fmt.Sprintf("full-%d", i), 1000+i*30_000)
	}
	put("empty", 0)
	core := minio.Core{Client: c}
	uid, err := core.NewMultipartUpload(ctx, "whatif", "mixed", minio.PutObjectOptions{})
	noErr(t, err)
	var mixed []byte
	var parts []minio.CompletePart
	part := func(n int) {
		b := randomBytes(5000, uint64(900+n))
		mixed = append(mixed, b...)
		p, err := core.PutObjectPart(ctx, "whatif", "mixed", uid, n, bytes.NewReader(b), int64(len(b)), minio.PutObjectPartOptions{})
		noErr(t, err)
		parts = append(parts, minio.CompletePart{PartNumber: n, ETag: p.ETag})
	}
	part(1)
	noErr(t, s.StopNode(5)) // node-6 down: what is written now has 5 of 6 shards
	waitFor(t, "5 live nodes", 10*time.Second, func() bool { return liveCount(s) == 5 })
	for i := range 3 {
		put(fmt.Sprintf("degraded-%d", i), 2000+i*50_000)
	}
	part(2)
	noErr(t, s.RestartNode(ctx, 5))
	waitFor(t, "6 live nodes", 10*time.Second, func() bool { return liveCount(s) == 6 })
	part(3)
	must(t)(core.CompleteMultipartUpload(ctx, "whatif", "mixed", uid, parts, minio.PutObjectOptions{}))
	objects["mixed"] = mixed

	out, err := exec.Command(ctl, "what-if", "--etcd", s.EtcdURL(), "--lose", "node-1,node-2", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("what-if: %v\n%s", err, out)
	}
	var rep struct {
		Objects, Unreadable, Edge int
		Examples                  []string `json:"unreadable_examples"`
	}
	noErr(t, json.Unmarshal(out, &rep))
	t.Logf("what-if: %s", out)

	// Brute force: lose them for real and read everything.
	noErr(t, s.StopNode(0))
	noErr(t, s.StopNode(1))
	waitFor(t, "4 live nodes", 10*time.Second, func() bool { return liveCount(s) == 4 })
	failed := map[string]bool{}
	for key, want := range objects {
		o, err := c.GetObject(ctx, "whatif", key, minio.GetObjectOptions{})
		if err == nil {
			var got []byte
			got, err = io.ReadAll(o)
			if err == nil && !bytes.Equal(got, want) {
				t.Fatalf("%s: wrong bytes", key)
			}
		}
		if err != nil {
			failed["whatif/"+key] = true
		}
	}
	if rep.Objects != len(objects) || rep.Unreadable != len(failed) || rep.Unreadable != 4 || rep.Edge != 5 {
		t.Fatalf("what-if said %d objects, %d unreadable, %d at the edge; reading with node-1 and node-2 down failed %d: %v",
			rep.Objects, rep.Unreadable, rep.Edge, len(failed), failed)
	}
	for _, k := range rep.Examples {
		if !failed[k] {
			t.Fatalf("what-if named %s unreadable, but it read back", k)
		}
	}

	// Bad input: an unknown node is refused with a clear error.
	out, err = exec.Command(ctl, "what-if", "--etcd", s.EtcdURL(), "--lose", "node-99").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), `unknown node "node-99"`) {
		t.Fatalf("unknown node: %v\n%s", err, out)
	}
}
