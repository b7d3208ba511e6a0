package storagenode

// Pack files: mid-size shards appended to a file shared by all writers.
//
// Layout: packs/<seq: 8 hex>.pack. A shard above Options.InlineMax and up
// to Options.PackMax is written at the end of the active pack (WriteAt at
// an offset reserved under a lock, so concurrent writers do not wait for
// each other) and its index record names the pack and the offset. Its
// durability comes from the group commit: the commit leader syncs every
// pack its batch wrote to, once, before it commits the index, so one
// fsync covers all concurrent writers, where a shard file costs a create,
// an fsync of the file and of its directory, and a rename.
//
// Invariants:
//   - A pack's directory entry is durable before any record names it: the
//     packs directory is synced when a pack is created.
//   - A record names bytes that were synced before the record committed.
//     A pack whose sync failed is never synced again (its error sticks:
//     after a failed fsync the kernel may have dropped the pages while a
//     later fsync succeeds), so no later write in it is acknowledged; the
//     next write starts a new pack.
//   - Bytes no record names (a write that failed or was cut by a crash
//     before its commit, a deleted or replaced shard) are garbage. Their
//     space is given back by punching a hole, after the commit that
//     dropped their record and after the last reader of that range closed
//     (a punched range reads as zeros).
//   - live counts a pack's records plus the writes in flight into it; a
//     pack whose live count drops to 0 is removed unless it is the active
//     one. Open punches every range no record names and removes packs no
//     record names, so a crash leaks nothing for long.
//   - A process never appends to a pack an earlier process wrote: the
//     first write after Open starts a new one.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// DefaultPackMax is the default Options.PackMax: the shards of objects
// and parts up to 8 MiB (4+2, with their block headers) go to packs.
const DefaultPackMax = 2<<20 + 64<<10

// packRoll is the size at which the active pack is closed for writes and
// a new one started.
const packRoll = 256 << 20

const packSuffix = ".pack"

// pack is one pack file.
type pack struct {
	seq uint32
	f   File
	ps  *packs
	// The fields below are guarded by packs.mu.
	readers int   // open readers of any of its ranges
	size    int64 // bytes reserved so far (the next write's offset)
	live    int   // records naming the pack + writes in flight into it
	waiting int   // freed ranges whose punch waits for readers
	syncErr error // sticky: a failed sync fails every later one
}

// packRange is where a shard's bytes are in a pack.
type packRange struct {
	seq uint32
	off int64
}

// packs is a store's pack files.
type packs struct {
	fs  FS
	dir string

	mu      sync.Mutex
	files   map[uint32]*pack
	active  *pack  // nil until the first write of this process
	next    uint32 // seq of the next pack
	readers map[packRange]int
	freed   map[packRange]int64 // range → length, punched when its readers close
	closed  bool                // Store.Close: files close when their last reader does
}

func packName(seq uint32) string { return fmt.Sprintf("%08x%s", seq, packSuffix) }

// parsePackName returns the seq a pack file name carries.
func parsePackName(name string) (uint32, bool) {
	hexSeq, ok := strings.CutSuffix(name, packSuffix)
	if !ok || len(hexSeq) != 8 {
		return 0, false
	}
	v, err := strconv.ParseUint(hexSeq, 16, 32)
	return uint32(v), err == nil && v > 0
}

// openPacks opens the packs under dir (created by the caller) against
// the index's records: seq → the ranges (offset → length) they name.
// Packs no record names are removed, ranges no record names punched.
// It returns the records whose bytes are not there (a pack missing or
// too short): the caller drops them. Files with other names are moved to
// quarantine.
func openPacks(fsys FS, dir, quarantine string, named map[uint32]map[int64]int64) (*packs, []packRange, error) {
	p := &packs{fs: fsys, dir: dir, files: map[uint32]*pack{}, next: 1, readers: map[packRange]int{}, freed: map[packRange]int64{}}
	var stray []string
	err := fsys.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		if d.IsDir() {
			stray = append(stray, path)
			return fs.SkipDir
		}
		seq, ok := parsePackName(d.Name())
		if !ok {
			stray = append(stray, path)
			return nil
		}
		p.next = max(p.next, seq+1)
		if len(named[seq]) == 0 {
			return fsys.Remove(path)
		}
		f, err := fsys.OpenFile(path)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		pk := &pack{seq: seq, f: f, ps: p, size: st.Size()}
		p.files[seq] = pk
		return nil
	})
	if err != nil {
		p.close()
		return nil, nil, fmt.Errorf("storagenode: open packs: %w", err)
	}
	for _, path := range stray {
		if err := fsys.Rename(path, filepath.Join(quarantine, filepath.Base(path))); err != nil {
			p.close()
			return nil, nil, fmt.Errorf("storagenode: open packs: %w", err)
		}
	}
	var missing []packRange
	for seq, ranges := range named {
		pk := p.files[seq]
		offs := make([]int64, 0, len(ranges))
		for off := range ranges {
			offs = append(offs, off)
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		var end int64
		for _, off := range offs {
			if pk == nil || off+ranges[off] > pk.size {
				missing = append(missing, packRange{seq, off})
				continue
			}
			if off > end {
				if err := fsys.Punch(pk.f, end, off-end); err != nil {
					p.close()
					return nil, nil, fmt.Errorf("storagenode: open packs: punch: %w", err)
				}
			}
			end = max(end, off+ranges[off])
			pk.live++
		}
		if pk != nil && pk.size > end {
			if err := fsys.Punch(pk.f, end, pk.size-end); err != nil {
				p.close()
				return nil, nil, fmt.Errorf("storagenode: open packs: punch: %w", err)
			}
		}
	}
	for seq, pk := range p.files {
		if pk.live == 0 { // every record it had was missing its bytes
			pk.f.Close()
			delete(p.files, seq)
			fsys.Remove(filepath.Join(dir, packName(seq)))
		}
	}
	return p, missing, nil
}

// write appends data to the active pack (starting one if needed) and
// returns where it is. The bytes are not synced: the commit that indexes
// them syncs the pack first (sync). On success the pack counts the write
// as live until free is called for its range.
func (p *packs) write(data []byte) (*pack, int64, error) {
	p.mu.Lock()
	if p.active == nil || (p.active.size > 0 && p.active.size+int64(len(data)) > packRoll) || p.active.syncErr != nil {
		if err := p.startLocked(); err != nil {
			p.mu.Unlock()
			return nil, 0, err
		}
	}
	pk, off := p.active, p.active.size
	pk.size += int64(len(data))
	pk.live++
	p.mu.Unlock()
	if _, err := pk.f.WriteAt(data, off); err != nil {
		p.free(packRange{pk.seq, off}, int64(len(data)))
		return nil, 0, err
	}
	return pk, off, nil
}

// startLocked makes a new pack the active one; the old one is removed if
// nothing lives in it. The caller holds p.mu.
func (p *packs) startLocked() error {
	seq := p.next
	path := filepath.Join(p.dir, packName(seq))
	f, err := p.fs.OpenFile(path)
	if err != nil {
		return err
	}
	if err := p.fs.SyncDir(p.dir); err != nil {
		f.Close()
		p.fs.Remove(path)
		return err
	}
	p.next++
	old := p.active
	p.active = &pack{seq: seq, f: f, ps: p}
	p.files[seq] = p.active
	if old != nil {
		p.maybeRemoveLocked(old)
	}
	return nil
}

// Sync makes the pack's bytes durable. Called by the commit leader only
// (one at a time). A failure sticks (see the design comment).
func (pk *pack) Sync() error {
	p := pk.ps
	p.mu.Lock()
	err := pk.syncErr
	p.mu.Unlock()
	if err != nil {
		return err
	}
	if err := pk.f.Sync(); err != nil {
		p.mu.Lock()
		pk.syncErr = fmt.Errorf("pack %s: sync failed earlier: %w", packName(pk.seq), err)
		p.mu.Unlock()
		return err
	}
	return nil
}

// free gives back a range no record names any more (its record was
// dropped and committed, or its write failed): punched now, or when its
// last reader closes.
func (p *packs) free(r packRange, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pk := p.files[r.seq]
	if pk == nil {
		return
	}
	pk.live--
	if p.closed {
		return
	}
	if p.readers[r] > 0 {
		p.freed[r] = n
		pk.waiting++
		return
	}
	p.fs.Punch(pk.f, r.off, n) // best effort: a failure only keeps the space
	p.maybeRemoveLocked(pk)
}

// maybeRemoveLocked removes pk if nothing lives in it, no punch waits on
// it and it is not the active pack.
func (p *packs) maybeRemoveLocked(pk *pack) {
	if pk.live > 0 || pk.waiting > 0 || pk == p.active || p.closed {
		return
	}
	delete(p.files, pk.seq)
	pk.f.Close()
	p.fs.Remove(filepath.Join(p.dir, packName(pk.seq))) // else removed by the next Open
}

// open returns a reader of n bytes at r; until it is closed, a free of r
// waits. Errors wrap fs.ErrNotExist when the pack is gone.
func (p *packs) open(r packRange, n int64) (shardData, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pk := p.files[r.seq]
	if pk == nil || p.closed {
		return nil, fmt.Errorf("pack %s: %w", packName(r.seq), fs.ErrNotExist)
	}
	p.readers[r]++
	pk.readers++
	return &packReader{SectionReader: io.NewSectionReader(pk.f, r.off, n), pk: pk, r: r}, nil
}

// packReader reads a shard's range of a pack.
type packReader struct {
	*io.SectionReader
	pk     *pack
	r      packRange
	closed bool
}

// Close ends the read; a punch that waited for it runs.
func (pr *packReader) Close() error {
	pk, p := pr.pk, pr.pk.ps
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.closed {
		return nil
	}
	pr.closed = true
	pk.readers--
	if p.closed && pk.readers == 0 {
		return pk.f.Close()
	}
	if p.readers[pr.r]--; p.readers[pr.r] > 0 {
		return nil
	}
	delete(p.readers, pr.r)
	if n, ok := p.freed[pr.r]; ok {
		delete(p.freed, pr.r)
		pk.waiting--
		p.fs.Punch(pk.f, pr.r.off, n)
		p.maybeRemoveLocked(pk)
	}
	return nil
}

// path is where a pack is (for Locate).
func (p *packs) path(seq uint32) string { return filepath.Join(p.dir, packName(seq)) }

// close closes the pack files; one with open readers closes when its last
// reader does (open readers stay valid, as for shard files).
func (p *packs) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, pk := range p.files {
		if pk.readers == 0 {
			errs = append(errs, pk.f.Close())
		}
	}
	return errors.Join(errs...)
}
