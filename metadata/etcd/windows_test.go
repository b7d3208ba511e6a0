package etcd_test

import (
	"context"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestCommitWindows: the largest fresh window a gateway published wins;
// stale ones do not count, and republishing replaces a gateway's own.
func TestCommitWindows(t *testing.T) {
	s, _, prefix := newStore(t)
	ctx := context.Background()
	now := time.Unix(2e9, 0)
	for _, p := range []struct {
		id string
		w  time.Duration
		at time.Time
	}{
		{"gw-a", 15 * time.Minute, now},
		{"gw-b", 3 * time.Hour, now.Add(-48 * time.Hour)}, // stale
		{"gw-c", 30 * time.Minute, now.Add(-time.Hour)},
	} {
		if err := s.PublishCommitWindow(ctx, p.id, p.w, p.at); err != nil {
			t.Fatal(err)
		}
	}
	w, who, err := s.MaxCommitWindow(ctx, now.Add(-24*time.Hour))
	if err != nil || w != 30*time.Minute || who != "gw-c" {
		t.Fatalf("max window %v of %q, %v; want 30m of gw-c", w, who, err)
	}
	if err := s.PublishCommitWindow(ctx, "gw-c", time.Minute, now); err != nil {
		t.Fatal(err)
	}
	if w, who, _ := s.MaxCommitWindow(ctx, now.Add(-24*time.Hour)); w != 15*time.Minute || who != "gw-a" {
		t.Fatalf("after republishing: %v of %q", w, who)
	}
	if err := s.PublishCommitWindow(ctx, "", time.Minute, now); err == nil {
		t.Fatal("empty gateway id accepted")
	}
	// Records not republished for 48 h go with the next publication
	// (gateway runs have ids of their own: restarts must not pile up).
	noErr := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	noErr(s.PublishCommitWindow(ctx, "gw-old", time.Hour, now.Add(-49*time.Hour)))
	noErr(s.PublishCommitWindow(ctx, "gw-a", 15*time.Minute, now))
	resp, err := cli.Get(ctx, prefix+"windows/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	noErr(err)
	var ids []string
	for _, kv := range resp.Kvs {
		ids = append(ids, string(kv.Key[len(prefix+"windows/"):]))
	}
	if want := []string{"gw-a", "gw-b", "gw-c"}; !slices.Equal(ids, want) {
		t.Fatalf("records after pruning: %v, want %v", ids, want)
	}
}
