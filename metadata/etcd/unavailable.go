package etcd

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sherdstore/sherd/metadata"
)

// classifyingKV marks etcd's transient failures (no leader, leader
// changed, request timed out, unreachable) as metadata.ErrUnavailable, so
// callers answer "retry" (503) rather than an internal error. The error
// it wraps is kept: errors.Is still sees it.
type classifyingKV struct{ clientv3.KV }

// unavailable wraps err with metadata.ErrUnavailable when it is transient.
func unavailable(err error) error {
	if err == nil || errors.Is(err, metadata.ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	code := status.Code(err)
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	}
	switch {
	case code == codes.Unavailable, code == codes.DeadlineExceeded, code == codes.ResourceExhausted,
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", metadata.ErrUnavailable, err)
	}
	return err
}

func (k classifyingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	r, err := k.KV.Get(ctx, key, opts...)
	return r, unavailable(err)
}

func (k classifyingKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	r, err := k.KV.Put(ctx, key, val, opts...)
	return r, unavailable(err)
}

func (k classifyingKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	r, err := k.KV.Delete(ctx, key, opts...)
	return r, unavailable(err)
}

func (k classifyingKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	r, err := k.KV.Do(ctx, op)
	return r, unavailable(err)
}

func (k classifyingKV) Txn(ctx context.Context) clientv3.Txn { return classifyingTxn{k.KV.Txn(ctx)} }

type classifyingTxn struct{ clientv3.Txn }

func (t classifyingTxn) If(c ...clientv3.Cmp) clientv3.Txn { return classifyingTxn{t.Txn.If(c...)} }
func (t classifyingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	return classifyingTxn{t.Txn.Then(ops...)}
}
func (t classifyingTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	return classifyingTxn{t.Txn.Else(ops...)}
}
func (t classifyingTxn) Commit() (*clientv3.TxnResponse, error) {
	r, err := t.Txn.Commit()
	return r, unavailable(err)
}
