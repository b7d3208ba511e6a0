package client_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sherdstore/sherd/storagenode"
	"github.com/sherdstore/sherd/storagenode/client"
	"github.com/sherdstore/sherd/storagenode/storetest"
)

var clusterKey = []byte("test-cluster-key")

func serve(t *testing.T) (*storagenode.Store, *httptest.Server) {
	t.Helper()
	st, err := storagenode.Open(t.TempDir(), storagenode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(storagenode.NewServer(st, clusterKey, nil, nil))
	t.Cleanup(func() { srv.Close(); st.Close() })
	return st, srv
}

func TestClientConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storagenode.ShardStore {
		_, srv := serve(t)
		return client.New(srv.URL, clusterKey, srv.Client(), nil)
	})
}

func TestRejectsUnsignedAndMissigned(t *testing.T) {
	st, srv := serve(t)
	ctx := context.Background()
	id := storetest.ID(5, 5, 0)
	good := client.New(srv.URL, clusterKey, srv.Client(), nil)
	if _, err := good.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(1, 100))); err != nil {
		t.Fatal(err)
	}
	clients := map[string]*client.Client{
		"wrong key":   client.New(srv.URL, []byte("another-key"), srv.Client(), nil),
		"stale clock": client.New(srv.URL, clusterKey, srv.Client(), func() time.Time { return time.Now().Add(-time.Hour) }),
		"future":      client.New(srv.URL, clusterKey, srv.Client(), func() time.Time { return time.Now().Add(time.Hour) }),
	}
	for name, c := range clients {
		if _, err := c.Stat(ctx, id); !errors.Is(err, storagenode.ErrUnauthorized) {
			t.Errorf("%s: stat err %v", name, err)
		}
		if err := c.Delete(ctx, id); !errors.Is(err, storagenode.ErrUnauthorized) {
			t.Errorf("%s: delete err %v", name, err)
		}
		if _, err := c.Put(ctx, storetest.ID(6, 6, 0), storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(1, 100))); !errors.Is(err, storagenode.ErrUnauthorized) {
			t.Errorf("%s: put err %v", name, err)
		}
	}
	// Plain and tampered requests.
	for name, mk := range map[string]func() *http.Request{
		"unsigned": func() *http.Request {
			r, _ := http.NewRequest(http.MethodDelete, srv.URL+"/v1/shards/"+id.String(), nil)
			return r
		},
		"tampered path": func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/shards/"+id.String(), nil)
			storagenode.SignRequest(r, clusterKey, time.Now())
			r.URL.Path = "/v1/shards/" + storetest.ID(6, 6, 0).String()
			return r
		},
		"tampered method": func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/shards/"+id.String(), nil)
			storagenode.SignRequest(r, clusterKey, time.Now())
			r.Method = http.MethodDelete
			return r
		},
	} {
		resp, err := srv.Client().Do(mk())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: HTTP %d, want 403", name, resp.StatusCode)
		}
	}
	if _, err := st.Stat(ctx, id); err != nil {
		t.Fatalf("shard gone after rejected requests: %v", err)
	}
	if err := good.Health(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestFullNodeRefusesShards: below its reserve a node refuses new shards
// with ErrFull (507 on the wire), still reads what it has, and takes
// shards again once there is room; nothing is left in its tmp directory.
func TestFullNodeRefusesShards(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(reserve int64) (*storagenode.Store, storagenode.ShardStore) {
		st, err := storagenode.Open(dir, storagenode.Options{Reserve: reserve})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(storagenode.NewServer(st, clusterKey, nil, nil))
		t.Cleanup(srv.Close)
		return st, client.New(srv.URL, clusterKey, srv.Client(), nil)
	}
	st, c := open(0)
	kept := storetest.ID(1, 1, 0)
	if _, err := c.Put(ctx, kept, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(1, 5000))); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, c = open(1 << 62) // more than any disk: always below the reserve
	for _, put := range []func() error{
		func() error {
			_, err := c.Put(ctx, storetest.ID(2, 2, 0), storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(2, 5000)))
			return err
		},
		func() error {
			_, err := c.Replace(ctx, kept, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(1, 5000)), "")
			return err
		},
	} {
		if err := put(); !errors.Is(err, storagenode.ErrFull) {
			t.Fatalf("put on a full node: %v, want ErrFull", err)
		}
	}
	if _, err := c.Stat(ctx, kept); err != nil {
		t.Fatalf("a full node still reads: %v", err)
	}
	if _, err := c.Stat(ctx, storetest.ID(2, 2, 0)); !errors.Is(err, storagenode.ErrNotFound) {
		t.Fatalf("refused shard: %v, want ErrNotFound", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Fatalf("tmp holds %d files", len(ents))
	}
	st.Close()
	st, c = open(1) // room again
	defer st.Close()
	if _, err := c.Put(ctx, storetest.ID(2, 2, 0), storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(2, 5000))); err != nil {
		t.Fatal(err)
	}
}
