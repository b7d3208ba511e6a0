package storagenode

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
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
