// Package lifecycle carries out buckets' lifecycle rules: it expires current and noncurrent versions and lone delete markers, and aborts old multipart uploads.
package lifecycle

// What the rules decide is pure (this file): a key's versions, or an
// upload, and the time go in; actions come out. The worker (worker.go)
// lists, plans and carries the actions out.
//
// Invariants:
//   - Days count from the creation of a version (or from when it became
//     noncurrent: the creation of the version after it) and are rounded up
//     to the next midnight UTC, as S3 does.
//   - An action names exactly what it acts on (the ETag of the current
//     version it expires, the version id it removes), so a version written
//     after the listing is never touched.
//   - Disabled rules do nothing; a rule's filter must match (prefix, every
//     tag, size bounds) for its expiration and abort actions.

import (
	"strings"
	"time"

	"github.com/sherdstore/sherd/metadata"
)

// ActionKind is what an action does.
type ActionKind int

// Kinds of actions.
const (
	// ExpireCurrent deletes the current version (a delete marker in a
	// versioned bucket), if it is still version Version.
	ExpireCurrent ActionKind = iota + 1
	// RemoveVersion removes version VersionID for good (noncurrent
	// versions, lone delete markers).
	RemoveVersion
)

// Action is one thing a pass does to a key.
type Action struct {
	Kind      ActionKind
	Key       string
	Version   string // the internal version id acted on
	VersionID string // its S3 version id (for logs)
	Rule      string // the rule's ID, for logs
}

// dueAfter is when something created at t is days old, by S3's count:
// t + days, rounded up to the next midnight UTC.
func dueAfter(t time.Time, days int) time.Time {
	d := t.UTC().AddDate(0, 0, days)
	mid := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
	if mid.Before(d) {
		mid = mid.AddDate(0, 0, 1)
	}
	return mid
}

// matches says whether rule r applies to an object.
func matches(r metadata.LifecycleRule, key string, tags map[string]string, size int64, dm bool) bool {
	f := r.Filter
	if !strings.HasPrefix(key, f.Prefix) {
		return false
	}
	if dm { // a delete marker has no tags or size
		return len(f.Tags) == 0 && f.SizeGT == 0 && f.SizeLT == 0
	}
	for k, v := range f.Tags {
		if got, ok := tags[k]; !ok || got != v {
			return false
		}
	}
	return (f.SizeGT == 0 || size > f.SizeGT) && (f.SizeLT == 0 || size < f.SizeLT)
}

// PlanKey decides what the rules do to one key, given all its versions
// newest first (as ListObjectVersions gives them; in an unversioned
// bucket, the one current version) at now.
func PlanKey(rules []metadata.LifecycleRule, versions []metadata.Object, now time.Time) []Action {
	if len(versions) == 0 {
		return nil
	}
	var out []Action
	latest := versions[0]
	key := latest.Key
	removed := map[string]bool{}
	for _, r := range rules {
		if !r.Enabled {
			continue
		}
		// The current version.
		if !latest.DeleteMarker && matches(r, key, latest.Tags, latest.Size, false) {
			byDays := r.ExpireDays > 0 && !now.Before(dueAfter(latest.ModTime, r.ExpireDays))
			byDate := !r.ExpireDate.IsZero() && !now.Before(r.ExpireDate)
			if (byDays || byDate) && !removed["current"] {
				removed["current"] = true
				out = append(out, Action{Kind: ExpireCurrent, Key: key, Version: latest.VersionID, VersionID: latest.S3Version(), Rule: r.ID})
			}
		}
		// A delete marker that is all that is left of its key.
		if latest.DeleteMarker && len(versions) == 1 && r.ExpiredDeleteMarker && matches(r, key, nil, 0, true) && !removed[latest.S3Version()] {
			removed[latest.S3Version()] = true
			out = append(out, Action{Kind: RemoveVersion, Key: key, Version: latest.VersionID, VersionID: latest.S3Version(), Rule: r.ID})
		}
		// Noncurrent versions: version i became noncurrent when version
		// i-1 was made; the NewerNoncurrent newest of them stay.
		if r.NoncurrentDays <= 0 {
			continue
		}
		kept := 0
		for i := 1; i < len(versions); i++ {
			v := versions[i]
			if !matches(r, key, v.Tags, v.Size, v.DeleteMarker) {
				continue
			}
			if !v.DeleteMarker && kept < r.NewerNoncurrent {
				kept++
				continue
			}
			if now.Before(dueAfter(versions[i-1].ModTime, r.NoncurrentDays)) || removed[v.S3Version()] {
				continue
			}
			removed[v.S3Version()] = true
			out = append(out, Action{Kind: RemoveVersion, Key: key, Version: v.VersionID, VersionID: v.S3Version(), Rule: r.ID})
		}
	}
	return out
}

// AbortUpload says whether the rules abort upload u at now (and which
// rule does).
func AbortUpload(rules []metadata.LifecycleRule, u metadata.Upload, now time.Time) (string, bool) {
	for _, r := range rules {
		if r.Enabled && r.AbortDays > 0 && strings.HasPrefix(u.Key, r.Filter.Prefix) && !now.Before(dueAfter(u.Initiated, r.AbortDays)) {
			return r.ID, true
		}
	}
	return "", false
}

// Planned says whether PlanKey, on versions at now, takes action a (the
// same kind, on the same internal version): the check a removal makes
// again on what the store reads when it carries the action out.
func Planned(rules []metadata.LifecycleRule, versions []metadata.Object, now time.Time, a Action) bool {
	for _, b := range PlanKey(rules, versions, now) {
		if b.Kind == a.Kind && b.Version == a.Version {
			return true
		}
	}
	return false
}
