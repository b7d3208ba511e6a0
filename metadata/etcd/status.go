package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
)

// PutStatus implements metadata.Store.
func (s *Store) PutStatus(ctx context.Context, st metadata.ProcessStatus) error {
	if st.Kind == "" || st.Name == "" || strings.ContainsAny(st.Kind, "/\x00") {
		return fmt.Errorf("put status: %w", metadata.ErrInvalid)
	}
	st.V = metadata.Version
	if _, err := s.kv.Put(ctx, s.prefix+"status/"+st.Kind+"/"+st.Name, mustJSON(st)); err != nil {
		return fmt.Errorf("put status %s/%s: %w", st.Kind, st.Name, err)
	}
	return nil
}

// ListStatus implements metadata.Store.
func (s *Store) ListStatus(ctx context.Context) ([]metadata.ProcessStatus, error) {
	resp, err := s.kv.Get(ctx, s.prefix+"status/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list status: %w", err)
	}
	out := make([]metadata.ProcessStatus, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var st metadata.ProcessStatus
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			return nil, fmt.Errorf("list status: %w", err)
		}
		out = append(out, st)
	}
	return out, nil
}
