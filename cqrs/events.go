package cqrs

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/messaging"
)

// EventBus delivers stored events to in-process handlers by their Go type, and, with a
// Publisher, over package messaging. Feed it from a subscription ([EventBus.Run]) so that
// delivery is at least once, resumed from a checkpoint after a crash.
type EventBus struct {
	reg  *eventstore.Registry
	opts EventBusOptions
	mu   sync.RWMutex
	on   map[string][]func(ctx context.Context, v any, e eventstore.RecordedEvent) error
}

// EventBusOptions configure an EventBus.
type EventBusOptions struct {
	// Publisher, when set, receives every event the bus handles, as a message with the
	// event's ID as its ID (so consumers and JetStream drop duplicates), its stream as the
	// key (one stream's events stay in order) and its data as the payload, on the topic
	// Topic names. The bus then is the outbox relay: Run's checkpoint moves only after the
	// broker confirmed, so an event saved is an event published (at least once).
	Publisher messaging.Publisher
	// Topic names the topic of an event. Defaults to "events." + its type, with characters
	// a topic cannot hold replaced by '_'.
	Topic func(e eventstore.RecordedEvent) string
	// Unknown decides what happens to an event of a type the registry does not know: nil
	// (the default) passes it over for the in-process handlers (it is still published).
	Unknown func(e eventstore.RecordedEvent) error
}

// Headers of published events.
const (
	HeaderStream   = "Shoal-Event-Stream"
	HeaderVersion  = "Shoal-Event-Version"
	HeaderPosition = "Shoal-Event-Position"
	HeaderType     = "Shoal-Event-Type"
	HeaderTime     = "Shoal-Event-Time"
	HeaderCause    = "Shoal-Causation-Id"
	HeaderCorr     = "Shoal-Correlation-Id"
)

// NewEventBus returns an event bus decoding events with reg.
func NewEventBus(reg *eventstore.Registry, opts EventBusOptions) *EventBus {
	if opts.Topic == nil {
		opts.Topic = DefaultTopic
	}
	return &EventBus{reg: reg, opts: opts, on: map[string][]func(context.Context, any, eventstore.RecordedEvent) error{}}
}

// DefaultTopic is "events." followed by the event's type, '.', '*', '>' and spaces turned
// into '_'.
func DefaultTopic(e eventstore.RecordedEvent) string {
	return "events." + strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r == ' ' || r == '#' {
			return '_'
		}
		return r
	}, e.Type)
}

// On adds h as a handler of events of Go type E (registered in the bus's registry). Every
// handler of a type is called, in the order added; an error stops the delivery of that
// event, which the subscription retries.
func On[E any](b *EventBus, h func(ctx context.Context, ev E, e eventstore.RecordedEvent) error) error {
	var zero E
	name, err := b.reg.Name(zero)
	if err != nil {
		return fmt.Errorf("cqrs: event handler for %s: %w", reflect.TypeFor[E](), err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.on[name] = append(b.on[name], func(ctx context.Context, v any, e eventstore.RecordedEvent) error {
		return h(ctx, v.(E), e)
	})
	return nil
}

// Handle delivers one stored event: to the in-process handlers of its type, then to the
// Publisher. It is an eventstore.Handler.
func (b *EventBus) Handle(ctx context.Context, e eventstore.RecordedEvent) error {
	b.mu.RLock()
	hs := b.on[e.Type]
	b.mu.RUnlock()
	if len(hs) > 0 {
		v, err := b.reg.Decode(e)
		switch {
		case err == nil:
			for _, h := range hs {
				if err := h(ctx, v, e); err != nil {
					return err
				}
			}
		case errors.Is(err, eventstore.ErrUnknownEventType) && b.opts.Unknown == nil:
		case errors.Is(err, eventstore.ErrUnknownEventType):
			if err := b.opts.Unknown(e); err != nil {
				return err
			}
		default:
			return err
		}
	}
	if b.opts.Publisher != nil {
		topic := b.opts.Topic(e)
		if err := b.opts.Publisher.Publish(ctx, topic, ToMessage(e)); err != nil {
			return fmt.Errorf("publishing event %d to %s: %w", e.Position, topic, err)
		}
	}
	return nil
}

// Run subscribes the bus to store under name (its checkpoint) and delivers every event
// selected by opts.Filter until the subscription is closed.
func (b *EventBus) Run(ctx context.Context, store eventstore.Store, name string, opts eventstore.SubscribeOptions) (*eventstore.Subscription, error) {
	return eventstore.Subscribe(ctx, store, name, b.Handle, opts)
}

// ToMessage is a stored event as a message: its ID, its stream as the key, its data as the
// payload and where it is stored in the headers.
func ToMessage(e eventstore.RecordedEvent) *messaging.Message {
	h := map[string]string{
		HeaderStream: e.Stream, HeaderVersion: strconv.FormatInt(e.Version, 10),
		HeaderPosition: strconv.FormatInt(int64(e.Position), 10), HeaderType: e.Type,
		HeaderTime: e.Time.UTC().Format(time.RFC3339Nano),
	}
	if e.Metadata.CausationID != "" {
		h[HeaderCause] = e.Metadata.CausationID
	}
	if e.Metadata.CorrelationID != "" {
		h[HeaderCorr] = e.Metadata.CorrelationID
	}
	for k, v := range e.Metadata.Headers {
		if _, taken := h[k]; !taken {
			h[k] = v
		}
	}
	return &messaging.Message{ID: e.ID, Key: e.Stream, Headers: h, Payload: e.Data, Time: e.Time}
}

// FromMessage is the event a message published by an EventBus carries; an error says which
// header is missing or malformed.
func FromMessage(m *messaging.Message) (eventstore.RecordedEvent, error) {
	e := eventstore.RecordedEvent{ID: m.ID, Stream: m.Headers[HeaderStream], Type: m.Headers[HeaderType], Data: m.Payload}
	if e.Stream == "" || e.Type == "" {
		return e, fmt.Errorf("cqrs: message %s is not an event: it has no %s or %s header", m.ID, HeaderStream, HeaderType)
	}
	var err error
	if e.Version, err = strconv.ParseInt(m.Headers[HeaderVersion], 10, 64); err != nil {
		return e, fmt.Errorf("cqrs: message %s: header %s %q is not a number", m.ID, HeaderVersion, m.Headers[HeaderVersion])
	}
	p, err := strconv.ParseInt(m.Headers[HeaderPosition], 10, 64)
	if err != nil {
		return e, fmt.Errorf("cqrs: message %s: header %s %q is not a number", m.ID, HeaderPosition, m.Headers[HeaderPosition])
	}
	e.Position = eventstore.Position(p)
	if t := m.Headers[HeaderTime]; t != "" {
		if e.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return e, fmt.Errorf("cqrs: message %s: header %s %q is not an RFC 3339 time", m.ID, HeaderTime, t)
		}
	}
	e.Metadata.CausationID, e.Metadata.CorrelationID = m.Headers[HeaderCause], m.Headers[HeaderCorr]
	for k, v := range m.Headers {
		if !strings.HasPrefix(k, "Shoal-") && k != "traceparent" && k != "tracestate" {
			if e.Metadata.Headers == nil {
				e.Metadata.Headers = map[string]string{}
			}
			e.Metadata.Headers[k] = v
		}
	}
	return e, nil
}
