package messaging

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Publisher sends messages. Its methods are safe for concurrent use.
type Publisher interface {
	// Publish sends msgs to topic and returns once the broker has confirmed every one of
	// them (publisher confirms on RabbitMQ, JetStream acks, Kafka produce acks). A topic or
	// payload the broker would refuse is refused before anything is sent. On any other error
	// some of the messages may have been sent: delivery is at least once.
	Publish(ctx context.Context, topic string, msgs ...*Message) error
	// Close ends the publisher.
	Close() error
}

// Subscriber receives messages. Its methods are safe for concurrent use.
type Subscriber interface {
	// Subscribe calls h for every message whose topic matches pattern until ctx is
	// cancelled or the subscription or the Subscriber is closed; each ends it the same
	// clean way (Subscription.Close). It returns once the subscription is in place, so a
	// message published after it returns is delivered.
	Subscribe(ctx context.Context, pattern string, h Handler, opts ...SubscribeOption) (*Subscription, error)
	// Close closes every subscription, draining their handlers, then the connection.
	Close() error
}

// Bus is a Publisher and Subscriber over one Driver, with the behaviour every backend
// shares. Build it with New, or with a backend package's Open.
type Bus struct {
	d          Driver
	name       string
	opts       Options
	maxPayload int
	m          *metrics
	published  interface{ Add(float64) }
	pubErrors  interface{ Inc() }
	pubTime    interface{ Observe(float64) }
	tracer     trace.Tracer
	prop       propagation.TextMapPropagator
	log        *slog.Logger
	clock      Clock

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

var (
	_ Publisher  = (*Bus)(nil)
	_ Subscriber = (*Bus)(nil)
)

// New returns a Bus over d.
func New(d Driver, opts Options) (*Bus, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("messaging: %w", err)
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("messaging: %w; is another collector registered under a shoal_messaging_ name?", err)
	}
	b := &Bus{d: d, name: d.Name(), opts: opts, maxPayload: d.MaxPayload(), m: m,
		tracer: tp.Tracer("github.com/shoal-sh/shoal/messaging"), prop: opts.Propagator, log: opts.Logger,
		clock: opts.Clock, subs: map[*Subscription]struct{}{}}
	b.published = b.m.published.WithLabelValues(b.name)
	b.pubErrors = b.m.publishErrors.WithLabelValues(b.name)
	b.pubTime = b.m.publishDuration.WithLabelValues(b.name)
	return b, nil
}

// Driver returns the backend the Bus runs on.
func (b *Bus) Driver() Driver { return b.d }

// Publish implements Publisher.
func (b *Bus) Publish(ctx context.Context, topic string, msgs ...*Message) error {
	if err := ValidateTopic(topic); err != nil {
		return err
	}
	return b.publish(ctx, topic, msgs)
}

func (b *Bus) publish(ctx context.Context, topic string, msgs []*Message) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	now := b.clock.Now()
	for i, m := range msgs {
		if err := b.check(topic, i, m); err != nil {
			return err
		}
		m.Topic = topic
		if m.ID == "" {
			m.ID = NewID()
		}
		if m.Time.IsZero() {
			m.Time = now
		}
	}
	ctx, span := b.tracer.Start(ctx, "publish "+topic, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.system", b.name), attribute.String("messaging.destination.name", topic),
			attribute.Int("messaging.batch.message_count", len(msgs)))
	}
	if span.SpanContext().IsValid() {
		for _, m := range msgs {
			if m.Headers == nil {
				m.Headers = make(map[string]string, 2)
			}
			b.prop.Inject(ctx, headerCarrier(m.Headers))
		}
	}
	start := time.Now()
	err := b.d.Publish(ctx, msgs)
	b.pubTime.Observe(time.Since(start).Seconds())
	if err != nil {
		b.pubErrors.Inc()
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return fmt.Errorf("messaging: publishing %d messages to %q on %s: %w", len(msgs), topic, b.name, err)
	}
	b.published.Add(float64(len(msgs)))
	span.End()
	return nil
}

func (b *Bus) check(topic string, i int, m *Message) error {
	switch {
	case m == nil:
		return fmt.Errorf("messaging: %w: message %d for %q is nil", ErrInvalidMessage, i, topic)
	case len(m.Payload) > b.maxPayload:
		return &PayloadError{Topic: topic, Size: len(m.Payload), Limit: b.maxPayload, Backend: b.name}
	case m.Delay < 0:
		return fmt.Errorf("messaging: %w: message %d for %q has a negative delay %s", ErrInvalidMessage, i, topic, m.Delay)
	}
	for k, v := range m.Headers {
		if k == "" || strings.ContainsAny(k, ": \t\r\n") {
			return fmt.Errorf("messaging: %w: message %d for %q has a header name %q; names must be non-empty and hold no colon, space or line break", ErrInvalidMessage, i, topic, k)
		}
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("messaging: %w: message %d for %q has a line break in header %q; header values are one line", ErrInvalidMessage, i, topic, k)
		}
	}
	return nil
}

// Subscribe implements Subscriber.
func (b *Bus) Subscribe(ctx context.Context, pattern string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	p, err := ParsePattern(pattern)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("messaging: Subscribe to %q needs a handler", pattern)
	}
	so := subscribeOptions{concurrency: b.opts.Concurrency, prefetch: b.opts.Prefetch, retry: b.opts.Retry}
	for _, o := range opts {
		o(&so)
	}
	if err := checkGroup(so.group); err != nil {
		return nil, err
	}
	if err := so.retry.Validate(); err != nil {
		return nil, fmt.Errorf("messaging: subscription to %q: %w", pattern, err)
	}
	if so.concurrency < 1 || so.prefetch < 1 {
		return nil, fmt.Errorf("messaging: subscription to %q: concurrency (%d) and prefetch (%d) must be at least 1", pattern, so.concurrency, so.prefetch)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.mu.Unlock()
	s := newSubscription(b, p, h, so)
	c, err := b.d.Subscribe(ctx, Spec{Pattern: p, Group: so.group, Prefetch: so.prefetch, Since: b.clock.Now()}, s.deliver)
	if err != nil {
		s.abort()
		return nil, fmt.Errorf("messaging: subscribing to %q on %s: %w", pattern, b.name, err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		c.Stop()
		c.Close()
		s.abort()
		return nil, ErrClosed
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	s.start(ctx, c)
	return s, nil
}

func (b *Bus) forget(s *Subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// Close closes every subscription — running handlers finish (for at most
// Options.DrainTimeout) and are acknowledged, messages not yet started are given back to
// the broker — then the connection.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Close()
		}()
	}
	wg.Wait()
	return b.d.Close()
}

// Kill stops at once, as a crash would: nothing more is acknowledged or given back, the
// connection is dropped, handlers' contexts are cancelled, and the broker redelivers what
// was not acknowledged. It returns when every handler has returned.
func (b *Bus) Kill() {
	b.mu.Lock()
	b.closed = true
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.killed.Store(true)
		s.hcancel()
	}
	b.d.Close()
	for _, s := range subs {
		s.Close()
	}
}
