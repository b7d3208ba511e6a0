package lifecycle

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sherdstore/sherd/metadata"
)

func day(n int) time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n) }

func TestDueAfter(t *testing.T) {
	for _, c := range []struct {
		created time.Time
		days    int
		want    time.Time
	}{
		{day(0), 1, day(1)},                       // midnight + 1 day is midnight
		{day(0).Add(time.Second), 1, day(2)},      // rounded up to the next midnight
		{day(0).Add(23 * time.Hour), 30, day(31)}, // 30 days later, then midnight
		{day(5).Add(-time.Nanosecond), 0, day(5)}, // no days: the next midnight
		{day(0).In(time.FixedZone("x", 3600)), 1, day(1)},
	} {
		if got := dueAfter(c.created, c.days); !got.Equal(c.want) {
			t.Errorf("dueAfter(%v, %d) = %v, want %v", c.created, c.days, got, c.want)
		}
	}
}

func ver(key, id string, created time.Time, dm bool, size int64, tags map[string]string) metadata.Object {
	o := metadata.Object{Key: key, VersionID: id, Seq: 1, ModTime: created, DeleteMarker: dm, Size: size, Tags: tags, ETag: "etag-" + id}
	if id == "null" {
		o.Seq = 0
	}
	return o
}

func TestPlanKey(t *testing.T) {
	expire30 := metadata.LifecycleRule{ID: "exp", Enabled: true, ExpireDays: 30}
	logs := metadata.LifecycleRule{ID: "logs", Enabled: true, ExpireDays: 1, Filter: metadata.LifecycleFilter{Prefix: "logs/"}}
	tagged := metadata.LifecycleRule{ID: "tmp", Enabled: true, ExpireDays: 1, Filter: metadata.LifecycleFilter{Tags: map[string]string{"tmp": "yes"}}}
	big := metadata.LifecycleRule{ID: "big", Enabled: true, ExpireDays: 1, Filter: metadata.LifecycleFilter{SizeGT: 100, SizeLT: 1000}}
	date := metadata.LifecycleRule{ID: "date", Enabled: true, ExpireDate: day(10)}
	noncurrent := metadata.LifecycleRule{ID: "nc", Enabled: true, NoncurrentDays: 7, NewerNoncurrent: 1}
	dms := metadata.LifecycleRule{ID: "dm", Enabled: true, ExpiredDeleteMarker: true}
	off := expire30
	off.Enabled = false
	for _, c := range []struct {
		name     string
		rules    []metadata.LifecycleRule
		versions []metadata.Object
		now      time.Time
		want     []string
	}{
		{"not yet due", []metadata.LifecycleRule{expire30}, []metadata.Object{ver("k", "null", day(0), false, 1, nil)}, day(29), nil},
		{"due", []metadata.LifecycleRule{expire30}, []metadata.Object{ver("k", "null", day(0), false, 1, nil)}, day(30), []string{"expire k etag-null"}},
		{"disabled", []metadata.LifecycleRule{off}, []metadata.Object{ver("k", "null", day(0), false, 1, nil)}, day(90), nil},
		{"prefix miss", []metadata.LifecycleRule{logs}, []metadata.Object{ver("data/x", "null", day(0), false, 1, nil)}, day(90), nil},
		{"prefix hit", []metadata.LifecycleRule{logs}, []metadata.Object{ver("logs/x", "null", day(0), false, 1, nil)}, day(1), []string{"expire logs/x etag-null"}},
		{"tag miss", []metadata.LifecycleRule{tagged}, []metadata.Object{ver("k", "null", day(0), false, 1, map[string]string{"tmp": "no"})}, day(5), nil},
		{"tag hit", []metadata.LifecycleRule{tagged}, []metadata.Object{ver("k", "null", day(0), false, 1, map[string]string{"tmp": "yes", "x": "y"})}, day(5), []string{"expire k etag-null"}},
		{"size below", []metadata.LifecycleRule{big}, []metadata.Object{ver("k", "null", day(0), false, 100, nil)}, day(5), nil},
		{"size within", []metadata.LifecycleRule{big}, []metadata.Object{ver("k", "null", day(0), false, 101, nil)}, day(5), []string{"expire k etag-null"}},
		{"size above", []metadata.LifecycleRule{big}, []metadata.Object{ver("k", "null", day(0), false, 1000, nil)}, day(5), nil},
		{"date before", []metadata.LifecycleRule{date}, []metadata.Object{ver("k", "null", day(0), false, 1, nil)}, day(9), nil},
		{"date reached", []metadata.LifecycleRule{date}, []metadata.Object{ver("k", "null", day(0), false, 1, nil)}, day(10), []string{"expire k etag-null"}},
		{"two rules, one action", []metadata.LifecycleRule{expire30, date}, []metadata.Object{ver("k", "null", day(0), false, 1, nil)}, day(40), []string{"expire k etag-null"}},
		{"latest is a delete marker: nothing to expire", []metadata.LifecycleRule{expire30}, []metadata.Object{ver("k", "d", day(0), true, 0, nil), ver("k", "a", day(0), false, 1, nil)}, day(90), nil},
		{"noncurrent: the newest kept, older due", []metadata.LifecycleRule{noncurrent}, []metadata.Object{
			ver("k", "c", day(20), false, 1, nil), ver("k", "b", day(10), false, 1, nil), ver("k", "a", day(0), false, 1, nil)}, day(18),
			[]string{"remove k a"}},
		{"noncurrent: not due yet", []metadata.LifecycleRule{noncurrent}, []metadata.Object{
			ver("k", "c", day(20), false, 1, nil), ver("k", "b", day(10), false, 1, nil), ver("k", "a", day(0), false, 1, nil)}, day(16), nil},
		{"noncurrent delete markers go too", []metadata.LifecycleRule{noncurrent}, []metadata.Object{
			ver("k", "c", day(20), false, 1, nil), ver("k", "d", day(10), true, 0, nil), ver("k", "a", day(0), false, 1, nil)}, day(30),
			[]string{"remove k d"}},
		{"lone delete marker", []metadata.LifecycleRule{dms}, []metadata.Object{ver("k", "d", day(0), true, 0, nil)}, day(0), []string{"remove k d"}},
		{"delete marker with versions behind it stays", []metadata.LifecycleRule{dms}, []metadata.Object{ver("k", "d", day(0), true, 0, nil), ver("k", "a", day(0), false, 1, nil)}, day(9), nil},
	} {
		var got []string
		for _, a := range PlanKey(c.rules, c.versions, c.now) {
			switch a.Kind {
			case ExpireCurrent:
				got = append(got, fmt.Sprintf("expire %s etag-%s", a.Key, a.Version))
			case RemoveVersion:
				got = append(got, fmt.Sprintf("remove %s %s", a.Key, a.VersionID))
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestAbortUpload(t *testing.T) {
	rules := []metadata.LifecycleRule{{ID: "abort", Enabled: true, AbortDays: 7, Filter: metadata.LifecycleFilter{Prefix: "up/"}}}
	for _, c := range []struct {
		key  string
		init time.Time
		now  time.Time
		want bool
	}{
		{"up/a", day(0), day(6), false},
		{"up/a", day(0), day(7), true},
		{"other", day(0), day(70), false},
	} {
		if _, got := AbortUpload(rules, metadata.Upload{Key: c.key, Initiated: c.init}, c.now); got != c.want {
			t.Errorf("%s initiated %v at %v: %v", c.key, c.init, c.now, got)
		}
	}
}
