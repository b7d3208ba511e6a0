package storagenode

import "sync"

// bufPool recycles the buffers a Put reads an inline or pack shard into,
// by size class (powers of two from 16 KiB to 4 MiB), so steady writes
// neither allocate nor zero them. Larger buffers are not pooled.
type bufPool struct {
	classes [9]sync.Pool // 16 KiB << i
}

const minBufClass = 16 << 10

func classOf(n int) int {
	c := 0
	for size := minBufClass; size < n; size <<= 1 {
		c++
	}
	return c
}

// get returns an empty buffer with room for at least n bytes.
func (p *bufPool) get(n int) []byte {
	c := classOf(n)
	if c >= len(p.classes) {
		return make([]byte, 0, n)
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, minBufClass<<c)
}

// put gives b back for reuse; the caller no longer uses it.
func (p *bufPool) put(b []byte) {
	c := classOf(cap(b))
	if c < len(p.classes) && cap(b) == minBufClass<<c {
		b = b[:0]
		p.classes[c].Put(&b)
	}
}

// grow returns a buffer holding b's bytes with room for n more (at least
// twice b's capacity) and recycles b.
func (p *bufPool) grow(b []byte, n int) []byte {
	nb := p.get(max(2*cap(b), len(b)+n))
	nb = append(nb, b...)
	p.put(b)
	return nb
}
