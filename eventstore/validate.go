package eventstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits of what an append accepts.
const (
	// MaxStreamLen is the longest stream name, in bytes.
	MaxStreamLen = 200
	// MaxTypeLen is the longest event type, in bytes.
	MaxTypeLen = 200
	// MaxDataLen is the largest event data, in bytes (metadata counts too).
	MaxDataLen = 4 << 20
	// MaxAppendEvents is the most events one append takes.
	MaxAppendEvents = 10000
)

// AllStream names the global order in messages and the CLI; it is not a stream one can
// append to.
const AllStream = "$all"

// ValidateStream checks a stream name: 1 to MaxStreamLen bytes of UTF-8 without control
// characters or leading/trailing spaces, not starting with '$' (reserved, as in "$all").
func ValidateStream(stream string) error {
	bad := func(reason string) error { return &StreamNameError{Stream: stream, Reason: reason} }
	switch {
	case stream == "":
		return bad("is empty; name the stream, e.g. \"account-42\"")
	case len(stream) > MaxStreamLen:
		return bad(fmt.Sprintf("is %d bytes long; the limit is %d", len(stream), MaxStreamLen))
	case !utf8.ValidString(stream):
		return bad("is not valid UTF-8")
	case stream[0] == '$':
		return bad("starts with '$', which is reserved for the store's own streams ($all)")
	case strings.TrimSpace(stream) != stream:
		return bad("starts or ends with a space")
	}
	for _, r := range stream {
		if unicode.IsControl(r) {
			return bad("contains a control character")
		}
	}
	return nil
}

// ValidateType checks an event type name (see [EventData.Type]).
func ValidateType(typ string) error {
	if typ == "" {
		return fmt.Errorf("has no type; name what happened, e.g. \"AccountOpened\"")
	}
	if len(typ) > MaxTypeLen {
		return fmt.Errorf("has a type of %d bytes; the limit is %d", len(typ), MaxTypeLen)
	}
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if i == 0 && !letter {
			return fmt.Errorf("has type %q, which does not start with a letter or '_'", clip(typ, 60))
		}
		if !letter && !(c >= '0' && c <= '9') && c != '.' && c != '-' && c != ':' {
			return fmt.Errorf("has type %q with %q in it; use letters, digits, '_', '.', '-' and ':'", clip(typ, 60), string(rune(c)))
		}
	}
	return nil
}

// PrepareAppend checks an append before anything is written and returns its events ready
// to store: every ID canonical (missing ones filled with new UUIDv7s), empty data as {}.
// Every backend calls it first, so an append with one bad event writes nothing. It is
// exported for backends outside this package.
func PrepareAppend(stream string, expected ExpectedVersion, events []EventData) ([]EventData, error) {
	if err := ValidateStream(stream); err != nil {
		return nil, err
	}
	if err := expected.validate(); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: an append to stream %q has no events; pass at least one", ErrInvalidEvent, clip(stream, 60))
	}
	if len(events) > MaxAppendEvents {
		return nil, fmt.Errorf("%w: an append of %d events is more than the limit of %d; split it", ErrInvalidEvent, len(events), MaxAppendEvents)
	}
	out := make([]EventData, len(events))
	seen := make(map[string]int, len(events))
	for i, e := range events {
		bad := func(reason string) error { return &EventError{Index: i, Type: e.Type, Reason: reason} }
		if err := ValidateType(e.Type); err != nil {
			return nil, &EventError{Index: i, Reason: err.Error()}
		}
		if e.ID == "" {
			e.ID = NewID()
		} else {
			id, err := uuid.Parse(e.ID)
			if err != nil || id == uuid.Nil {
				return nil, bad(fmt.Sprintf("has ID %q, which is not a UUID; use eventstore.NewID", clip(e.ID, 60)))
			}
			e.ID = id.String()
		}
		if j, dup := seen[e.ID]; dup {
			return nil, bad(fmt.Sprintf("has the same ID as event %d of the same append", j))
		}
		seen[e.ID] = i
		if len(e.Data) == 0 {
			e.Data = []byte("{}")
		}
		if len(e.Data) > MaxDataLen {
			return nil, bad(fmt.Sprintf("has %d bytes of data; the limit is %d", len(e.Data), MaxDataLen))
		}
		if !json.Valid(e.Data) {
			return nil, bad("has data that is not valid JSON")
		}
		if len(e.Metadata.Headers) > 0 {
			for k := range e.Metadata.Headers {
				if k == "" {
					return nil, bad("has a metadata header with an empty name")
				}
			}
		}
		out[i] = e
	}
	return out, nil
}

// EncodeMetadata is m as stored: nil when empty, else JSON. For backends.
func EncodeMetadata(m Metadata) []byte {
	if m.IsZero() {
		return nil
	}
	b, _ := json.Marshal(m) // strings and a string map always encode
	return b
}

// DecodeMetadata reads stored metadata (nil or JSON). For backends.
func DecodeMetadata(b []byte) (Metadata, error) {
	var m Metadata
	if len(b) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: metadata does not decode: %v", ErrCorruptEvent, err)
	}
	return m, nil
}
