// Package messaging is one publish/subscribe API over NATS, RabbitMQ and Kafka (the
// sub-packages nats, rabbitmq and kafka) and an in-process broker (NewMemory), with the same
// wildcards, retries, dead letters, delays and ordering everywhere.
//
//	bus, _ := messaging.NewMemory(messaging.Options{})    // or nats.Open, rabbitmq.Open, kafka.Open
//	defer bus.Close()
//	bus.Subscribe(ctx, "user.*", func(ctx context.Context, m *messaging.Message) error {
//		return handle(m.Payload)                          // nil acks; an error retries, then dead-letters
//	}, messaging.Group("mailer"), messaging.Concurrency(8))
//	bus.Publish(ctx, "user.created", &messaging.Message{Key: userID, Payload: body})
//
// # Topics and patterns
//
// A topic is dot-separated tokens of letters, digits, "_" and "-" ("user.created"). A
// pattern may use "*" for exactly one token and, as its last token, ">" for one or more:
// "user.*" matches "user.created" but not "user.a.b" nor "user"; "user.>" matches both but
// not "user". Each backend compiles a pattern to its broker's native form — a NATS subject,
// a RabbitMQ topic-exchange binding ("user.>" becomes "user.*.#", so it needs a token), a
// Kafka regular expression over topics named the same way — and a property test checks each
// against the reference matcher (Pattern.Match). Invalid topics and patterns are refused
// before anything is sent.
//
// # Delivery
//
// Delivery is at least once, on every backend: a message is acknowledged only after its
// handler returned nil, so after a crash or a lost connection it may be handled again —
// handlers should be idempotent, keyed by Message.ID, which redeliveries keep.
//
// A handler's error is retried in the subscription, after an exponential backoff with full
// jitter (RetryPolicy), up to MaxAttempts calls; then the message goes to <topic>.dlq with
// headers saying why (HeaderDeadLetterReason …) and is acknowledged. Retrying in place keeps
// the order of a key: later messages of the same key wait. Dead letters are delivered only
// to patterns that name them (last token "dlq"), so "user.>" does not receive the dead
// letters of its own failures, and a dead letter that fails again is logged and counted
// (shoal_messaging_abandoned_total), not dead-lettered twice.
//
// Without a Group, a subscription gets every matching message published while it runs
// (fan-out). With one, the subscriptions sharing the group name and pattern share the
// messages, and the group's messages are kept while no member runs.
//
// Concurrency(n) runs n handler calls at once; messages with the same Key are still handled
// one at a time in the order received. Message.Delay delays delivery on every backend.
//
// Close, or cancelling the context given to Subscribe, stops delivery, lets running
// handlers finish and acknowledges them, and gives held messages back to the broker. Kill
// stops as a crash would.
//
// # Writing a backend
//
// A backend implements Driver (publish confirmed, subscribe with ack and release); New wraps
// it in a Bus with everything above, and messagingtest.Run is the conformance suite it must
// pass.
package messaging
