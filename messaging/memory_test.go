package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/messagingtest"
)

func TestMemory_Conformance(t *testing.T) {
	messagingtest.Run(t, func(t *testing.T) messagingtest.Harness {
		broker := messaging.NewMemoryBroker(messaging.MemoryOptions{})
		t.Cleanup(func() { broker.Close() })
		return messagingtest.Harness{Connect: func(t testing.TB, o messaging.Options) *messaging.Bus {
			b, err := messaging.New(broker.Connect(), o)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}}
	})
}

func TestMemory_DelayFollowsTheClock(t *testing.T) {
	clock := newManualClock()
	broker := messaging.NewMemoryBroker(messaging.MemoryOptions{Clock: clock})
	defer broker.Close()
	b, err := messaging.New(broker.Connect(), messaging.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan string, 2)
	if _, err := b.Subscribe(context.Background(), "r.*", func(_ context.Context, m *messaging.Message) error {
		got <- string(m.Payload)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), "r.x", &messaging.Message{Payload: []byte("later"), Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	clock.waitFor(1)
	clock.Advance(59 * time.Minute)
	select {
	case p := <-got:
		t.Fatalf("%s delivered 59 minutes into a 1 hour delay", p)
	default:
	}
	clock.Advance(time.Minute)
	if p := <-got; p != "later" {
		t.Fatalf("got %s", p)
	}
}
