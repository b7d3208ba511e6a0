// Package metadata defines Sherd's metadata model (buckets, objects, segments, uploads, nodes), the Store interface and its sentinel errors.
package metadata

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors of every Store; check with errors.Is.
var (
	ErrNoSuchBucket   = errors.New("no such bucket")
	ErrBucketExists   = errors.New("bucket already exists")
	ErrBucketNotEmpty = errors.New("bucket not empty")
	ErrNoSuchKey      = errors.New("no such key")
	ErrNoSuchVersion  = errors.New("no such version")
	// ErrLocked: the version is protected by object lock (retention or a
	// legal hold) and cannot be removed.
	ErrLocked             = errors.New("object version protected by object lock")
	ErrNoSuchUpload       = errors.New("no such upload")
	ErrNoSuchSegment      = errors.New("no such segment")
	ErrPreconditionFailed = errors.New("precondition failed")
	ErrConflict           = errors.New("conflicting concurrent update")
	ErrInvalid            = errors.New("invalid metadata argument")
	// ErrUnknownOutcome: the store could not learn whether a commit
	// applied (a timeout, a lost leader, a cancelled request after the
	// transaction went out). It may have: the caller must not release
	// anything the commit refers to, and may retry.
	ErrUnknownOutcome = errors.New("commit outcome unknown")
	// ErrUnavailable: the metadata store could not be reached or had no
	// leader (a transient condition: retry). It may come with
	// ErrUnknownOutcome on a commit.
	ErrUnavailable = errors.New("metadata store unavailable")
	// ErrNoLease: a Claimer holds no live lease right now (etcd was
	// unreachable past the lease's TTL, or the lease was revoked) and is
	// making a new one; nothing can be claimed until it has.
	ErrNoLease = errors.New("claimer has no live lease")
	// ErrBucketState: the change would break a bucket invariant (object
	// lock on needs versioning Enabled, for good).
	ErrBucketState = errors.New("the bucket's state forbids this change")
	// ErrClaimLost: a fenced write's claim is no longer held by the
	// writer (its lease lapsed; another claimer may hold the name): the
	// write was not made.
	ErrClaimLost = errors.New("claim no longer held")
)

// Version is the encoding version written in every value.
const Version = 1

// ECProfile is a segment's erasure-coding profile (same JSON as erasure.Profile).
type ECProfile struct {
	K         int `json:"k"`
	M         int `json:"m"`
	BlockSize int `json:"bs"`
}

// Bucket is a bucket's configuration.
type Bucket struct {
	V          int       `json:"v"`
	Name       string    `json:"name"`
	Created    time.Time `json:"created"`
	Owner      string    `json:"owner,omitempty"`
	Profile    ECProfile `json:"ec"`
	PublicRead bool      `json:"public,omitempty"`
	CORS       string    `json:"cors,omitempty"`   // CORSConfiguration XML as stored
	Notify     string    `json:"notify,omitempty"` // notification configuration as stored
	// Location is the LocationConstraint the bucket was created with
	// ("": the gateway's region).
	Location string            `json:"loc,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"` // bucket tags
	// ObjectLock: the bucket was created with object lock (versioning is
	// enabled and cannot be suspended); LockDefault is its default
	// retention for new versions (nil: none).
	ObjectLock  bool      `json:"lock,omitempty"`
	LockDefault *LockRule `json:"lockdef,omitempty"`
	// Lifecycle is the bucket's lifecycle configuration (nil: none).
	Lifecycle []LifecycleRule `json:"lifecycle,omitempty"`
	// Versioning is VersioningEnabled or VersioningSuspended once set
	// ("": never versioned; it cannot go back).
	Versioning string `json:"ver,omitempty"`
}

// LifecycleRule is one rule of a bucket's lifecycle configuration: which
// objects (Filter) and what happens to them. Zero values mean "not set".
type LifecycleRule struct {
	ID      string          `json:"id"`
	Enabled bool            `json:"on"`
	Filter  LifecycleFilter `json:"filter"`
	// Expiration of current versions: Days after creation (rounded up to
	// the next midnight UTC, as S3) or at Date; or, ExpiredDeleteMarker,
	// removal of a delete marker that is all that is left of its key.
	ExpireDays          int       `json:"exp_days,omitempty"`
	ExpireDate          time.Time `json:"exp_date,omitempty"`
	ExpiredDeleteMarker bool      `json:"exp_dm,omitempty"`
	// Noncurrent versions expire NoncurrentDays after they became
	// noncurrent, except the NewerNoncurrent newest of them.
	NoncurrentDays  int `json:"nc_days,omitempty"`
	NewerNoncurrent int `json:"nc_keep,omitempty"`
	// AbortDays aborts multipart uploads that many days after initiation.
	AbortDays int `json:"abort_days,omitempty"`
}

// LifecycleFilter selects the objects a rule applies to: all of its set
// conditions must hold.
type LifecycleFilter struct {
	Prefix string            `json:"prefix,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
	SizeGT int64             `json:"gt,omitempty"` // object size greater than
	SizeLT int64             `json:"lt,omitempty"` // object size less than
}

// LockRule is a bucket's default retention: Days or Years from a new
// version's creation.
type LockRule struct {
	Mode  string `json:"mode"`
	Days  int    `json:"days,omitempty"`
	Years int    `json:"years,omitempty"`
}

// Object lock retention modes (S3's names).
const (
	LockGovernance = "GOVERNANCE"
	LockCompliance = "COMPLIANCE"
)

// Lock is a version's object lock state.
type Lock struct {
	Mode        string    `json:"mode,omitempty"`  // LockGovernance or LockCompliance ("": no retention)
	RetainUntil time.Time `json:"until,omitempty"` // retention ends
	LegalHold   bool      `json:"hold,omitempty"`
}

// Protects says whether l forbids removing its version at now: a legal
// hold, or retention not yet over (governance mode yields to bypass).
func (l Lock) Protects(now time.Time, bypassGovernance bool) bool {
	if l.LegalHold {
		return true
	}
	if l.Mode == "" || !now.Before(l.RetainUntil) {
		return false
	}
	return l.Mode == LockCompliance || !bypassGovernance
}

// Bucket versioning states (S3's names).
const (
	VersioningEnabled   = "Enabled"
	VersioningSuspended = "Suspended"
)

// Segment is the unit of erasure coding and placement: one simple PUT or
// one multipart part.
type Segment struct {
	ID          string    `json:"id"` // 128-bit random, lowercase hex
	Size        int64     `json:"size"`
	MD5         string    `json:"md5,omitempty"` // hex
	Profile     ECProfile `json:"ec"`
	HashAlgo    int       `json:"ha"`
	Nodes       []string  `json:"nodes"` // node holding shard i
	ShardHashes []string  `json:"sh"`    // hex hash of shard file i; "" when shard i was not written
}

// PendingChunks marks an out-of-line segment list (objsegs/<vid>/) written
// for a commit that has not happened: the commit deletes the mark in its
// own transaction and requires it to exist, so a list the orphan sweep
// released can never be committed.
type PendingChunks struct {
	V         int       `json:"v"`
	VersionID string    `json:"vid"`
	Bucket    string    `json:"bucket"`
	Key       string    `json:"key"`
	Indexed   bool      `json:"indexed"` // its segments were indexed for it (a PutObject): releasing it releases them
	Time      time.Time `json:"time"`    // the writer's clock; informational only
	Rev       int64     `json:"-"`       // etcd revision read (filled by ListPendingChunks)
}

// SegmentChange is one change of a segment record (WatchSegments).
type SegmentChange struct {
	Old *Segment // nil: the record was created
	New *Segment // nil: the record was removed
}

// Partition is the segment's partition: its first 12 bits.
func (s Segment) Partition() uint32 { return partitionOf(s.ID) }

// Object is the current version of an object.
type Object struct {
	V            int               `json:"v"`
	Bucket       string            `json:"bucket"`
	Key          string            `json:"key"`
	VersionID    string            `json:"vid"`
	Size         int64             `json:"size"`
	ETag         string            `json:"etag"` // without quotes
	ContentType  string            `json:"ct,omitempty"`
	Headers      RawMap            `json:"hdr,omitempty"`  // Cache-Control, Content-Disposition, …
	UserMeta     RawMap            `json:"meta,omitempty"` // x-amz-meta-* without the prefix
	Checksums    map[string]string `json:"ck,omitempty"`   // algorithm → base64 value
	ChecksumType string            `json:"ckt,omitempty"`  // COMPOSITE or FULL_OBJECT
	ACL          string            `json:"acl,omitempty"`  // canned ACL ("": private)
	Tags         map[string]string `json:"tags,omitempty"` // object tags
	Lock         *Lock             `json:"lock,omitempty"` // object lock (nil: none)
	ModTime      time.Time         `json:"mtime"`
	// PartCount is the number of parts of a multipart object (0 for a
	// simple PUT); segment i is part i+1.
	PartCount int `json:"parts,omitempty"`
	// Segments in object order. A Store may keep long lists out of line
	// (SegmentChunks > 0); GetObject always returns them filled.
	Segments      []Segment `json:"segs,omitempty"`
	SegmentChunks int       `json:"chunks,omitempty"`
	// Seq orders the versions of a key, newest highest: set by the store
	// when a versioned (or suspended) bucket commits the version; 0 for
	// versions written while the bucket was never versioned.
	Seq int64 `json:"seq,omitempty"`
	// Null: the version's S3 version id is "null" (written while
	// versioning was suspended; Seq 0 versions are null too).
	Null bool `json:"null,omitempty"`
	// DeleteMarker: the version is a delete marker (no data).
	DeleteMarker bool `json:"dm,omitempty"`
	// IsLatest is filled by ListObjectVersions (not stored).
	IsLatest bool `json:"-"`
}

// S3Version is the version id S3 clients see: "null" for the null
// version, else the version id.
func (o Object) S3Version() string {
	if o.Null || o.Seq == 0 {
		return "null"
	}
	return o.VersionID
}

// Removal is what a delete did: the version it removed or the delete
// marker it added (VersionID as S3Version says; "" in an unversioned
// bucket).
type Removal struct {
	VersionID    string
	DeleteMarker bool
}

// VersionListOptions selects a page of ListObjectVersions. KeyMarker and
// VersionIDMarker resume after that version (after all versions of
// KeyMarker when VersionIDMarker is empty).
type VersionListOptions struct {
	Prefix          string
	Delimiter       string
	KeyMarker       string
	VersionIDMarker string
	MaxKeys         int
}

// VersionListResult is a page of ListObjectVersions: versions and delete
// markers in key order, each key's newest first (IsLatest set), and
// common prefixes; at most MaxKeys together.
type VersionListResult struct {
	Versions       []Object // segments not filled
	CommonPrefixes []string
	IsTruncated    bool
	// NextKeyMarker, NextVersionIDMarker resume after the page ("" version
	// marker when the page ended on a common prefix).
	NextKeyMarker, NextVersionIDMarker string
}

// RawMap holds header values byte for byte: JSON strings are UTF-8, so a
// value that is not (an HTTP header may carry any octet but controls) is
// stored as NUL followed by its base64, which no header value can start
// with.
type RawMap map[string]string

// MarshalJSON implements json.Marshaler.
func (m RawMap) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	enc := make(map[string]string, len(m))
	for k, v := range m {
		if !utf8.ValidString(v) || strings.HasPrefix(v, "\x00") {
			v = "\x00" + base64.StdEncoding.EncodeToString([]byte(v))
		}
		enc[k] = v
	}
	return json.Marshal(enc)
}

// UnmarshalJSON implements json.Unmarshaler.
func (m *RawMap) UnmarshalJSON(b []byte) error {
	var dec map[string]string
	if err := json.Unmarshal(b, &dec); err != nil {
		return err
	}
	for k, v := range dec {
		if rest, ok := strings.CutPrefix(v, "\x00"); ok {
			raw, err := base64.StdEncoding.DecodeString(rest)
			if err != nil {
				return fmt.Errorf("value of %q: %w", k, err)
			}
			dec[k] = string(raw)
		}
	}
	*m = dec
	return nil
}

// Precondition is a conditional write: compares on the current version,
// evaluated in the same transaction as the write.
type Precondition struct {
	IfMatch     string // ETag the current version must have ("*": must exist)
	IfNoneMatch string // "*": must not exist; an ETag: current must not have it
}

// ListOptions selects a page of ListObjects.
type ListOptions struct {
	Prefix     string
	Delimiter  string
	StartAfter string // exclusive; a key or a common prefix returned earlier
	MaxKeys    int    // objects plus common prefixes per page (1..1000)
}

// ListResult is a page of ListObjects.
type ListResult struct {
	Objects        []Object // segments not filled
	CommonPrefixes []string
	IsTruncated    bool
	NextMarker     string // the last key or common prefix of the page, when truncated
}

// Upload is a multipart upload in progress.
type Upload struct {
	V            int               `json:"v"`
	Bucket       string            `json:"bucket"`
	Key          string            `json:"key"`
	UploadID     string            `json:"id"`
	Initiated    time.Time         `json:"init"`
	ContentType  string            `json:"ct,omitempty"`
	Headers      RawMap            `json:"hdr,omitempty"`
	UserMeta     RawMap            `json:"meta,omitempty"`
	ChecksumAlgo string            `json:"cka,omitempty"`
	ChecksumType string            `json:"ckt,omitempty"`
	ACL          string            `json:"acl,omitempty"`  // the object's canned ACL
	Tags         map[string]string `json:"tags,omitempty"` // the object's tags
	Lock         *Lock             `json:"lock,omitempty"` // the object's lock
}

// Part is an uploaded part.
type Part struct {
	V         int               `json:"v"`
	UploadID  string            `json:"upload"`
	Number    int               `json:"n"`
	Size      int64             `json:"size"`
	ETag      string            `json:"etag"`
	Checksums map[string]string `json:"ck,omitempty"`
	Modified  time.Time         `json:"mtime"`
	Segment   Segment           `json:"seg"`
}

// UploadListOptions selects a page of ListUploads. With a Delimiter,
// uploads whose key has it after Prefix roll up into one common prefix;
// a KeyMarker that is such a prefix resumes after all of it.
type UploadListOptions struct {
	Prefix         string
	Delimiter      string
	KeyMarker      string
	UploadIDMarker string
	MaxUploads     int
}

// UploadListResult is a page of ListUploads: uploads and common prefixes
// (at most MaxUploads together), in key order each.
type UploadListResult struct {
	Uploads        []Upload
	CommonPrefixes []string
	IsTruncated    bool
	// NextKeyMarker, NextUploadIDMarker resume after the page: the last
	// entry's key and upload id (a common prefix's id is "").
	NextKeyMarker, NextUploadIDMarker string
}

// GCKind says what a gc entry releases.
type GCKind string

// Kinds of gc entries.
const (
	GCSegment         GCKind = "segment"          // one segment's shards
	GCObjectSegments  GCKind = "objsegs"          // the out-of-line segment list of a replaced version
	GCAbortedUpload   GCKind = "upload-aborted"   // every part of an aborted upload
	GCCompletedUpload GCKind = "upload-completed" // the parts of a completed upload not in UsedParts
)

// GCEntry is a unit of garbage: shards and keys no longer referenced, kept
// until Time + grace so reads that began before keep working.
type GCEntry struct {
	V         int       `json:"v"`
	ID        string    `json:"id"`
	Kind      GCKind    `json:"kind"`
	Time      time.Time `json:"time"`
	Segment   *Segment  `json:"seg,omitempty"`
	VersionID string    `json:"vid,omitempty"`
	Chunks    int       `json:"chunks,omitempty"`
	UploadID  string    `json:"upload,omitempty"`
	UsedParts []int     `json:"used,omitempty"`
	QueueKey  string    `json:"-"` // where it was read (filled by ListGC)
}

// VersionPin is the read-pin name that keeps the out-of-line segment
// list of version vid (a GCObjectSegments entry) from the collector; the
// segments of an inline list are pinned by their ids.
func VersionPin(vid string) string { return "version:" + vid }

// Event is a bucket notification waiting for delivery: one S3 event
// record for one webhook, queued in the transaction of the change it
// reports, so it is delivered at least once.
type Event struct {
	V       int       `json:"v"`
	ID      string    `json:"id"` // time-ordered
	URL     string    `json:"url"`
	Config  string    `json:"cfg"`  // the notification configuration id
	Name    string    `json:"name"` // ObjectCreated:Put, ObjectRemoved:Delete, …
	Bucket  string    `json:"bucket"`
	Key     string    `json:"key"`
	Size    int64     `json:"size,omitempty"`
	ETag    string    `json:"etag,omitempty"`
	Time    time.Time `json:"time"`
	Request string    `json:"req,omitempty"` // request id
	Owner   string    `json:"owner,omitempty"`
	// Delivery state.
	Attempts  int       `json:"attempts,omitempty"`
	NextTry   time.Time `json:"next,omitempty"`  // not before
	LastError string    `json:"error,omitempty"` // of the last attempt
	Rev       int64     `json:"-"`               // etcd revision read (filled by ListEvents)
	QueueKey  string    `json:"-"`               // where it was read (filled by ListEvents)
}

// DeadEvent is an event the deliverers gave up on (too many attempts, or
// too old): kept in a bounded dead-letter list for the operator
// (`sherdctl notify dead`), the oldest dropped first.
type DeadEvent struct {
	Event
	Died   time.Time `json:"died"`
	Reason string    `json:"reason"` // DeadAttempts or DeadAge
}

// Why an event is dead.
const (
	DeadAttempts = "attempts"
	DeadAge      = "age"
)

// NodeState is a storage node's administrative state.
type NodeState string

// Node states.
const (
	NodeActive   NodeState = "active"
	NodeDraining NodeState = "draining"
	// NodeRemoved: the node is gone for good (an operator said so); its
	// shards are rebuilt elsewhere.
	NodeRemoved NodeState = "removed"
)

// Node is a registered storage node.
type Node struct {
	V        int       `json:"v"`
	ID       string    `json:"id"`
	Address  string    `json:"addr"` // base URL of its API
	Zone     string    `json:"zone,omitempty"`
	Capacity int64     `json:"cap,omitempty"` // bytes
	State    NodeState `json:"state"`
	Started  time.Time `json:"started"`
	// Live says the node holds a current registration (its lease is
	// alive). Not stored: ListNodes and WatchNodes fill it in.
	Live bool `json:"-"`
}

// ShardRef names shard Index of segment Segment on node Node.
type ShardRef struct {
	Node    string `json:"node"`
	Segment string `json:"seg"`
	Index   int    `json:"i"`
}

// RepairEntry asks for shards of a segment to be rebuilt: written by the
// gateway when a PUT left shards unwritten or a GET found them missing or
// corrupt, consumed by anti-entropy.
type RepairEntry struct {
	V       int       `json:"v"`
	Segment Segment   `json:"seg"`
	Shards  []int     `json:"shards"` // shard indexes to rebuild
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
	// Attempts counts the passes that could not finish it (DeferRepair).
	Attempts int `json:"attempts,omitempty"`
	// Rev is the entry's revision when read and QueueKey where (not
	// stored): DoneRepair and DeferRepair act on exactly what was read.
	Rev      int64  `json:"-"`
	QueueKey string `json:"-"`
}

// ProcessStatus is what a process reports of its background work, for
// sherdctl status (status/<kind>/<name>): a node its scrubber, a gateway
// its repairer. Time says how fresh it is.
type ProcessStatus struct {
	V      int           `json:"v"`
	Kind   string        `json:"kind"` // "node" or "repairer"
	Name   string        `json:"name"`
	Time   time.Time     `json:"time"`
	Scrub  *ScrubReport  `json:"scrub,omitempty"`
	Repair *RepairReport `json:"repair,omitempty"`
	Disk   *DiskReport   `json:"disk,omitempty"`
	Move   *MoveReport   `json:"move,omitempty"`
}

// DiskReport is a node's use of its disk.
type DiskReport struct {
	Shards     int   `json:"shards"`      // shards in the index
	ShardBytes int64 `json:"shard_bytes"` // their size
	Used       int64 `json:"used"`        // bytes used on the file system holding the shards
	Total      int64 `json:"total"`       // its size
}

// MoveReport is what a healer's mover did: shards moved off draining and
// removed nodes, and by rebalancing.
type MoveReport struct {
	Passes   int       `json:"passes"`
	Moved    int       `json:"moved"` // shards moved (copied, or rebuilt from the others)
	Bytes    int64     `json:"bytes"`
	Waiting  int       `json:"waiting"` // moves the last pass could not make
	LastPass time.Time `json:"last_pass"`
	LastErr  string    `json:"last_error,omitempty"`
}

// Request is an operator's request to the cluster's background workers,
// stored at ctl/<Kind>/<Target> until done or replaced: "scrub" (Target a
// node id or "all": start a scrub pass now), "antientropy" (Target "all":
// a round now), "rebalance" (Target "all": move shards to where placement
// puts them now).
type Request struct {
	V      int       `json:"v"`
	ID     string    `json:"id"`
	Kind   string    `json:"kind"`
	Target string    `json:"target"`
	Time   time.Time `json:"time"`
}

// Requests is where operator requests are kept (the metadata store).
type Requests interface {
	// PutRequest stores r, replacing an earlier request of the same kind
	// and target.
	PutRequest(ctx context.Context, r Request) error
	// GetRequest returns the request of kind for target; found is false
	// when there is none.
	GetRequest(ctx context.Context, kind, target string) (r Request, found bool, err error)
	// DeleteRequest removes it (no error if absent).
	DeleteRequest(ctx context.Context, kind, target string) error
}

// ScrubReport is a node's scrubber progress.
type ScrubReport struct {
	Running     bool          `json:"running"`
	Fraction    float64       `json:"fraction"` // of the current pass
	Passes      int           `json:"passes"`
	LastPass    time.Time     `json:"last_pass"`
	LastTook    time.Duration `json:"last_took"`
	LastShards  int           `json:"last_shards"`
	LastCorrupt int           `json:"last_corrupt"`
	// Request is the id of the last operator request (sherdctl scrub)
	// whose pass has ended.
	Request string `json:"request,omitempty"`
}

// RepairReport is a repairer's progress.
type RepairReport struct {
	Passes        int       `json:"passes"`
	Segments      int       `json:"segments"`
	ShardsRebuilt int       `json:"shards"`
	BytesRead     int64     `json:"bytes"`
	Rate          float64   `json:"rate"` // bytes per second since the last report
	Waiting       int       `json:"waiting"`
	LastPass      time.Time `json:"last_pass"`
	LastError     string    `json:"last_error,omitempty"`
	// Rounds is the number of anti-entropy rounds made; LastRound the
	// last one (nil before the first).
	Rounds    int               `json:"rounds,omitempty"`
	LastRound *AntiEntropyRound `json:"last_round,omitempty"`
	// Request is the id of the last operator request (sherdctl repair)
	// whose round has ended.
	Request string `json:"request,omitempty"`
	// Leases is the lease state of each worker's claimer, by role
	// (repair, antientropy, mover): a worker without one does nothing.
	Leases map[string]LeaseHealth `json:"leases,omitempty"`
}

// AntiEntropyRound is what one anti-entropy round did.
type AntiEntropyRound struct {
	Started      time.Time     `json:"started"`
	Took         time.Duration `json:"took"`
	Detect       time.Duration `json:"detect"`     // of Took, comparing and classifying (no data read)
	Nodes        int           `json:"nodes"`      // live nodes compared
	Differing    int           `json:"differing"`  // partitions that differed on some node
	Examined     int           `json:"examined"`   // of those, examined by this repairer
	Skipped      int           `json:"skipped"`    // of those, held by another repairer
	NodeCalls    int64         `json:"node_calls"` // tree and inventory calls to nodes
	Missing      int           `json:"missing"`
	Wrong        int           `json:"wrong"`
	Unexpected   int           `json:"unexpected"`
	Swept        int           `json:"swept"`                 // unexpected shards deleted after the grace period
	SweptLists   int           `json:"swept_lists,omitempty"` // uncommitted out-of-line segment lists released
	Rebuilt      int           `json:"rebuilt"`               // shards rebuilt by the round's repairs
	RebuiltBytes int64         `json:"rebuilt_bytes"`         // their size
	Waiting      int           `json:"waiting"`               // shards that could not be rebuilt yet
	Error        string        `json:"error,omitempty"`
}

// Claimer takes exclusive, named claims held under the claimer's lease: a
// claimer that crashes loses its claims when its lease runs out, as etcd
// measures it, not by the wall clock of any process. A claimer whose
// lease lapses (etcd unreachable past the TTL, the process stalled) makes
// a new one, with backoff, until closed; claims taken under the old lease
// are gone, and writes fenced by them fail. Safe for concurrent use.
type Claimer interface {
	// Claim takes name if nobody holds it and reports whether it did,
	// with the Fence that writes made under the claim pass to the store
	// (re-entrant: a name this claimer holds is claimed again, same
	// fence). Errors: ErrNoLease (no live lease now: try later).
	Claim(ctx context.Context, name string) (Fence, bool, error)
	// Release gives name up if this claimer holds it.
	Release(ctx context.Context, name string) error
	// Health says whether the claimer holds a live lease now.
	Health() LeaseHealth
	// Close gives up every claim at once (the lease is revoked) and
	// stops the renewal; it waits for it.
	Close() error
}

// Expiry is a lifecycle removal as planned (Store.Expire).
type Expiry struct {
	// VersionID is the internal version id (Object.VersionID) planned on.
	VersionID string
	// Current: expire the current version as a plain DELETE does (a delete
	// marker in a versioned bucket); otherwise remove the version for good.
	Current bool
	// Still runs the plan again on the bucket and the key's versions
	// (newest first, the current one first, without segments) as the
	// transaction reads them; false: not done. nil: no re-check.
	Still func(b Bucket, versions []Object) bool
	// Fence, when set, must still be held.
	Fence Fence
}

// Fence names a claim that a write must still hold: a store given a
// non-zero Fence compares it in the write's own transaction, so work done
// under a claim that lapsed cannot be recorded (ErrClaimLost). The zero
// Fence fences nothing.
type Fence struct {
	Name  string // the claim's name
	Token int64  // the holder's lease
}

// LeaseHealth is a Claimer's lease state, for readiness, metrics and
// status.
type LeaseHealth struct {
	Live   bool      `json:"live"`
	Since  time.Time `json:"since"`            // when it became live, or lapsed
	Lapses int       `json:"lapses,omitempty"` // leases lost since the claimer started
	Err    string    `json:"error,omitempty"`  // the last renewal error while not live
}

// Registration keeps a node registered until closed.
type Registration interface {
	// Close revokes the registration; the node disappears at once.
	Close() error
}

// Store is the metadata store. Every mutation is atomic; reads are
// linearizable. Implementations wrap sentinel errors with the operation.
// It is the sum of the roles below (and Requests); a consumer takes only
// the roles it calls.
type Store interface {
	Buckets
	Objects
	Uploads
	Events
	Segments
	Collection
	Statuses
	Repairs
	Members
	Requests
}

// Buckets is the bucket records: created, read, updated atomically, deleted when empty.
type Buckets interface {
	CreateBucket(ctx context.Context, b Bucket) error // ErrBucketExists
	GetBucket(ctx context.Context, name string) (Bucket, error)
	// UpdateBucket applies f to the current bucket and stores the result
	// atomically (f may run more than once). A result with object lock on
	// and versioning not Enabled is refused (ErrBucketState), whatever f
	// checked.
	UpdateBucket(ctx context.Context, name string, f func(*Bucket) error) error
	DeleteBucket(ctx context.Context, name string) error // ErrBucketNotEmpty
	ListBuckets(ctx context.Context) ([]Bucket, error)
}

// Objects is the object versions of a bucket: commits, reads, deletes and listings, each conditional as its method says.
type Objects interface {
	// PutObject commits obj as the current version of its key, if the
	// bucket exists and pre holds, as the bucket's versioning (read in the
	// commit) says: unversioned, the replaced version's segments go to gc;
	// enabled, it is kept as a noncurrent version; suspended, obj is the
	// null version and replaces the former null version. It returns the S3
	// version id of obj ("" in an unversioned bucket). Errors:
	// ErrNoSuchBucket, ErrPreconditionFailed (nothing committed),
	// ErrNoSuchKey (If-Match and no current version), ErrUnknownOutcome (obj
	// may be committed: release none of its segments). events are queued
	// (notifications) in the same transaction.
	PutObject(ctx context.Context, obj Object, pre Precondition, events ...Event) (string, error)
	// GetObject returns the current version with its segments.
	GetObject(ctx context.Context, bucket, key string) (Object, error)
	// GetObjectVersion returns version vid (an S3 version id, "null"
	// included) of key with its segments, a delete marker too; vid ""
	// is the latest version, which may be a delete marker. Errors:
	// ErrNoSuchBucket, ErrNoSuchKey (vid "": no version at all),
	// ErrNoSuchVersion.
	GetObjectVersion(ctx context.Context, bucket, key, vid string) (Object, error)
	// DeleteObjectVersion removes version vid of key for good (its
	// segments go to gc). When it was the latest, the version before it
	// becomes current unless that is a delete marker. A version its Lock
	// protects now (Lock.Protects, with bypassGovernance) is not removed.
	// Errors: ErrNoSuchBucket, ErrNoSuchVersion, ErrLocked.
	DeleteObjectVersion(ctx context.Context, bucket, key, vid string, bypassGovernance bool, events ...Event) (Removal, error)
	// Expire carries out a removal a lifecycle pass planned from a
	// listing, only if what it was planned on still holds in the
	// transaction that makes it: the version planned on (by internal
	// version id, so a reused "null" or a same-content re-upload is never
	// taken for it) is still where it was (the current version for
	// x.Current, otherwise any version), x.Still agrees on the bucket and
	// the key's versions read with it, and x.Fence is still held. A
	// protected version is never removed. Errors: ErrPreconditionFailed
	// (the plan no longer holds: nothing done), ErrLocked, ErrClaimLost,
	// ErrNoSuchBucket.
	Expire(ctx context.Context, bucket, key string, x Expiry) (Removal, error)
	// ListObjectVersions returns a page of the bucket's versions and
	// delete markers (in an unversioned bucket, its objects as null
	// versions). Errors: ErrNoSuchBucket.
	ListObjectVersions(ctx context.Context, bucket string, opts VersionListOptions) (VersionListResult, error)
	// UpdateObject applies f to version vid of key ("": the current
	// version) and stores the result in place (f may run more than once):
	// a change of what describes the version (its ACL, tags), never of its
	// data, so f's changes to the key, version ids, size, ETag, checksums
	// and segments are ignored. Errors: ErrNoSuchBucket, ErrNoSuchKey,
	// ErrNoSuchVersion, ErrInvalid (vid is a delete marker), and f's own.
	UpdateObject(ctx context.Context, bucket, key, vid string, f func(*Object) error) error
	// DeleteObject deletes key as the bucket's versioning says:
	// unversioned, the current version goes (its segments to gc;
	// ErrNoSuchKey if there is none); enabled, a delete marker becomes the
	// latest version (the current one kept as noncurrent); suspended, a
	// null delete marker does, replacing the former null version. pre is
	// evaluated on the current version. Errors: ErrNoSuchBucket,
	// ErrNoSuchKey, ErrPreconditionFailed.
	DeleteObject(ctx context.Context, bucket, key string, pre Precondition, events ...Event) (Removal, error)
	ListObjects(ctx context.Context, bucket string, opts ListOptions) (ListResult, error)
}

// Uploads is multipart uploads: their parts, and their completion into an object version.
type Uploads interface {
	CreateUpload(ctx context.Context, u Upload) error
	GetUpload(ctx context.Context, bucket, key, uploadID string) (Upload, error) // ErrNoSuchUpload
	// PutPart records a part (its segment indexed); a part replaced by
	// number has its segment sent to gc. Errors: ErrNoSuchUpload.
	PutPart(ctx context.Context, u Upload, p Part) error
	// ListParts returns up to max parts numbered above after, and whether
	// more follow.
	ListParts(ctx context.Context, uploadID string, after, max int) ([]Part, bool, error)
	// ListUploads returns a page of the bucket's uploads in progress.
	// Errors: ErrNoSuchBucket.
	ListUploads(ctx context.Context, bucket string, opts UploadListOptions) (UploadListResult, error)
	// AbortUpload removes the upload; its parts go to gc.
	AbortUpload(ctx context.Context, bucket, key, uploadID string) error
	// CompleteUpload commits obj, made of parts (the chosen parts, in
	// order), as the current version and ends the upload; parts not chosen
	// go to gc. The commit's size does not grow with the number of parts.
	// Errors: ErrNoSuchUpload, ErrNoSuchBucket, ErrPreconditionFailed,
	// ErrNoSuchKey (If-Match and no current version), ErrConflict (a part was replaced meanwhile: retry); ErrUnknownOutcome
	// (the upload may be complete: release none of its parts).
	// It returns obj's S3 version id, as PutObject.
	CompleteUpload(ctx context.Context, u Upload, parts []Part, obj Object, pre Precondition, events ...Event) (string, error)
}

// Events is the queue of bucket notifications (queued by the commits that report them) and its dead-letter list.
type Events interface {
	// ListEvents returns up to limit queued notification events due by now
	// (NextTry ≤ now), earliest first, that come after the event queued
	// at key after (the QueueKey of an event listed before; "": from the
	// earliest), so a reader can page past due events it cannot deliver
	// yet; events not due are not read. Errors: ErrInvalid (after is not
	// a key of the events queue).
	ListEvents(ctx context.Context, now time.Time, after string, limit int) ([]Event, error)
	// UpdateEvent stores e, due at e.NextTry, if it has not changed since
	// it was read (its Rev) and returns it with its new Rev: a claim or a
	// retry. false means another deliverer got there first.
	UpdateEvent(ctx context.Context, e Event) (Event, bool, error)
	// DeleteEvent removes a delivered event (if unchanged since read).
	DeleteEvent(ctx context.Context, e Event) error
	// DeadLetterEvent moves d.Event (if unchanged since it was read, by
	// its Rev) from the queue to the dead-letter list in one transaction,
	// then keeps the list at max entries or fewer: the oldest (by Died)
	// are dropped and counted. false: the event changed meanwhile
	// (claimed, delivered, re-queued by another): nothing done.
	DeadLetterEvent(ctx context.Context, d DeadEvent, max int) (bool, error)
	// ListDeadEvents returns up to limit dead letters, oldest first.
	ListDeadEvents(ctx context.Context, limit int) ([]DeadEvent, error)
	// DeadEventCount is the number of dead letters and how many were
	// dropped from the full list since it began.
	DeadEventCount(ctx context.Context) (count int, dropped int64, err error)
}

// Segments is the segment records (placement and shard hashes) and the out-of-line segment lists, as repair, drain and anti-entropy read and change them.
type Segments interface {
	// GetSegment returns the segment record of segment id, the one
	// authoritative copy of its placement and shard hashes (copies in
	// object and part values are hints), and its revision for
	// UpdateSegment. Errors: ErrNoSuchSegment (never committed, or
	// collected).
	GetSegment(ctx context.Context, id string) (Segment, int64, error)
	// UpdateSegment replaces the record of seg.ID with seg if it has not
	// changed since revision rev (compare-and-swap: repair and drain) and
	// fence, when set, is still held. Errors: ErrConflict (changed or
	// removed meanwhile: re-read), ErrClaimLost.
	UpdateSegment(ctx context.Context, seg Segment, rev int64, fence Fence) error
	// PartitionSegments lists the segments indexed in a partition (0..4095):
	// every segment whose shards should exist, including those waiting in gc.
	PartitionSegments(ctx context.Context, partition uint32) ([]Segment, error)
	// ListPendingChunks lists up to limit out-of-line segment lists whose
	// commit has not happened (in flight, or failed without cleanup).
	ListPendingChunks(ctx context.Context, limit int) ([]PendingChunks, error)
	// ReleasePendingChunks releases p if unchanged since it was listed:
	// its segments go to gc if they were indexed for it, otherwise only
	// the list is deleted (its segments belong to an upload's parts). A
	// commit of p's version fails afterwards. false: p changed (committed
	// or released meanwhile).
	ReleasePendingChunks(ctx context.Context, p PendingChunks) (bool, error)
	// LeafSegments lists the segment records of one Merkle leaf
	// (0..2^20-1: the first 20 bits of the segment id), read now.
	LeafSegments(ctx context.Context, leaf uint32) ([]Segment, error)
	// ScanSegments calls f with every segment record as of one revision,
	// which it returns (for WatchSegments). An error of f ends the scan
	// and is returned.
	ScanSegments(ctx context.Context, f func(Segment) error) (rev int64, err error)
	// WatchSegments calls f, in revision order and from one goroutine,
	// with the changes of segment records after revision rev. It returns
	// when ctx ends (ctx.Err()) or the watch breaks (rev compacted, etcd
	// lost, a change whose previous value is unknown): then the caller
	// rescans.
	WatchSegments(ctx context.Context, rev int64, f func([]SegmentChange)) error
}

// Collection is the garbage commits released (gc entries) and the deletes parked for nodes that are down.
type Collection interface {
	// ListGC returns up to limit gc entries, oldest release first.
	ListGC(ctx context.Context, limit int) ([]GCEntry, error)
	// GCSegments lists the segments whose shards a gc entry releases.
	GCSegments(ctx context.Context, e GCEntry) ([]Segment, error)
	// FinishGC ends a collected entry, once the shards of segs (from
	// GCSegments) are deleted: it removes their index entries, the keys the
	// entry released (objsegs chunks, part records) and the entry itself,
	// last, so an interrupted collection is simply done again.
	FinishGC(ctx context.Context, e GCEntry, segs []Segment) error
	// DeferDeletes records shards to delete from nodes that were down when
	// their segment was collected (gcnode/<node>/<shard>), so the entry
	// that released them can finish. Idempotent.
	DeferDeletes(ctx context.Context, refs []ShardRef) error
	// ListDeferredDeletes returns up to limit deferred deletes of node.
	ListDeferredDeletes(ctx context.Context, node string, limit int) ([]ShardRef, error)
	// DeferredDeleteNodes lists the nodes that have deferred deletes.
	DeferredDeleteNodes(ctx context.Context) ([]string, error)
	// DropDeferredDeletes forgets deferred deletes (done, or their node
	// was removed).
	DropDeferredDeletes(ctx context.Context, refs []ShardRef) error
}

// Statuses is the progress reports background workers publish for sherdctl status.
type Statuses interface {
	// PutStatus stores a process's status report (replacing its last).
	PutStatus(ctx context.Context, st ProcessStatus) error
	// ListStatus returns every process's last report.
	ListStatus(ctx context.Context) ([]ProcessStatus, error)
}

// Repairs is the repair queue: segments known to miss or hold bad shards.
type Repairs interface {
	// QueueRepair records that shards of a segment need rebuilding, due
	// now. Each report is its own entry; the repairer assesses the whole
	// segment, so a second entry of a repaired segment is simply done.
	QueueRepair(ctx context.Context, e RepairEntry) error
	// ListRepairs returns up to limit repairs due now, earliest first,
	// each with its Rev; entries deferred to later are not read.
	ListRepairs(ctx context.Context, limit int) ([]RepairEntry, error)
	// DoneRepair removes a repair entry if it is unchanged since it was
	// listed (its Rev). Returns false when it changed or is gone.
	DoneRepair(ctx context.Context, e RepairEntry) (bool, error)
	// DeferRepair makes an entry that cannot be finished now due again at
	// until (with e's Attempts), if unchanged since listed.
	DeferRepair(ctx context.Context, e RepairEntry, until time.Time) (bool, error)
	// QueueLength counts the items of a work queue ("repair", "gc",
	// "events"): all of them, and those due by now.
	QueueLength(ctx context.Context, name string, now time.Time) (total, due int, err error)
}

// Members is the storage nodes: registration (lease-held), listing, watching, and their operator state.
type Members interface {
	// RegisterNode records n as a cluster member (persistently) and marks
	// it live under a lease of ttl, kept alive (and re-established after
	// a lost lease) until the registration is closed or ctx ends.
	RegisterNode(ctx context.Context, n Node, ttl time.Duration) (Registration, error)
	// ListNodes returns every member, live or not, sorted by id.
	ListNodes(ctx context.Context) ([]Node, error)
	// WatchNodes sends the full node list now and after every change,
	// until ctx ends (then it closes the channel).
	WatchNodes(ctx context.Context) (<-chan []Node, error)
	// SetNodeState changes a member's administrative state (active,
	// draining, removed), kept across its restarts. Errors: ErrInvalid (no
	// such member), ErrConflict (changed meanwhile: retry).
	SetNodeState(ctx context.Context, id string, state NodeState) error
}

// partitionOf is the first 12 bits of a hex segment id (0 if malformed).
func partitionOf(id string) uint32 {
	if len(id) < 3 {
		return 0
	}
	v, _ := strconv.ParseUint(id[:3], 16, 32)
	return uint32(v)
}
