package messaging

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-sh/shoal/resilience"
)

// Subscription is a running subscription. Close (or cancelling the context given to
// Subscribe) ends it cleanly: delivery stops, running handlers finish and are acknowledged,
// and messages not yet started or waiting for a retry are given back to the broker.
type Subscription struct {
	bus     *Bus
	pattern Pattern
	group   string
	handler Handler
	opts    subscribeOptions
	retry   *resilience.Retry
	m       subMetrics
	dlq     bool // the pattern names dead letters, so they are delivered

	consumer Consumer
	ready    chan *item    // messages handed over, not yet picked by a worker
	slots    chan struct{} // one per message held, up to prefetch
	stopping chan struct{} // closed by Close: hand nothing more to the handler
	hctx     context.Context
	hcancel  context.CancelFunc
	killed   atomic.Bool
	workers  sync.WaitGroup

	mu       sync.Mutex
	busy     map[string][]*item // keys being handled, with the messages waiting behind
	inflight map[*item]struct{} // tracked only when the broker needs Progress calls

	closeOnce sync.Once
	done      chan struct{}
}

type item struct{ d Delivery }

func newSubscription(b *Bus, p Pattern, h Handler, so subscribeOptions) *Subscription {
	retry, _ := resilience.NewRetry(resilience.RetryConfig{MaxAttempts: so.retry.MaxAttempts,
		BaseDelay: max(so.retry.InitialBackoff, time.Nanosecond), MaxDelay: max(so.retry.MaxBackoff, time.Nanosecond),
		After: b.clock.After})
	s := &Subscription{bus: b, pattern: p, group: so.group, handler: h, opts: so, retry: retry,
		m:     b.m.forSubscription(b.name, p.String(), so.group),
		dlq:   p.deadLetters(),
		ready: make(chan *item, so.prefetch), slots: make(chan struct{}, so.prefetch),
		stopping: make(chan struct{}), busy: map[string][]*item{}, done: make(chan struct{})}
	s.hctx, s.hcancel = context.WithCancel(context.Background())
	return s
}

// Pattern returns the subscription's pattern.
func (s *Subscription) Pattern() string { return s.pattern.String() }

// Group returns the subscription's group, "" for fan-out.
func (s *Subscription) Group() string { return s.group }

// Done is closed when the subscription has ended.
func (s *Subscription) Done() <-chan struct{} { return s.done }

func (s *Subscription) start(ctx context.Context, c Consumer) {
	s.consumer = c
	if pi, ok := c.(ProgressIntervaler); ok && pi.ProgressInterval() > 0 {
		s.inflight = map[*item]struct{}{}
		go s.progress(pi.ProgressInterval())
	}
	s.workers.Add(s.opts.concurrency)
	for range s.opts.concurrency {
		go s.work()
	}
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
}

// abort ends a subscription whose driver subscription never started.
func (s *Subscription) abort() {
	s.closeOnce.Do(func() {
		close(s.stopping)
		s.hcancel()
		close(s.done)
	})
}

// deliver is the Driver's callback: it blocks while the subscription holds prefetch messages.
func (s *Subscription) deliver(d Delivery) {
	select {
	case s.slots <- struct{}{}:
	case <-s.stopping:
		s.release(d)
		return
	}
	if !s.dlq && IsDeadLetterTopic(d.Message.Topic) {
		// Dead letters reach only patterns that name them; this one matched by wildcard.
		s.settle(d, d.Acker.Ack)
		<-s.slots
		return
	}
	s.m.inFlight.Inc()
	it := &item{d: d}
	// Keys are sequenced here, where messages arrive one at a time in the broker's order:
	// a message whose key is being handled waits behind it, and the worker that finishes
	// the key takes the next one.
	if key := d.Message.Key; key != "" {
		s.mu.Lock()
		if q, busy := s.busy[key]; busy {
			s.busy[key] = append(q, it)
			s.mu.Unlock()
			return
		}
		s.busy[key] = nil
		s.mu.Unlock()
	}
	s.ready <- it // never blocks: ready holds at most as many as slots
}

func (s *Subscription) stopped() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

func (s *Subscription) work() {
	defer s.workers.Done()
	for {
		select {
		case <-s.stopping:
			return
		case it := <-s.ready:
			s.run(it)
		}
	}
}

// run handles it and then, while its key has messages waiting, those, one at a time, in order.
func (s *Subscription) run(it *item) {
	key := it.d.Message.Key
	for {
		if s.stopped() {
			s.giveBack(it)
		} else {
			s.handle(it)
		}
		if key == "" {
			return
		}
		s.mu.Lock()
		q := s.busy[key]
		if len(q) == 0 {
			delete(s.busy, key)
			s.mu.Unlock()
			return
		}
		it, s.busy[key] = q[0], q[1:]
		s.mu.Unlock()
	}
}

func (s *Subscription) done1() {
	s.m.inFlight.Dec()
	<-s.slots
}

// giveBack releases a message that was never handed to the handler.
func (s *Subscription) giveBack(it *item) {
	s.release(it.d)
	s.done1()
}

func (s *Subscription) handle(it *item) {
	defer s.done1()
	d := it.d
	if st, ok := d.Acker.(Staler); ok && st.Stale() {
		return // another member owns it now
	}
	if s.inflight != nil {
		s.mu.Lock()
		s.inflight[it] = struct{}{}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.inflight, it)
			s.mu.Unlock()
		}()
	}
	m := d.Message
	s.m.delivered.Inc()
	if d.Lag >= 0 {
		s.m.lag.Set(float64(d.Lag))
	}
	max := s.opts.retry.MaxAttempts
	for attempt := 1; ; attempt++ {
		m.Attempt = attempt
		err := s.call(m)
		if s.killed.Load() {
			return
		}
		if err == nil {
			s.settle(d, d.Acker.Ack)
			s.m.acked.Inc()
			return
		}
		if attempt >= max {
			s.deadLetter(d, err, attempt)
			return
		}
		s.m.retried.Inc()
		if !s.wait(s.retry.Backoff(attempt)) {
			s.release(d)
			return
		}
	}
}

// wait sleeps d; false when the subscription is closing first.
func (s *Subscription) wait(d time.Duration) bool {
	select {
	case <-s.bus.clock.After(d):
		return true
	case <-s.stopping:
		return false
	case <-s.hctx.Done():
		return false
	}
}

func (s *Subscription) call(m *Message) (err error) {
	ctx := s.hctx
	if len(m.Headers) > 0 {
		ctx = s.bus.prop.Extract(ctx, headerCarrier(m.Headers))
	}
	ctx, span := s.bus.tracer.Start(ctx, "process "+m.Topic, trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.system", s.bus.name), attribute.String("messaging.destination.name", m.Topic),
			attribute.String("messaging.message.id", m.ID), attribute.String("messaging.consumer.group.name", s.group),
			attribute.Int("messaging.delivery.attempt", m.Attempt))
	}
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
			s.bus.log.Error("messaging: handler panicked", "pattern", s.pattern.String(), "topic", m.Topic, "id", m.ID,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
		s.m.handlerDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	return s.handler(ctx, m)
}

// deadLetter publishes m to <topic>.dlq with why, then acknowledges it; a failed publish is
// retried with backoff until it succeeds or the subscription closes (then m is given back).
func (s *Subscription) deadLetter(d Delivery, cause error, attempts int) {
	m := d.Message
	if _, again := m.Headers[HeaderDeadLetterTopic]; again || IsDeadLetterTopic(m.Topic) {
		s.bus.log.Error("messaging: a dead letter failed again; it stays in its dead-letter topic and is not dead-lettered twice",
			"topic", m.Topic, "id", m.ID, "pattern", s.pattern.String(), "group", s.group, "attempts", attempts, "err", cause)
		s.settle(d, d.Acker.Ack)
		s.m.abandoned.Inc()
		return
	}
	h := make(map[string]string, len(m.Headers)+5)
	for k, v := range m.Headers {
		h[k] = v
	}
	reason := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, cause.Error())
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	h[HeaderDeadLetterReason] = reason
	h[HeaderDeadLetterAttempts] = strconv.Itoa(attempts)
	h[HeaderDeadLetterTopic] = m.Topic
	h[HeaderDeadLetterGroup] = s.group
	h[HeaderDeadLetterID] = m.ID
	dl := &Message{ID: NewID(), Key: m.Key, Headers: h, Payload: m.Payload}
	for try := 1; ; try++ {
		err := s.bus.publish(s.hctx, DeadLetterTopic(m.Topic), []*Message{dl})
		if s.killed.Load() {
			return
		}
		if err == nil {
			s.settle(d, d.Acker.Ack)
			s.m.deadLettered.Inc()
			return
		}
		s.bus.log.Warn("messaging: could not publish a dead letter; retrying", "topic", m.Topic, "id", m.ID, "try", try, "err", err)
		if !s.wait(s.retry.Backoff(min(try, 30))) {
			s.release(d)
			return
		}
	}
}

func (s *Subscription) settle(d Delivery, f func() error) {
	if s.killed.Load() {
		return
	}
	if err := f(); err != nil {
		s.bus.log.Warn("messaging: could not settle a message with the broker; it will be delivered again",
			"topic", d.Message.Topic, "id", d.Message.ID, "pattern", s.pattern.String(), "err", err)
	}
}

func (s *Subscription) release(d Delivery) {
	if s.killed.Load() {
		return
	}
	s.settle(d, d.Acker.Release)
	s.m.released.Inc()
}

// progress tells the broker, every interval, that held messages are still being worked on.
func (s *Subscription) progress(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.mu.Lock()
			for it := range s.inflight {
				if p, ok := it.d.Acker.(Progresser); ok {
					p.Progress()
				}
			}
			s.mu.Unlock()
		}
	}
}

// Close ends the subscription: no further message is handed to the handler, running
// handlers finish (for at most the Bus's DrainTimeout, then their context is cancelled) and
// are acknowledged, and held messages not yet started or waiting for a retry are given back
// to the broker. It returns when every handler has returned.
func (s *Subscription) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stopping)
		s.consumer.Stop()
		finished := make(chan struct{})
		go func() {
			s.workers.Wait()
			close(finished)
		}()
		select {
		case <-finished:
		case <-time.After(s.bus.opts.DrainTimeout):
			s.bus.log.Warn("messaging: handlers still running after the drain timeout; cancelling their context",
				"pattern", s.pattern.String(), "drain_timeout", s.bus.opts.DrainTimeout)
			s.hcancel()
			<-finished
		}
		for {
			select {
			case it := <-s.ready:
				s.giveBack(it)
				continue
			default:
			}
			break
		}
		s.mu.Lock()
		var left []*item
		for k, q := range s.busy {
			left = append(left, q...)
			delete(s.busy, k)
		}
		s.mu.Unlock()
		for _, it := range left {
			s.giveBack(it)
		}
		if !s.killed.Load() {
			err = s.consumer.Close()
		}
		s.hcancel()
		s.bus.forget(s)
		close(s.done)
	})
	return err
}
