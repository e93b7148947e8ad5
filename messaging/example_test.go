package messaging_test

import (
	"context"
	"fmt"

	"github.com/shoal-sh/shoal/messaging"
)

func Example() {
	ctx := context.Background()
	bus, err := messaging.NewMemory(messaging.Options{})
	if err != nil {
		panic(err)
	}
	defer bus.Close()
	done := make(chan struct{})
	bus.Subscribe(ctx, "user.*", func(ctx context.Context, m *messaging.Message) error {
		fmt.Printf("%s: %s\n", m.Topic, m.Payload)
		close(done)
		return nil
	})
	bus.Publish(ctx, "user.created", &messaging.Message{Payload: []byte(`{"user_id":"123"}`)})
	<-done
	// Output: user.created: {"user_id":"123"}
}

func ExampleMatch() {
	fmt.Println(messaging.Match("user.*", "user.created"), messaging.Match("user.*", "user.a.b"), messaging.Match("user.>", "user.a.b"), messaging.Match("user.>", "user"))
	// Output: true false true false
}
