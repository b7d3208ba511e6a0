package gateway

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sherdstore/sherd/metadata"
)

// TestPinNames: a read pins its inline segments by id and an out-of-line
// list by its version, so a pin never names more than pinMaxIDs things
// whatever the object's size.
func TestPinNames(t *testing.T) {
	segs := func(n int) []metadata.Segment {
		s := make([]metadata.Segment, n)
		for i := range s {
			s[i].ID = fmt.Sprintf("s%d", i)
		}
		return s
	}
	for _, c := range []struct {
		name string
		obj  metadata.Object
		want []string
	}{
		{"empty", metadata.Object{VersionID: "v"}, []string{}},
		{"inline", metadata.Object{VersionID: "v", Segments: segs(3)}, []string{"s0", "s1", "s2"}},
		{"out of line", metadata.Object{VersionID: "v", Segments: segs(10000), SegmentChunks: 10}, []string{metadata.VersionPin("v")}},
		{"long inline list", metadata.Object{VersionID: "v", Segments: segs(pinMaxIDs + 1)}, []string{metadata.VersionPin("v")}},
	} {
		if got := pinNames(c.obj); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestPlanPins: reads in flight for PinAfter get a pin, ended reads lose
// theirs, nothing else is touched, and one batch is bounded.
func TestPlanPins(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	after := time.Minute
	reads := map[uint64]*pinRead{
		1: {start: t0},                                // long: pin
		2: {start: t0.Add(59 * time.Second)},          // young: wait
		3: {start: t0, written: true},                 // pinned: keep
		4: {start: t0, written: true, ended: true},    // ended: unpin
		5: {start: t0.Add(-time.Hour)},                // long: pin
		6: {start: t0.Add(-time.Hour), written: true}, // pinned: keep
	}
	put, del := planPins(reads, t0.Add(time.Minute), after, 100)
	if !slices.Equal(put, []uint64{1, 5}) || !slices.Equal(del, []uint64{4}) {
		t.Fatalf("put %v del %v", put, del)
	}
	put, del = planPins(reads, t0.Add(time.Minute), after, 2)
	if len(put)+len(del) != 2 || !slices.Equal(put, []uint64{1}) || !slices.Equal(del, []uint64{4}) {
		t.Fatalf("limit 2: put %v del %v", put, del)
	}
}
