package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// formGen streams a multipart/form-data body of fields without holding
// it: the test itself allocates almost nothing, so the allocations it
// measures are the gateway's.
type formGen struct {
	parts    int   // fields before the file
	nameLen  int   // length of each field's name
	valueLen int   // length of each field's value
	read     int64 // bytes the server has read
	cur      io.Reader
	i        int
}

const formBoundary = "sherdboundary0123456789"

func (f *formGen) next() io.Reader {
	i := f.i
	f.i++
	switch {
	case i < f.parts:
		head := fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"x-amz-meta-%d", formBoundary, i)
		return io.MultiReader(strings.NewReader(head), repeatReader('n', f.nameLen),
			strings.NewReader("\"\r\n\r\n"), repeatReader('v', f.valueLen), strings.NewReader("\r\n"))
	case i == f.parts:
		return strings.NewReader(fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nhello\r\n--%s--\r\n", formBoundary, formBoundary))
	}
	return nil
}

func (f *formGen) Read(p []byte) (int, error) {
	for {
		if f.cur == nil {
			if f.cur = f.next(); f.cur == nil {
				return 0, io.EOF
			}
		}
		n, err := f.cur.Read(p)
		atomic.AddInt64(&f.read, int64(n))
		if err == io.EOF {
			f.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

type repeatN struct {
	c byte
	n int
}

func repeatReader(c byte, n int) io.Reader { return &repeatN{c, n} }

func (r *repeatN) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.n)
	for i := range n {
		p[i] = r.c
	}
	r.n -= n
	return n, nil
}

// TestPostFormBounded: an anonymous POST form is refused with 400 before
// the gateway reads more than AWS's 20 KB of fields preceding the file, or
// keeps more than a little memory, whether the fields sit in names or in
// values; to a bucket that does not exist it is refused (404) before any
// of it is read. Before the fix, 48 field names of 1 MiB were read whole
// and kept in memory.
func TestPostFormBounded(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name                     string
		parts, nameLen, valueLen int
		bucket                   string
		status                   int
		want                     string
	}{
		{"48 names of 1 MiB", 48, 1 << 20, 1, "faults", 400, "MaxPostPreDataLengthExceeded"},
		{"48 names of 1 MiB, no such bucket", 48, 1 << 20, 1, "no-such-bucket", 404, "NoSuchBucket"},
		{"16 values of 64 KiB", 16, 8, 64 << 10, "faults", 400, "MaxPostPreDataLengthExceeded"},
		{"100,000 tiny fields", 100_000, 1, 1, "faults", 400, "MaxPostPreDataLengthExceeded"},
		{"one name of 32 MiB", 1, 32 << 20, 1, "faults", 400, "MaxPostPreDataLengthExceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &formGen{parts: tc.parts, nameLen: tc.nameLen, valueLen: tc.valueLen}
			req := httptest.NewRequest(http.MethodPost, "/"+tc.bucket, body)
			req.Header.Set("Content-Type", "multipart/form-data; boundary="+formBoundary)
			req.ContentLength = -1
			w := httptest.NewRecorder()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			f.gw.ServeHTTP(w, req)
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			read := atomic.LoadInt64(&body.read)
			t.Logf("read %d bytes, allocated %d bytes, answered %d %s", read, allocated, w.Code, w.Body.String())
			if w.Code != tc.status || !strings.Contains(w.Body.String(), "<Code>"+tc.want+"</Code>") {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body.String(), tc.status, tc.want)
			}
			if read > 64<<10 {
				t.Errorf("gateway read %d bytes of form fields before refusing, want at most 64 KiB", read)
			}
			if allocated > 4<<20 {
				t.Errorf("gateway allocated %d bytes for a refused form, want at most 4 MiB", allocated)
			}
		})
	}
}
