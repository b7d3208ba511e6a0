// Package shard is the shard contract: shard ids and their parsing, what
// a stored shard is (Info), the Store interface every shard store
// implements (a node's disk store, the HTTP client, the in-memory and
// fault-injecting stores), and the errors of that contract. It imports
// nothing of ours but internal/merkle, so that cluster, repair and the
// gateway can speak to shard stores without linking a disk store.
package shard

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sherdstore/sherd/internal/merkle"
)

// Sentinel errors of a shard store; a node's HTTP API and its client carry
// them across the wire, so errors.Is works on both sides.
var (
	ErrNotFound = errors.New("shard not found")
	ErrInvalid  = errors.New("invalid request")
	ErrCorrupt  = errors.New("shard data corrupt")
	// ErrExists: a different shard is already stored under the id (only a
	// repair may replace a shard: Replace).
	ErrExists = errors.New("a different shard exists under this id")
	// ErrFull: the node's disk is full (or at its reserve): it takes no
	// new shard, though it still reads and deletes.
	ErrFull = errors.New("node disk full")
)

// SegmentIDLen is the length of a segment id: 128 bits in lowercase hex.
const SegmentIDLen = 32

// ID names shard Index of segment Segment. Its string form is
// "<segment>.<index>"; it is data, never a path.
type ID struct {
	Segment string
	Index   int
}

func (id ID) String() string { return id.Segment + "." + strconv.Itoa(id.Index) }

// Leaf is the Merkle leaf the shard belongs to.
func (id ID) Leaf() uint32 {
	l, _ := merkle.LeafOf(id.Segment) // validated by ParseID
	return l
}

// Partition is the shard's partition (first 12 bits of the segment id).
func (id ID) Partition() uint32 { return id.Leaf() / merkle.LeavesPerPartition }

// ParseID parses and validates "<32 lowercase hex>.<0..255>".
func ParseID(s string) (ID, error) {
	seg, idx, ok := strings.Cut(s, ".")
	if !ok || len(seg) != SegmentIDLen || !isLowerHex(seg) {
		return ID{}, fmt.Errorf("shard id %q: %w", s, ErrInvalid)
	}
	n, err := strconv.Atoi(idx)
	if err != nil || n < 0 || n > 255 || strconv.Itoa(n) != idx {
		return ID{}, fmt.Errorf("shard id %q: %w", s, ErrInvalid)
	}
	return ID{Segment: seg, Index: n}, nil
}

// ValidSegmentID reports whether s is a well-formed segment id.
func ValidSegmentID(s string) bool { return len(s) == SegmentIDLen && isLowerHex(s) }

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Info describes a stored shard.
type Info struct {
	ID       string    `json:"id"`
	Size     int64     `json:"size"`
	Hash     string    `json:"hash"`  // XXH3-128 of the whole file, hex
	BlockLen int       `json:"block"` // shard block length of a full stripe
	ModTime  time.Time `json:"mtime"`
	// Verified is when the shard's content was last checked against its
	// block hashes: by a scrub pass, a verify request, or the write that
	// stored it (a Put checks every block). Filled by Stat and Verify.
	Verified time.Time `json:"verified,omitzero"`
}

// EntryDigest is the shard's contribution to its Merkle leaf.
func (s Info) EntryDigest() merkle.Digest {
	h, _ := hex.DecodeString(s.Hash)
	return merkle.EntryDigest(s.ID, s.Size, h)
}

// Store is what a shard store does: on disk (storagenode.Store), over
// HTTP (storagenode/client.Client), in memory (memstore.Store) or with
// faults injected (faulty.Store). The conformance suite storetest.Run runs against
// each.
type Store interface {
	// Put stores shard id from r, a sequence of (hash || block) records
	// whose blocks are blockLen bytes except the last, verifying every
	// block hash as it streams. It never replaces a different shard: if id
	// is stored with another whole-file hash it fails with ErrExists; the
	// same content again succeeds (a retried write). Errors: ErrInvalid
	// (bad id or block length), ErrCorrupt (a record fails its hash or is
	// torn), ErrExists; on error nothing is stored. The caller owns r.
	Put(ctx context.Context, id ID, blockLen int, r io.Reader) (Info, error)
	// Replace is Put that may replace a stored shard atomically (readers
	// see the old or the new file, never a mix): a repair rewriting a lost
	// or corrupt shard. When want is not "" the new file's whole-file hash
	// must equal it, else nothing changes and the error wraps ErrCorrupt.
	Replace(ctx context.Context, id ID, blockLen int, r io.Reader, want string) (Info, error)
	// Open returns n bytes of the shard's file starting at off (n < 0: to
	// the end). The caller closes the reader. Errors: ErrNotFound,
	// ErrInvalid (range outside the file). A read of the whole file also
	// checks the whole-file hash: the reader's last Read fails with
	// ErrCorrupt in place of io.EOF when it differs from the index's.
	Open(ctx context.Context, id ID, off, n int64) (io.ReadCloser, error)
	// Stat describes the shard. Errors: ErrNotFound.
	Stat(ctx context.Context, id ID) (Info, error)
	// Delete removes the shard. Errors: ErrNotFound.
	Delete(ctx context.Context, id ID) error
	// Leaf lists the shards in Merkle leaf leaf, sorted by id.
	Leaf(ctx context.Context, leaf uint32) ([]Info, error)
	// Children returns the digests of the 16 children of interior Merkle
	// node idx at level (0 ≤ level < merkle.Depth). Errors: ErrInvalid.
	Children(ctx context.Context, level int, idx uint32) ([merkle.Fanout]merkle.Digest, error)
}
