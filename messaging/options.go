package messaging

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of Options and of each subscription.
const (
	DefaultMaxAttempts    = 5
	DefaultInitialBackoff = 100 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultPrefetch       = 256
	DefaultConcurrency    = 1
	DefaultDrainTimeout   = 30 * time.Second
)

// Options configure a Bus. The zero value is usable: every field has a default.
type Options struct {
	// Retry is the subscriptions' retry policy unless Subscribe says otherwise.
	Retry RetryPolicy
	// Prefetch is how many unacknowledged messages a subscription may hold. Defaults to 256.
	Prefetch int
	// Concurrency is how many handler calls a subscription runs at once. Defaults to 1.
	Concurrency int
	// DrainTimeout bounds how long Close waits for running handlers; then their contexts are
	// cancelled. Defaults to 30s.
	DrainTimeout time.Duration
	// Registerer receives the metrics (docs/observability.md); nil keeps them unregistered.
	Registerer prometheus.Registerer
	// TracerProvider makes the publish and process spans; nil uses otel's global provider.
	TracerProvider trace.TracerProvider
	// Propagator carries trace context in message headers. Defaults to W3C trace context
	// and baggage.
	Propagator propagation.TextMapPropagator
	// Logger receives warnings (failed acks, dead letters that fail again). Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Clock times retries (and the memory backend's delays). Defaults to the system clock.
	Clock Clock
}

// RetryPolicy says how often and how soon a failed message is handled again.
type RetryPolicy struct {
	// MaxAttempts is how many times the handler is called for one message before it is
	// dead-lettered; 1 dead-letters on the first error. Defaults to 5.
	MaxAttempts int
	// InitialBackoff is the ceiling of the first wait; each further wait's ceiling doubles up
	// to MaxBackoff, and the wait is drawn uniformly below it (full jitter). Defaults to
	// 100ms and 30s.
	InitialBackoff, MaxBackoff time.Duration
}

func (r *RetryPolicy) setDefaults() {
	if r.MaxAttempts == 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.InitialBackoff == 0 {
		r.InitialBackoff = DefaultInitialBackoff
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = max(DefaultMaxBackoff, r.InitialBackoff)
	}
}

// Validate reports every problem of the policy.
func (r RetryPolicy) Validate() error {
	var errs []error
	if r.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("retry: max attempts is %d; it must be at least 1 (1 dead-letters on the first error)", r.MaxAttempts))
	}
	if r.InitialBackoff < 0 || r.MaxBackoff < 0 {
		errs = append(errs, errors.New("retry: backoffs must not be negative"))
	}
	if r.MaxBackoff < r.InitialBackoff {
		errs = append(errs, fmt.Errorf("retry: max backoff %s is shorter than the initial backoff %s", r.MaxBackoff, r.InitialBackoff))
	}
	return errors.Join(errs...)
}

func (o *Options) setDefaults() {
	o.Retry.setDefaults()
	if o.Prefetch == 0 {
		o.Prefetch = DefaultPrefetch
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Propagator == nil {
		o.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
}

func (o *Options) validate() error {
	var errs []error
	if err := o.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Prefetch < 1 {
		errs = append(errs, fmt.Errorf("prefetch is %d; it must be at least 1", o.Prefetch))
	}
	if o.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency is %d; it must be at least 1", o.Concurrency))
	}
	if o.DrainTimeout < 0 {
		errs = append(errs, errors.New("drain timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// Clock is the time source of retries and of the memory backend's delays; tests inject a
// fake one instead of sleeping.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SubscribeOption changes one subscription.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	group       string
	concurrency int
	prefetch    int
	retry       RetryPolicy
}

// Group makes the subscription a member of a consumer group: the subscriptions with the
// same group name and pattern, in this process or others, share the messages, each going to
// one member, and the group's messages wait for it while no member runs. Without a group
// every subscription gets every matching message published while it runs (fan-out).
func Group(name string) SubscribeOption { return func(o *subscribeOptions) { o.group = name } }

// Concurrency is how many handler calls the subscription runs at once. Messages with the
// same Key are still handled one at a time, in order.
func Concurrency(n int) SubscribeOption { return func(o *subscribeOptions) { o.concurrency = n } }

// Prefetch is how many unacknowledged messages the subscription may hold.
func Prefetch(n int) SubscribeOption { return func(o *subscribeOptions) { o.prefetch = n } }

// Retry sets the subscription's retry policy; zero fields keep the Bus's.
func Retry(p RetryPolicy) SubscribeOption {
	return func(o *subscribeOptions) {
		if p.MaxAttempts != 0 {
			o.retry.MaxAttempts = p.MaxAttempts
		}
		if p.InitialBackoff != 0 {
			o.retry.InitialBackoff = p.InitialBackoff
		}
		if p.MaxBackoff != 0 {
			o.retry.MaxBackoff = p.MaxBackoff
		}
	}
}

// checkGroup validates a group name: one token of letters, digits, "_" and "-".
func checkGroup(g string) error {
	if g == "" {
		return nil
	}
	if len(g) > 100 {
		return fmt.Errorf("messaging: group name %q is longer than 100 bytes", g)
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("messaging: group name %q holds %q; use letters, digits, \"_\" and \"-\"", g, g[i:i+1])
		}
	}
	if g[0] == '_' {
		return fmt.Errorf("messaging: group name %q starts with \"_\", which is reserved for shoal's own groups", g)
	}
	return nil
}
