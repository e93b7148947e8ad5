package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Handler handles one event of a subscription. Returning nil marks it handled; an error is
// retried (see [SubscribeOptions.MaxAttempts]). Delivery is at least once: after a crash
// the events after the last saved checkpoint are delivered again, so a handler should be
// idempotent (by e.Position or e.ID).
type Handler func(ctx context.Context, e RecordedEvent) error

// FromEnd, as SubscribeOptions.From, starts a subscription that has no checkpoint after
// the events already stored.
const FromEnd Position = -1

// SubscribeOptions configure a subscription.
type SubscribeOptions struct {
	// Filter selects the events the handler gets; the others are passed over (and the
	// checkpoint moves past them).
	Filter Filter
	// From is where a subscription without a saved checkpoint starts: 0 (the default) at
	// the first event, a position to start at it, FromEnd after the current head.
	From Position
	// BatchSize is how many events one read fetches. Defaults to 512.
	BatchSize int
	// CheckpointEvery is how many events may be handled between two saves of the
	// checkpoint, and so how many a crash may deliver again. The checkpoint is also saved
	// whenever the subscription catches up and when it is closed. Defaults to 1000.
	CheckpointEvery int
	// MaxAttempts is how many times the handler is called for one event before the
	// subscription stops with a *HandlerError. Defaults to 5.
	MaxAttempts int
	// Backoff is the first wait before an event is handled again; it doubles up to
	// MaxBackoff. Defaults to 100ms and 5s. Read errors (a database restarting) are retried
	// with the same backoff, forever.
	Backoff, MaxBackoff time.Duration
	// DrainTimeout bounds how long Close waits for a running handler before cancelling
	// its context. Defaults to 30s.
	DrainTimeout time.Duration
	// Clock times retries and group heartbeats. Defaults to the system clock.
	Clock Clock
	// Logger receives read errors and handler retries. Defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the subscription metrics (docs/observability.md); nil keeps
	// them unregistered.
	Registerer prometheus.Registerer
}

func (o *SubscribeOptions) setDefaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 512
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 1000
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Subscription is a running subscription.
type Subscription struct {
	name    string
	store   Store
	h       Handler
	opts    SubscribeOptions
	m       *subMetrics
	lag     prometheus.Gauge
	posG    prometheus.Gauge
	handled prometheus.Counter
	failed  prometheus.Counter

	stopCtx    context.Context // reads and waits; cancelled by Close
	stop       context.CancelFunc
	handlerCtx context.Context // handlers; cancelled DrainTimeout after Close
	cancelH    context.CancelFunc
	closeOnce  sync.Once
	done       chan struct{}
	err        error
	pos        atomic.Int64
	saved      atomic.Int64
}

// Subscribe starts a catch-up subscription: h gets every event selected by opts.Filter in
// global order, first those already stored after the subscription's checkpoint, then each
// new one as it is appended. The switch from history to live is no switch at all: the
// subscription always reads the global order after the last position it handled, and
// waits for an append only when a read comes back caught up. Since readers never see a
// gap, no event is missed and none is delivered twice in one run.
//
// A named subscription resumes from the checkpoint the store keeps for name; an empty
// name makes a volatile subscription that saves nothing. Subscribe returns once the
// checkpoint is read; the subscription runs until Close, ctx's end, or a handler that keeps
// failing (Err then returns a *HandlerError).
func Subscribe(ctx context.Context, store Store, name string, h Handler, opts SubscribeOptions) (*Subscription, error) {
	s, err := newSubscription(ctx, store, name, h, opts)
	if err != nil {
		return nil, err
	}
	start := s.opts.From
	if name != "" {
		cp, err := store.Checkpoint(ctx, name)
		if err != nil {
			s.release()
			return nil, fmt.Errorf("subscription %q: reading its checkpoint: %w", name, err)
		}
		if cp > 0 {
			start = cp + 1
		}
	}
	if start == FromEnd {
		head, err := store.Head(ctx)
		if err != nil {
			s.release()
			return nil, fmt.Errorf("subscription %q: reading the head: %w", name, err)
		}
		start = head + 1
	}
	start = max(start, 1)
	s.pos.Store(int64(start - 1))
	s.saved.Store(int64(start - 1))
	go s.run(func() error { return s.catchUp(start) })
	return s, nil
}

func newSubscription(ctx context.Context, store Store, name string, h Handler, opts SubscribeOptions) (*Subscription, error) {
	if h == nil {
		return nil, errors.New("subscribe: the handler is nil")
	}
	if name != "" {
		if err := validateName("subscription", name); err != nil {
			return nil, err
		}
	}
	opts.setDefaults()
	s := &Subscription{name: name, store: store, h: h, opts: opts, m: newSubMetrics(opts.Registerer), done: make(chan struct{})}
	label := name
	if label == "" {
		label = "(volatile)"
	}
	s.lag, s.posG = s.m.lag.WithLabelValues(label), s.m.position.WithLabelValues(label)
	s.handled, s.failed = s.m.delivered.WithLabelValues(label), s.m.failures.WithLabelValues(label)
	s.stopCtx, s.stop = context.WithCancel(ctx)
	s.handlerCtx, s.cancelH = context.WithCancel(context.WithoutCancel(ctx))
	return s, nil
}

func (s *Subscription) release() {
	s.stop()
	s.cancelH()
}

func (s *Subscription) run(loop func() error) {
	defer close(s.done)
	defer s.release()
	err := loop()
	if s.stopCtx.Err() != nil && !errors.As(err, new(*HandlerError)) {
		err = nil // stopped by Close or ctx: not a failure
	}
	s.err = err
	if err != nil {
		s.opts.Logger.Error("subscription stopped", "subscription", s.name, "error", err)
	}
}

// Name is the subscription's name ("" for a volatile one).
func (s *Subscription) Name() string { return s.name }

// Position is the last position handled (or passed over by the filter).
func (s *Subscription) Position() Position { return Position(s.pos.Load()) }

// Checkpoint is the last position saved as the checkpoint.
func (s *Subscription) Checkpoint() Position { return Position(s.saved.Load()) }

// Done is closed when the subscription has stopped.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is why the subscription stopped on its own (a *HandlerError), once Done is closed;
// nil after Close.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close stops the subscription: the running handler may finish (for up to DrainTimeout),
// the checkpoint is saved and, for a group, its partitions are released. It returns the
// error the subscription stopped with, if it stopped on its own before.
func (s *Subscription) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		timer, stopTimer := s.opts.Clock.After(s.opts.DrainTimeout)
		defer stopTimer()
		select {
		case <-s.done:
		case <-timer:
			s.cancelH()
			<-s.done
		}
	})
	return s.err
}

// handle calls the handler for e until it succeeds, MaxAttempts are used, or the
// subscription stops (then ok is false and err nil).
func (s *Subscription) handle(e RecordedEvent) (ok bool, err error) {
	for attempt := 1; ; attempt++ {
		err := s.call(e)
		if err == nil {
			s.handled.Inc()
			return true, nil
		}
		s.failed.Inc()
		if attempt >= s.opts.MaxAttempts {
			return false, &HandlerError{Subscription: s.name, Position: e.Position, Type: e.Type, Attempts: attempt, Err: err}
		}
		s.opts.Logger.Warn("subscription handler failed; retrying", "subscription", s.name, "position", int64(e.Position),
			"type", e.Type, "attempt", attempt, "error", err)
		if !s.sleep(backoff(s.opts.Backoff, s.opts.MaxBackoff, attempt)) {
			return false, nil
		}
	}
}

func (s *Subscription) call(e RecordedEvent) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return s.h(s.handlerCtx, e)
}

// sleep waits d, or returns false when the subscription stops first.
func (s *Subscription) sleep(d time.Duration) bool {
	c, stop := s.opts.Clock.After(d)
	defer stop()
	select {
	case <-c:
		return true
	case <-s.stopCtx.Done():
		return false
	}
}

func backoff(base, ceiling time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// read reads the global order, retrying errors until it succeeds or the subscription stops.
func (s *Subscription) read(opts ReadAllOptions) (AllSlice, bool) {
	for attempt := 1; ; attempt++ {
		sl, err := s.store.ReadAll(s.stopCtx, opts)
		if err == nil {
			return sl, true
		}
		if s.stopCtx.Err() != nil || errors.Is(err, ErrClosed) {
			return AllSlice{}, false
		}
		s.opts.Logger.Warn("subscription cannot read the event store; retrying", "subscription", s.name, "error", err)
		if !s.sleep(backoff(s.opts.Backoff, s.opts.MaxBackoff, attempt)) {
			return AllSlice{}, false
		}
	}
}

// save stores the checkpoint when it moved. It uses a context of its own, so the checkpoint
// of a subscription being closed is still saved.
func (s *Subscription) save() {
	pos := s.pos.Load()
	if s.name == "" || pos == s.saved.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.stopCtx), 10*time.Second)
	defer cancel()
	if err := s.store.SaveCheckpoint(ctx, s.name, Position(pos)); err != nil {
		s.opts.Logger.Warn("subscription cannot save its checkpoint; it will try again", "subscription", s.name, "position", pos, "error", err)
		return
	}
	s.saved.Store(pos)
}

// catchUp is the loop of a single (non-group) subscription.
func (s *Subscription) catchUp(next Position) error {
	defer s.save()
	unsaved := 0
	for {
		sl, ok := s.read(ReadAllOptions{From: next, Limit: s.opts.BatchSize, Filter: s.opts.Filter})
		if !ok {
			return nil
		}
		for _, e := range sl.Events {
			if s.stopCtx.Err() != nil {
				return nil
			}
			ok, err := s.handle(e)
			if !ok {
				return err
			}
			s.pos.Store(int64(e.Position))
			unsaved++
		}
		if sl.Next > next {
			next = sl.Next
			s.pos.Store(int64(next - 1)) // events the filter passed over count as handled
		}
		s.lag.Set(float64(max(sl.Head-(next-1), 0)))
		s.posG.Set(float64(next - 1))
		caughtUp := next > sl.Head
		if unsaved >= s.opts.CheckpointEvery || caughtUp {
			s.save()
			unsaved = 0
		}
		if caughtUp {
			if err := s.store.WaitForAppend(s.stopCtx, next-1); err != nil {
				if s.stopCtx.Err() != nil || errors.Is(err, ErrClosed) {
					return nil
				}
				s.opts.Logger.Warn("subscription cannot wait for appends; retrying", "subscription", s.name, "error", err)
				if !s.sleep(s.opts.Backoff) {
					return nil
				}
			}
		}
	}
}
