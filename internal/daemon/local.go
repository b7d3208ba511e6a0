package daemon

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/sherdstore/sherd/internal/merkle"
	"github.com/sherdstore/sherd/shard"
)

// localNodes is the in-process transport of sherd server: its gateway
// calls the shard stores of the nodes in its own process directly
// instead of over loopback HTTP (no HTTP framing, signing, JSON or
// socket copies per shard). Everything else reaches the nodes as usual:
// the nodes still serve their HTTP API (sherdctl, other processes).
// A node that is stopped answers like a node nothing listens for
// (ECONNREFUSED), so the cluster's breaker treats it as down.
type localNodes struct {
	mu     sync.RWMutex
	stores map[string]shard.Store
}

func newLocalNodes() *localNodes { return &localNodes{stores: map[string]shard.Store{}} }

// set makes node id's store reachable (st nil: the node is stopped): the
// node's storagenode.Server.Local, so calls are observed like the API's.
func (l *localNodes) set(id string, st shard.Store) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stores[id] = st
}

// dial returns the in-process transport to node id, if the node has ever
// run in this process.
func (l *localNodes) dial(id string) (shard.Store, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if _, ok := l.stores[id]; !ok {
		return nil, false
	}
	return localShards{l: l, id: id}, true
}

// localShards is one node's shard store through localNodes; it
// implements shard.Store with the store's own contract
// (errors, ownership) and cluster.Pinger.
type localShards struct {
	l  *localNodes
	id string
}

func (s localShards) store() (shard.Store, error) {
	s.l.mu.RLock()
	defer s.l.mu.RUnlock()
	if st := s.l.stores[s.id]; st != nil {
		return st, nil
	}
	return nil, fmt.Errorf("node %s (in process): stopped: %w", s.id, syscall.ECONNREFUSED)
}

func (s localShards) Put(ctx context.Context, id shard.ID, blockLen int, r io.Reader) (shard.Info, error) {
	st, err := s.store()
	if err != nil {
		return shard.Info{}, err
	}
	return st.Put(ctx, id, blockLen, r)
}

func (s localShards) Replace(ctx context.Context, id shard.ID, blockLen int, r io.Reader, want string) (shard.Info, error) {
	st, err := s.store()
	if err != nil {
		return shard.Info{}, err
	}
	return st.Replace(ctx, id, blockLen, r, want)
}

func (s localShards) Open(ctx context.Context, id shard.ID, off, n int64) (io.ReadCloser, error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	return st.Open(ctx, id, off, n)
}

func (s localShards) Stat(ctx context.Context, id shard.ID) (shard.Info, error) {
	st, err := s.store()
	if err != nil {
		return shard.Info{}, err
	}
	return st.Stat(ctx, id)
}

func (s localShards) Delete(ctx context.Context, id shard.ID) error {
	st, err := s.store()
	if err != nil {
		return err
	}
	return st.Delete(ctx, id)
}

func (s localShards) Leaf(ctx context.Context, leaf uint32) ([]shard.Info, error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	return st.Leaf(ctx, leaf)
}

func (s localShards) Children(ctx context.Context, level int, idx uint32) ([merkle.Fanout]merkle.Digest, error) {
	st, err := s.store()
	if err != nil {
		return [merkle.Fanout]merkle.Digest{}, err
	}
	return st.Children(ctx, level, idx)
}

// Health implements cluster.Pinger: nil while the node runs.
func (s localShards) Health(context.Context) error {
	_, err := s.store()
	return err
}
