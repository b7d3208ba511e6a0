package cluster

// Rebuilding shards (DESIGN.md §7).
//
// Invariants:
//   - A rebuilt shard is made from the segment's data read, block hash by
//     block hash, from k healthy shards other than the ones rebuilt, and
//     re-encoded: Reed-Solomon is deterministic, so it is byte for byte
//     the shard the original write made, and its whole-file hash must equal
//     the one recorded (a mismatch is an error, never a silent success).
//   - Rebuilding only writes shards; the caller records where they are (the
//     segment record, by compare-and-swap) once they are stored.
//   - The data is read once whatever the number of shards rebuilt; memory
//     is a few erasure blocks whatever the segment's size.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/sherdstore/sherd/erasure"
	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/shard"
)

// Throttle is called with the number of bytes read before they are used
// (a rate limiter's WaitN); nil means no limit.
type Throttle func(ctx context.Context, n int) error

// throttled reads through a Throttle.
type throttled struct {
	ctx context.Context
	r   io.Reader
	t   Throttle
}

func (t *throttled) Read(p []byte) (int, error) {
	if len(p) > 256<<10 {
		p = p[:256<<10] // stay within a limiter's burst
	}
	n, err := t.r.Read(p)
	if n > 0 {
		if werr := t.t(t.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// RebuildShards rebuilds the shards of seg named in targets (shard index
// → node id to write it to) from any k other healthy shards, and stores
// them on those nodes. It returns the hash stored for each index. Errors
// wrap ErrUnavailable (fewer than k other shards readable, or a target
// node not live) or erasure.ErrCorrupt (a rebuilt shard's hash differs
// from the one recorded); on error some targets may hold a new shard that
// nothing records (the orphan sweep's).
func (c *Cluster) RebuildShards(ctx context.Context, seg metadata.Segment, targets map[int]string, throttle Throttle) (map[int]string, error) {
	prof := Profile(seg.Profile)
	codec, err := c.codecs.get(prof)
	if err != nil {
		return nil, err
	}
	n := prof.Shards()
	if len(seg.Nodes) != n || len(seg.ShardHashes) != n {
		return nil, fmt.Errorf("rebuild %s: record has %d nodes, %d hashes for %d shards: %w", seg.ID, len(seg.Nodes), len(seg.ShardHashes), n, metadata.ErrInvalid)
	}
	if len(targets) == 0 {
		return map[int]string{}, nil
	}
	stores := make([]shard.Store, n)
	for i, node := range targets {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("rebuild %s: shard %d: %w", seg.ID, i, metadata.ErrInvalid)
		}
		st, live := c.Store(node)
		if st == nil || !live {
			return nil, fmt.Errorf("rebuild %s: shard %d: node %s: %w", seg.ID, i, node, ErrUnavailable)
		}
		stores[i] = st
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Read the segment's data from the shards not being rebuilt.
	open := func(ctx context.Context, i int, off, size int64) (io.ReadCloser, error) {
		if _, rebuilding := targets[i]; rebuilding || seg.ShardHashes[i] == "" {
			return nil, fmt.Errorf("shard %d: %w", i, shard.ErrNotFound)
		}
		st, live := c.Store(seg.Nodes[i])
		if st == nil || !live {
			return nil, fmt.Errorf("shard %d: node %s: %w", i, seg.Nodes[i], ErrUnavailable)
		}
		return st.Open(ctx, shard.ID{Segment: seg.ID, Index: i}, off, size)
	}
	data, dataW := io.Pipe()
	var readErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, readErr = codec.ReadRangeWith(ctx, dataW, seg.Size, 0, seg.Size, open, c.readOptions())
		dataW.CloseWithError(readErr) // nil: EOF
	}()
	var src io.Reader = data
	if throttle != nil {
		src = &throttled{ctx: ctx, r: data, t: throttle}
	}

	// Re-encode; only the rebuilt shards go anywhere.
	streams := c.openShardStreams(ctx, seg.ID, prof.FullShardBlock(), stores, seg.ShardHashes)
	for i := range n {
		if stores[i] == nil {
			streams.writers[i] = io.Discard
		}
	}
	res, encErr := codec.Encode(src, streams.writers, n-len(targets))
	if encErr == nil && res.Size != seg.Size {
		encErr = fmt.Errorf("rebuild %s: read %d of %d bytes: %w", seg.ID, res.Size, seg.Size, erasure.ErrCorrupt)
	}
	infos, putErrs := streams.finish(encErr)
	if encErr != nil {
		cancel()
	}
	data.CloseWithError(errors.New("rebuild ended")) // unblock the reader if Encode stopped early
	wg.Wait()
	if encErr != nil {
		if errors.Is(readErr, erasure.ErrTooFewShards) {
			return nil, fmt.Errorf("rebuild %s: %w: %w", seg.ID, ErrUnavailable, readErr)
		}
		return nil, fmt.Errorf("rebuild %s: %w", seg.ID, encErr)
	}
	out := make(map[int]string, len(targets))
	var errs []error
	for i := range targets {
		want := hex.EncodeToString(res.ShardHashes[i][:])
		switch {
		case errors.Is(putErrs[i], shard.ErrCorrupt):
			// The node refused content that differs from the record.
			errs = append(errs, fmt.Errorf("shard %d on %s: %w: %w", i, targets[i], erasure.ErrCorrupt, putErrs[i]))
		case putErrs[i] != nil || res.ShardErrs[i] != nil:
			errs = append(errs, fmt.Errorf("shard %d on %s: %w", i, targets[i], errOr(putErrs[i], res.ShardErrs[i])))
		case infos[i].Hash != want:
			errs = append(errs, fmt.Errorf("shard %d on %s: stored hash %s, encoded %s: %w", i, targets[i], infos[i].Hash, want, erasure.ErrCorrupt))
		case seg.ShardHashes[i] != "" && seg.ShardHashes[i] != want:
			errs = append(errs, fmt.Errorf("shard %d: rebuilt hash %s, recorded %s: %w", i, want, seg.ShardHashes[i], erasure.ErrCorrupt))
		default:
			out[i] = want
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("rebuild %s: %w", seg.ID, errors.Join(errs...))
	}
	return out, nil
}

// CopyShard copies shard i of seg from the node the record puts it on to
// node to, verifying every block hash on the way (the receiving node
// does) and the whole-file hash against the record. It reads the one
// shard, not k of them: the cheap way to move a shard whose node is still
// up (drain, rebalance). It returns the stored hash. Errors wrap
// ErrUnavailable (either node not live), shard.ErrNotFound (the
// source lacks it) or erasure.ErrCorrupt (the copy's hash differs from
// the record); on error to may hold a copy that nothing records (the
// orphan sweep's). The caller records the move (compare-and-swap).
func (c *Cluster) CopyShard(ctx context.Context, seg metadata.Segment, i int, to string, throttle Throttle) (string, error) {
	if i < 0 || i >= len(seg.Nodes) || i >= len(seg.ShardHashes) || seg.ShardHashes[i] == "" {
		return "", fmt.Errorf("copy %s.%d: %w", seg.ID, i, shard.ErrNotFound)
	}
	src, srcLive := c.Store(seg.Nodes[i])
	dst, dstLive := c.Store(to)
	if src == nil || !srcLive {
		return "", fmt.Errorf("copy %s.%d: source %s: %w", seg.ID, i, seg.Nodes[i], ErrUnavailable)
	}
	if dst == nil || !dstLive {
		return "", fmt.Errorf("copy %s.%d: target %s: %w", seg.ID, i, to, ErrUnavailable)
	}
	id := shard.ID{Segment: seg.ID, Index: i}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := src.Open(ctx, id, 0, -1)
	if err != nil {
		return "", fmt.Errorf("copy %s from %s: %w", id, seg.Nodes[i], err)
	}
	defer rc.Close()
	var r io.Reader = rc
	if throttle != nil {
		r = &throttled{ctx: ctx, r: rc, t: throttle}
	}
	info, err := dst.Replace(ctx, id, Profile(seg.Profile).FullShardBlock(), r, seg.ShardHashes[i])
	if err != nil {
		return "", fmt.Errorf("copy %s to %s: %w", id, to, err)
	}
	if info.Hash != seg.ShardHashes[i] {
		return "", fmt.Errorf("copy %s to %s: stored hash %s, recorded %s: %w", id, to, info.Hash, seg.ShardHashes[i], erasure.ErrCorrupt)
	}
	return info.Hash, nil
}
