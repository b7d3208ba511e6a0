// Package crashfs is an in-memory storagenode.FS that can crash: what was not fsynced is lost, as when a machine loses power (tests only).
package crashfs

// The model is strict, like pebble's crashable in-memory FS:
//   - A file's content survives a crash only as of its last Sync.
//   - A directory's entries (a file or directory created, renamed in or
//     out, removed) survive only as of its last SyncDir. A file whose
//     entry did not survive is gone, synced or not.
//   - Crash freezes the file system (every later call fails with
//     ErrCrashed, so work in flight is not acknowledged) and returns the
//     file system as it comes back after the reboot.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sherdstore/sherd/storagenode"
)

// ErrCrashed is returned by every call after Crash.
var ErrCrashed = errors.New("crashfs: the file system crashed")

type node struct {
	ino     uint64
	dir     bool
	data    []byte           // file: current content
	synced  []byte           // file: content as of the last Sync
	entries map[string]*node // dir: current entries
	durable map[string]*node // dir: entries as of the last SyncDir
}

// FS is a crashable in-memory file system. Paths are slash-separated and
// absolute ("/data/shards/…"). It is safe for concurrent use.
type FS struct {
	mu      sync.Mutex
	root    *node
	nextIno uint64
	seq     int
	crashed bool
}

var _ storagenode.FS = (*FS)(nil)

// New returns an empty file system (its root is durable).
func New() *FS {
	f := &FS{}
	f.root = f.newNode(true)
	return f
}

func (f *FS) newNode(dir bool) *node {
	f.nextIno++
	n := &node{ino: f.nextIno, dir: dir}
	if dir {
		n.entries, n.durable = map[string]*node{}, map[string]*node{}
	}
	return n
}

// Crash freezes f and returns what survives: the synced content of the
// files reachable through synced directory entries.
func (f *FS) Crash() *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashed = true
	out := &FS{nextIno: f.nextIno}
	seen := map[*node]*node{}
	var copyNode func(n *node) *node
	copyNode = func(n *node) *node {
		if c, ok := seen[n]; ok {
			return c
		}
		c := &node{ino: n.ino, dir: n.dir}
		seen[n] = c
		if n.dir {
			c.entries, c.durable = map[string]*node{}, map[string]*node{}
			for name, e := range n.durable {
				ce := copyNode(e)
				c.entries[name], c.durable[name] = ce, ce
			}
		} else {
			c.data = slices.Clone(n.synced)
			c.synced = slices.Clone(n.synced)
		}
		return c
	}
	out.root = copyNode(f.root)
	return out
}

func split(p string) []string {
	p = path.Clean("/" + p)
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// lookup resolves p; the caller holds f.mu.
func (f *FS) lookup(p string) (*node, error) {
	if f.crashed {
		return nil, ErrCrashed
	}
	n := f.root
	for _, c := range split(p) {
		if !n.dir {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		next, ok := n.entries[c]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		n = next
	}
	return n, nil
}

// parent resolves p's directory and returns it with p's last element.
func (f *FS) parent(p string) (*node, string, error) {
	parts := split(p)
	if len(parts) == 0 {
		return nil, "", fmt.Errorf("crashfs: %q has no parent", p)
	}
	dir, err := f.lookup("/" + strings.Join(parts[:len(parts)-1], "/"))
	if err != nil {
		return nil, "", err
	}
	if !dir.dir {
		return nil, "", &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return dir, parts[len(parts)-1], nil
}

func (f *FS) MkdirAll(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashed {
		return ErrCrashed
	}
	n := f.root
	for _, c := range split(dir) {
		next, ok := n.entries[c]
		if !ok {
			next = f.newNode(true)
			n.entries[c] = next
		} else if !next.dir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrExist}
		}
		n = next
	}
	return nil
}

func (f *FS) RemoveAll(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, name, err := f.parent(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	delete(dir.entries, name)
	return nil
}

func (f *FS) CreateTemp(dir, pattern string) (storagenode.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.lookup(dir)
	if err != nil {
		return nil, err
	}
	f.seq++
	name := strings.Replace(pattern, "*", strconv.Itoa(f.seq), 1)
	if !strings.Contains(pattern, "*") {
		name = pattern + strconv.Itoa(f.seq)
	}
	n := f.newNode(false)
	d.entries[name] = n
	return &file{fs: f, n: n, name: path.Join(dir, name), write: true}, nil
}

func (f *FS) Open(name string) (storagenode.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	return &file{fs: f, n: n, name: name}, nil
}

// OpenFile implements storagenode.FS: a new file's entry is not durable
// until its directory is synced.
func (f *FS) OpenFile(name string) (storagenode.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, err := f.lookup(name); err == nil {
		if n.dir {
			return nil, fmt.Errorf("crashfs: open %s: a directory", name)
		}
		return &file{fs: f, n: n, name: name, write: true}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	d, base, err := f.parent(name)
	if err != nil {
		return nil, err
	}
	n := f.newNode(false)
	d.entries[base] = n
	return &file{fs: f, n: n, name: name, write: true}, nil
}

// Punch implements storagenode.FS: the bytes read as zeros; like a write,
// it is durable only after the next Sync.
func (f *FS) Punch(sf storagenode.File, off, n int64) error {
	h, ok := sf.(*file)
	if !ok {
		return fmt.Errorf("crashfs: punch: not a crashfs file")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashed {
		return ErrCrashed
	}
	for i := off; i < off+n && i < int64(len(h.n.data)); i++ {
		h.n.data[i] = 0
	}
	return nil
}

func (f *FS) Rename(oldpath, newpath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	od, oname, err := f.parent(oldpath)
	if err != nil {
		return err
	}
	n, ok := od.entries[oname]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldpath, Err: fs.ErrNotExist}
	}
	nd, nname, err := f.parent(newpath)
	if err != nil {
		return err
	}
	delete(od.entries, oname)
	nd.entries[nname] = n
	return nil
}

func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, n, err := f.parent(name)
	if err != nil {
		return err
	}
	if _, ok := d.entries[n]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(d.entries, n)
	return nil
}

func (f *FS) Stat(name string) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	return info{name: path.Base(name), n: n, size: int64(len(n.data))}, nil
}

func (f *FS) Inode(name string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.lookup(name)
	if err != nil {
		return 0, err
	}
	return n.ino, nil
}

func (f *FS) SyncDir(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.lookup(dir)
	if err != nil {
		return err
	}
	if !d.dir {
		return fmt.Errorf("crashfs: sync dir %s: not a directory", dir)
	}
	d.durable = make(map[string]*node, len(d.entries))
	for k, v := range d.entries {
		d.durable[k] = v
	}
	return nil
}

// WalkDir walks a snapshot of the tree under root in lexical order.
func (f *FS) WalkDir(root string, fn fs.WalkDirFunc) error {
	type item struct {
		p string
		n *node
	}
	f.mu.Lock()
	start, err := f.lookup(root)
	var items []item
	if err == nil {
		var walk func(p string, n *node)
		walk = func(p string, n *node) {
			items = append(items, item{p, n})
			if n.dir {
				names := make([]string, 0, len(n.entries))
				for k := range n.entries {
					names = append(names, k)
				}
				slices.Sort(names)
				for _, k := range names {
					walk(path.Join(p, k), n.entries[k])
				}
			}
		}
		walk(path.Clean(root), start)
	}
	f.mu.Unlock()
	if err != nil {
		return fn(root, nil, err)
	}
	for _, it := range items {
		f.mu.Lock()
		size := int64(len(it.n.data))
		f.mu.Unlock()
		if err := fn(it.p, fs.FileInfoToDirEntry(info{name: path.Base(it.p), n: it.n, size: size}), nil); err != nil {
			if errors.Is(err, fs.SkipDir) {
				continue
			}
			return err
		}
	}
	return nil
}

type info struct {
	name string
	n    *node
	size int64
}

func (i info) Name() string { return i.name }
func (i info) Size() int64  { return i.size }
func (i info) Mode() fs.FileMode {
	if i.n.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return i.n.dir }
func (i info) Sys() any           { return nil }

// file is an open file: writes append to the node's current content.
type file struct {
	fs    *FS
	n     *node
	name  string
	off   int64
	write bool
}

func (h *file) Read(p []byte) (int, error) {
	n, err := h.ReadAt(p, h.off)
	h.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.fs.crashed {
		return 0, ErrCrashed
	}
	if off >= int64(len(h.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *file) Write(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.fs.crashed {
		return 0, ErrCrashed
	}
	if !h.write {
		return 0, fmt.Errorf("crashfs: %s: opened read-only", h.name)
	}
	h.n.data = append(h.n.data, p...)
	return len(p), nil
}

func (h *file) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.fs.crashed {
		return 0, ErrCrashed
	}
	if !h.write {
		return 0, fmt.Errorf("crashfs: %s: opened read-only", h.name)
	}
	if end := off + int64(len(p)); end > int64(len(h.n.data)) {
		h.n.data = append(h.n.data, make([]byte, end-int64(len(h.n.data)))...)
	}
	copy(h.n.data[off:], p)
	return len(p), nil
}

func (h *file) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.fs.crashed {
		return ErrCrashed
	}
	h.n.synced = slices.Clone(h.n.data)
	return nil
}

func (h *file) Close() error { return nil }
func (h *file) Name() string { return h.name }

func (h *file) Stat() (fs.FileInfo, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return info{name: path.Base(h.name), n: h.n, size: int64(len(h.n.data))}, nil
}
