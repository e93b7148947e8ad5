package eventstore

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors of the store match them with errors.Is; the typed errors below
// carry the details.
var (
	// ErrConflict is returned by Append when the stream's version is not the expected one
	// (see [ConflictError]). Reload, decide again and retry; [Repository.Update] does.
	ErrConflict = errors.New("wrong expected version")

	// ErrStreamNotFound is returned when a stream that must exist has no events.
	ErrStreamNotFound = errors.New("stream not found")

	// ErrInvalidStream is returned for a stream name that cannot be used (see [StreamNameError]).
	ErrInvalidStream = errors.New("invalid stream name")

	// ErrInvalidEvent is returned by Append for an event that cannot be stored — a bad
	// type, data that is not JSON, a bad ID, too large (see [EventError]) — and for a bad
	// expected version. Nothing of the append is written.
	ErrInvalidEvent = errors.New("invalid event")

	// ErrDuplicateEvent is returned by Append when an event's ID is already stored but the
	// append is not a retry of the one that stored it (see [DuplicateEventError]).
	ErrDuplicateEvent = errors.New("duplicate event id")

	// ErrUnknownEventType is returned when a typed event has no registration: decoding an
	// event whose type no Go type is registered for, or encoding a Go value whose type is not
	// registered (see [UnknownTypeError]).
	ErrUnknownEventType = errors.New("unknown event type")

	// ErrCorruptEvent is returned when a stored event's data or a snapshot does not decode
	// into its registered type (see [DecodeError]).
	ErrCorruptEvent = errors.New("corrupt event data")

	// ErrNoSnapshot is returned by LoadSnapshot when the stream has no snapshot at or below
	// the version asked for.
	ErrNoSnapshot = errors.New("no snapshot")

	// ErrLeaseLost is returned by CommitLease when another member of the group owns the
	// partition now: the caller must stop handling it.
	ErrLeaseLost = errors.New("partition lease lost")

	// ErrGroupMismatch is returned by Rebalance when a member asks for a number of
	// partitions other than the group was created with.
	ErrGroupMismatch = errors.New("group partition count mismatch")

	// ErrClosed is returned by a store or subscription used after Close.
	ErrClosed = errors.New("event store closed")
)

// ConflictError is an append that expected another stream version.
type ConflictError struct {
	Stream   string
	Expected ExpectedVersion
	// Actual is the stream's version when the append was refused (0: no events).
	Actual int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("append to stream %q expected version %s but the stream is at version %d; reload it and decide again",
		e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// IsConflict reports whether err is (or wraps) a version conflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// StreamNameError is a stream name that cannot be used.
type StreamNameError struct {
	Stream string // quoted at most 60 bytes in the message
	Reason string
}

func (e *StreamNameError) Error() string {
	return fmt.Sprintf("stream name %q %s", clip(e.Stream, 60), e.Reason)
}

func (e *StreamNameError) Unwrap() error { return ErrInvalidStream }

// EventError is an event of an append that cannot be stored.
type EventError struct {
	// Index of the event in the append, from 0.
	Index  int
	Type   string
	Reason string
}

func (e *EventError) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("event %d (%s) %s; nothing was appended", e.Index, clip(e.Type, 60), e.Reason)
	}
	return fmt.Sprintf("event %d %s; nothing was appended", e.Index, e.Reason)
}

func (e *EventError) Unwrap() error { return ErrInvalidEvent }

// DuplicateEventError is an append carrying an event ID that is already stored, where the
// append is not a retry of the one that stored it.
type DuplicateEventError struct {
	ID string
	// Stream, Version and Position say where the ID is stored.
	Stream   string
	Version  int64
	Position Position
}

func (e *DuplicateEventError) Error() string {
	return fmt.Sprintf("event id %s is already stored as version %d of stream %q (position %d), and this append is not a retry of that one; give new events new IDs",
		e.ID, e.Version, clip(e.Stream, 60), e.Position)
}

func (e *DuplicateEventError) Unwrap() error { return ErrDuplicateEvent }

// UnknownTypeError is a typed event with no registration.
type UnknownTypeError struct {
	// Type is the event type name (decoding) or the Go type (encoding).
	Type string
	// Position and Stream locate the stored event when decoding (0 and "" when encoding).
	Position Position
	Stream   string
	Encoding bool
}

func (e *UnknownTypeError) Error() string {
	if e.Encoding {
		return fmt.Sprintf("Go type %s is not registered as an event; register it with eventstore.Register", e.Type)
	}
	return fmt.Sprintf("event type %q (stream %q, position %d) has no registered decoder; register a Go type for it with eventstore.Register",
		clip(e.Type, 60), clip(e.Stream, 60), e.Position)
}

func (e *UnknownTypeError) Unwrap() error { return ErrUnknownEventType }

// DecodeError is a stored event (or snapshot) whose data does not decode.
type DecodeError struct {
	Type     string
	Stream   string
	Position Position // 0 for a snapshot
	Version  int64
	Err      error
}

func (e *DecodeError) Error() string {
	what := fmt.Sprintf("event %q at position %d (stream %q, version %d)", clip(e.Type, 60), e.Position, clip(e.Stream, 60), e.Version)
	if e.Position == 0 {
		what = fmt.Sprintf("snapshot %q of stream %q at version %d", clip(e.Type, 60), clip(e.Stream, 60), e.Version)
	}
	return fmt.Sprintf("%s does not decode: %v; fix the data or the Go type registered for it", what, e.Err)
}

// Unwrap makes errors.Is(err, ErrCorruptEvent) hold, and reaches the decoder's error.
func (e *DecodeError) Unwrap() []error { return []error{ErrCorruptEvent, e.Err} }

// HandlerError is a subscription stopped because its handler kept failing on one event.
type HandlerError struct {
	Subscription string
	Position     Position
	Type         string
	Attempts     int
	Err          error
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("subscription %q stopped: its handler failed %d times on event %q at position %d: %v; fix the handler and start it again (it resumes at that event)",
		e.Subscription, e.Attempts, clip(e.Type, 60), e.Position, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut at a rune boundary.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
