package gateway

// Read pins: a GET that runs long keeps the segments it reads from the
// collector, so an overwrite or delete during a slow download does not
// cut it when the released shards' grace ends.
//
// Invariants:
//   - A GET still writing PinAfter after it began pins every segment of
//     the version it reads (one pin, TTL 3×PinAfter), renews the pin every
//     PinAfter while it writes, and ends it when it returns. The wiring
//     checks 2×PinAfter ≤ the collector's grace: the pin is in etcd before
//     the grace of any entry releasing those segments can end (the entry
//     was first seen after the GET read the version).
//   - A pin or renewal that fails is logged and retried 10 s later; the
//     GET goes on (it is cut only if the collector then deletes what it
//     reads, as without pins). Writes are bounded by the body timeout, so
//     a stalled client cannot hold a pin without writing.

import (
	"context"
	"io"
	"time"

	"github.com/sherdstore/sherd/metadata"
)

// ReadPins keeps the segments of long reads from the collector (the
// metadata/etcd Store implements it).
type ReadPins interface {
	// Pin keeps segs' shards from collection for ttl and returns the
	// pin's id. Errors: the store's.
	Pin(ctx context.Context, segs []string, ttl time.Duration) (int64, error)
	// Renew restarts the pin's TTL. Errors: the store's (also when the
	// pin lapsed).
	Renew(ctx context.Context, id int64) error
	// Unpin ends the pin; ending an ended pin is not an error.
	Unpin(ctx context.Context, id int64) error
}

// DefaultPinAfter is Config.PinAfter's default.
const DefaultPinAfter = time.Minute

// pinWriter pins the segments of a read once it has run PinAfter.
type pinWriter struct {
	w    io.Writer
	g    *Gateway
	ctx  context.Context
	segs []string
	next time.Time // when to pin or renew
	id   int64
	held bool
}

func (g *Gateway) pinning(ctx context.Context, w io.Writer, obj metadata.Object) *pinWriter {
	segs := make([]string, 0, len(obj.Segments))
	for _, s := range obj.Segments {
		segs = append(segs, s.ID)
	}
	return &pinWriter{w: w, g: g, ctx: ctx, segs: segs, next: g.now().Add(g.cfg.PinAfter)}
}

func (p *pinWriter) Write(b []byte) (int, error) {
	if now := p.g.now(); p.g.cfg.Pins != nil && len(p.segs) > 0 && !now.Before(p.next) {
		p.tick(now)
	}
	return p.w.Write(b)
}

// tick pins the segments, or renews the pin.
func (p *pinWriter) tick(now time.Time) {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	after := p.g.cfg.PinAfter
	if p.held {
		if err := p.g.cfg.Pins.Renew(ctx, p.id); err != nil {
			p.g.log.Warn("read pin lapsed", "err", err)
			p.held = false
			p.next = now.Add(10 * time.Second)
			return
		}
	} else {
		id, err := p.g.cfg.Pins.Pin(ctx, p.segs, 3*after)
		if err != nil {
			p.g.log.Warn("read pin failed", "err", err)
			p.next = now.Add(10 * time.Second)
			return
		}
		p.id, p.held = id, true
	}
	p.next = now.Add(after)
}

// close ends the pin, if any.
func (p *pinWriter) close() {
	if !p.held {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), 5*time.Second)
	defer cancel()
	if err := p.g.cfg.Pins.Unpin(ctx, p.id); err != nil {
		p.g.log.Warn("read pin not ended (its lease ends it)", "err", err)
	}
	p.held = false
}
