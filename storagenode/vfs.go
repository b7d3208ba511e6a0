package storagenode

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sherdstore/sherd/erasure"
)

// FS is the file system under a Store's shard files: the OS's (OSFS), or
// in tests a crashable one that loses what was not fsynced
// (storagenode/crashfs). The index (bbolt) is always a real file.
type FS interface {
	// MkdirAll creates dir and its missing parents (not synced).
	MkdirAll(dir string) error
	RemoveAll(path string) error
	// CreateTemp creates a new file in dir, its name pattern with "*"
	// replaced by something unique, open for writing.
	CreateTemp(dir, pattern string) (File, error)
	// Open opens a file for reading. Errors wrap fs.ErrNotExist.
	Open(name string) (File, error)
	// OpenFile opens a file for reading and writing (WriteAt), creating
	// it empty if it does not exist (its entry not synced).
	OpenFile(name string) (File, error)
	// Punch gives back the space of n bytes of f at off: they read as
	// zeros after, the file's size is unchanged. Not synced: a crash may
	// bring the bytes back.
	Punch(f File, off, n int64) error
	Rename(oldpath, newpath string) error
	Remove(name string) error
	Stat(name string) (fs.FileInfo, error)
	// WalkDir walks the tree at root in lexical order, as filepath.WalkDir.
	WalkDir(root string, fn fs.WalkDirFunc) error
	// SyncDir makes dir's entries (creations, renames, removals) durable.
	SyncDir(dir string) error
	// Inode is the file's inode number: it changes when a file is replaced.
	Inode(name string) (uint64, error)
}

// File is an open file of an FS.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	// Sync makes the file's content durable.
	Sync() error
	Name() string
	Stat() (fs.FileInfo, error)
}

// FreeSpacer is what an FS that can tell its free space also does (OSFS):
// the bytes an unprivileged writer may still use on the file system
// holding dir.
type FreeSpacer interface {
	FreeSpace(dir string) (int64, error)
}

// DirectCreator is what an FS that can write new files around the page
// cache does (OSFS: O_DIRECT): CreateTemp, but the file writes through
// buf (aligned to DirectAlign, a multiple of it long; the caller owns it
// again once the file is closed) in whole buffers, and its tail when it is
// synced; writes after Sync are not allowed. A file system that cannot
// (tmpfs on older kernels) gives a plain file.
type DirectCreator interface {
	CreateTempDirect(dir, pattern string, buf []byte) (File, error)
}

// DirectAlign is the alignment of O_DIRECT buffers, offsets and lengths.
const DirectAlign = 4096

// AlignedBuffer returns a buffer of n bytes (a multiple of DirectAlign)
// whose address is aligned to DirectAlign.
func AlignedBuffer(n int) []byte {
	b := make([]byte, n+DirectAlign)
	off := DirectAlign - int(uintptr(unsafe.Pointer(&b[0]))%DirectAlign)
	if off == DirectAlign {
		off = 0
	}
	return b[off : off+n : off+n]
}

// OSFS is the operating system's file system.
type OSFS struct{}

func (OSFS) MkdirAll(dir string) error      { return os.MkdirAll(dir, 0o755) }
func (OSFS) RemoveAll(path string) error    { return os.RemoveAll(path) }
func (OSFS) Rename(oldp, newp string) error { return os.Rename(oldp, newp) }
func (OSFS) Remove(name string) error       { return os.Remove(name) }
func (OSFS) Stat(name string) (fs.FileInfo, error) {
	return os.Stat(name)
}
func (OSFS) WalkDir(root string, fn fs.WalkDirFunc) error { return filepath.WalkDir(root, fn) }

func (OSFS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }

func (OSFS) Open(name string) (File, error) { return os.Open(name) }

// CreateTempDirect implements DirectCreator with O_DIRECT.
func (fsys OSFS) CreateTempDirect(dir, pattern string, buf []byte) (File, error) {
	if len(buf) == 0 || len(buf)%DirectAlign != 0 || uintptr(unsafe.Pointer(&buf[0]))%DirectAlign != 0 {
		return nil, fmt.Errorf("storagenode: create %s: direct buffer not aligned", dir)
	}
	var rnd [8]byte
	for range 100 {
		rand.Read(rnd[:])
		name := filepath.Join(dir, strings.Replace(pattern, "*", hex.EncodeToString(rnd[:]), 1))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_DIRECT, 0o600)
		switch {
		case errors.Is(err, fs.ErrExist):
			continue
		case errors.Is(err, syscall.EINVAL): // no O_DIRECT here
			return fsys.CreateTemp(dir, pattern)
		case err != nil:
			return nil, err
		}
		return &directFile{File: f, buf: buf}, nil
	}
	return nil, fmt.Errorf("storagenode: create temp in %s: no free name", dir)
}

// directFile writes an O_DIRECT file through an aligned buffer: whole
// buffers go straight to the disk, the tail (any length) is written with
// O_DIRECT cleared when the file is synced.
type directFile struct {
	*os.File
	buf  []byte
	n    int  // bytes in buf
	tail bool // the tail is written: no more writes
}

func (d *directFile) Write(p []byte) (int, error) {
	if d.tail {
		return 0, fmt.Errorf("storagenode: write to %s after sync", d.Name())
	}
	done := 0
	for len(p) > 0 {
		c := copy(d.buf[d.n:], p)
		d.n += c
		p = p[c:]
		done += c
		if d.n == len(d.buf) {
			if _, err := d.File.Write(d.buf); err != nil {
				return done - c, err
			}
			d.n = 0
		}
	}
	return done, nil
}

// CopyRecords reads shard records from r straight into the file's
// aligned buffer (erasure.AppendRecords: each checked, and written to h),
// writing whole aligned chunks as they fill, after what Write buffered:
// the records are not copied on the way (erasure.CopyRecords into Write
// would copy each). It returns the bytes read; errors as
// erasure.CopyRecords'.
func (d *directFile) CopyRecords(r io.Reader, blockLen int, h io.Writer) (int64, error) {
	want := erasure.HashSize + blockLen
	if d.tail || len(d.buf) < 2*want {
		return erasure.CopyRecords(io.MultiWriter(d, h), r, blockLen)
	}
	var total int64
	for {
		start := d.n
		b, more, err := erasure.AppendRecords(d.buf[:d.n], r, blockLen, int64(len(d.buf)-want), h, func([]byte, int) []byte {
			panic("storagenode: direct buffer outgrown") // max leaves room for a whole record
		})
		d.n = len(b)
		total += int64(d.n - start)
		if err != nil {
			return total, err
		}
		if full := d.n &^ (DirectAlign - 1); full > 0 {
			if _, err := d.File.Write(d.buf[:full]); err != nil {
				return total, err
			}
			d.n = copy(d.buf, d.buf[full:d.n])
		}
		if !more {
			return total, nil
		}
	}
}

// WriteAt is not supported: a direct file is written in order.
func (d *directFile) WriteAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("storagenode: WriteAt on %s: %w", d.Name(), errors.ErrUnsupported)
}

// Sync writes the buffered tail without O_DIRECT, then fsyncs.
func (d *directFile) Sync() error {
	if !d.tail && d.n > 0 {
		fl, err := unix.FcntlInt(d.Fd(), unix.F_GETFL, 0)
		if err != nil {
			return err
		}
		if _, err := unix.FcntlInt(d.Fd(), unix.F_SETFL, fl&^unix.O_DIRECT); err != nil {
			return err
		}
		if _, err := d.File.Write(d.buf[:d.n]); err != nil {
			return err
		}
	}
	d.tail = true
	return d.File.Sync()
}

func (OSFS) OpenFile(name string) (File, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
}

// Punch implements FS with fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE).
// A file system that cannot punch holes keeps the bytes (space is not
// given back; nothing else changes).
func (OSFS) Punch(f File, off, n int64) error {
	of, ok := f.(*os.File)
	if !ok || n <= 0 {
		return nil
	}
	err := unix.Fallocate(int(of.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return err
}

func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (OSFS) Inode(name string) (uint64, error) {
	st, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	return st.Sys().(*syscall.Stat_t).Ino, nil
}

// FreeSpace implements FreeSpacer (statfs).
func (OSFS) FreeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}
