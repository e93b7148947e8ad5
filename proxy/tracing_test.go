package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/telemetry"
)

// TestProxy_TracesTheHop runs the proxy with shoal's tracing (an SDK provider recording
// spans in memory): the proxy joins the client's trace with a server span, puts a client span
// around the hop, and the instance receives the hop's trace context.
func TestProxy_TracesTheHop(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tr, err := telemetry.NewTracing(context.Background(), telemetry.TracingOptions{Service: "shoal-proxy", Provider: tp})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("Traceparent") })
	p, err := New(Options{HealthCheck: HealthCheck{}, Logger: slog.New(slog.DiscardHandler), WrapTransport: tr.Transport})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Update([]discovery.Instance{be.instance(1)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, ServerOptions{Middleware: tr.Middleware, DrainTimeout: time.Second}) }()
	defer func() { cancel(); <-done }()

	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
	req.Header.Set("Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hop := <-got
	if len(hop) != 55 || hop[3:35] != clientTrace || hop[36:52] == "00f067aa0ba902b7" {
		t.Fatalf("the instance got traceparent %q; want the client's trace with the proxy's span as parent", hop)
	}
	spans := rec.Ended()
	kinds := map[trace.SpanKind]bool{}
	for _, s := range spans {
		if s.SpanContext().TraceID().String() != clientTrace {
			t.Errorf("span %q is outside the client's trace", s.Name())
		}
		kinds[s.SpanKind()] = true
	}
	if !kinds[trace.SpanKindServer] || !kinds[trace.SpanKindClient] {
		t.Errorf("want a server span and a client span for the hop, got %d spans: %v", len(spans), kinds)
	}
}
