// Package notify holds bucket notifications: a bucket's webhook
// configuration (Config, ParseConfig), the events a change produces
// (Events, queued by the gateway with the change), the S3 event JSON they
// are sent as, and their delivery (Notifier). It stands on the metadata
// store alone: the gateway, the daemons and sherdctl use it, and it
// imports none of them.
//
// Invariants:
//   - An event is queued in the same etcd transaction as the change it
//     reports, so a committed change always has its events, and a refused
//     one never does (the gateway passes Events' result to the commit).
//   - Delivery (notifier.go): at least once, per destination
//     concurrently, behind a circuit breaker per destination, with caps
//     on attempts and age past which an event goes to a bounded
//     dead-letter list.
package notify

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sherdstore/sherd/metadata"
)

// Webhook is one notification target of a bucket.
type Webhook struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Events []string `json:"events"` // s3:ObjectCreated:*, s3:ObjectRemoved:Delete, …
	Prefix string   `json:"prefix,omitempty"`
	Suffix string   `json:"suffix,omitempty"`
}

// Config is a bucket's notification configuration (metadata.Bucket.Notify, JSON).
type Config struct {
	Webhooks []Webhook `json:"webhooks"`
}

// MaxWebhooks bounds a bucket's webhooks: each matching one adds an
// operation to the commit of a write, and an etcd transaction takes 128.
const MaxWebhooks = 16

// ParseConfig parses and validates a configuration.
func ParseConfig(s string) (Config, error) {
	var c Config
	if s == "" {
		return c, nil
	}
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return c, fmt.Errorf("notification configuration: %w", err)
	}
	if len(c.Webhooks) > MaxWebhooks {
		return c, fmt.Errorf("notification configuration: %d webhooks, at most %d per bucket", len(c.Webhooks), MaxWebhooks)
	}
	for _, w := range c.Webhooks {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("webhook %q: bad URL %q", w.ID, w.URL)
		}
		if len(w.Events) == 0 {
			return c, fmt.Errorf("webhook %q: no events", w.ID)
		}
		for _, e := range w.Events {
			if !strings.HasPrefix(e, "s3:ObjectCreated:") && !strings.HasPrefix(e, "s3:ObjectRemoved:") {
				return c, fmt.Errorf("webhook %q: unsupported event %q", w.ID, e)
			}
		}
	}
	return c, nil
}

// matches says whether webhook w wants event name (e.g. ObjectCreated:Put) on key.
func (w Webhook) matches(name, key string) bool {
	if !strings.HasPrefix(key, w.Prefix) || !strings.HasSuffix(key, w.Suffix) {
		return false
	}
	for _, e := range w.Events {
		p := strings.TrimPrefix(e, "s3:")
		if p == name || (strings.HasSuffix(p, ":*") && strings.HasPrefix(name, strings.TrimSuffix(p, "*"))) {
			return true
		}
	}
	return false
}

// newEventID is time-ordered (the queue is listed oldest first) and unique.
func newEventID(now time.Time) string {
	var r [6]byte
	rand.Read(r[:])
	return fmt.Sprintf("%016x-%s", now.UnixNano(), hex.EncodeToString(r[:]))
}

// Change is a change to an object, as notifications see it.
type Change struct {
	Name    string // the event: ObjectCreated:Put, ObjectRemoved:Delete, …
	Key     string
	Size    int64
	ETag    string
	Request string // the id of the request that made it
	Time    time.Time
}

// Events are the notifications change c to an object of bucket b
// produces, one per webhook of b's configuration that wants it, due at
// once. A configuration that does not parse gives none and its error,
// except one stored with more than MaxWebhooks webhooks (before the
// bound): its first MaxWebhooks still deliver, and the error is returned
// with their events.
func Events(b metadata.Bucket, c Change) ([]metadata.Event, error) {
	if b.Notify == "" {
		return nil, nil
	}
	cfg, err := ParseConfig(b.Notify)
	if err != nil && len(cfg.Webhooks) > MaxWebhooks {
		cfg.Webhooks = cfg.Webhooks[:MaxWebhooks]
	} else if err != nil {
		return nil, err
	}
	var out []metadata.Event
	now := c.Time.UTC()
	for _, w := range cfg.Webhooks {
		if w.matches(c.Name, c.Key) {
			out = append(out, metadata.Event{ID: newEventID(now), URL: w.URL, Config: w.ID, Name: c.Name, Bucket: b.Name, Key: c.Key,
				Size: c.Size, ETag: c.ETag, Time: now, Request: c.Request, Owner: b.Owner, NextTry: now})
		}
	}
	return out, err
}

// EventRecord is one S3 event notification record.
type EventRecord struct {
	EventVersion      string            `json:"eventVersion"`
	EventSource       string            `json:"eventSource"`
	AWSRegion         string            `json:"awsRegion"`
	EventTime         string            `json:"eventTime"`
	EventName         string            `json:"eventName"`
	UserIdentity      map[string]string `json:"userIdentity"`
	RequestParameters map[string]string `json:"requestParameters"`
	ResponseElements  map[string]string `json:"responseElements"`
	S3                struct {
		SchemaVersion   string `json:"s3SchemaVersion"`
		ConfigurationID string `json:"configurationId"`
		Bucket          struct {
			Name          string            `json:"name"`
			OwnerIdentity map[string]string `json:"ownerIdentity"`
			ARN           string            `json:"arn"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			Size      int64  `json:"size,omitempty"`
			ETag      string `json:"eTag,omitempty"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	} `json:"s3"`
}

// EventMessage is the body POSTed to a webhook.
type EventMessage struct {
	Records []EventRecord `json:"Records"`
}

// record renders a queued event as S3 does.
func record(e metadata.Event, region string) EventRecord {
	var r EventRecord
	r.EventVersion, r.EventSource, r.AWSRegion = "2.1", "aws:s3", region
	r.EventTime = e.Time.UTC().Format("2006-01-02T15:04:05.000Z")
	r.EventName = e.Name
	r.UserIdentity = map[string]string{"principalId": e.Owner}
	r.RequestParameters = map[string]string{"sourceIPAddress": ""}
	r.ResponseElements = map[string]string{"x-amz-request-id": e.Request}
	r.S3.SchemaVersion, r.S3.ConfigurationID = "1.0", e.Config
	r.S3.Bucket.Name, r.S3.Bucket.ARN = e.Bucket, "arn:aws:s3:::"+e.Bucket
	r.S3.Bucket.OwnerIdentity = map[string]string{"principalId": e.Owner}
	r.S3.Object.Key = url.QueryEscape(e.Key)
	r.S3.Object.Size, r.S3.Object.ETag = e.Size, e.ETag
	r.S3.Object.Sequencer = strings.ToUpper(strings.SplitN(e.ID, "-", 2)[0])
	return r
}
