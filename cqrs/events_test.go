package cqrs_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-sh/shoal/cqrs"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/messaging"
)

type Opened struct{ Owner string }

type Deposited struct{ Amount int64 }

// TestEventBus: a subscription feeds the bus; in-process handlers get typed events, and every
// event is published over messaging with its ID, stream key and headers (the relay).
func TestEventBus(t *testing.T) {
	ctx := context.Background()
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[Opened](reg, "Opened")
	eventstore.MustRegister[Deposited](reg, "Deposited")
	mb, err := messaging.NewMemory(messaging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	var mu sync.Mutex
	var msgs []*messaging.Message
	sub, err := mb.Subscribe(ctx, "events.>", func(ctx context.Context, m *messaging.Message) error {
		mu.Lock()
		msgs = append(msgs, m)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	bus := cqrs.NewEventBus(reg, cqrs.EventBusOptions{Publisher: mb})
	var total int64
	var owners []string
	if err := cqrs.On(bus, func(ctx context.Context, d Deposited, e eventstore.RecordedEvent) error {
		mu.Lock()
		total += d.Amount
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cqrs.On(bus, func(ctx context.Context, o Opened, e eventstore.RecordedEvent) error {
		mu.Lock()
		owners = append(owners, o.Owner)
		mu.Unlock()
		return nil
	})
	if err := cqrs.On(bus, func(ctx context.Context, v struct{ X int }, e eventstore.RecordedEvent) error { return nil }); err == nil {
		t.Error("a handler of an unregistered type was added")
	}
	store := eventstore.NewMemory(eventstore.MemoryOptions{})
	opened, _ := reg.Encode(Opened{"ada"})
	opened.Metadata = eventstore.Metadata{CorrelationID: "corr", Headers: map[string]string{"user": "ada"}}
	d1, _ := reg.Encode(Deposited{5})
	store.Append(ctx, "acc-1", eventstore.NoStream, opened, d1, eventstore.NewEvent("Unknown.Type", nil))
	s, err := bus.Run(ctx, store, "relay", eventstore.SubscribeOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFor(t, "3 messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(msgs) == 3 })
	mu.Lock()
	defer mu.Unlock()
	if total != 5 || len(owners) != 1 || owners[0] != "ada" {
		t.Errorf("handlers got total %d owners %v", total, owners)
	}
	evs, _ := store.ReadStream(ctx, "acc-1", eventstore.ReadStreamOptions{})
	byID := map[string]*messaging.Message{}
	for _, m := range msgs {
		byID[m.ID] = m
	}
	for _, e := range evs {
		m := byID[e.ID]
		if m == nil {
			t.Fatalf("event %s not published with its ID", e.ID)
		}
		if m.Key != "acc-1" || m.Topic != cqrs.DefaultTopic(e) {
			t.Errorf("message key %q topic %q", m.Key, m.Topic)
		}
		back, err := cqrs.FromMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		if back.ID != e.ID || back.Stream != e.Stream || back.Version != e.Version || back.Position != e.Position || back.Type != e.Type ||
			!back.Time.Equal(e.Time) || back.Metadata.CorrelationID != e.Metadata.CorrelationID || back.Metadata.Headers["user"] != e.Metadata.Headers["user"] {
			t.Errorf("round trip: %+v, want %+v", back, e)
		}
	}
	if got := cqrs.DefaultTopic(eventstore.RecordedEvent{Type: "Unknown.Type"}); got != "events.Unknown_Type" {
		t.Errorf("DefaultTopic = %q", got)
	}
	// The checkpoint moved only after publishing.
	waitFor(t, "the checkpoint", func() bool { cp, _ := store.Checkpoint(ctx, "relay"); return cp == 3 })
}

func FuzzFromMessage(f *testing.F) {
	f.Add("acc-1", "3", "7", "Deposited", "2026-01-02T03:04:05.123456Z")
	f.Add("", "", "", "", "")
	f.Add("s", "x", "1", "T", "")
	f.Add("s", "1", "1", "T", "yesterday")
	f.Fuzz(func(t *testing.T, stream, version, pos, typ, at string) {
		m := &messaging.Message{ID: "id", Headers: map[string]string{cqrs.HeaderStream: stream, cqrs.HeaderVersion: version,
			cqrs.HeaderPosition: pos, cqrs.HeaderType: typ, cqrs.HeaderTime: at}}
		e, err := cqrs.FromMessage(m)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "cqrs: message id") {
				t.Fatalf("error without its message: %v", err)
			}
			return
		}
		if e.Stream != stream || e.Type != typ || e.Stream == "" {
			t.Fatalf("decoded %+v", e)
		}
	})
}
