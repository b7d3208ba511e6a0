package gateway

// Bucket notifications: the events a change produces are built by package
// notify and committed with the change (PutObject, DeleteObject… take
// them), so a committed change always has its events and a refused one
// never does. Delivery is notify.Notifier's, run by the daemon.

import (
	"net/http"

	"github.com/sherdstore/sherd/metadata"
	"github.com/sherdstore/sherd/notify"
)

// events are the notifications a change to key in b produces (name: the
// event, e.g. ObjectCreated:Put). A bad stored configuration is logged;
// see notify.Events for what it still delivers.
func (g *Gateway) events(r *http.Request, b metadata.Bucket, name, key string, size int64, etag string) []metadata.Event {
	if b.Notify == "" {
		return nil
	}
	evs, err := notify.Events(b, notify.Change{Name: name, Key: key, Size: size, ETag: etag, Request: reqOf(r).rid, Time: g.now()})
	if err != nil {
		g.log.Warn("bad notification configuration", "bucket", b.Name, "err", err)
	}
	return evs
}
