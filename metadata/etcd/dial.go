package etcd

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Dial connects to etcd at the comma-separated URLs and checks that it
// answers (one read within 10 s). Every Sherd process and sherdctl dial
// this way; it links the etcd client only, never the server.
func Dial(urls string) (*clientv3.Client, error) {
	// Failover from a lost member (the leader killed, a partition) must be
	// quick: a dial gives up after 2 s, and a connection that stops
	// answering keepalive pings is dropped after 2+2 s, so requests move
	// to another endpoint instead of waiting on a dead TCP connection.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: strings.Split(urls, ","), DialTimeout: 2 * time.Second, Logger: zap.NewNop(),
		DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second, PermitWithoutStream: true,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", urls, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "/sherd/ping"); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd %s: %w", urls, err)
	}
	return cli, nil
}
