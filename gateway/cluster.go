package gateway

import (
	"context"
	"fmt"
	"sync"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/placement"
	"github.com/sherdstore/sherd/storagenode"
)

// Dialer returns the shard store of a node (an HTTP client in production).
type Dialer func(n metadata.Node) storagenode.ShardStore

// Cluster is the gateway's view of the storage nodes: who is a member,
// who is live, and the placement ring over the active members. It is
// safe for concurrent use.
type Cluster struct {
	dial Dialer

	mu     sync.RWMutex
	nodes  map[string]metadata.Node
	stores map[string]storagenode.ShardStore
	addrs  map[string]string
	ring   *placement.Ring
}

// NewCluster returns an empty view; Update or Watch fills it.
func NewCluster(dial Dialer) *Cluster {
	return &Cluster{dial: dial, nodes: map[string]metadata.Node{}, stores: map[string]storagenode.ShardStore{}, addrs: map[string]string{}}
}

// Watch follows the store's node list until ctx ends. It returns once
// the first list has been applied.
func (c *Cluster) Watch(ctx context.Context, store metadata.Store) error {
	ch, err := store.WatchNodes(ctx)
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	c.Update(<-ch)
	go func() {
		for ns := range ch {
			c.Update(ns)
		}
	}()
	return nil
}

// Update replaces the view with nodes. Members keep their place in the
// ring whether live or not (their missing shards are repaired); draining
// members take no new shards.
func (c *Cluster) Update(nodes []metadata.Node) {
	var members []placement.Member
	byID := map[string]metadata.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
		if n.State == metadata.NodeActive || n.State == "" {
			w := 1.0
			if n.Capacity > 0 {
				w = float64(n.Capacity) / (1 << 40)
			}
			members = append(members, placement.Member{ID: n.ID, Zone: n.Zone, Weight: w})
		}
	}
	ring, err := placement.New(members, 0)
	if err != nil {
		ring = nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = byID
	c.ring = ring
	for id, n := range byID {
		if c.addrs[id] != n.Address {
			c.stores[id] = c.dial(n)
			c.addrs[id] = n.Address
		}
	}
}

// Place returns the nodes for the k+m shards of a new segment.
// Errors: placement.ErrNotEnoughNodes.
func (c *Cluster) Place(segmentID string, n int) ([]string, error) {
	c.mu.RLock()
	ring := c.ring
	c.mu.RUnlock()
	if ring == nil {
		return nil, placement.ErrNotEnoughNodes
	}
	return ring.Place(segmentID, n)
}

// Store returns node id's shard store and whether the node is live. A
// node that is not live is not called at all: its shards count as missing.
func (c *Cluster) Store(id string) (storagenode.ShardStore, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.stores[id], c.nodes[id].Live
}

// Nodes returns the current members.
func (c *Cluster) Nodes() []metadata.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]metadata.Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	return out
}
