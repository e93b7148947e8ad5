package eventstore

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Position is an event's place in the global order of the store ($all): 1 for the first
// event ever appended, then 2, 3, … with no holes. 0 is "before the first event".
type Position int64

// EventData is an event to append.
type EventData struct {
	// ID identifies the event: a UUID. A retried append that carries the same IDs is
	// recognised and answered with the first append's result instead of storing the events
	// twice, so set it before the first attempt (NewEvent does). Append gives an event with
	// no ID a new UUIDv7, which makes that event's retries not idempotent.
	ID string
	// Type names the event, e.g. "AccountOpened": letters, digits, '_', '.', '-' and ':',
	// starting with a letter or '_', at most MaxTypeLen bytes.
	Type string
	// Data is the event's body: JSON, at most MaxDataLen bytes. An empty body is stored as {}.
	Data []byte
	// Metadata travels with the event: causation and correlation ids, headers.
	Metadata Metadata
}

// Metadata is what an event carries besides its data.
type Metadata struct {
	// CausationID is the ID of the command or event that caused this event.
	CausationID string `json:"causation_id,omitempty"`
	// CorrelationID ties together every message of one business transaction.
	CorrelationID string `json:"correlation_id,omitempty"`
	// Headers are free-form (a trace context, the user who issued the command, …).
	Headers map[string]string `json:"headers,omitempty"`
}

// IsZero reports whether m carries nothing.
func (m Metadata) IsZero() bool {
	return m.CausationID == "" && m.CorrelationID == "" && len(m.Headers) == 0
}

// RecordedEvent is an event as stored.
type RecordedEvent struct {
	// ID is the event's UUID, in its canonical lower-case form.
	ID string
	// Stream is the stream the event belongs to; Version its place in it, from 1.
	Stream  string
	Version int64
	// Position is its place in the global order.
	Position Position
	// Type names the event; Data is its JSON body.
	Type string
	Data json.RawMessage
	// Metadata travels with the event.
	Metadata Metadata
	// Time is when the event was appended (UTC, to the microsecond), taken from the
	// appending process's clock but never earlier than the event before it in the global
	// order, so times never go backwards along $all or a stream.
	Time time.Time
}

// NewEvent returns an event of type typ with a new UUIDv7 ID, its data the JSON encoding of
// v (a []byte or json.RawMessage is taken as already encoded). It panics only if v cannot be
// encoded as JSON, which is a programming error; use [Registry.Encode] for typed events.
func NewEvent(typ string, v any) EventData {
	data, err := marshalData(v)
	if err != nil {
		panic("eventstore.NewEvent: " + err.Error())
	}
	return EventData{ID: NewID(), Type: typ, Data: data}
}

func marshalData(v any) ([]byte, error) {
	switch d := v.(type) {
	case nil:
		return []byte("{}"), nil
	case []byte:
		return d, nil
	case json.RawMessage:
		return d, nil
	}
	return json.Marshal(v)
}

// NewID returns a new event ID (a UUIDv7: unique, ordered by time).
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// AppendResult says where an append put its events.
type AppendResult struct {
	// Stream the events were appended to.
	Stream string
	// FirstVersion and LastVersion are the stream versions of the first and last event;
	// LastVersion is the stream's version after the append.
	FirstVersion, LastVersion int64
	// FirstPosition and LastPosition are their positions in the global order.
	FirstPosition, LastPosition Position
	// Duplicate is set when every event of the append was already stored by an earlier
	// append with the same IDs (a retry): nothing was written, and the versions and
	// positions are those of the earlier append.
	Duplicate bool
}
