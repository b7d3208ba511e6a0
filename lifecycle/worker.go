package lifecycle

// The worker: every gateway runs one; they share the work without doing
// it twice.
//
// Invariants:
//   - Time is cut into windows of Interval (by the injected clock); in each
//     window every bucket with rules gets one pass, by the worker that
//     claims "lifecycle/<bucket>/<window>" first. A claim lives under the
//     claimer's lease: a worker that dies mid-pass loses it and another
//     one makes the pass in the same window. A worker gives a bucket's
//     claim up when it claims that bucket's next window.
//   - A pass only acts through Store.Expire: the version it planned on,
//     by internal version id, is still where it was, the plan run again
//     on what the store's transaction reads still takes the same action,
//     and the window's claim is still held (its fence is compared). So a
//     pass made twice, a worker whose lease lapsed, or racing clients
//     (a new null version, a same-content re-upload, a rollback that made
//     a noncurrent version current) remove nothing it did not decide on.
//   - A protected version (object lock) is skipped, not forced.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/sherdstore/sherd/metadata"
)

// Store is what the worker needs of the metadata store.
type Store interface {
	ListBuckets(ctx context.Context) ([]metadata.Bucket, error)
	ListObjectVersions(ctx context.Context, bucket string, opts metadata.VersionListOptions) (metadata.VersionListResult, error)
	ListUploads(ctx context.Context, bucket string, opts metadata.UploadListOptions) (metadata.UploadListResult, error)
	Expire(ctx context.Context, bucket, key string, x metadata.Expiry) (metadata.Removal, error)
	AbortUpload(ctx context.Context, bucket, key, uploadID string) error
}

// Report is what the worker did.
type Report struct {
	Passes      int       `json:"passes"`  // bucket passes made
	Expired     int       `json:"expired"` // current versions expired
	Removed     int       `json:"removed"` // versions and delete markers removed
	Aborted     int       `json:"aborted"` // uploads aborted
	Skipped     int       `json:"skipped"` // actions not taken (locked, changed meanwhile)
	LastPass    time.Time `json:"last_pass"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitempty"`
}

// Worker carries lifecycle rules out. Fields are set before Run or Pass.
type Worker struct {
	Store    Store
	Claims   metadata.Claimer // required: who makes a bucket's pass in a window
	Now      func() time.Time // default time.Now
	Interval time.Duration    // window length; default 1 h
	Log      *slog.Logger

	mu     sync.Mutex
	held   map[string]string // bucket → claim held for its last window
	report Report
}

// Report returns what the worker did so far.
func (w *Worker) Report() Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.report
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Worker) interval() time.Duration {
	if w.Interval > 0 {
		return w.Interval
	}
	return time.Hour
}

// Run makes passes until ctx ends: at start and then every tick (a
// tenth of the window, at most a minute), each pass doing only the
// buckets whose current window nobody has done yet.
func (w *Worker) Run(ctx context.Context) {
	tick := min(w.interval()/10, time.Minute)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if err := w.Pass(ctx); err != nil && ctx.Err() == nil {
			w.fail(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Worker) fail(err error) {
	w.mu.Lock()
	w.report.LastError, w.report.LastErrorAt = err.Error(), w.now().UTC()
	w.mu.Unlock()
	if w.Log != nil {
		w.Log.Warn("lifecycle pass", "err", err)
	}
}

// Pass does, for every bucket with lifecycle rules whose current window
// this worker can claim, one pass. Errors of one bucket do not stop the
// others; the first is returned.
func (w *Worker) Pass(ctx context.Context) error {
	buckets, err := w.Store.ListBuckets(ctx)
	if err != nil {
		return fmt.Errorf("lifecycle: %w", err)
	}
	var first error
	now := w.now()
	window := strconv.FormatInt(now.Truncate(w.interval()).Unix(), 10)
	for _, b := range buckets {
		if len(b.Lifecycle) == 0 {
			continue
		}
		name := "lifecycle/" + b.Name + "/" + window
		w.mu.Lock()
		prev := w.held[b.Name]
		w.mu.Unlock()
		if prev == name {
			continue // done in this window
		}
		fence, ok, err := w.Claims.Claim(ctx, name)
		if err != nil {
			first = errors.Join(first, err)
			continue
		}
		if !ok {
			continue // another worker has it
		}
		w.mu.Lock()
		if w.held == nil {
			w.held = map[string]string{}
		}
		w.held[b.Name] = name
		w.mu.Unlock()
		if prev != "" {
			w.Claims.Release(ctx, prev)
		}
		if err := w.passBucket(ctx, b, now, fence); err != nil {
			first = errors.Join(first, fmt.Errorf("lifecycle of %s: %w", b.Name, err))
		}
	}
	return first
}

// passBucket applies b's rules to every key and upload of b at now.
func (w *Worker) passBucket(ctx context.Context, b metadata.Bucket, now time.Time, fence metadata.Fence) error {
	var key string
	var versions []metadata.Object
	flush := func() {
		for _, a := range PlanKey(b.Lifecycle, versions, now) {
			w.act(ctx, b, a, now, fence)
		}
		versions = versions[:0]
	}
	opts := metadata.VersionListOptions{MaxKeys: 1000}
	for {
		res, err := w.Store.ListObjectVersions(ctx, b.Name, opts)
		if err != nil {
			return err
		}
		for _, v := range res.Versions {
			if v.Key != key {
				flush()
				key = v.Key
			}
			versions = append(versions, v)
		}
		if !res.IsTruncated {
			break
		}
		opts.KeyMarker, opts.VersionIDMarker = res.NextKeyMarker, res.NextVersionIDMarker
	}
	flush()
	uopts := metadata.UploadListOptions{MaxUploads: 1000}
	for {
		res, err := w.Store.ListUploads(ctx, b.Name, uopts)
		if err != nil {
			return err
		}
		for _, u := range res.Uploads {
			if rule, ok := AbortUpload(b.Lifecycle, u, now); ok {
				err := w.Store.AbortUpload(ctx, b.Name, u.Key, u.UploadID)
				w.count(err, func(r *Report) { r.Aborted++ }, "abort", b.Name, u.Key, rule)
			}
		}
		if !res.IsTruncated {
			break
		}
		uopts.KeyMarker, uopts.UploadIDMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
	w.mu.Lock()
	w.report.Passes++
	w.report.LastPass = now.UTC()
	w.mu.Unlock()
	return nil
}

// act carries out one action, if the store finds it still planned on
// what it reads then (Still runs the planner again).
func (w *Worker) act(ctx context.Context, b metadata.Bucket, a Action, now time.Time, fence metadata.Fence) {
	x := metadata.Expiry{VersionID: a.Version, Current: a.Kind == ExpireCurrent, Fence: fence,
		Still: func(b metadata.Bucket, versions []metadata.Object) bool {
			return Planned(b.Lifecycle, versions, now, a)
		}}
	_, err := w.Store.Expire(ctx, b.Name, a.Key, x)
	switch a.Kind {
	case ExpireCurrent:
		w.count(err, func(r *Report) { r.Expired++ }, "expire", b.Name, a.Key, a.Rule)
	case RemoveVersion:
		w.count(err, func(r *Report) { r.Removed++ }, "remove version", b.Name, a.Key, a.Rule)
	}
}

// count records an action's outcome: done, or skipped (locked, changed
// or gone meanwhile).
func (w *Worker) count(err error, done func(*Report), what, bucket, key, rule string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		done(&w.report)
		if w.Log != nil {
			w.Log.Debug("lifecycle", "action", what, "bucket", bucket, "key", key, "rule", rule)
		}
		return
	}
	w.report.Skipped++
	if w.Log != nil {
		w.Log.Debug("lifecycle: skipped", "action", what, "bucket", bucket, "key", key, "rule", rule, "err", err)
	}
}
