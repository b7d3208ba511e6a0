package storagenode_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/storagenode"
)

// A direct (O_DIRECT) temp file holds exactly what was written, in writes
// of any size, for lengths around the buffer's and the alignment's.
func TestDirectFile(t *testing.T) {
	const bufLen = 64 << 10
	buf := storagenode.AlignedBuffer(bufLen)
	for _, size := range []int{0, 1, 4095, 4096, 4097, bufLen - 1, bufLen, bufLen + 1, 3*bufLen + 5000} {
		for _, chunk := range []int{1000, 4096, bufLen, 1 << 20} {
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(i*31 + i>>10)
			}
			f, err := storagenode.OSFS{}.CreateTempDirect(t.TempDir(), "d.*", buf)
			if err != nil {
				t.Fatal(err)
			}
			for p := data; len(p) > 0; {
				n := min(chunk, len(p))
				if w, err := f.Write(p[:n]); err != nil || w != n {
					t.Fatalf("size %d chunk %d: write %d: %v", size, chunk, w, err)
				}
				p = p[n:]
			}
			if err := f.Sync(); err != nil {
				t.Fatalf("size %d: sync: %v", size, err)
			}
			if _, err := f.Write([]byte("x")); err == nil {
				t.Fatal("write after sync accepted")
			}
			f.Close()
			got, err := os.ReadFile(f.Name())
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d chunk %d: read back %d bytes, %v", size, chunk, len(got), err)
			}
			os.Remove(filepath.Clean(f.Name()))
		}
	}
}

// A direct file's CopyRecords (records read straight into its buffer)
// writes exactly the shard, after a prefix given to Write, hashes exactly
// what it read, and refuses a corrupt record as erasure.CopyRecords does.
func TestDirectFileCopyRecords(t *testing.T) {
	p := erasure.Profile{K: 4, M: 2, BlockSize: 4 * (4 << 10)} // records of 4 KiB + hash
	c, err := erasure.New(p)
	if err != nil {
		t.Fatal(err)
	}
	buf := storagenode.AlignedBuffer(64 << 10)
	for _, size := range []int{100, 16 << 10, 300<<10 + 77} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + i>>9)
		}
		var shard bytes.Buffer
		discard := []io.Writer{&shard, io.Discard, io.Discard, io.Discard, io.Discard, io.Discard}
		if _, err := c.Encode(bytes.NewReader(data), discard, 6); err != nil {
			t.Fatal(err)
		}
		file := shard.Bytes()
		rec := erasure.HashSize + p.FullShardBlock()
		for _, records := range []int{0, 1, 5} { // Write gets whole records first
			prefix := min(records*rec, len(file))
			for _, corrupt := range []bool{false, true} {
				in := bytes.Clone(file)
				if corrupt {
					in[len(in)-1] ^= 1
				}
				f, err := storagenode.OSFS{}.CreateTempDirect(t.TempDir(), "d.*", buf)
				if err != nil {
					t.Fatal(err)
				}
				f.Write(in[:prefix])
				var hashed bytes.Buffer
				n, err := f.(interface {
					CopyRecords(io.Reader, int, io.Writer) (int64, error)
				}).CopyRecords(bytes.NewReader(in[prefix:]), p.FullShardBlock(), &hashed)
				if corrupt {
					if !errors.Is(err, erasure.ErrCorrupt) && prefix < len(file) {
						t.Fatalf("size %d prefix %d: corrupt record: %v", size, prefix, err)
					}
					f.Close()
					continue
				}
				if err != nil || n != int64(len(file)-prefix) || !bytes.Equal(hashed.Bytes(), file[prefix:]) {
					t.Fatalf("size %d prefix %d: n=%d err=%v", size, prefix, n, err)
				}
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
				f.Close()
				if got, _ := os.ReadFile(f.Name()); !bytes.Equal(got, file) {
					t.Fatalf("size %d prefix %d: file differs (%d bytes, want %d)", size, prefix, len(got), len(file))
				}
			}
		}
	}
}
