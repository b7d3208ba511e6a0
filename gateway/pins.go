package gateway

// Read pins: a GET that runs long keeps the segments it reads from the
// collector, so an overwrite or delete during a slow download does not
// cut it when the released shards' grace ends.
//
// Invariants:
//   - A GET registers its read in memory when it starts (no etcd call)
//     and unregisters it when it returns. KeepPins, one loop per gateway,
//     runs every PinAfter/4: it writes a pin for each read older than
//     PinAfter and deletes the pins of reads that ended, in batches, all
//     under the gateway's one lease, which it renews on every tick
//     whatever the clients do. A read's pin is thus in etcd within
//     1.25×PinAfter (+ one etcd write) of its start; the wiring checks
//     2×PinAfter ≤ the collector's grace, and the entry releasing what a
//     read uses was first seen after the read began.
//   - A pin names at most 33 things: the ≤32 inline segment ids of the
//     version, or its metadata.VersionPin when its list is out of line.
//     What a gateway keeps in etcd is bounded by its reads in flight
//     (MaxInFlight), not by object sizes or request data.
//   - When the lease lapsed (etcd unreachable for its TTL), its pins are
//     gone: the next tick takes a new lease and writes every live read's
//     pin again. A failed write is logged and retried on the next tick;
//     the GET goes on (it is cut only if the collector then deletes what
//     it reads, as without pins).

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sherdstore/sherd/metadata"
)

// ReadPins keeps the segments of long reads from the collector (the
// metadata/etcd Store implements it).
type ReadPins interface {
	// PinLease returns a new lease for this gateway's pins, alive for
	// ttl unless renewed. Errors: the store's.
	PinLease(ctx context.Context, ttl time.Duration) (int64, error)
	// RenewPinLease restarts the lease's TTL. Errors: the store's, also
	// when the lease lapsed (its pins are gone then).
	RenewPinLease(ctx context.Context, lease int64) error
	// SetPins writes the pins in put (pin name → names it keeps: segment
	// ids or metadata.VersionPin) and deletes those in del, under lease,
	// at once. At most pinBatch pins per call, pinMaxIDs names per pin.
	// Errors: the store's.
	SetPins(ctx context.Context, lease int64, put map[string][]string, del []string) error
}

// DefaultPinAfter is Config.PinAfter's default.
const DefaultPinAfter = time.Minute

const (
	pinBatch  = 100 // pins per SetPins call (metadata/etcd.PinMaxOps)
	pinMaxIDs = 64  // names per pin (metadata/etcd.PinMaxIDs)
)

// pinRead is one GET in flight.
type pinRead struct {
	names   []string
	start   time.Time
	written bool // its pin is in etcd under the current lease
	ended   bool // the GET returned; its pin is to be deleted
}

// pinKeeper holds the reads in flight and the gateway's pin lease.
type pinKeeper struct {
	mu    sync.Mutex // guards reads, seq
	reads map[uint64]*pinRead
	seq   uint64
	lease int64 // only KeepPins' goroutine touches it
}

// pinNames is what a read of obj pins: its inline segment ids, or its
// version when the list is out of line.
func pinNames(obj metadata.Object) []string {
	if obj.SegmentChunks > 0 || len(obj.Segments) > pinMaxIDs {
		return []string{metadata.VersionPin(obj.VersionID)}
	}
	names := make([]string, 0, len(obj.Segments))
	for _, s := range obj.Segments {
		names = append(names, s.ID)
	}
	return names
}

// pinRead registers a read of obj that began now; the caller calls the
// returned func when the read is over.
func (g *Gateway) pinRead(obj metadata.Object) (end func()) {
	names := pinNames(obj)
	if g.cfg.Pins == nil || len(names) == 0 {
		return func() {}
	}
	k := &g.pins
	k.mu.Lock()
	if k.reads == nil {
		k.reads = map[uint64]*pinRead{}
	}
	k.seq++
	id := k.seq
	k.reads[id] = &pinRead{names: names, start: g.now()}
	k.mu.Unlock()
	return func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if r := k.reads[id]; r != nil {
			if r.written {
				r.ended = true
			} else {
				delete(k.reads, id)
			}
		}
	}
}

// planPins is the keeper's decision: the reads whose pin to write (in
// flight for after or longer, not written) and those whose pin to delete
// (ended, written), each at most limit, oldest ids first.
func planPins(reads map[uint64]*pinRead, now time.Time, after time.Duration, limit int) (put, del []uint64) {
	ids := make([]uint64, 0, len(reads))
	for id := range reads {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := reads[id]
		switch {
		case r.ended && r.written:
			del = append(del, id)
		case !r.ended && !r.written && now.Sub(r.start) >= after:
			put = append(put, id)
		}
		if len(put)+len(del) >= limit {
			break
		}
	}
	return put, del
}

// KeepPins writes and deletes the pins of long reads, and renews their
// lease, until ctx ends; the gateway's owner runs it (one per gateway).
// With no Config.Pins it returns at once.
func (g *Gateway) KeepPins(ctx context.Context) {
	if g.cfg.Pins == nil {
		return
	}
	t := time.NewTicker(max(g.cfg.PinAfter/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.pinTick(ctx)
		}
	}
}

// pinTick is one round of KeepPins.
func (g *Gateway) pinTick(ctx context.Context) {
	k, after := &g.pins, g.cfg.PinAfter
	if k.lease != 0 {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := g.cfg.Pins.RenewPinLease(rctx, k.lease)
		cancel()
		if err != nil {
			// Lapsed (or unknown): its pins are gone or will be; write
			// them again under a new lease.
			g.log.Warn("read pin lease lost; pinning again", "err", err)
			k.lease = 0
			k.mu.Lock()
			for id, r := range k.reads {
				r.written = false
				if r.ended {
					delete(k.reads, id)
				}
			}
			k.mu.Unlock()
		}
	}
	for range 64 { // at most 6,400 pins a tick; the rest on the next
		k.mu.Lock()
		putIDs, delIDs := planPins(k.reads, g.now(), after, pinBatch)
		put := make(map[string][]string, len(putIDs))
		for _, id := range putIDs {
			put[strconv.FormatUint(id, 36)] = k.reads[id].names
		}
		del := make([]string, 0, len(delIDs))
		for _, id := range delIDs {
			del = append(del, strconv.FormatUint(id, 36))
		}
		k.mu.Unlock()
		if len(put)+len(del) == 0 {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := g.writePins(wctx, put, del)
		cancel()
		if err != nil {
			g.log.Warn("read pins not written; retrying", "err", err)
			return
		}
		k.mu.Lock()
		for _, id := range putIDs {
			if r := k.reads[id]; r != nil {
				r.written = true
			}
		}
		for _, id := range delIDs {
			delete(k.reads, id)
		}
		k.mu.Unlock()
	}
}

// writePins takes a lease if there is none and writes put and del.
func (g *Gateway) writePins(ctx context.Context, put map[string][]string, del []string) error {
	k := &g.pins
	if k.lease == 0 {
		if len(put) == 0 {
			return nil // nothing under a lapsed lease to delete
		}
		lease, err := g.cfg.Pins.PinLease(ctx, 3*g.cfg.PinAfter)
		if err != nil {
			return err
		}
		k.lease = lease
	}
	return g.cfg.Pins.SetPins(ctx, k.lease, put, del)
}
