package etcd_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sherdstore/sherd/metadata"
)

// TestDeadLetterEvents (#23 item 9): an event moves from the queue to the
// dead-letter list only if unchanged since read; the list keeps at most
// max entries, the oldest dropped first and counted exactly, however many
// deliverers move events at once.
func TestDeadLetterEvents(t *testing.T) {
	for _, tc := range []struct {
		name        string
		events, max int
		movers      int
	}{
		{"one mover", 5, 3, 1},
		{"four movers racing", 40, 7, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := newStore(t)
			mustBucket(t, s, "b")
			now := time.Now()
			for i := range tc.events {
				e := metadata.Event{ID: fmt.Sprintf("e%05d", i), URL: "http://127.0.0.1:1/", Name: "ObjectCreated:Put", Bucket: "b", Key: "k", Time: now, NextTry: now}
				if _, err := s.PutObject(ctx, obj("b", fmt.Sprint("k", i), "e"), metadata.Precondition{}, e); err != nil {
					t.Fatal(err)
				}
			}
			evs, err := s.ListEvents(ctx, now, "", 1000)
			if err != nil || len(evs) != tc.events {
				t.Fatalf("%d events listed: %v", len(evs), err)
			}
			// A copy read before a claim is stale: it moves nothing.
			claimed, ok, err := s.UpdateEvent(ctx, evs[0])
			if err != nil || !ok {
				t.Fatalf("claim: %v %v", ok, err)
			}
			if ok, err := s.DeadLetterEvent(ctx, metadata.DeadEvent{Event: evs[0], Died: now, Reason: metadata.DeadAge}, tc.max); err != nil || ok {
				t.Fatalf("stale dead letter: moved %v, %v", ok, err)
			}
			evs[0] = claimed
			var wg sync.WaitGroup
			errs := make(chan error, tc.events)
			for m := range tc.movers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := m; i < len(evs); i += tc.movers {
						d := metadata.DeadEvent{Event: evs[i], Died: now.Add(time.Duration(i) * time.Second), Reason: metadata.DeadAttempts}
						if ok, err := s.DeadLetterEvent(ctx, d, tc.max); err != nil || !ok {
							errs <- fmt.Errorf("dead letter %s: %v %v", d.ID, ok, err)
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if total, _, err := s.QueueLength(ctx, "events", now); err != nil || total != 0 {
				t.Fatalf("%d events left in the queue: %v", total, err)
			}
			count, dropped, err := s.DeadEventCount(ctx)
			if err != nil || count != tc.max || dropped != int64(tc.events-tc.max) {
				t.Fatalf("%d dead letters, %d dropped (%v); want %d, %d", count, dropped, err, tc.max, tc.events-tc.max)
			}
			dead, err := s.ListDeadEvents(ctx, 1000)
			if err != nil || len(dead) != tc.max {
				t.Fatalf("%d dead letters listed: %v", len(dead), err)
			}
			for i, d := range dead { // the newest max are kept, oldest first
				if want := fmt.Sprintf("e%05d", tc.events-tc.max+i); d.ID != want || d.Reason != metadata.DeadAttempts || d.Bucket != "b" {
					t.Errorf("dead letter %d: %s %s %s, want %s", i, d.ID, d.Reason, d.Bucket, want)
				}
			}
		})
	}
}
