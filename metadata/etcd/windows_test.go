package etcd_test

import (
	"context"
	"testing"
	"time"
)

// TestCommitWindows: the largest fresh window a gateway published wins;
// stale ones do not count, and republishing replaces a gateway's own.
func TestCommitWindows(t *testing.T) {
	s, _, _ := newStore(t)
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
}
