package daemon

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/shard/storetest"
	"github.com/sherdstore/sherd/storagenode"
)

// The in-process transport passes the shard store conformance suite, like
// the store itself and the HTTP client.
func TestLocalShardsConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) shard.Store {
		st, err := storagenode.Open(t.TempDir(), storagenode.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		l := newLocalNodes()
		l.set("n1", st)
		s, ok := l.dial("n1")
		if !ok {
			t.Fatal("dial: not local")
		}
		return s
	})
}

// A stopped node answers like one nothing listens for; a restarted one is
// reached again through the same transport value; unknown nodes are not
// local.
func TestLocalShardsStoppedNode(t *testing.T) {
	l := newLocalNodes()
	if _, ok := l.dial("n1"); ok {
		t.Fatal("unknown node dialled locally")
	}
	st, err := storagenode.Open(t.TempDir(), storagenode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l.set("n1", st)
	s, _ := l.dial("n1")
	id := storetest.ID(7, 1, 0)
	ctx := context.Background()
	l.set("n1", nil)
	if _, err := s.Stat(ctx, id); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("stopped node: %v, want ECONNREFUSED", err)
	}
	if err := s.(interface{ Health(context.Context) error }).Health(ctx); err == nil {
		t.Fatal("stopped node healthy")
	}
	l.set("n1", st)
	if _, err := s.Stat(ctx, id); !errors.Is(err, shard.ErrNotFound) {
		t.Fatalf("restarted node: %v, want ErrNotFound", err)
	}
}
