package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sherdstore/sherd/internal/etcdserver"
	"github.com/sherdstore/sherd/metadata"
	metaetcd "github.com/sherdstore/sherd/metadata/etcd"
)

// TestNotifyDead (#23 item 9): `sherdctl notify dead` prints the events
// the deliverers gave up on, oldest first, with how many were dropped,
// as text or JSON, against a real etcd.
func TestNotifyDead(t *testing.T) {
	cli, stop, err := etcdserver.ForTests()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := metaetcd.New(cli, metaetcd.Options{})
	if err := store.CreateBucket(ctx, metadata.Bucket{Name: "photos", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range 3 {
		e := metadata.Event{ID: fmt.Sprintf("%016x-e%d", now.UnixNano(), i), URL: "http://127.0.0.1:9/hook", Name: "ObjectCreated:Put", Bucket: "photos",
			Key: fmt.Sprintf("in/%d.jpg", i), Time: now, NextTry: now, Attempts: 10, LastError: "webhook answered 503 Service Unavailable"}
		if _, err := store.PutObject(ctx, metadata.Object{Bucket: "photos", Key: e.Key, ETag: "e"}, metadata.Precondition{}, e); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := store.ListEvents(ctx, now, "", 10)
	if err != nil || len(evs) != 3 {
		t.Fatalf("%d events: %v", len(evs), err)
	}
	for i, e := range evs {
		if ok, err := store.DeadLetterEvent(ctx, metadata.DeadEvent{Event: e, Died: now.Add(time.Duration(i) * time.Second), Reason: metadata.DeadAttempts}, 2); err != nil || !ok {
			t.Fatalf("dead letter: %v %v", ok, err)
		}
	}
	etcdURL := strings.Join(cli.Endpoints(), ",")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"notify", "dead", "--etcd", etcdURL}, []string{"2 dead letters (1 dropped", "attempts", "ObjectCreated:Put photos/in/1.jpg", "photos/in/2.jpg", "last error: webhook answered 503"}},
		{[]string{"notify", "dead", "--limit", "1", "--etcd", etcdURL}, []string{"photos/in/1.jpg", "(1 more; --limit)"}},
	} {
		var out, errOut strings.Builder
		if code := run(tc.args, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out.String())
			}
		}
		if strings.Contains(out.String(), "in/0.jpg") {
			t.Errorf("%v: the dropped dead letter is printed:\n%s", tc.args, out.String())
		}
	}
	var out, errOut strings.Builder
	if code := run([]string{"notify", "dead", "--json", "--etcd", etcdURL}, &out, &errOut); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut.String())
	}
	var dead []metadata.DeadEvent
	if err := json.Unmarshal([]byte(out.String()), &dead); err != nil || len(dead) != 2 || dead[0].Key != "in/1.jpg" || dead[0].Reason != metadata.DeadAttempts || dead[0].Attempts != 10 {
		t.Fatalf("--json: %v %+v", err, dead)
	}
}
