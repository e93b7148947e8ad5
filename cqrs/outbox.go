package cqrs

import (
	"context"
	"database/sql"
	"errors"

	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/messaging/outbox"
)

// OutboxInline returns an inline projection (a sqlstore.Options.Inline hook) that writes
// every appended event to ob in the append's own transaction, as the message ToMessage
// makes of it (the event ID as the message ID), on the topic topic names (nil:
// DefaultTopic). ob's relay (ob.Run, on every instance, one relaying at a time) then
// publishes them: an event is saved if and only if it is published, at least once. The
// outbox must be in the event store's database.
//
// It is the alternative to an [EventBus] with a Publisher fed by a subscription: the outbox
// costs a row per event in the append's transaction, the subscription costs nothing there
// but publishes only as fast as one reader of $all.
func OutboxInline(ob *outbox.Outbox, topic func(eventstore.RecordedEvent) string) func(ctx context.Context, tx *sql.Tx, events []eventstore.RecordedEvent) error {
	if topic == nil {
		topic = DefaultTopic
	}
	return func(ctx context.Context, tx *sql.Tx, events []eventstore.RecordedEvent) error {
		if ob == nil {
			return errors.New("cqrs: OutboxInline has no outbox")
		}
		for _, e := range events {
			m := ToMessage(e)
			m.Topic = topic(e)
			if err := ob.Add(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	}
}
