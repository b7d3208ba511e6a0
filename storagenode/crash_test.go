package storagenode_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/shard/storetest"
	"github.com/sherdstore/sherd/storagenode"
	"github.com/sherdstore/sherd/storagenode/client"
)

const crashEnv = "SHERD_CRASH_NODE_DIR"

// TestMain doubles as the node process of TestCrashSIGKILL.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		runCrashNode(dir)
		return
	}
	os.Exit(m.Run())
}

// runCrashNode serves a store in dir until killed, or for two minutes at
// most, so a lost parent never leaves it behind.
func runCrashNode(dir string) {
	st, err := storagenode.Open(dir, storagenode.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(1)
	}
	tmp := filepath.Join(dir, "addr.tmp")
	os.WriteFile(tmp, []byte(ln.Addr().String()), 0o600)
	os.Rename(tmp, filepath.Join(dir, "addr"))
	time.AfterFunc(2*time.Minute, func() { os.Exit(3) })
	http.Serve(ln, storagenode.NewServer(st, clusterKey, nil, nil))
}

var clusterKey = []byte("crash-test-key")

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var addr []byte
	waitFor(t, "node address", 30*time.Second, func() bool {
		addr, _ = os.ReadFile(filepath.Join(dir, "addr"))
		return len(addr) > 0
	})
	c := client.New("http://"+string(addr), clusterKey, &http.Client{Timeout: 10 * time.Second}, nil)
	ctx := context.Background()

	// Acknowledged state per id: the hash acknowledged last, "" for an
	// acknowledged delete. Ids with an unanswered operation are uncertain.
	var mu sync.Mutex
	acked := map[string]string{}
	uncertain := map[string]bool{}
	ackCount := 0
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			var mine []shard.ID
			for i := 0; ; i++ {
				var id shard.ID
				var err error
				var hash string
				switch op := rng.IntN(10); {
				case op < 7 || len(mine) == 0: // new shard
					id = storetest.ID(rng.Uint32N(1<<20), w<<20|i, rng.IntN(6))
					var info shard.Info
					info, err = c.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(uint64(w<<20|i), rng.IntN(20000))))
					hash = info.Hash
					mine = append(mine, id)
				case op < 9: // overwrite
					id = mine[rng.IntN(len(mine))]
					var info shard.Info
					info, err = c.Replace(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(uint64(i), rng.IntN(20000))), "")
					hash = info.Hash
				default: // delete
					id = mine[rng.IntN(len(mine))]
					err = c.Delete(ctx, id)
				}
				mu.Lock()
				if err != nil {
					uncertain[id.String()] = true
					mu.Unlock()
					return // the node is gone
				}
				acked[id.String()] = hash
				ackCount++
				mu.Unlock()
			}
		}()
	}
	waitFor(t, "400 acknowledged operations", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ackCount >= 400
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	wg.Wait()

	st, err := storagenode.Open(dir, storagenode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := st.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("after SIGKILL the index does not match the files: %+v", rep)
	}
	lost := 0
	for id, hash := range acked {
		if uncertain[id] {
			continue
		}
		sid, _ := shard.ParseID(id)
		info, err := st.Stat(ctx, sid)
		switch {
		case hash == "" && err == nil:
			t.Errorf("%s: acknowledged delete undone", id)
		case hash != "" && (err != nil || info.Hash != hash):
			lost++
			t.Errorf("%s: acknowledged write lost: %+v %v", id, info, err)
		}
	}
	// Every readable shard reads back whole and verified.
	err = st.Walk(ctx, func(info shard.Info) error {
		sid, _ := shard.ParseID(info.ID)
		rc, err := st.Open(ctx, sid, 0, -1)
		if err != nil {
			return err
		}
		defer rc.Close()
		var sink bytes.Buffer
		_, err = erasure.CopyRecords(&sink, rc, info.BlockLen)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d operations acknowledged before SIGKILL, %d shards after restart, %d in flight, %d lost", ackCount, rep.Shards, len(uncertain), lost)
}
