package etcd

// Operator requests (ctl/<kind>/<target>): sherdctl writes them, the
// background workers poll them and act once per request id.

import (
	"context"
	"fmt"
	"strings"

	"github.com/sherdstore/sherd/metadata"
)

func (s *Store) requestKey(kind, target string) (string, error) {
	if kind == "" || target == "" || strings.ContainsAny(kind+target, "/\x00") {
		return "", fmt.Errorf("request %q %q: %w", kind, target, metadata.ErrInvalid)
	}
	return s.prefix + "ctl/" + kind + "/" + target, nil
}

// PutRequest implements metadata.Requests.
func (s *Store) PutRequest(ctx context.Context, r metadata.Request) error {
	key, err := s.requestKey(r.Kind, r.Target)
	if err != nil {
		return err
	}
	r.V = metadata.Version
	if _, err := s.kv.Put(ctx, key, mustJSON(r)); err != nil {
		return fmt.Errorf("put request %s/%s: %w", r.Kind, r.Target, err)
	}
	return nil
}

// GetRequest implements metadata.Requests.
func (s *Store) GetRequest(ctx context.Context, kind, target string) (metadata.Request, bool, error) {
	var r metadata.Request
	key, err := s.requestKey(kind, target)
	if err != nil {
		return r, false, err
	}
	_, found, err := s.getJSON(ctx, key, &r)
	if err != nil {
		return r, false, fmt.Errorf("get request %s/%s: %w", kind, target, err)
	}
	return r, found, nil
}

// DeleteRequest implements metadata.Requests.
func (s *Store) DeleteRequest(ctx context.Context, kind, target string) error {
	key, err := s.requestKey(kind, target)
	if err != nil {
		return err
	}
	if _, err := s.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete request %s/%s: %w", kind, target, err)
	}
	return nil
}
