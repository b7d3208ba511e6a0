package etcd_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/metadata/etcd"
)

// failingKV fails every call with err.
type failingKV struct {
	clientv3.KV
	err error
}

func (f failingKV) Get(context.Context, string, ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	return nil, f.err
}

func (f failingKV) Txn(ctx context.Context) clientv3.Txn { return failingTxn{f.KV.Txn(ctx), f.err} }

type failingTxn struct {
	clientv3.Txn
	err error
}

func (t failingTxn) If(c ...clientv3.Cmp) clientv3.Txn      { return failingTxn{t.Txn.If(c...), t.err} }
func (t failingTxn) Then(o ...clientv3.Op) clientv3.Txn     { return failingTxn{t.Txn.Then(o...), t.err} }
func (t failingTxn) Else(o ...clientv3.Op) clientv3.Txn     { return failingTxn{t.Txn.Else(o...), t.err} }
func (t failingTxn) Commit() (*clientv3.TxnResponse, error) { return nil, t.err }

// TestTransientEtcdErrorsAreUnavailable: etcd's leader loss, timeouts and
// unreachability are metadata.ErrUnavailable (the gateway's 503, retry),
// on reads and commits; other errors are not.
func TestTransientEtcdErrorsAreUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err         error
		unavailable bool
	}{
		{rpctypes.ErrGRPCLeaderChanged, true},
		{rpctypes.ErrGRPCNoLeader, true},
		{rpctypes.ErrGRPCTimeout, true},
		{rpctypes.ErrLeaderChanged, true},
		{context.DeadlineExceeded, true},
		{rpctypes.ErrGRPCRequestTooLarge, false},
		{context.Canceled, false},
		{errors.New("something else"), false},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			prefix := "/test/" + strings.ReplaceAll(t.Name(), "/", "_") + "/"
			s := etcd.New(cli, etcd.Options{Prefix: prefix, KV: failingKV{cli.KV, tc.err}})
			_, err := s.GetBucket(context.Background(), "b")
			if errors.Is(err, metadata.ErrUnavailable) != tc.unavailable || !errors.Is(err, tc.err) {
				t.Fatalf("get: %v; unavailable %v, want %v (and the cause kept)", err, errors.Is(err, metadata.ErrUnavailable), tc.unavailable)
			}
			err = s.CreateBucket(context.Background(), metadata.Bucket{Name: "b"})
			if errors.Is(err, metadata.ErrUnavailable) != tc.unavailable {
				t.Fatalf("create: %v; unavailable %v, want %v", err, errors.Is(err, metadata.ErrUnavailable), tc.unavailable)
			}
		})
	}
}
