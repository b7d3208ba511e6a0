package client_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/shard/storetest"
	"github.com/sherdstore/sherd/storagenode"
	"github.com/sherdstore/sherd/storagenode/client"
	"github.com/sherdstore/sherd/storagenode/wire"
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
	storetest.Run(t, func(t *testing.T) shard.Store {
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
		if _, err := c.Stat(ctx, id); !errors.Is(err, wire.ErrUnauthorized) {
			t.Errorf("%s: stat err %v", name, err)
		}
		if err := c.Delete(ctx, id); !errors.Is(err, wire.ErrUnauthorized) {
			t.Errorf("%s: delete err %v", name, err)
		}
		if _, err := c.Put(ctx, storetest.ID(6, 6, 0), storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(1, 100))); !errors.Is(err, wire.ErrUnauthorized) {
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
			wire.SignRequest(r, clusterKey, time.Now())
			r.URL.Path = "/v1/shards/" + storetest.ID(6, 6, 0).String()
			return r
		},
		"tampered method": func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/shards/"+id.String(), nil)
			wire.SignRequest(r, clusterKey, time.Now())
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

// A signed GET is bound to everything that changes its answer: an on-path
// party that changes its Range (or adds one, or splits it, or drops it),
// adds or alters an X-Sherd-* header, or changes the Host gets 403, not
// other bytes of the shard.
func TestSignatureCoversRangeAndHeaders(t *testing.T) {
	_, srv := serve(t)
	ctx := context.Background()
	id := storetest.ID(7, 7, 0)
	shard := storetest.MakeShard(7, 20000)
	good := client.New(srv.URL, clusterKey, srv.Client(), nil)
	if _, err := good.Put(ctx, id, storetest.BlockLen(), bytes.NewReader(shard)); err != nil {
		t.Fatal(err)
	}
	signed := func(rng string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/shards/"+id.String(), nil)
		if rng != "" {
			r.Header.Set("Range", rng)
		}
		wire.SignRequest(r, clusterKey, time.Now())
		return r
	}
	do := func(r *http.Request) (int, []byte) {
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// Untouched, a signed range read works.
	if code, b := do(signed("bytes=0-9")); code != http.StatusPartialContent || !bytes.Equal(b, shard[:10]) {
		t.Fatalf("signed range read: HTTP %d, %d bytes", code, len(b))
	}
	for name, tamper := range map[string]func(r *http.Request){
		"range changed":        func(r *http.Request) { r.Header.Set("Range", "bytes=10000-10009") },
		"range dropped":        func(r *http.Request) { r.Header.Del("Range") },
		"range split":          func(r *http.Request) { r.Header["Range"] = []string{"bytes=0-9", "bytes=10000-10009"} },
		"x-sherd header added": func(r *http.Request) { r.Header.Set("X-Sherd-Verified", "2020-01-01T00:00:00Z") },
		"content hash changed": func(r *http.Request) { r.Header.Set(wire.HeaderContentHash, "0000") },
		"host changed":         func(r *http.Request) { r.Host = "node-b.example:7001" },
	} {
		r := signed("bytes=0-9")
		tamper(r)
		if code, b := do(r); code != http.StatusForbidden {
			t.Errorf("%s: HTTP %d (%d bytes), want 403", name, code, len(b))
		}
	}
	if code, b := do(func() *http.Request { r := signed(""); r.Header.Set("Range", "bytes=10000-10009"); return r }()); code != http.StatusForbidden {
		t.Errorf("range added: HTTP %d (%d bytes), want 403", code, len(b))
	}
}

// A node bound to its advertised host refuses requests addressed to
// another (a request signed for node A and delivered to node B), and
// signatures of the release before version 2 unless asked to accept them
// during an upgrade.
func TestNodeBoundToItsHost(t *testing.T) {
	ctx := context.Background()
	id := storetest.ID(8, 8, 0)
	type node struct {
		st  *storagenode.Store
		srv *httptest.Server
	}
	start := func(acceptV1 bool) node {
		st, err := storagenode.Open(t.TempDir(), storagenode.Options{})
		if err != nil {
			t.Fatal(err)
		}
		api := storagenode.NewServer(st, clusterKey, nil, nil)
		srv := httptest.NewUnstartedServer(api)
		api.RequireHost(srv.Listener.Addr().String())
		if acceptV1 {
			api.AcceptV1Signatures()
		}
		srv.Start()
		t.Cleanup(func() { srv.Close(); st.Close() })
		if _, err := client.New(srv.URL, clusterKey, srv.Client(), nil).Put(ctx, id, storetest.BlockLen(), bytes.NewReader(storetest.MakeShard(8, 5000))); err != nil {
			t.Fatal(err)
		}
		return node{st, srv}
	}
	a, b := start(false), start(false)
	for _, host := range []string{a.srv.Listener.Addr().String(), b.srv.Listener.Addr().String()} {
		r, _ := http.NewRequest(http.MethodDelete, a.srv.URL+"/v1/shards/"+id.String(), nil)
		wire.SignRequest(r, clusterKey, time.Now())
		r.URL.Host = b.srv.Listener.Addr().String()
		r.Host = host
		resp, err := b.srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("request for A delivered to B with Host %s: HTTP %d, want 403", host, resp.StatusCode)
		}
	}
	if _, err := b.st.Stat(ctx, id); err != nil {
		t.Fatalf("B lost its shard: %v", err)
	}

	// A version 1 signature (method, path, query, date, content hash).
	v1 := func(n node) *http.Request {
		r, _ := http.NewRequest(http.MethodHead, n.srv.URL+"/v1/shards/"+id.String(), nil)
		date := fmt.Sprint(time.Now().Unix())
		r.Header.Set(wire.HeaderDate, date)
		r.Header.Set(wire.HeaderContentHash, wire.UnsignedPayload)
		m := hmac.New(sha256.New, clusterKey)
		fmt.Fprintf(m, "%s\n%s\n%s\n%s\n%s", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, date, wire.UnsignedPayload)
		r.Header.Set("Authorization", "Sherd-HMAC-SHA256 "+hex.EncodeToString(m.Sum(nil)))
		return r
	}
	status := func(r *http.Request) int {
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := status(v1(a)); code != http.StatusForbidden {
		t.Fatalf("version 1 signature: HTTP %d, want 403", code)
	}
	if code := status(v1(start(true))); code != http.StatusOK {
		t.Fatalf("version 1 signature, accepted for an upgrade: HTTP %d, want 200", code)
	}
}

// TestFullNodeRefusesShards: below its reserve a node refuses new shards
// with ErrFull (507 on the wire), still reads what it has, and takes
// shards again once there is room; nothing is left in its tmp directory.
func TestFullNodeRefusesShards(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(reserve int64) (*storagenode.Store, shard.Store) {
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
		if err := put(); !errors.Is(err, shard.ErrFull) {
			t.Fatalf("put on a full node: %v, want ErrFull", err)
		}
	}
	if _, err := c.Stat(ctx, kept); err != nil {
		t.Fatalf("a full node still reads: %v", err)
	}
	if _, err := c.Stat(ctx, storetest.ID(2, 2, 0)); !errors.Is(err, shard.ErrNotFound) {
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
