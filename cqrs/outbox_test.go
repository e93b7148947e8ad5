package cqrs_test

import (
	"context"
	"sync"
	"testing"

	"github.com/shoal-sh/shoal/cqrs"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/eventstore/sqlstore"
	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/outbox"
)

// TestOutboxInline: events appended go to the messaging/outbox table in the append's
// transaction and its relay publishes them with the event IDs; a refused append leaves no
// message behind.
func TestOutboxInline(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mb, err := messaging.NewMemory(messaging.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer mb.Close()
		db := databasetest.Open(t, databasetest.Config(url))
		ob, err := outbox.New(db, outbox.Options{Publisher: mb, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := ob.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		s, err := sqlstore.New(ctx, db, sqlstore.Options{Inline: []sqlstore.InlineProjection{cqrs.OutboxInline(ob, nil)}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var mu sync.Mutex
		got := map[string]*messaging.Message{}
		sub, err := mb.Subscribe(ctx, "events.>", func(ctx context.Context, m *messaging.Message) error {
			mu.Lock()
			got[m.ID] = m
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		go ob.Run(ctx)
		var ids []string
		for i := range 30 {
			e := eventstore.NewEvent("Deposited", map[string]int{"Amount": i})
			ids = append(ids, e.ID)
			if _, err := s.Append(ctx, "acc-1", eventstore.Exact(int64(i)), e); err != nil {
				t.Fatal(err)
			}
		}
		// A conflict: nothing stored, nothing published.
		lost := eventstore.NewEvent("Deposited", nil)
		if _, err := s.Append(ctx, "acc-1", eventstore.Exact(3), lost); !eventstore.IsConflict(err) {
			t.Fatalf("stale append: %v", err)
		}
		waitFor(t, "30 messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 30 })
		mu.Lock()
		defer mu.Unlock()
		for i, id := range ids {
			m := got[id]
			if m == nil || m.Key != "acc-1" || m.Headers[cqrs.HeaderVersion] != itoa(i+1) {
				t.Fatalf("event %d (%s) published as %+v", i, id, m)
			}
		}
		if got[lost.ID] != nil {
			t.Fatal("an event of a refused append was published")
		}
	})
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}
