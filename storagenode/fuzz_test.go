package storagenode_test

import (
	"fmt"
	"testing"

	"github.com/sherdstore/sherd/shard"
	"github.com/sherdstore/sherd/storagenode"
)

// FuzzParseShardID: a parsed id prints back as the input (ids are data,
// never paths: nothing else may parse).
func FuzzParseShardID(f *testing.F) {
	for _, s := range []string{"0123456789abcdef0123456789abcdef.0", "0123456789abcdef0123456789abcdef.255", "../../etc/passwd", "0123456789ABCDEF0123456789abcdef.1", "x.01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := shard.ParseID(s)
		if err != nil {
			return
		}
		if id.String() != s || !shard.ValidSegmentID(id.Segment) || id.Index < 0 || id.Index > 255 {
			t.Fatalf("%q parsed as %+v", s, id)
		}
	})
}

// FuzzParseRange: an accepted node Range is a non-negative offset and a
// positive length (or -1), and prints back to the same range.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-", "bytes=10-19", "bytes=5-4", "bytes=-3", "bytes=9223372036854775806-9223372036854775807", "items=1-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		off, n, err := storagenode.ParseRange(s)
		if err != nil {
			return
		}
		if off < 0 || n == 0 || n < -1 {
			t.Fatalf("%q: off %d n %d", s, off, n)
		}
		back := fmt.Sprintf("bytes=%d-", off)
		if n > 0 {
			back += fmt.Sprint(off + n - 1)
		}
		if off2, n2, err := storagenode.ParseRange(back); err != nil || off2 != off || n2 != n {
			t.Fatalf("%q → %d,%d → %q → %d,%d %v", s, off, n, back, off2, n2, err)
		}
	})
}
