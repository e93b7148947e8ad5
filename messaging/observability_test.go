package messaging_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-sh/shoal/messaging"
)

func TestBus_MetricsAndTraceContext(t *testing.T) {
	reg := prometheus.NewRegistry()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	bus, err := messaging.NewMemory(messaging.Options{Registerer: reg, TracerProvider: tp,
		Retry:  messaging.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	got := make(chan trace.SpanContext, 10)
	headers := make(chan map[string]string, 10)
	if _, err := bus.Subscribe(context.Background(), "orders.*", func(ctx context.Context, m *messaging.Message) error {
		if m.Topic == "orders.bad" {
			return errors.New("no")
		}
		got <- trace.SpanContextFromContext(ctx)
		headers <- m.Headers
		return nil
	}, messaging.Group("g")); err != nil {
		t.Fatal(err)
	}
	dlq := make(chan *messaging.Message, 1)
	bus.Subscribe(context.Background(), "orders.bad.dlq", func(ctx context.Context, m *messaging.Message) error { dlq <- m; return nil })

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	if err := bus.Publish(ctx, "orders.created", &messaging.Message{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	sc := <-got
	if sc.TraceID() != parent.SpanContext().TraceID() {
		t.Fatalf("the handler's trace %s is not the publisher's %s: the trace did not cross the broker", sc.TraceID(), parent.SpanContext().TraceID())
	}
	if h := <-headers; !strings.HasPrefix(h["traceparent"], "00-"+parent.SpanContext().TraceID().String()) {
		t.Errorf("traceparent header %q", h["traceparent"])
	}
	bus.Publish(context.Background(), "orders.bad", &messaging.Message{Payload: []byte("y")})
	<-dlq
	time.Sleep(50 * time.Millisecond) // the ack after the dead letter's publish
	l := prometheus.Labels{"backend": "memory", "pattern": "orders.*", "group": "g"}
	m := func(name string) float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, metric := range mf.GetMetric() {
				ok := true
				for _, lp := range metric.GetLabel() {
					if v, want := lp.GetValue(), l[lp.GetName()]; lp.GetName() != "backend" && v != want {
						ok = false
					}
				}
				if ok && metric.Counter != nil {
					return metric.Counter.GetValue()
				}
			}
		}
		return -1
	}
	for name, want := range map[string]float64{
		"shoal_messaging_delivered_total": 2, "shoal_messaging_acked_total": 1,
		"shoal_messaging_retried_total": 1, "shoal_messaging_dead_lettered_total": 1,
	} {
		if got := m(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if n, _ := testutil.GatherAndCount(reg, "shoal_messaging_published_total"); n != 1 {
		t.Errorf("published_total series: %d", n)
	}
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
	}
	joined := strings.Join(names, ",")
	for _, want := range []string{"publish orders.created", "process orders.created"} {
		if !strings.Contains(joined, want) {
			t.Errorf("spans %v lack %q", names, want)
		}
	}
}

func TestBus_PanicIsAnError(t *testing.T) {
	bus, err := messaging.NewMemory(messaging.Options{Retry: messaging.RetryPolicy{MaxAttempts: 1},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	bus.Subscribe(context.Background(), "p.x", func(context.Context, *messaging.Message) error { panic("boom") })
	dlq := make(chan *messaging.Message, 1)
	bus.Subscribe(context.Background(), "p.x.dlq", func(_ context.Context, m *messaging.Message) error { dlq <- m; return nil })
	bus.Publish(context.Background(), "p.x", &messaging.Message{Payload: []byte("x")})
	m := <-dlq
	if !strings.Contains(m.Headers[messaging.HeaderDeadLetterReason], "handler panicked: boom") {
		t.Fatalf("reason %q", m.Headers[messaging.HeaderDeadLetterReason])
	}
}

func TestBus_DrainTimeoutCancelsHandlers(t *testing.T) {
	bus, err := messaging.NewMemory(messaging.Options{DrainTimeout: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	bus.Subscribe(context.Background(), "slow.x", func(ctx context.Context, _ *messaging.Message) error {
		close(started)
		<-ctx.Done() // a handler that only stops when told
		return ctx.Err()
	})
	bus.Publish(context.Background(), "slow.x", &messaging.Message{})
	<-started
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(context.Background(), "slow.x", &messaging.Message{}); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
}

// TestBus_MetricNameTaken: a registry holding another collector under one of the Bus's
// names with other labels makes New fail with an error, not panic; two Buses share one.
func TestBus_MetricNameTaken(t *testing.T) {
	reg := prometheus.NewRegistry()
	one, err := messaging.NewMemory(messaging.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	two, err := messaging.NewMemory(messaging.Options{Registerer: reg})
	if err != nil {
		t.Fatalf("a second Bus on the same registry: %v", err)
	}
	defer two.Close()

	taken := prometheus.NewRegistry()
	taken.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_messaging_published_total", Help: "not shoal's"}, []string{"queue"}))
	b, err := messaging.NewMemory(messaging.Options{Registerer: taken})
	if err == nil {
		b.Close()
		t.Fatal("NewMemory on a registry whose shoal_messaging_published_total has other labels succeeded; want an error")
	}
	if !strings.Contains(err.Error(), "shoal_messaging_published_total") {
		t.Errorf("error %q does not name the metric", err)
	}
	t.Log(err)
}
