package messaging

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidTopic is wrapped by the *TopicError Publish returns for a topic that is empty,
	// too long, holds a wildcard or a character outside letters, digits, "_" and "-".
	ErrInvalidTopic = errors.New("invalid topic")
	// ErrInvalidPattern is wrapped by the *PatternError Subscribe returns for a malformed pattern.
	ErrInvalidPattern = errors.New("invalid pattern")
	// ErrPayloadTooLarge is wrapped by the *PayloadError Publish returns, before sending
	// anything, when a payload is larger than the broker accepts.
	ErrPayloadTooLarge = errors.New("payload too large")
	// ErrClosed is returned by Publish and Subscribe after Close or Kill.
	ErrClosed = errors.New("messaging: closed")
	// ErrInvalidMessage is returned by Publish for a nil message, a negative Delay or an
	// empty header name.
	ErrInvalidMessage = errors.New("invalid message")
)

// TopicError says why a topic name was refused.
type TopicError struct {
	Topic  string
	Reason string
}

func (e *TopicError) Error() string {
	return fmt.Sprintf("messaging: invalid topic %q: %s", e.Topic, e.Reason)
}

// Unwrap returns ErrInvalidTopic.
func (e *TopicError) Unwrap() error { return ErrInvalidTopic }

// PatternError says why a subscription pattern was refused.
type PatternError struct {
	Pattern string
	Reason  string
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("messaging: invalid pattern %q: %s", e.Pattern, e.Reason)
}

// Unwrap returns ErrInvalidPattern.
func (e *PatternError) Unwrap() error { return ErrInvalidPattern }

// PayloadError is returned for a message larger than the broker takes.
type PayloadError struct {
	Topic string
	// Size is the payload's size and Limit the largest the broker accepts, in bytes.
	Size, Limit int
	// Backend names the broker ("nats", "rabbitmq", "kafka", "memory").
	Backend string
}

func (e *PayloadError) Error() string {
	return fmt.Sprintf("messaging: a %d-byte payload for %q is over the %s broker's limit of %d bytes; send a reference (an object-store key) instead, or raise the broker's limit and messaging.max_payload",
		e.Size, e.Topic, e.Backend, e.Limit)
}

// Unwrap returns ErrPayloadTooLarge.
func (e *PayloadError) Unwrap() error { return ErrPayloadTooLarge }
