package etcd_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/etcd"
)

// TestReadPins: pins written under a lease are seen by Pinned, deleted
// ones are not, a lapsed lease takes its pins with it, and one call is
// bounded in pins and names.
func TestReadPins(t *testing.T) {
	s, _, _ := newStore(t)
	lease, err := s.PinLease(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v := metadata.VersionPin("vid-1")
	if err := s.SetPins(ctx, lease, map[string][]string{"a": {"seg-1", "seg-2"}, "b": {v}}, nil); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Pinned(ctx); err != nil || len(p) != 3 || !p["seg-1"] || !p[v] {
		t.Fatalf("pinned %v, %v", p, err)
	}
	if err := s.SetPins(ctx, lease, nil, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pinned(ctx); len(p) != 1 || !p[v] {
		t.Fatalf("after deleting pin a: %v", p)
	}
	if err := s.RenewPinLease(ctx, lease); err != nil {
		t.Fatal(err)
	}
	// Bounds.
	big := map[string][]string{}
	for i := range etcd.PinMaxOps + 1 {
		big[fmt.Sprint(i)] = []string{"x"}
	}
	if err := s.SetPins(ctx, lease, big, nil); !errors.Is(err, metadata.ErrInvalid) {
		t.Fatalf("%d pins in one call: %v", len(big), err)
	}
	if err := s.SetPins(ctx, lease, map[string][]string{"c": make([]string, etcd.PinMaxIDs+1)}, nil); !errors.Is(err, metadata.ErrInvalid) {
		t.Fatalf("a pin of %d names: %v", etcd.PinMaxIDs+1, err)
	}
	// A revoked (lapsed) lease: its pins are gone, renewing fails.
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(lease)); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pinned(ctx); len(p) != 0 {
		t.Fatalf("pins outlived their lease: %v", p)
	}
	if err := s.RenewPinLease(ctx, lease); err == nil {
		t.Fatal("a lapsed lease renewed")
	}
}
