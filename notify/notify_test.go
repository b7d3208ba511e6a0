package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sherdstore/sherd/metadata"
)

// FuzzParseConfig: an accepted configuration is within bounds and
// survives a round trip.
func FuzzParseConfig(f *testing.F) {
	f.Add(`{"webhooks":[{"id":"a","url":"http://h/x","events":["s3:ObjectCreated:*"],"prefix":"in/"}]}`)
	f.Add(`{"webhooks":[{"id":"a","url":"ftp://h","events":[]}]}`)
	f.Add(`{"webhooks":null}`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig(s)
		if err != nil {
			return
		}
		if len(c.Webhooks) > MaxWebhooks {
			t.Fatalf("%d webhooks accepted", len(c.Webhooks))
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseConfig(string(out)); err != nil {
			t.Fatalf("round trip of %s: %v", out, err)
		}
	})
}

// TestEvents: a change gives one event per webhook that wants its name
// and key (prefix, suffix, exact names and wildcards), carrying the
// change, due at once; a bad configuration gives none, except one stored
// with more than MaxWebhooks, whose first MaxWebhooks still deliver.
func TestEvents(t *testing.T) {
	cfg := func(hooks ...Webhook) string {
		b, err := json.Marshal(Config{Webhooks: hooks})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	bucket := metadata.Bucket{Name: "photos", Owner: "alice", Notify: cfg(
		Webhook{ID: "a", URL: "http://a/", Events: []string{"s3:ObjectCreated:*"}, Prefix: "in/"},
		Webhook{ID: "b", URL: "http://b/", Events: []string{"s3:ObjectRemoved:Delete"}, Suffix: ".jpg"},
		Webhook{ID: "c", URL: "http://c/", Events: []string{"s3:ObjectCreated:Put"}},
	)}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	configs := func(evs []metadata.Event) string {
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.Config)
		}
		return strings.Join(ids, ",")
	}
	for _, tc := range []struct{ name, key, want string }{
		{"ObjectCreated:Put", "in/x.jpg", "a,c"},
		{"ObjectCreated:Put", "out/x.jpg", "c"},
		{"ObjectCreated:CompleteMultipartUpload", "in/y", "a"},
		{"ObjectRemoved:Delete", "in/x.jpg", "b"},
		{"ObjectRemoved:Delete", "in/x.png", ""},
		{"ObjectRemoved:DeleteMarkerCreated", "in/x.jpg", ""},
	} {
		evs, err := Events(bucket, Change{Name: tc.name, Key: tc.key, Size: 7, ETag: `"e"`, Request: "rid", Time: at})
		if err != nil {
			t.Fatal(err)
		}
		if got := configs(evs); got != tc.want {
			t.Errorf("%s %s: webhooks %q, want %q", tc.name, tc.key, got, tc.want)
		}
		for _, e := range evs {
			want := metadata.Event{ID: e.ID, URL: "http://" + e.Config + "/", Config: e.Config, Name: tc.name, Bucket: "photos", Key: tc.key,
				Size: 7, ETag: `"e"`, Time: at.UTC(), Request: "rid", Owner: "alice", NextTry: at.UTC()}
			if fmt.Sprint(e) != fmt.Sprint(want) || e.Time.Location() != time.UTC {
				t.Errorf("event %+v, want %+v", e, want)
			}
			if !strings.HasPrefix(e.ID, fmt.Sprintf("%016x-", at.UnixNano())) {
				t.Errorf("event id %q is not ordered by its time", e.ID)
			}
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].ID == evs[0].ID {
				t.Errorf("two events with id %s", evs[0].ID)
			}
		}
	}

	if evs, err := Events(metadata.Bucket{Name: "quiet"}, Change{Name: "ObjectCreated:Put", Key: "k", Time: at}); evs != nil || err != nil {
		t.Errorf("no configuration: %v, %v", evs, err)
	}
	bad := metadata.Bucket{Name: "bad", Notify: cfg(Webhook{ID: "a", URL: "ftp://a/", Events: []string{"s3:ObjectCreated:*"}})}
	if evs, err := Events(bad, Change{Name: "ObjectCreated:Put", Key: "k", Time: at}); evs != nil || err == nil {
		t.Errorf("bad configuration: %v, %v", evs, err)
	}
	var many []Webhook
	for i := range MaxWebhooks + 4 {
		many = append(many, Webhook{ID: fmt.Sprint("h", i), URL: "http://h/", Events: []string{"s3:ObjectCreated:*"}})
	}
	evs, err := Events(metadata.Bucket{Name: "many", Notify: cfg(many...)}, Change{Name: "ObjectCreated:Put", Key: "k", Time: at})
	if err == nil || len(evs) != MaxWebhooks || evs[MaxWebhooks-1].Config != fmt.Sprint("h", MaxWebhooks-1) {
		t.Errorf("%d webhooks stored: %d events (%v), want the first %d and an error", len(many), len(evs), err, MaxWebhooks)
	}
}
