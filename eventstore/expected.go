package eventstore

import (
	"fmt"
	"strconv"
)

// ExpectedVersion is what an append expects of its stream, for optimistic concurrency: Any,
// NoStream, StreamExists, or an exact version (Exact). A stream's version is the number of
// events in it, so version 0 is a stream that has no events yet.
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version.
	Any ExpectedVersion = -1
	// NoStream appends only to a stream that has no events yet (the same as Exact(0)).
	NoStream ExpectedVersion = 0
	// StreamExists appends only to a stream that has at least one event.
	StreamExists ExpectedVersion = -2
)

// Exact expects the stream to be at version v: its last event has version v (0: no events).
func Exact(v int64) ExpectedVersion { return ExpectedVersion(v) }

// String is how the expectation reads in messages: "any", "no stream", "stream exists" or
// the version.
func (e ExpectedVersion) String() string {
	switch {
	case e == Any:
		return "any"
	case e == NoStream:
		return "no stream"
	case e == StreamExists:
		return "stream exists"
	case e < 0:
		return "invalid(" + strconv.FormatInt(int64(e), 10) + ")"
	}
	return strconv.FormatInt(int64(e), 10)
}

// Allows reports whether a stream at version current satisfies the expectation.
func (e ExpectedVersion) Allows(current int64) bool {
	switch {
	case e == Any:
		return true
	case e == StreamExists:
		return current > 0
	}
	return int64(e) == current
}

func (e ExpectedVersion) validate() error {
	if e < StreamExists {
		return fmt.Errorf("%w: expected version %d is not Any (-1), StreamExists (-2), NoStream (0) or a version", ErrInvalidEvent, int64(e))
	}
	return nil
}
