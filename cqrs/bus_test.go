package cqrs_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-sh/shoal/cqrs"
	"github.com/shoal-sh/shoal/eventstore"
)

type Deposit struct {
	Account string
	Amount  int64
}

func (d Deposit) Validate() error {
	if d.Amount <= 0 {
		return errors.New("amount must be positive")
	}
	return nil
}

type GetBalance struct{ Account string }

func TestCommandBus(t *testing.T) {
	ctx := context.Background()
	var order []string
	trace := func(name string) cqrs.Middleware {
		return func(next cqrs.HandlerFunc) cqrs.HandlerFunc {
			return func(ctx context.Context, m cqrs.Message) (any, error) {
				order = append(order, name+">"+m.Name)
				return next(ctx, m)
			}
		}
	}
	reg := prometheus.NewRegistry()
	b := cqrs.NewCommandBus(trace("outer"), cqrs.Recover(), cqrs.Validation(), cqrs.Metrics(reg), trace("inner"))
	if err := cqrs.Register(b, func(ctx context.Context, d Deposit) (int64, error) {
		if d.Account == "boom" {
			panic("kaput")
		}
		return d.Amount * 2, nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := cqrs.Dispatch[Deposit, int64](ctx, b, Deposit{"a", 21})
	if err != nil || got != 42 {
		t.Fatalf("Dispatch = %d, %v", got, err)
	}
	if strings.Join(order, ",") != "outer>cqrs_test.Deposit,inner>cqrs_test.Deposit" {
		t.Errorf("middleware order %v", order)
	}
	// Validation runs before the handler (and inner middleware).
	order = nil
	_, err = cqrs.Dispatch[Deposit, int64](ctx, b, Deposit{"a", -1})
	var ve *cqrs.ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, cqrs.ErrInvalid) || !strings.Contains(err.Error(), "amount must be positive") || len(order) != 1 {
		t.Fatalf("invalid command: %v (order %v)", err, order)
	}
	// A panic is an error.
	if _, err := cqrs.Dispatch[Deposit, int64](ctx, b, Deposit{"boom", 1}); err == nil || !strings.Contains(err.Error(), "panicked: kaput") {
		t.Fatalf("panic: %v", err)
	}
	// A second registration, an unregistered type, a wrong result type.
	if err := cqrs.Register(b, func(ctx context.Context, d Deposit) (int64, error) { return 0, nil }); !errors.Is(err, cqrs.ErrAlreadyRegistered) || !strings.Contains(err.Error(), "cqrs_test.Deposit") {
		t.Errorf("second registration: %v", err)
	}
	if _, err := cqrs.Dispatch[GetBalance, int64](ctx, b, GetBalance{}); !errors.Is(err, cqrs.ErrNotRegistered) || !strings.Contains(err.Error(), "command cqrs_test.GetBalance") || !strings.Contains(err.Error(), "cqrs.Register") {
		t.Errorf("unregistered: %v", err)
	}
	if _, err := cqrs.Dispatch[Deposit, string](ctx, b, Deposit{"a", 1}); !errors.Is(err, cqrs.ErrResultType) || !strings.Contains(err.Error(), "returns int64, not string") {
		t.Errorf("wrong result type: %v", err)
	}
	if err := cqrs.Register[any, int](b, func(ctx context.Context, v any) (int, error) { return 0, nil }); err == nil {
		t.Error("an interface type was registered")
	}
	if n := testutil.ToFloat64(mustVec(t, reg, "shoal_cqrs_handled_total", "command", "ok", "cqrs_test.Deposit")); n != 1 {
		t.Errorf("ok count %v", n)
	}
}

func mustVec(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := true
			for i, l := range m.GetLabel() {
				if i < len(labels) && l.GetValue() != labels[i] {
					ok = false
				}
			}
			if ok {
				g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
				g.Set(m.GetCounter().GetValue())
				return g
			}
		}
	}
	t.Fatalf("no %s %v", name, labels)
	return nil
}

func TestQueryBusAndRetry(t *testing.T) {
	ctx := context.Background()
	q := cqrs.NewQueryBus()
	cqrs.MustRegisterQuery(q, func(ctx context.Context, g GetBalance) (int64, error) { return int64(len(g.Account)), nil })
	if n, err := cqrs.Ask[GetBalance, int64](ctx, q, GetBalance{"abc"}); err != nil || n != 3 {
		t.Fatalf("Ask = %d, %v", n, err)
	}
	if _, err := cqrs.Ask[Deposit, int64](ctx, q, Deposit{}); !errors.Is(err, cqrs.ErrNotRegistered) || !strings.Contains(err.Error(), "query cqrs_test.Deposit") {
		t.Errorf("unregistered query: %v", err)
	}
	// RetryOnConflict runs the handler again on a version conflict only.
	var calls atomic.Int32
	b := cqrs.NewCommandBus(cqrs.RetryOnConflict(3))
	cqrs.MustRegister(b, func(ctx context.Context, d Deposit) (int32, error) {
		n := calls.Add(1)
		switch {
		case d.Account == "other":
			return 0, errors.New("not a conflict")
		case d.Account == "always" || n < 3:
			return 0, &eventstore.ConflictError{Stream: "s", Expected: 1, Actual: 2}
		}
		return n, nil
	})
	if n, err := cqrs.Dispatch[Deposit, int32](ctx, b, Deposit{"a", 1}); err != nil || n != 3 {
		t.Fatalf("retried = %d, %v", n, err)
	}
	calls.Store(0)
	if _, err := cqrs.Dispatch[Deposit, int32](ctx, b, Deposit{"other", 1}); err == nil || calls.Load() != 1 {
		t.Errorf("other error retried: %v, %d calls", err, calls.Load())
	}
	calls.Store(10)
	if _, err := cqrs.Dispatch[Deposit, int32](ctx, b, Deposit{"always", 1}); !eventstore.IsConflict(err) || !strings.Contains(err.Error(), "lost 3 conflicts") {
		t.Errorf("bounded retries: %v", err)
	}
}
