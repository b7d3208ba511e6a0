package etcd

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Observer is told of every etcd call a Store makes through an observed
// KV: the kind ("get", "put", "delete", "txn", "do"), how long it took and
// its error.
type Observer func(op string, took time.Duration, err error)

// ObserveKV returns kv with every call timed and reported to obs (for
// Options.KV: etcd latency metrics).
func ObserveKV(kv clientv3.KV, obs Observer) clientv3.KV { return observedKV{kv, obs} }

type observedKV struct {
	clientv3.KV
	obs Observer
}

func (k observedKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	t := time.Now()
	r, err := k.KV.Get(ctx, key, opts...)
	k.obs("get", time.Since(t), err)
	return r, err
}

func (k observedKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	t := time.Now()
	r, err := k.KV.Put(ctx, key, val, opts...)
	k.obs("put", time.Since(t), err)
	return r, err
}

func (k observedKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	t := time.Now()
	r, err := k.KV.Delete(ctx, key, opts...)
	k.obs("delete", time.Since(t), err)
	return r, err
}

func (k observedKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	t := time.Now()
	r, err := k.KV.Do(ctx, op)
	k.obs("do", time.Since(t), err)
	return r, err
}

func (k observedKV) Txn(ctx context.Context) clientv3.Txn { return observedTxn{k.KV.Txn(ctx), k.obs} }

type observedTxn struct {
	clientv3.Txn
	obs Observer
}

func (t observedTxn) If(cs ...clientv3.Cmp) clientv3.Txn { return observedTxn{t.Txn.If(cs...), t.obs} }
func (t observedTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	return observedTxn{t.Txn.Then(ops...), t.obs}
}
func (t observedTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	return observedTxn{t.Txn.Else(ops...), t.obs}
}

func (t observedTxn) Commit() (*clientv3.TxnResponse, error) {
	s := time.Now()
	r, err := t.Txn.Commit()
	t.obs("txn", time.Since(s), err)
	return r, err
}
