package messaging

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
)

// Message is one message. Publish fills in ID and Time when they are empty; a subscriber's
// handler gets every field, Topic being the concrete topic the message was published to.
type Message struct {
	// ID identifies the message; redeliveries keep it, so an idempotent handler can use it
	// to recognise a duplicate. Publish sets a UUIDv7 when it is empty.
	ID string
	// Topic is the topic the message was published to (set on delivery).
	Topic string
	// Key orders messages: a subscription hands messages of one key to its handler one at a
	// time, in the order it received them, whatever its concurrency. On Kafka it also picks
	// the partition, so the order holds across the members of a group.
	Key string
	// Headers are carried with the message. Names starting with "Shoal-" are shoal's own;
	// "traceparent" and "tracestate" carry the W3C trace context.
	Headers map[string]string
	// Payload is the message body.
	Payload []byte
	// Time is when the message was published. Publish sets it when it is zero.
	Time time.Time
	// Delay asks the broker to deliver the message no earlier than this long after Publish
	// (publish only; 0 delivers at once).
	Delay time.Duration
	// Attempt is the handler call for this delivery, from 1: a handler that returned an error
	// is called again, after a backoff, with Attempt one higher (delivery only).
	Attempt int
	// Redelivered is set when the broker delivered the message before, to this subscription
	// or another member of its group, without it being acknowledged — after a crash, a
	// lost connection or a subscription closed before the message was handled (delivery
	// only; Kafka does not tell, so it is always false there).
	Redelivered bool
}

// Handler handles one message. Returning nil acknowledges it. Returning an error retries it
// with exponential backoff up to the subscription's attempt limit; then it goes to the
// dead-letter topic <topic>.dlq, with headers Shoal-Dlq-Reason (the last error),
// Shoal-Dlq-Attempts, Shoal-Dlq-Topic (the original topic), Shoal-Dlq-Group and
// Shoal-Dlq-Id (the original ID). A panic counts as an error.
//
// Delivery is at least once: a message may be handled more than once (after a crash or a
// lost connection), so handlers should be idempotent, keyed by Message.ID.
type Handler func(ctx context.Context, m *Message) error

// Dead-letter headers.
const (
	HeaderDeadLetterReason   = "Shoal-Dlq-Reason"
	HeaderDeadLetterAttempts = "Shoal-Dlq-Attempts"
	HeaderDeadLetterTopic    = "Shoal-Dlq-Topic"
	HeaderDeadLetterGroup    = "Shoal-Dlq-Group"
	HeaderDeadLetterID       = "Shoal-Dlq-Id"
)

// NewID returns a new message ID: a UUIDv7 (RFC 9562) — 48 bits of Unix milliseconds, 12
// bits of the millisecond's fraction (method 3, so IDs made apart by more than ~250ns sort
// in time order) and 62 random bits. The random bits come from math/rand/v2 (the runtime's
// per-thread ChaCha8, seeded by the OS): uuid.NewV7 reads crypto/rand on every call, a
// system call that was a third of the Bus's own cost per published message. An ID needs to
// be unique, not secret.
func NewID() string {
	now := time.Now()
	ms := uint64(now.UnixMilli())
	frac := uint64(now.Nanosecond()%1e6) * 4096 / 1e6
	r := rand.Uint64()
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[0:8], ms<<16|0x7000|frac)
	binary.BigEndian.PutUint64(u[8:16], r&^(3<<62)|2<<62) // variant 10
	return u.String()
}

// clone returns a copy of m with its own header map.
func (m *Message) clone() *Message {
	c := *m
	if m.Headers != nil {
		c.Headers = make(map[string]string, len(m.Headers))
		for k, v := range m.Headers {
			c.Headers[k] = v
		}
	}
	return &c
}
