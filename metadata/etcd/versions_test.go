package etcd_test

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/etcd"
)

// refVersion is a version in the reference model.
type refVersion struct {
	id   string // S3 version id
	dm   bool
	etag string
}

// refBucket is the reference: each key's versions, newest first, changed
// by the plain rules of S3 versioning.
type refBucket struct {
	mode string
	keys map[string][]refVersion
}

func (m *refBucket) put(key, id, etag string) {
	vs := m.keys[key]
	switch m.mode {
	case "":
		vs = nil
		id = "null"
	case metadata.VersioningSuspended:
		vs = slices.DeleteFunc(vs, func(v refVersion) bool { return v.id == "null" })
		id = "null"
	}
	m.keys[key] = append([]refVersion{{id: id, etag: etag}}, vs...)
}

func (m *refBucket) del(key, dmID string) {
	vs := m.keys[key]
	switch m.mode {
	case "":
		delete(m.keys, key)
		return
	case metadata.VersioningSuspended:
		vs = slices.DeleteFunc(vs, func(v refVersion) bool { return v.id == "null" })
		dmID = "null"
	}
	m.keys[key] = append([]refVersion{{id: dmID, dm: true}}, vs...)
}

func (m *refBucket) delVersion(key, id string) bool {
	vs := m.keys[key]
	i := slices.IndexFunc(vs, func(v refVersion) bool { return v.id == id })
	if i < 0 {
		return false
	}
	m.keys[key] = slices.Delete(vs, i, i+1)
	if len(m.keys[key]) == 0 {
		delete(m.keys, key)
	}
	return true
}

// listing is the reference's ListObjectVersions: "key id dm latest etag".
func (m *refBucket) listing() []string {
	var keys []string
	for k := range m.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		for i, v := range m.keys[k] {
			out = append(out, fmt.Sprintf("%s %s %v %v %s", k, v.id, v.dm, i == 0, v.etag))
		}
	}
	return out
}

func storeListing(t *testing.T, s *etcd.Store, bucket string, page int) []string {
	t.Helper()
	var out []string
	opts := metadata.VersionListOptions{MaxKeys: page}
	for range 10000 {
		res, err := s.ListObjectVersions(ctx, bucket, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range res.Versions {
			etag := v.ETag
			if v.DeleteMarker {
				etag = ""
			}
			out = append(out, fmt.Sprintf("%s %s %v %v %s", v.Key, v.S3Version(), v.DeleteMarker, v.IsLatest, etag))
		}
		if !res.IsTruncated {
			return out
		}
		opts.KeyMarker, opts.VersionIDMarker = res.NextKeyMarker, res.NextVersionIDMarker
	}
	t.Fatal("listing does not end")
	return nil
}

// TestVersionsAgainstReference: random writes, deletes, version deletes
// and versioning changes applied to the store and to a plain model of S3
// versioning leave the same versions (ListObjectVersions, paged at every
// size), the same current objects (GetObject, ListObjects) and the same
// version contents (GetObjectVersion).
func TestVersionsAgainstReference(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "v")
	ref := &refBucket{keys: map[string][]refVersion{}}
	rng := rand.New(rand.NewSource(1))
	keys := []string{"a", "a/b", "b", "b\x01c", "c d"}
	check := func(step int) {
		t.Helper()
		want := ref.listing()
		pages := []int{1000}
		if step%10 == 0 {
			pages = append(pages, 1+step%3)
		}
		for _, page := range pages {
			if got := storeListing(t, s, "v", page); !slices.Equal(got, want) {
				t.Fatalf("step %d, pages of %d:\n got %q\nwant %q", step, page, got, want)
			}
		}
		var current []string
		for _, k := range keys {
			obj, err := s.GetObject(ctx, "v", k)
			vs := ref.keys[k]
			live := len(vs) > 0 && !vs[0].dm
			switch {
			case live && (err != nil || obj.ETag != vs[0].etag):
				t.Fatalf("step %d: GetObject %q = %q, %v; want %q", step, k, obj.ETag, err, vs[0].etag)
			case !live && !errors.Is(err, metadata.ErrNoSuchKey):
				t.Fatalf("step %d: GetObject %q = %v, want NoSuchKey", step, k, err)
			}
			if live {
				current = append(current, k)
			}
			for _, v := range vs {
				got, err := s.GetObjectVersion(ctx, "v", k, v.id)
				if err != nil || got.DeleteMarker != v.dm || (!v.dm && got.ETag != v.etag) {
					t.Fatalf("step %d: GetObjectVersion %q %s = %+v, %v", step, k, v.id, got, err)
				}
			}
		}
		lr, err := s.ListObjects(ctx, "v", metadata.ListOptions{MaxKeys: 1000})
		if err != nil || !slices.Equal(names(lr.Objects), current) {
			t.Fatalf("step %d: ListObjects %q, %v; want %q", step, names(lr.Objects), err, current)
		}
	}
	for step := range 200 {
		k := keys[rng.Intn(len(keys))]
		switch op := rng.Intn(20); {
		case op < 8:
			o := obj("v", k, fmt.Sprintf("e%d", step), seg(step))
			o.VersionID = etcd.NewID()
			vid, err := s.PutObject(ctx, o, metadata.Precondition{})
			if err != nil {
				t.Fatal(err)
			}
			ref.put(k, o.VersionID, o.ETag)
			if want := map[string]string{"": "", metadata.VersioningEnabled: o.VersionID, metadata.VersioningSuspended: "null"}[ref.mode]; vid != want {
				t.Fatalf("step %d: put answered version %q, want %q", step, vid, want)
			}
		case op < 12:
			rm, err := s.DeleteObject(ctx, "v", k, metadata.Precondition{})
			vs := ref.keys[k]
			if ref.mode == "" && (len(vs) == 0) != errors.Is(err, metadata.ErrNoSuchKey) {
				t.Fatalf("step %d: delete of %q: %v", step, k, err)
			}
			if err != nil && !errors.Is(err, metadata.ErrNoSuchKey) {
				t.Fatal(err)
			}
			if ref.mode != "" && (!rm.DeleteMarker || rm.VersionID == "") {
				t.Fatalf("step %d: versioned delete made %+v", step, rm)
			}
			ref.del(k, rm.VersionID)
		case op < 17:
			vs := ref.keys[k]
			id := "no-such-version"
			if len(vs) > 0 && rng.Intn(5) > 0 {
				id = vs[rng.Intn(len(vs))].id
			}
			rm, err := s.DeleteObjectVersion(ctx, "v", k, id, false)
			had := ref.delVersion(k, id)
			if had != (err == nil) || (!had && !errors.Is(err, metadata.ErrNoSuchVersion)) || (had && rm.VersionID != id) {
				t.Fatalf("step %d: delete version %s of %q: %+v, %v (in model: %v)", step, id, k, rm, err, had)
			}
		default:
			mode := []string{metadata.VersioningEnabled, metadata.VersioningSuspended}[rng.Intn(2)]
			if err := s.UpdateBucket(ctx, "v", func(b *metadata.Bucket) error { b.Versioning = mode; return nil }); err != nil {
				t.Fatal(err)
			}
			ref.mode = mode
		}
		check(step)
	}
	// A bucket with versions is not empty until the last one is gone.
	if err := s.DeleteBucket(ctx, "v"); !errors.Is(err, metadata.ErrBucketNotEmpty) && len(ref.keys) > 0 {
		t.Fatalf("delete bucket with versions: %v", err)
	}
}

// TestVersionsReleaseData: only a version removed for good sends its
// segments to gc; a version moved into the history keeps them.
func TestVersionsReleaseData(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "v")
	if err := s.UpdateBucket(ctx, "v", func(b *metadata.Bucket) error { b.Versioning = metadata.VersioningEnabled; return nil }); err != nil {
		t.Fatal(err)
	}
	o1, o2 := obj("v", "k", "e1", seg(1)), obj("v", "k", "e2", seg(2))
	o1.VersionID, o2.VersionID = etcd.NewID(), etcd.NewID()
	for _, o := range []metadata.Object{o1, o2} {
		if _, err := s.PutObject(ctx, o, metadata.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteObject(ctx, "v", "k", metadata.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if n := gcKinds(t, s); len(n) != 0 {
		t.Fatalf("overwrite and delete marker released %v", n)
	}
	if _, err := s.DeleteObjectVersion(ctx, "v", "k", o1.VersionID, false); err != nil {
		t.Fatal(err)
	}
	es, _ := s.ListGC(ctx, 10)
	if len(es) != 1 || es[0].Segment == nil || es[0].Segment.ID != o1.Segments[0].ID {
		t.Fatalf("gc after deleting version 1: %+v", es)
	}
}

// TestVersionsConcurrentWrites: concurrent writes and deletes of one key in
// a versioned bucket each make exactly one version, none lost.
func TestVersionsConcurrentWrites(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "v")
	if err := s.UpdateBucket(ctx, "v", func(b *metadata.Bucket) error { b.Versioning = metadata.VersioningEnabled; return nil }); err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	for w := range 6 {
		g.Go(func() error {
			for i := range 8 {
				if w%3 == 0 && i%2 == 1 {
					if _, err := s.DeleteObject(ctx, "v", "k", metadata.Precondition{}); err != nil {
						return err
					}
					continue
				}
				o := obj("v", "k", fmt.Sprintf("w%d-%d", w, i), seg(w*100+i))
				o.VersionID = etcd.NewID()
				if _, err := s.PutObject(ctx, o, metadata.Precondition{}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	res, err := s.ListObjectVersions(ctx, "v", metadata.VersionListOptions{MaxKeys: 1000})
	if err != nil || len(res.Versions) != 48 {
		t.Fatalf("%d versions, %v", len(res.Versions), err)
	}
	for i := 1; i < len(res.Versions); i++ {
		if res.Versions[i].Seq >= res.Versions[i-1].Seq || res.Versions[i].IsLatest {
			t.Fatalf("version %d out of order: seq %d after %d", i, res.Versions[i].Seq, res.Versions[i-1].Seq)
		}
	}
}

// TestDeleteLockedVersion: a version under retention or legal hold is not
// removed (governance yields to bypass; compliance and holds do not);
// once retention is over it is.
func TestDeleteLockedVersion(t *testing.T) {
	s, _, _ := newStore(t)
	mustBucket(t, s, "v")
	if err := s.UpdateBucket(ctx, "v", func(b *metadata.Bucket) error { b.Versioning = metadata.VersioningEnabled; return nil }); err != nil {
		t.Fatal(err)
	}
	future, past := time.Now().Add(time.Hour), time.Now().Add(-time.Second)
	for i, tc := range []struct {
		lock   metadata.Lock
		bypass bool
		want   error
	}{
		{metadata.Lock{Mode: metadata.LockGovernance, RetainUntil: future}, false, metadata.ErrLocked},
		{metadata.Lock{Mode: metadata.LockGovernance, RetainUntil: future}, true, nil},
		{metadata.Lock{Mode: metadata.LockCompliance, RetainUntil: future}, true, metadata.ErrLocked},
		{metadata.Lock{Mode: metadata.LockCompliance, RetainUntil: past}, false, nil},
		{metadata.Lock{LegalHold: true}, true, metadata.ErrLocked},
		{metadata.Lock{}, false, nil},
	} {
		o := obj("v", fmt.Sprintf("k%d", i), "e", seg(i))
		o.VersionID, o.Lock = etcd.NewID(), &tc.lock
		vid, err := s.PutObject(ctx, o, metadata.Precondition{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeleteObjectVersion(ctx, "v", o.Key, vid, tc.bypass); !errors.Is(err, tc.want) && (err != nil || tc.want != nil) {
			t.Errorf("%+v bypass %v: %v, want %v", tc.lock, tc.bypass, err, tc.want)
		}
	}
}

// TestListObjectsIgnoresHistory: ListObjects of a versioned bucket reads
// what it read before the bucket had any history: 300 noncurrent
// versions and 100 deleted keys (with their delete markers) add no etcd
// reads and no bytes but those of the current values' own changes.
func TestListObjectsIgnoresHistory(t *testing.T) {
	s, kv, _ := newStore(t)
	mustBucket(t, s, "v")
	if err := s.UpdateBucket(ctx, "v", func(b *metadata.Bucket) error { b.Versioning = metadata.VersioningEnabled; return nil }); err != nil {
		t.Fatal(err)
	}
	put := func(key string, i int) {
		o := obj("v", key, fmt.Sprint("e", i), seg(i))
		o.VersionID = etcd.NewID()
		if _, err := s.PutObject(ctx, o, metadata.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		put(fmt.Sprintf("live-%02d", i), i)
	}
	list := func() (int64, int64) {
		gets, bytes := kv.gets.Load(), kv.bytes.Load()
		res, err := s.ListObjects(ctx, "v", metadata.ListOptions{MaxKeys: 1000})
		if err != nil || len(res.Objects) != 50 {
			t.Fatalf("%d objects, %v", len(res.Objects), err)
		}
		return kv.gets.Load() - gets, kv.bytes.Load() - bytes
	}
	gets0, bytes0 := list()
	for i := range 300 {
		put(fmt.Sprintf("live-%02d", i%50), 1000+i) // noncurrent versions of the live keys
	}
	for i := range 100 {
		k := fmt.Sprintf("gone-%03d", i)
		put(k, 2000+i)
		if _, err := s.DeleteObject(ctx, "v", k, metadata.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	gets1, bytes1 := list()
	t.Logf("ListObjects: %d reads, %d bytes without history; %d reads, %d bytes with 300 noncurrent versions and 100 deleted keys", gets0, bytes0, gets1, bytes1)
	// The 50 current values themselves grew by a few bytes (a longer seq
	// and ETag); the history is not read at all.
	if gets1 != gets0 || bytes1 > bytes0+50*8 {
		t.Fatalf("history changed what ListObjects reads: %d/%d reads, %d/%d bytes", gets0, gets1, bytes0, bytes1)
	}
}
