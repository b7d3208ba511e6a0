package storagenode

// Design of the on-disk shard store.
//
// Layout under the data directory:
//   shards/<partition: 3 hex>/<segment>.<index>   complete shard files
//   packs/<seq: 8 hex>.pack                       mid-size shards, appended (pack.go)
//   tmp/                                          unused (files being written: older versions)
//   quarantine/                                   shards the scrubber found corrupt
//   index.db                                      bbolt: shard records, Merkle leaves,
//                                                 and the bytes of small shards
//
// Invariants:
//   - A shard is stored inline (small shards, Options.InlineMax: its
//     bytes are a value in the index, written in the same transaction as
//     its record, so it is complete and durable once that commits), in a
//     pack (mid-size shards, Options.PackMax: appended to a shared file
//     that the commit syncs before it commits the record; pack.go), or as
//     a file.
//   - A file under shards/ named by a shard id is always complete: it is
//     written under a temp name (tempPrefix) in the same directory,
//     fsynced, renamed into place, and the directory fsynced. A torn write
//     can only ever exist under a temp name (or in tmp/, from older
//     versions), which Open removes.
//   - Index transactions of concurrent writes share one commit (group
//     commit, commit.go); a write is acknowledged only after its commit.
//   - The bbolt index holds one record per shard file (size, hash, inode)
//     and, per Merkle leaf, the XOR of its shards' entry digests. Record and
//     leaf change in the same bbolt transaction.
//   - Write order: file, then index, then the answer. Delete order: file,
//     then index. So after a crash the only possible mismatches are a file
//     the index does not know or knows with another inode (crash between
//     rename and commit: never acknowledged) and a record without a file
//     (crash between unlink and commit). Open quarantines the first and
//     drops the second, so the index matches the files and every
//     acknowledged write is kept.
//   - Operations on one shard id are serialized by a striped lock, so a
//     file and its record never come from two different writes.
//   - Shard ids are validated (hex and a number) before they touch a path.
//   - Durability is proven against a file system that loses everything not
//     fsynced (crashfs, under the FS interface): a file is synced before
//     its rename, the directory after it, and a partition directory's
//     entry is synced before the first file goes in it.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/zeebo/xxh3"

	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/shard"
)

var (
	bucketShards = []byte("shards")
	bucketLeaves = []byte("leaves")
	// bucketInline: shard id → the bytes of a shard stored inline.
	bucketInline = []byte("inline")
	// bucketVerified: shard id → when a scrub or verify last read it
	// whole (unix nanoseconds, 8 bytes big-endian). Not fsynced on its
	// own: written in batches, lost at worst to a crash.
	bucketVerified = []byte("verified")
)

// record is a shard's index entry.
type record struct {
	shard.Info
	Inode  uint64 `json:"ino"`
	Inline bool   `json:"inline,omitempty"` // bytes in bucketInline, no file
	Pack   uint32 `json:"pack,omitempty"`   // bytes in this pack at Off, no file
	Off    int64  `json:"off,omitempty"`
}

// Store is the shard store on one node's local disk.
type Store struct {
	dir   string
	fs    FS
	db    *bolt.DB
	now   func() time.Time
	locks [256]sync.Mutex
	seed  maphash.Seed
	// tree mirrors the leaves bucket in memory with cached interior
	// digests; changed after every index commit by the same XORs.
	tree *merkle.Incremental
	// shards and bytes count the index's records and their sizes,
	// changed after every index commit like tree.
	shards, bytes atomic.Int64
	// durableDirs are the partition directories whose entry is known to
	// be fsynced in this process (ensureDir).
	durableDirs sync.Map
	reserve     int64
	// commit batches the index transactions of concurrent writes (group
	// commit: commit.go).
	commit    *committer
	inlineMax int64
	packMax   int64
	packs     *packs
	bufs      bufPool
	// directBufs recycles the aligned buffers of direct (O_DIRECT) shard
	// file writes (*[]byte of directBufSize).
	directBufs sync.Pool
}

// IndexCommits returns the index commits made since Open and the changes
// (shard writes, deletes, …) they held: their ratio is the group commit's
// batching.
func (s *Store) IndexCommits() (commits, changes int64) { return s.commit.stats() }

// Usage returns the number of shards the index holds and their size.
func (s *Store) Usage() (shards int, bytes int64) {
	return int(s.shards.Load()), s.bytes.Load()
}

// Options configures a Store.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// FS holds the shard files (default OSFS); IndexDir holds index.db
	// (default dir; it must be on the OS's file system).
	FS       FS
	IndexDir string
	// Reserve is the free space a Put leaves on the file system: below it
	// new shards are refused with shard.ErrFull (so deletes, the index and the
	// rest of the machine keep room). 0: none. Needs an FS that reports
	// free space (FreeSpacer, as OSFS); a write that meets ENOSPC fails
	// with shard.ErrFull all the same.
	Reserve int64
	// InlineMax: a shard of at most this many bytes is stored in the
	// index rather than as a file (one group-committed transaction instead
	// of a file, two fsyncs, a rename and a directory fsync). Default
	// DefaultInlineMax; negative: no shard is inline.
	InlineMax int64
	// PackMax: a shard above InlineMax and of at most this many bytes is
	// appended to a pack file (pack.go: one fsync per group commit for all
	// concurrent writers instead of a file, two fsyncs and a rename per
	// shard). Default DefaultPackMax; negative: none. A Put holds up to
	// max(InlineMax, PackMax) bytes of a shard in memory.
	PackMax int64
}

// DefaultInlineMax is the default Options.InlineMax: the shards of
// objects up to 512 KiB (4+2) are stored inline.
const DefaultInlineMax = 128 << 10

// Open opens (creating if needed) the shard store in dir, empties tmp/, and
// reconciles the index with the shard files (see the design comment).
func Open(dir string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FS == nil {
		opts.FS = OSFS{}
	}
	if opts.IndexDir == "" {
		opts.IndexDir = dir
	}
	fsys := opts.FS
	for _, d := range []string{"shards", "tmp", "quarantine", "packs"} {
		if err := fsys.MkdirAll(filepath.Join(dir, d)); err != nil {
			return nil, fmt.Errorf("storagenode: open: %w", err)
		}
	}
	if err := fsys.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		return nil, fmt.Errorf("storagenode: open: clear tmp: %w", err)
	}
	if err := fsys.MkdirAll(filepath.Join(dir, "tmp")); err != nil {
		return nil, fmt.Errorf("storagenode: open: %w", err)
	}
	// The directories themselves must survive a crash.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := fsys.SyncDir(d); err != nil {
			return nil, fmt.Errorf("storagenode: open: %w", err)
		}
	}
	if err := os.MkdirAll(opts.IndexDir, 0o755); err != nil {
		return nil, fmt.Errorf("storagenode: open: %w", err)
	}
	db, err := bolt.Open(filepath.Join(opts.IndexDir, "index.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second,
		// As etcd does: the freelist is rebuilt on open instead of written
		// by every commit (durability is the same), and kept in a map.
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("storagenode: open index: %w", err)
	}
	if err := fsys.SyncDir(dir); err != nil { // packs/ is new in this version
		return nil, fmt.Errorf("storagenode: open: %w", err)
	}
	s := &Store{dir: dir, fs: fsys, db: db, now: opts.Now, seed: maphash.MakeSeed(), reserve: opts.Reserve, commit: &committer{db: db}, inlineMax: opts.InlineMax, packMax: opts.PackMax}
	if s.inlineMax == 0 {
		s.inlineMax = DefaultInlineMax
	}
	if s.packMax == 0 {
		s.packMax = DefaultPackMax
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketShards, bucketLeaves, bucketVerified, bucketInline} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("storagenode: open index: %w", err)
	}
	if err := s.reconcile(); err != nil {
		if s.packs != nil {
			s.packs.close()
		}
		db.Close()
		return nil, err
	}
	leaves, err := s.leaves(0, merkle.Leaves)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("storagenode: open: load leaves: %w", err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketShards).ForEach(func(_, v []byte) error {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			s.shards.Add(1)
			s.bytes.Add(rec.Size)
			return nil
		})
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("storagenode: open: count shards: %w", err)
	}
	s.tree = merkle.NewIncremental()
	for l, d := range leaves {
		s.tree.Xor(l, d)
	}
	return s, nil
}

// Close closes the index and the packs. Open readers stay valid.
func (s *Store) Close() error { return errors.Join(s.packs.close(), s.db.Close()) }

// Dir is the store's data directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(id shard.ID) string {
	return filepath.Join(s.dir, "shards", fmt.Sprintf("%03x", id.Partition()), id.String())
}

func (s *Store) lock(id shard.ID) *sync.Mutex {
	return &s.locks[maphash.String(s.seed, id.String())%uint64(len(s.locks))]
}

// Put implements shard.Store.
func (s *Store) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	info, err := s.put(ctx, id, blockLen, r, false, "")
	return info, fullErr(err)
}

// Replace implements shard.Store.
func (s *Store) Replace(ctx context.Context, id shard.ID, blockLen int, r io.Reader, want string) (shard.Info, error) {
	info, err := s.put(ctx, id, blockLen, r, true, want)
	return info, fullErr(err)
}

// fullErr marks a write that ran out of space as shard.ErrFull.
func fullErr(err error) error {
	if err != nil && errors.Is(err, syscall.ENOSPC) && !errors.Is(err, shard.ErrFull) {
		return fmt.Errorf("%w: %w", shard.ErrFull, err)
	}
	return err
}

// checkReserve refuses a new shard while the free space is below the
// reserve.
func (s *Store) checkReserve(id shard.ID) error {
	fsp, ok := s.fs.(FreeSpacer)
	if s.reserve <= 0 || !ok {
		return nil
	}
	free, err := fsp.FreeSpace(s.dir)
	if err != nil || free >= s.reserve {
		return nil // cannot tell: the write itself will say
	}
	return fmt.Errorf("put %s: %d bytes free, reserve %d: %w", id, free, s.reserve, shard.ErrFull)
}

// put stores a shard: a new one, or (replace) over what is stored, when
// the content hashes to want (if set).
func (s *Store) put(ctx context.Context, id shard.ID, blockLen int, r io.Reader, replace bool, want string) (shard.Info, error) {
	if _, err := shard.ParseID(id.String()); err != nil {
		return shard.Info{}, err
	}
	if blockLen < 1 || blockLen > 1<<30 {
		return shard.Info{}, fmt.Errorf("put %s: block length %d: %w", id, blockLen, shard.ErrInvalid)
	}
	if err := s.checkReserve(id); err != nil {
		return shard.Info{}, err
	}
	// The shard is read into memory (a pooled buffer, records checked as
	// they arrive) up to max(InlineMax, PackMax); it goes inline or to a
	// pack if it fits, else it spills to a temp file and is stored as a
	// file. The temp file is made in the shard's own partition directory
	// (not one tmp/ for all: concurrent creates and renames contended for
	// its lock), so the rename stays in one directory.
	final := s.path(id)
	h := erasure.NewShardHasher()
	in := ctxReader{ctx, r}
	memMax := max(s.inlineMax, s.packMax)
	grow := func(b []byte, n int) []byte {
		if len(b) >= erasure.HashSize+blockLen { // a full record read: a big shard, likely
			return s.bufs.grow(b, int(memMax)+erasure.HashSize+blockLen-len(b))
		}
		return s.bufs.grow(b, n)
	}
	buf, more, err := erasure.AppendRecords(s.bufs.get(minBufClass), in, blockLen, memMax, h, grow)
	defer func() { s.bufs.put(buf) }() // after the index commit: bbolt holds inline values until then
	n := int64(len(buf))
	var spill *tempFile
	if err == nil && more {
		spill, err = s.createTemp(final)
		if err == nil {
			defer spill.discard(s.fs)
			_, err = spill.f.Write(buf)
			s.bufs.put(buf)
			buf = nil
			if err == nil {
				var m int64
				if rc, ok := spill.f.(recordCopier); ok {
					m, err = rc.CopyRecords(in, blockLen, h)
				} else {
					m, err = erasure.CopyRecords(io.MultiWriter(spill.f, h), in, blockLen)
				}
				n += m
			}
			if err == nil {
				err = spill.f.Sync()
			}
			if cerr := spill.f.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		if errors.Is(err, erasure.ErrCorrupt) {
			return shard.Info{}, fmt.Errorf("put %s: %v: %w", id, err, shard.ErrCorrupt)
		}
		return shard.Info{}, fmt.Errorf("put %s: %w", id, err)
	}
	info := shard.Info{ID: id.String(), Size: n, Hash: hashHex(h), BlockLen: blockLen, ModTime: s.now().UTC()}
	if replace && want != "" && info.Hash != want {
		return shard.Info{}, fmt.Errorf("replace %s: content hash %s, want %s: %w", id, info.Hash, want, shard.ErrCorrupt)
	}

	mu := s.lock(id)
	mu.Lock()
	defer mu.Unlock()
	if !replace {
		old, err := s.Stat(ctx, id)
		switch {
		case err == nil && old.Hash == info.Hash:
			return old, nil // a retried write: the same shard is stored
		case err == nil:
			return shard.Info{}, fmt.Errorf("put %s: stored hash %s, new %s: %w", id, old.Hash, info.Hash, shard.ErrExists)
		case !errors.Is(err, shard.ErrNotFound):
			return shard.Info{}, fmt.Errorf("put %s: %w", id, err)
		}
	}
	if spill == nil && n > s.inlineMax {
		pk, off, err := s.packs.write(buf)
		if err != nil {
			return shard.Info{}, fmt.Errorf("put %s: pack: %w", id, err)
		}
		// On an error the range is not freed: whether the commit reached
		// the disk is unknown; the next Open punches it if no record names it.
		if err := s.updateIndex(pk, func(tx *indexTx) error {
			return tx.putRecord(record{Info: info, Pack: pk.seq, Off: off})
		}); err != nil {
			return shard.Info{}, fmt.Errorf("put %s: index: %w", id, err)
		}
		if replace { // a file it replaces goes (as for inline, below)
			if err := s.fs.Remove(final); err == nil {
				s.fs.SyncDir(filepath.Dir(final))
			}
		}
		return info, nil
	}
	if spill == nil {
		data := buf
		if err := s.updateIndex(nil, func(tx *indexTx) error {
			if err := tx.putRecord(record{Info: info, Inline: true}); err != nil {
				return err
			}
			return tx.tx.Bucket(bucketInline).Put([]byte(id.String()), data)
		}); err != nil {
			return shard.Info{}, fmt.Errorf("put %s: index: %w", id, err)
		}
		if replace { // a file it replaces (stored before InlineMax grew) goes
			if err := s.fs.Remove(final); err == nil {
				s.fs.SyncDir(filepath.Dir(final)) // else quarantined by the next reconcile
			}
		}
		return info, nil
	}
	if err := s.fs.Rename(spill.f.Name(), final); err != nil {
		return shard.Info{}, fmt.Errorf("put %s: %w", id, err)
	}
	spill.renamed = true
	if err := s.fs.SyncDir(filepath.Dir(final)); err != nil {
		return shard.Info{}, fmt.Errorf("put %s: %w", id, err)
	}
	ino, err := s.fs.Inode(final)
	if err != nil {
		return shard.Info{}, fmt.Errorf("put %s: %w", id, err)
	}
	if err := s.updateIndex(nil, func(tx *indexTx) error { return tx.putRecord(record{Info: info, Inode: ino}) }); err != nil {
		return shard.Info{}, fmt.Errorf("put %s: index: %w", id, err)
	}
	return info, nil
}

// tempPrefix starts the name of a file being written in a partition
// directory: never a shard id, removed by Open.
const tempPrefix = ".tmp."

// recordCopier is a File that reads shard records in itself (a direct
// file: straight into its aligned buffer), as erasure.CopyRecords into
// io.MultiWriter(file, h) would.
type recordCopier interface {
	CopyRecords(r io.Reader, blockLen int, h io.Writer) (int64, error)
}

// tempFile is a shard file being written under a temp name.
type tempFile struct {
	f       File
	renamed bool   // renamed into place: discard leaves it
	release func() // gives back the direct write buffer, if any
}

// createTemp creates the temp file for the shard file final, in its
// partition directory (made durable first).
func (s *Store) createTemp(final string) (*tempFile, error) {
	if err := s.ensureDir(filepath.Dir(final)); err != nil {
		return nil, err
	}
	pattern := tempPrefix + filepath.Base(final) + ".*"
	if dc, ok := s.fs.(DirectCreator); ok {
		// Large shards skip the page cache (as MinIO's do): no copy into
		// it, no dirty pages for writeback to flush later.
		buf, _ := s.directBufs.Get().(*[]byte)
		if buf == nil {
			b := AlignedBuffer(directBufSize)
			buf = &b
		}
		f, err := dc.CreateTempDirect(filepath.Dir(final), pattern, *buf)
		if err != nil {
			s.directBufs.Put(buf)
			return nil, err
		}
		return &tempFile{f: f, release: func() { s.directBufs.Put(buf) }}, nil
	}
	f, err := s.fs.CreateTemp(filepath.Dir(final), pattern)
	if err != nil {
		return nil, err
	}
	return &tempFile{f: f}, nil
}

// directBufSize is the size of the aligned buffers of direct writes.
const directBufSize = 1 << 20

// discard removes the temp file unless it was renamed into place (closing
// twice is harmless).
func (t *tempFile) discard(fsys FS) {
	if !t.renamed {
		t.f.Close()
		fsys.Remove(t.f.Name())
	}
	if t.release != nil {
		t.release()
	}
}

// ensureDir creates a partition directory and makes its entry durable.
// A directory that exists is not yet durable: its creator may not have
// synced the parent yet (another shard's Put, under another lock). So
// the first use of each directory in this process syncs the parent, and
// only then is the directory known durable.
func (s *Store) ensureDir(dir string) error {
	if _, ok := s.durableDirs.Load(dir); ok {
		return nil
	}
	if err := s.fs.MkdirAll(dir); err != nil {
		return err
	}
	if err := s.fs.SyncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	s.durableDirs.Store(dir, true)
	return nil
}

// Open implements shard.Store.
func (s *Store) Open(ctx context.Context, id shard.ID, off, n int64) (io.ReadCloser, error) {
	if _, err := shard.ParseID(id.String()); err != nil {
		return nil, err
	}
	f, rec, err := s.openData(id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", id, shard.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("open %s: %w", id, err)
	}
	size := rec.Size
	if n < 0 {
		n = size - off
	}
	if off < 0 || n < 0 || off+n > size {
		f.Close()
		return nil, fmt.Errorf("open %s: range [%d,+%d) of %d bytes: %w", id, off, n, size, shard.ErrInvalid)
	}
	sr := sectionReadCloser{io.NewSectionReader(f, off, n), f}
	if off == 0 && n == size {
		return &wholeReader{sectionReadCloser: sr, id: id, want: rec.Hash, h: erasure.NewShardHasher()}, nil
	}
	return sr, nil
}

// wholeReader reads a whole shard and checks its hash at the end.
type wholeReader struct {
	sectionReadCloser
	id   shard.ID
	want string
	h    *xxh3.Hasher128
}

func (w *wholeReader) Read(p []byte) (int, error) {
	n, err := w.sectionReadCloser.Read(p)
	w.h.Write(p[:n])
	if err == io.EOF {
		if got := hashHex(w.h); got != w.want {
			return n, fmt.Errorf("read %s: file hash %s, index %s: %w", w.id, got, w.want, shard.ErrCorrupt)
		}
	}
	return n, err
}

type sectionReadCloser struct {
	*io.SectionReader
	f io.Closer
}

// shardData is a shard's stored bytes, open for reading.
type shardData interface {
	io.Reader
	io.ReaderAt
	io.Closer
}

// inlineData is the bytes of an inline shard, copied out of the index.
type inlineData struct{ *bytes.Reader }

func (inlineData) Close() error { return nil }

// lookup returns a shard's record and, for an inline shard, a copy of its
// bytes (the index's memory is only valid inside its transaction). Errors
// wrap fs.ErrNotExist when the index has no record.
func (s *Store) lookup(id shard.ID) (record, []byte, error) {
	var rec record
	var data []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketShards).Get([]byte(id.String()))
		if v == nil {
			return fmt.Errorf("shard %s: no record: %w", id, fs.ErrNotExist)
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		if rec.Inline {
			data = bytes.Clone(tx.Bucket(bucketInline).Get([]byte(id.String())))
		}
		return nil
	})
	return rec, data, err
}

// openData opens an indexed shard's stored bytes: its inline value (copied
// out of the index: the store owns no memory the caller holds), its pack
// range or its file, and returns its record. The caller closes it. Errors
// wrap fs.ErrNotExist when there is no record or its bytes are gone; the
// size stored may differ from the record's (a damaged file): readers check.
func (s *Store) openData(id shard.ID) (shardData, record, error) {
	rec, data, err := s.lookup(id)
	if err != nil {
		return nil, rec, err
	}
	if rec.Pack != 0 {
		// Looked up again under the shard's lock, which a delete or
		// replace holds until it has freed the old range: so the reader
		// is registered before the free (which then waits for it) or
		// finds the record gone or changed, never a punched range.
		mu := s.lock(id)
		mu.Lock()
		defer mu.Unlock()
		if rec, data, err = s.lookup(id); err != nil {
			return nil, rec, err
		}
	}
	switch {
	case rec.Inline:
		return inlineData{bytes.NewReader(data)}, rec, nil
	case rec.Pack != 0:
		f, err := s.packs.open(packRange{rec.Pack, rec.Off}, rec.Size)
		return f, rec, err
	}
	f, err := s.fs.Open(s.path(id))
	if err != nil {
		return nil, rec, err
	}
	return f, rec, nil
}

// Locate says where a shard's bytes are on disk: a shard file, or a pack
// file and the offset in it; path is "" for a shard stored inline in the
// index. For the operator and for tests (that damage shards on purpose).
// Errors: shard.ErrNotFound.
func (s *Store) Locate(id shard.ID) (path string, off int64, err error) {
	rec, _, err := s.lookup(id)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", 0, fmt.Errorf("locate %s: %w", id, shard.ErrNotFound)
	case err != nil:
		return "", 0, err
	case rec.Inline:
		return "", 0, nil
	case rec.Pack != 0:
		return s.packs.path(rec.Pack), rec.Off, nil
	}
	return s.path(id), 0, nil
}

func (s sectionReadCloser) Close() error { return s.f.Close() }

// Stat implements shard.Store.
func (s *Store) Stat(ctx context.Context, id shard.ID) (shard.Info, error) {
	var rec record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketShards).Get([]byte(id.String()))
		if v == nil {
			return fmt.Errorf("stat %s: %w", id, shard.ErrNotFound)
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		rec.Verified = rec.ModTime // the Put checked every block
		if t := tx.Bucket(bucketVerified).Get([]byte(id.String())); len(t) == 8 {
			if vt := time.Unix(0, int64(binary.BigEndian.Uint64(t))); vt.After(rec.Verified) {
				rec.Verified = vt
			}
		}
		return nil
	})
	return rec.Info, err
}

// MarkVerified records that the shards in ids were read whole and found
// intact at t (one index transaction for all of them).
func (s *Store) MarkVerified(ids []shard.ID, t time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(t.UnixNano()))
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVerified)
		for _, id := range ids {
			if tx.Bucket(bucketShards).Get([]byte(id.String())) == nil {
				continue // deleted meanwhile
			}
			if err := b.Put([]byte(id.String()), v[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Delete implements shard.Store.
func (s *Store) Delete(ctx context.Context, id shard.ID) error {
	if _, err := shard.ParseID(id.String()); err != nil {
		return err
	}
	mu := s.lock(id)
	mu.Lock()
	defer mu.Unlock()
	return s.removeLocked(id, "")
}

// removeLocked unlinks the shard file (or moves it to moveTo: a pack or
// inline shard is copied there) and then drops its index record. The
// caller holds the shard's lock.
func (s *Store) removeLocked(id shard.ID, moveTo string) error {
	rec, data, err := s.lookup(id)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", id, shard.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if rec.Inline || rec.Pack != 0 {
		if moveTo != "" {
			if rec.Pack != 0 {
				if data, err = s.packBytes(rec); err != nil {
					return fmt.Errorf("delete %s: %w", id, err)
				}
			}
			if err := s.writeFile(moveTo, data); err != nil {
				return fmt.Errorf("delete %s: %w", id, err)
			}
		}
		return s.updateIndex(nil, func(tx *indexTx) error { return tx.deleteRecord(id.String()) })
	}
	p := s.path(id)
	if moveTo != "" {
		err = s.fs.Rename(p, moveTo)
	} else {
		err = s.fs.Remove(p)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // a missing file: drop the record
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if err := s.fs.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if moveTo != "" {
		if err := s.fs.SyncDir(filepath.Dir(moveTo)); err != nil {
			return fmt.Errorf("delete %s: %w", id, err)
		}
	}
	return s.updateIndex(nil, func(tx *indexTx) error { return tx.deleteRecord(id.String()) })
}

// packBytes reads a pack shard's bytes.
func (s *Store) packBytes(rec record) ([]byte, error) {
	r, err := s.packs.open(packRange{rec.Pack, rec.Off}, rec.Size)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data := make([]byte, rec.Size)
	_, err = io.ReadFull(r, data)
	return data, err
}

// writeFile writes data to a new durable file at path (quarantined
// inline shards).
func (s *Store) writeFile(path string, data []byte) error {
	f, err := s.fs.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(f.Name(), path)
	}
	if err != nil {
		s.fs.Remove(f.Name())
		return err
	}
	return s.fs.SyncDir(filepath.Dir(path))
}

// Quarantine moves a shard out of the store into quarantine/ (kept for the
// operator) and out of the index, so anti-entropy rebuilds it.
func (s *Store) Quarantine(id shard.ID) error {
	mu := s.lock(id)
	mu.Lock()
	defer mu.Unlock()
	dst := filepath.Join(s.dir, "quarantine", fmt.Sprintf("%s.%d", id, s.now().UnixNano()))
	return s.removeLocked(id, dst)
}

// Leaf implements shard.Store.
func (s *Store) Leaf(ctx context.Context, leaf uint32) ([]shard.Info, error) {
	if leaf >= merkle.Leaves {
		return nil, fmt.Errorf("leaf %d: %w", leaf, shard.ErrInvalid)
	}
	prefix := fmt.Sprintf("%05x", leaf)
	var out []shard.Info
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketShards).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = append(out, rec.Info)
		}
		return nil
	})
	return out, err
}

// Children implements shard.Store. Interior digests come from the
// in-memory tree, which recomputes only what changed since the last call.
func (s *Store) Children(ctx context.Context, level int, idx uint32) ([merkle.Fanout]merkle.Digest, error) {
	if level < 0 || level >= merkle.Depth || idx >= merkle.NodeCount(level) {
		return [merkle.Fanout]merkle.Digest{}, fmt.Errorf("tree node %d/%d: %w", level, idx, shard.ErrInvalid)
	}
	return s.tree.Children(level, idx)
}

// leaves reads the stored leaf digests in [lo, hi).
func (s *Store) leaves(lo, hi uint32) (map[uint32]merkle.Digest, error) {
	out := map[uint32]merkle.Digest{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLeaves).Cursor()
		for k, v := c.Seek(leafKey(lo)); k != nil && binary.BigEndian.Uint32(k) < hi; k, v = c.Next() {
			out[binary.BigEndian.Uint32(k)] = merkle.Digest(v)
		}
		return nil
	})
	return out, err
}

// Walk calls f for every indexed shard in id order, outside any lock; f may
// call the store's other methods.
func (s *Store) Walk(ctx context.Context, f func(shard.Info) error) error {
	var after []byte
	for {
		var batch []shard.Info
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketShards).Cursor()
			k, v := c.Seek(after)
			if after != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
			for ; k != nil && len(batch) < 1000; k, v = c.Next() {
				var rec record
				if err := json.Unmarshal(v, &rec); err != nil {
					return err
				}
				batch = append(batch, rec.Info)
				after = bytes.Clone(k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, info := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f(info); err != nil {
				return err
			}
		}
		if len(batch) < 1000 {
			return nil
		}
	}
}

func leafKey(l uint32) []byte { return binary.BigEndian.AppendUint32(nil, l) }

// indexTx is a bbolt write transaction on the index that remembers the
// leaf changes it made, so the in-memory tree follows once it commits.
type indexTx struct {
	tx     *bolt.Tx
	deltas []leafDelta
	freed  []freedRange // pack ranges of dropped records: freed once committed
	shards int64        // records added minus removed
	bytes  int64        // their sizes
}

type freedRange struct {
	r packRange
	n int64
}

type leafDelta struct {
	leaf uint32
	d    merkle.Digest
}

// updateIndex runs f in a write transaction (shared with concurrent
// updates: group commit) and, once it has committed, applies its leaf
// changes to the in-memory tree (XOR commutes, so concurrent commits may
// apply in any order) and frees the pack ranges of the records it
// dropped. f may run more than once. If sync is not nil (the pack f's
// record names), it is synced before the commit.
func (s *Store) updateIndex(sync syncer, f func(*indexTx) error) error {
	var x indexTx
	if err := s.commit.update(sync, func(tx *bolt.Tx) error {
		x = indexTx{tx: tx}
		return f(&x)
	}); err != nil {
		return err
	}
	if s.tree != nil { // nil while Open reconciles; loaded after
		for _, d := range x.deltas {
			s.tree.Xor(d.leaf, d.d)
		}
		s.shards.Add(x.shards)
		s.bytes.Add(x.bytes)
	}
	for _, fr := range x.freed {
		s.packs.free(fr.r, fr.n)
	}
	return nil
}

func (x *indexTx) xorLeaf(leaf uint32, d merkle.Digest) error {
	x.deltas = append(x.deltas, leafDelta{leaf, d})
	b := x.tx.Bucket(bucketLeaves)
	var cur merkle.Digest
	if v := b.Get(leafKey(leaf)); v != nil {
		cur = merkle.Digest(v)
	}
	cur = cur.Xor(d)
	if cur.IsZero() {
		return b.Delete(leafKey(leaf))
	}
	return b.Put(leafKey(leaf), cur[:])
}

// putRecord indexes a shard, replacing any previous record and its digest.
func (x *indexTx) putRecord(rec record) error {
	id, _ := shard.ParseID(rec.ID)
	if err := x.deleteRecord(rec.ID); err != nil && !errors.Is(err, shard.ErrNotFound) {
		return err
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := x.tx.Bucket(bucketShards).Put([]byte(rec.ID), v); err != nil {
		return err
	}
	x.shards++
	x.bytes += rec.Size
	return x.xorLeaf(id.Leaf(), rec.EntryDigest())
}

func (x *indexTx) deleteRecord(key string) error {
	b := x.tx.Bucket(bucketShards)
	v := b.Get([]byte(key))
	if v == nil {
		return shard.ErrNotFound
	}
	var old record
	if err := json.Unmarshal(v, &old); err != nil {
		return err
	}
	id, err := shard.ParseID(key)
	if err != nil {
		return err
	}
	if err := x.xorLeaf(id.Leaf(), old.EntryDigest()); err != nil {
		return err
	}
	if err := x.tx.Bucket(bucketVerified).Delete([]byte(key)); err != nil {
		return err
	}
	if old.Inline {
		if err := x.tx.Bucket(bucketInline).Delete([]byte(key)); err != nil {
			return err
		}
	}
	if old.Pack != 0 {
		x.freed = append(x.freed, freedRange{packRange{old.Pack, old.Off}, old.Size})
	}
	x.shards--
	x.bytes -= old.Size
	return b.Delete([]byte(key))
}

// reconcile makes the index match the shard files after a crash. A file
// the index does not know, or knows with another inode or size, was renamed
// into place by a write that crashed before its index commit, so before it
// was acknowledged: it is moved to quarantine/ and its stale record (if any)
// dropped; anti-entropy rebuilds the shard if a segment needs it. A record
// without a file (crash between unlink and commit) is dropped. Files with
// malformed names are quarantined too.
func (s *Store) reconcile() error {
	indexed := map[string]record{}
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketShards).ForEach(func(k, v []byte) error {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			indexed[string(k)] = rec
			return nil
		})
	}); err != nil {
		return fmt.Errorf("storagenode: reconcile: %w", err)
	}
	// Pack shards: their packs are opened against the records; records
	// whose bytes are not there are dropped below.
	named := map[uint32]map[int64]int64{}
	for _, rec := range indexed {
		if rec.Pack != 0 {
			if named[rec.Pack] == nil {
				named[rec.Pack] = map[int64]int64{}
			}
			named[rec.Pack][rec.Off] = rec.Size
		}
	}
	pks, missing, err := openPacks(s.fs, filepath.Join(s.dir, "packs"), filepath.Join(s.dir, "quarantine"), named)
	if err != nil {
		return err
	}
	s.packs = pks
	gone := map[packRange]bool{}
	for _, r := range missing {
		gone[r] = true
	}
	matched := map[string]bool{}
	root := filepath.Join(s.dir, "shards")
	var moved []string // directories whose entries moved to quarantine/
	err = s.fs.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) { // a write the crash cut
			return s.fs.Remove(p)
		}
		id, perr := shard.ParseID(d.Name())
		if perr == nil && filepath.Dir(p) == filepath.Dir(s.path(id)) {
			st, err := s.fs.Stat(p)
			if err != nil {
				return err
			}
			ino, err := s.fs.Inode(p)
			if err != nil {
				return err
			}
			if rec, ok := indexed[id.String()]; ok && rec.Inode == ino && rec.Size == st.Size() {
				matched[id.String()] = true
				return nil
			}
		}
		moved = append(moved, filepath.Dir(p))
		return s.fs.Rename(p, filepath.Join(s.dir, "quarantine", fmt.Sprintf("%s.%d", d.Name(), s.now().UnixNano())))
	})
	// The moves are durable before the index forgets anything.
	for _, d := range append(moved, filepath.Join(s.dir, "quarantine")) {
		if err == nil {
			err = s.fs.SyncDir(d)
		}
	}
	if err != nil {
		return fmt.Errorf("storagenode: reconcile: %w", err)
	}
	var drop []string
	for k, rec := range indexed {
		switch {
		case rec.Inline: // no file
		case rec.Pack != 0:
			if gone[packRange{rec.Pack, rec.Off}] {
				drop = append(drop, k)
			}
		case !matched[k]:
			drop = append(drop, k)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	return s.updateIndex(nil, func(tx *indexTx) error {
		for _, k := range drop {
			if err := tx.deleteRecord(k); err != nil {
				return err
			}
		}
		tx.freed = nil // openPacks counted none of these ranges
		return nil
	})
}

// CheckReport is the result of Check.
type CheckReport struct {
	Shards        int
	Mismatched    []string // index record disagrees with the file (size or hash)
	MissingFiles  []string // record without a file
	Unindexed     []string // file without a record
	LeavesWrong   []uint32 // stored leaf digest differs from recomputation
	CorruptBlocks []string // file whose records fail their hashes
	TreeWrong     bool     // the in-memory tree disagrees with the stored leaves
}

// OK reports whether nothing was found wrong.
func (r CheckReport) OK() bool {
	return len(r.Mismatched)+len(r.MissingFiles)+len(r.Unindexed)+len(r.LeavesWrong)+len(r.CorruptBlocks) == 0 && !r.TreeWrong
}

// Check verifies the whole store from scratch: every record against its
// file (size, hash, every block hash), every file against the index, and
// every stored Merkle leaf against a recomputation from the records. It
// reads every byte; it is for tests and for the operator, not a hot path.
func (s *Store) Check(ctx context.Context) (CheckReport, error) {
	var rep CheckReport
	want := map[uint32]merkle.Digest{}
	seen := map[string]bool{}
	err := s.Walk(ctx, func(info shard.Info) error {
		rep.Shards++
		seen[info.ID] = true
		id, _ := shard.ParseID(info.ID)
		want[id.Leaf()] = want[id.Leaf()].Xor(info.EntryDigest())
		f, rec, err := s.openData(id)
		if errors.Is(err, fs.ErrNotExist) {
			rep.MissingFiles = append(rep.MissingFiles, info.ID)
			return nil
		} else if err != nil {
			return err
		}
		defer f.Close()
		size := rec.Size
		if st, ok := f.(interface{ Stat() (fs.FileInfo, error) }); ok { // a file
			fi, err := st.Stat()
			if err != nil {
				return err
			}
			size = fi.Size()
		}
		h := erasure.NewShardHasher()
		n, err := erasure.CopyRecords(h, f, info.BlockLen)
		if errors.Is(err, erasure.ErrCorrupt) {
			rep.CorruptBlocks = append(rep.CorruptBlocks, info.ID)
		} else if err != nil {
			return err
		}
		if size != info.Size || (err == nil && (n != info.Size || hashHex(h) != info.Hash)) {
			rep.Mismatched = append(rep.Mismatched, info.ID)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	err = s.fs.WalkDir(filepath.Join(s.dir, "shards"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !seen[d.Name()] && !strings.HasPrefix(d.Name(), tempPrefix) {
			rep.Unindexed = append(rep.Unindexed, d.Name())
		}
		return err
	})
	if err != nil {
		return rep, err
	}
	stored, err := s.leaves(0, merkle.Leaves)
	if err != nil {
		return rep, err
	}
	for l, d := range want {
		if d.IsZero() {
			delete(want, l)
		}
	}
	rep.TreeWrong = s.tree.Root() != merkle.Build(stored).Root()
	for l := range merkle.Leaves {
		if want[uint32(l)] != stored[uint32(l)] {
			rep.LeavesWrong = append(rep.LeavesWrong, uint32(l))
		}
	}
	sort.Strings(rep.Unindexed)
	return rep, nil
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func hashHex(h interface{ Sum128() xxh3.Uint128 }) string {
	b := h.Sum128().Bytes()
	return hex.EncodeToString(b[:])
}
