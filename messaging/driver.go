package messaging

import (
	"context"
	"time"
)

// Driver is a broker backend: it moves messages, and the Bus built on it (New) gives every
// backend the same behaviour — validation, retries, dead letters, delays, ordering per key,
// concurrency, draining, metrics, tracing. Backend packages (messaging/nats,
// messaging/rabbitmq, messaging/kafka) implement it; NewMemory is the in-process one.
//
// A Driver's methods are called concurrently.
type Driver interface {
	// Name is the backend's name for metrics and errors ("nats", "rabbitmq", ...).
	Name() string
	// MaxPayload is the largest payload the broker accepts, in bytes; Publish refuses larger
	// ones before sending anything.
	MaxPayload() int
	// Publish sends the messages (Topic, ID and Time set, Delay honoured) and returns once
	// the broker has confirmed every one of them, or an error. On error some may have been
	// sent: at least once.
	Publish(ctx context.Context, msgs []*Message) error
	// Subscribe starts delivering the messages that match spec.Pattern to deliver, which
	// may block (backpressure). It returns once the subscription is in place: a message
	// published after it returns is delivered. Messages of one key must be delivered in
	// the order the broker holds them.
	Subscribe(ctx context.Context, spec Spec, deliver func(Delivery)) (Consumer, error)
	// Close ends every subscription and connection at once, without acknowledging anything
	// further: the broker redelivers what was not acknowledged.
	Close() error
}

// Spec describes a subscription to a Driver.
type Spec struct {
	// Pattern is the parsed pattern.
	Pattern Pattern
	// Group names a consumer group: the subscriptions with the same Group and Pattern share
	// the messages, each going to one of them, and the group's messages are kept while none
	// is running. Empty: this subscription alone gets every matching message published
	// while it runs (fan-out).
	Group string
	// Prefetch is how many unacknowledged messages the broker may hand this subscription.
	Prefetch int
	// Since is when Subscribe was called: a new group starts with the messages published
	// after it.
	Since time.Time
}

// Delivery is one message handed to a subscription, with how to settle it.
type Delivery struct {
	Message *Message
	Acker   Acker
	// Lag is how many messages the broker holds behind this one for the subscription, or
	// -1 when it does not tell.
	Lag int64
}

// Acker settles one delivery. Exactly one of its methods is called, once.
type Acker interface {
	// Ack acknowledges the message: handled (or dead-lettered), not to be delivered again.
	Ack() error
	// Release gives the message back unhandled; the broker delivers it again later, to
	// this subscription or another member of its group.
	Release() error
}

// Progresser is implemented by an Acker whose broker redelivers a message that is not
// settled in time (JetStream's AckWait): the Bus calls Progress at the Consumer's
// ProgressInterval while a message is being handled or waits for a retry.
type Progresser interface {
	Progress()
}

// Staler is implemented by an Acker whose delivery can become void before it is handled
// (a Kafka partition revoked in a rebalance): the Bus skips a stale delivery, since another
// member now owns it.
type Staler interface {
	Stale() bool
}

// Consumer is a running driver subscription.
type Consumer interface {
	// Stop ends delivery: deliver is not called after Stop returns, though deliveries
	// already handed over may still be settled.
	Stop()
	// Close frees the subscription once every delivery is settled (a Kafka consumer
	// commits its last offsets here).
	Close() error
}

// ProgressIntervaler is implemented by a Consumer whose deliveries are Progressers.
type ProgressIntervaler interface {
	ProgressInterval() time.Duration
}
