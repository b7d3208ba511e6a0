package etcd

// Commit windows: each gateway publishes how long after writing a segment
// it may still commit it, so that healers in other processes can check
// their orphan grace against every gateway's window, not only their own.
//
// Invariants:
//   - A record's id names one gateway run (its publisher makes it
//     unique), so two gateways never overwrite each other's window.
//   - Records not republished for windowRetention (48 h, twice the
//     freshness healers use) are deleted by the next publication.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

type windowRecord struct {
	Window time.Duration `json:"window"`
	At     time.Time     `json:"at"`
}

func (s *Store) windowPrefix() string { return s.prefix + "windows/" }

// PublishCommitWindow records gateway id's commit window, as of now. A
// gateway publishes it at start and then periodically. Errors:
// metadata.ErrInvalid for an empty id; etcd's.
func (s *Store) PublishCommitWindow(ctx context.Context, id string, window time.Duration, now time.Time) error {
	if id == "" {
		return fmt.Errorf("commit window: no gateway id: %w", metadata.ErrInvalid)
	}
	b, _ := json.Marshal(windowRecord{Window: window, At: now.UTC()})
	if _, err := s.kv.Put(ctx, s.windowPrefix()+id, string(b)); err != nil {
		return fmt.Errorf("commit window: %w", err)
	}
	// Records of gateway runs that stopped publishing two days ago are
	// past every freshness a healer uses: drop them, so restarts do not
	// pile records up.
	resp, err := s.kv.Get(ctx, s.windowPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil // published; pruning waits for the next time
	}
	for _, kv := range resp.Kvs {
		var r windowRecord
		if json.Unmarshal(kv.Value, &r) != nil || r.At.Before(now.Add(-windowRetention)) {
			s.kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
				Then(clientv3.OpDelete(string(kv.Key))).Commit()
		}
	}
	return nil
}

// windowRetention is how long a commit window record outlives its last
// publication.
const windowRetention = 48 * time.Hour

// MaxCommitWindow returns the largest commit window a gateway published
// at or after since (0 if none), and which gateway published it.
func (s *Store) MaxCommitWindow(ctx context.Context, since time.Time) (time.Duration, string, error) {
	resp, err := s.kv.Get(ctx, s.windowPrefix(), clientv3.WithPrefix())
	if err != nil {
		return 0, "", fmt.Errorf("commit windows: %w", err)
	}
	var max time.Duration
	var who string
	for _, kv := range resp.Kvs {
		var r windowRecord
		if json.Unmarshal(kv.Value, &r) != nil || r.At.Before(since) {
			continue
		}
		if r.Window > max {
			max, who = r.Window, string(kv.Key[len(s.windowPrefix()):])
		}
	}
	return max, who, nil
}
