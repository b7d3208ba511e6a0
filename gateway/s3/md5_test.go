package s3

import (
	"bytes"
	"crypto/md5"
	"math/rand/v2"
	"sync"
	"testing"
)

// MD5s' hashes (crypto/md5 for a lone body, md5-simd lanes under
// concurrency) equal crypto/md5 (the reference) for bodies of many sizes
// written in uneven pieces, 16 at a time, some abandoned half way.
func TestMD5sMatchReference(t *testing.T) {
	m := NewMD5s()
	defer m.Close()
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for i := range 8 {
				data := make([]byte, r.IntN(3<<20))
				for j := range data {
					data[j] = byte(r.Uint32())
				}
				h := m.New()
				rest := data
				if i == 3 {
					rest = rest[:len(rest)/2] // abandoned: closed, never summed
				}
				for len(rest) > 0 {
					k := min(len(rest), 1+r.IntN(200<<10))
					h.Write(rest[:k])
					rest = rest[k:]
				}
				if i != 3 {
					want := md5.Sum(data)
					if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
						errs <- "mismatch"
					}
				}
				h.(interface{ Close() }).Close()
				h.(interface{ Close() }).Close() // twice is fine
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if n := m.active.Load(); n != 0 {
		t.Fatalf("%d hashes still counted active", n)
	}
	var nilM *MD5s
	h := nilM.New()
	h.Write([]byte("abc"))
	if want := md5.Sum([]byte("abc")); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("nil MD5s hash wrong")
	}
}
