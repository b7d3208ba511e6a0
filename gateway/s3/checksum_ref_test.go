package s3

import (
	"hash/crc64"
	"math/rand/v2"
	"testing"
)

// The SIMD CRC-64/NVME agrees with the standard library's table-driven
// CRC on the same polynomial (the simple reference), for lengths around
// the SIMD block sizes and written in pieces.
func TestCRC64NVMEMatchesReference(t *testing.T) {
	ref := crc64.MakeTable(0x9a6c9329ac4bc9b5)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 15, 16, 63, 64, 127, 128, 255, 256, 1000, 4096, 65537, 1 << 20} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		h := NewChecksum(CRC64NVME)
		for rest := data; len(rest) > 0; {
			k := min(len(rest), 1+r.IntN(3000))
			h.Write(rest[:k])
			rest = rest[k:]
		}
		want := crc64.Update(0, ref, data)
		if got := h.Sum(nil); len(got) != 8 || uint64FromBE(got) != want {
			t.Fatalf("%d bytes: %x, want %016x", n, got, want)
		}
	}
}

func uint64FromBE(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
