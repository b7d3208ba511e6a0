package storagenode

// Group commit of the index.
//
// Every shard write ends in an index transaction, and a bbolt commit
// costs two fsyncs. Concurrent writers therefore share commits: the first
// writer to find no commit running leads; it commits every transaction
// queued by then in one bbolt transaction, then hands the lead to the
// oldest writer that queued meanwhile (so no leader serves others for
// ever), or ends it when the queue is empty. There is no timer: a lone
// writer commits at once; under load a batch is whatever arrived during
// the previous commit.
//
// Invariants:
//   - A writer returns only after the transaction holding its change has
//     committed (fsynced), or with the error its own change caused: when a
//     batch fails, each of its changes is retried in a transaction of its
//     own, so one bad change fails only its writer.
//   - Changes are functions of the transaction (re-run on a retry), and
//     writers to one shard are serialized by the shard lock, so changes in
//     one batch touch different records (leaf digests compose by XOR).
//   - No goroutine is started: waiting writers do the work.

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

type committer struct {
	db      *bolt.DB
	mu      sync.Mutex
	queue   []*commitReq
	leading bool
	// batches and changes count commits and the changes they held (the
	// ratio is the batching achieved).
	batches, changes int64
}

// syncer is data a change depends on that is written outside the index
// (a pack): the commit leader syncs it, once for every change of the batch
// that names it, before committing; a change whose syncer fails is not
// committed and fails with that error.
type syncer interface{ Sync() error }

type commitReq struct {
	f    func(*bolt.Tx) error
	sync syncer // nil: none
	err  error
	done chan struct{} // closed once committed or failed
	lead chan struct{} // this writer leads the next batch
}

// update runs f in a write transaction, batched with concurrent updates,
// and returns once that transaction has committed. f may run more than
// once (each time in a fresh transaction). If sync is not nil, it is
// synced (see syncer) before that transaction commits.
func (c *committer) update(sync syncer, f func(*bolt.Tx) error) error {
	req := &commitReq{f: f, sync: sync, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, req)
	if c.leading {
		c.mu.Unlock()
		select {
		case <-req.done:
			return req.err
		case <-req.lead: // req is still queued: it goes in this batch
		}
	} else {
		c.leading = true
		c.mu.Unlock()
	}
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.batches++
	c.changes += int64(len(batch))
	c.mu.Unlock()

	c.run(batch)

	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].lead <- struct{}{}
	} else {
		c.leading = false
	}
	c.mu.Unlock()
	<-req.done
	return req.err
}

// run syncs what batch depends on, commits batch in one transaction, or
// each change alone if that fails, and wakes the writers.
func (c *committer) run(batch []*commitReq) {
	var synced map[syncer]error
	ok := batch[:0:0]
	for _, r := range batch {
		if r.sync == nil {
			ok = append(ok, r)
			continue
		}
		if synced == nil {
			synced = map[syncer]error{}
		}
		err, done := synced[r.sync]
		if !done {
			err = r.sync.Sync()
			synced[r.sync] = err
		}
		if err != nil {
			r.err = err
			close(r.done)
			continue
		}
		ok = append(ok, r)
	}
	if batch = ok; len(batch) == 0 {
		return
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, r := range batch {
			if err := r.f(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			r.err = c.db.Update(r.f)
			close(r.done)
		}
		return
	}
	for _, r := range batch {
		r.err = err
		close(r.done)
	}
}

// stats returns the commits made and the changes they held.
func (c *committer) stats() (batches, changes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.batches, c.changes
}
