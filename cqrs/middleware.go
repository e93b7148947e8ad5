package cqrs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-sh/shoal/eventstore"
)

// Validator is a command or query that checks itself; the Validation middleware calls it.
type Validator interface {
	Validate() error
}

// ValidationError is a command or query its Validate refused.
type ValidationError struct {
	Name string
	Err  error
}

func (e *ValidationError) Error() string { return fmt.Sprintf("invalid %s: %v", e.Name, e.Err) }
func (e *ValidationError) Unwrap() error { return e.Err }

// ErrInvalid matches every *ValidationError with errors.Is.
var ErrInvalid = errors.New("invalid command or query")

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Validation refuses a command or query whose Validate method returns an error, before its
// handler runs.
func Validation() Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, m Message) (any, error) {
			if v, ok := m.Value.(Validator); ok {
				if err := v.Validate(); err != nil {
					return nil, &ValidationError{Name: m.Name, Err: err}
				}
			}
			return next(ctx, m)
		}
	}
}

// Logging logs each command or query at debug level, and its failures at warn level (a
// ValidationError at info), with the time it took.
func Logging(l *slog.Logger) Middleware {
	if l == nil {
		l = slog.Default()
	}
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, m Message) (any, error) {
			start := time.Now()
			v, err := next(ctx, m)
			attrs := []any{"kind", string(m.Kind), "type", m.Name, "duration", time.Since(start)}
			switch {
			case err == nil:
				l.DebugContext(ctx, "handled", attrs...)
			case errors.Is(err, ErrInvalid):
				l.InfoContext(ctx, "refused", append(attrs, "error", err)...)
			default:
				l.WarnContext(ctx, "failed", append(attrs, "error", err)...)
			}
			return v, err
		}
	}
}

// Tracing runs each command or query in a span of tp (nil: the global provider) named
// "command TYPE" or "query TYPE".
func Tracing(tp trace.TracerProvider) Middleware {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	tracer := tp.Tracer("github.com/shoal-sh/shoal/cqrs")
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, m Message) (any, error) {
			ctx, span := tracer.Start(ctx, string(m.Kind)+" "+m.Name,
				trace.WithAttributes(attribute.String("cqrs.kind", string(m.Kind)), attribute.String("cqrs.type", m.Name)))
			defer span.End()
			v, err := next(ctx, m)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return v, err
		}
	}
}

// Metrics counts commands and queries by type and outcome (ok, invalid, conflict, error)
// and times them: shoal_cqrs_handled_total and shoal_cqrs_duration_seconds.
func Metrics(reg prometheus.Registerer) Middleware {
	total := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_cqrs_handled_total",
		Help: "Commands and queries handled, by kind, type and outcome."}, []string{"kind", "type", "outcome"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "shoal_cqrs_duration_seconds",
		Help: "Time to handle a command or query.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"kind", "type"})
	if reg != nil {
		total = eventstore.RegisterOrExisting(reg, total)
		dur = eventstore.RegisterOrExisting(reg, dur)
	}
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, m Message) (any, error) {
			start := time.Now()
			v, err := next(ctx, m)
			dur.WithLabelValues(string(m.Kind), m.Name).Observe(time.Since(start).Seconds())
			outcome := "ok"
			switch {
			case err == nil:
			case errors.Is(err, ErrInvalid):
				outcome = "invalid"
			case eventstore.IsConflict(err):
				outcome = "conflict"
			default:
				outcome = "error"
			}
			total.WithLabelValues(string(m.Kind), m.Name, outcome).Inc()
			return v, err
		}
	}
}

// RetryOnConflict runs a command again when it fails with an event store version conflict
// (eventstore.ErrConflict), up to attempts times in all, so a handler that loads, decides and
// saves wins eventually against concurrent writers. The handler must then be safe to run
// again (it reloads its aggregate each time). Other errors are returned at once.
func RetryOnConflict(attempts int) Middleware {
	attempts = max(attempts, 1)
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, m Message) (any, error) {
			var v any
			var err error
			for i := 0; i < attempts; i++ {
				if v, err = next(ctx, m); err == nil || !eventstore.IsConflict(err) || ctx.Err() != nil {
					return v, err
				}
			}
			return v, fmt.Errorf("%s %s lost %d conflicts in a row: %w", m.Kind, m.Name, attempts, err)
		}
	}
}

// Recover turns a handler's panic into an error, so that one bad command does not take the
// process down.
func Recover() Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, m Message) (v any, err error) {
			defer func() {
				if r := recover(); r != nil {
					v, err = nil, fmt.Errorf("%s %s: handler panicked: %v", m.Kind, m.Name, r)
				}
			}()
			return next(ctx, m)
		}
	}
}
