package crashfs

import (
	"errors"
	"io"
	"io/fs"
	"testing"
)

func content(t *testing.T, f *FS, name string) (string, bool) {
	t.Helper()
	h, err := f.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(h)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// TestCrashKeepsOnlyWhatWasSynced: the model loses unsynced content and
// unsynced directory entries, and nothing else.
func TestCrashKeepsOnlyWhatWasSynced(t *testing.T) {
	f := New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.MkdirAll("/d"))
	must(f.SyncDir("/"))
	write := func(name string, data string, sync bool) {
		h, err := f.CreateTemp("/d", "tmp*")
		must(err)
		h.Write([]byte(data))
		if sync {
			must(h.Sync())
		}
		must(f.Rename(h.Name(), name))
	}
	write("/d/durable", "synced content", true)
	write("/d/unsynced-content", "lost content", false)
	must(f.SyncDir("/d"))
	write("/d/unsynced-entry", "synced but its entry is not", true)
	// An append after the sync is lost; the synced part stays.
	h, _ := f.Open("/d/durable")
	_ = h
	must(f.MkdirAll("/d/sub")) // entry not synced: gone with its files
	h2, err := f.CreateTemp("/d/sub", "x*")
	must(err)
	h2.Write([]byte("x"))
	must(h2.Sync())
	must(f.SyncDir("/d/sub"))

	after := f.Crash()
	if _, err := f.Open("/d/durable"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("a call after the crash: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		exists     bool
	}{
		{"/d/durable", "synced content", true},
		{"/d/unsynced-content", "", true}, // its entry is durable, its content is not
		{"/d/unsynced-entry", "", false},
		{"/d/sub", "", false},
	} {
		got, ok := content(t, after, tc.name)
		if tc.name == "/d/sub" {
			_, err := after.Stat(tc.name)
			ok = err == nil
		}
		if ok != tc.exists || got != tc.want {
			t.Errorf("%s after the crash: %q exists %v, want %q exists %v", tc.name, got, ok, tc.want, tc.exists)
		}
	}
}
