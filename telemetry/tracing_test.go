package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpan  = "00f067aa0ba902b7"
)

// TestTracing_InboundAndProxyHop follows one request: in through the middleware with a
// traceparent, out through the proxy transport to an upstream, which must see the same trace.
func TestTracing_InboundAndProxyHop(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tr, err := NewTracing(context.Background(), TracingOptions{Provider: tp})
	if err != nil {
		t.Fatal(err)
	}

	var upstreamSaw string
	upstream := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		upstreamSaw = r.Header.Get("traceparent")
	}))
	defer upstream.Close()
	client := &http.Client{Transport: tr.Transport(upstream.Client().Transport)}

	var logs bytes.Buffer
	logger := NewLogger(&logs, LogOptions{Format: LogJSON, Instance: "app-1"})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "proxying")
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	})
	h := tr.Middleware(mux)
	req := httptest.NewRequest(http.MethodGet, "/orders/7", nil)
	req.Header.Set("traceparent", "00-"+parentTrace+"-"+parentSpan+"-01")
	h.ServeHTTP(httptest.NewRecorder(), req)

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the server span and the hop", len(spans))
	}
	var server, hop sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			hop = s
		}
	}
	if server == nil || hop == nil {
		t.Fatalf("spans: %v", spans)
	}
	if got := server.SpanContext().TraceID().String(); got != parentTrace {
		t.Errorf("server span trace %s, want the caller's %s", got, parentTrace)
	}
	if got := server.Parent().SpanID().String(); got != parentSpan {
		t.Errorf("server span parent %s, want %s", got, parentSpan)
	}
	if server.Name() != "GET /orders/{id}" || hop.Name() != "proxy GET" {
		t.Errorf("span names %q, %q", server.Name(), hop.Name())
	}
	if hop.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Error("the hop is not a child of the server span")
	}
	wantHeader := "00-" + parentTrace + "-" + hop.SpanContext().SpanID().String() + "-01"
	if upstreamSaw != wantHeader {
		t.Errorf("upstream got traceparent %q, want %q", upstreamSaw, wantHeader)
	}

	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	if line["trace_id"] != parentTrace || line["span_id"] != server.SpanContext().SpanID().String() || line["instance"] != "app-1" {
		t.Errorf("log line %v lacks the trace, span or instance", line)
	}
}

// TestTracing_NoEndpoint: nothing is recorded or exported, but trace context still flows.
func TestTracing_NoEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tr, err := NewTracing(context.Background(), TracingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	if tr.Exporting() {
		t.Fatal("exporting without an endpoint")
	}
	var saw string
	upstream := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { saw = r.Header.Get("traceparent") }))
	defer upstream.Close()
	client := &http.Client{Transport: tr.Transport(upstream.Client().Transport)}
	h := tr.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if trace.SpanFromContext(r.Context()).IsRecording() {
			t.Error("a span is recorded without an exporter")
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("traceparent", "00-"+parentTrace+"-"+parentSpan+"-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !strings.Contains(saw, parentTrace) {
		t.Errorf("the trace did not flow through: upstream got traceparent %q", saw)
	}
}

// TestTracing_OTLPExport points the exporter at a local OTLP/HTTP receiver.
func TestTracing_OTLPExport(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	var body []byte
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		body = append(body, b...)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	tr, err := NewTracing(context.Background(), TracingOptions{Service: "orders", Instance: "orders-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Exporting() {
		t.Fatal("not exporting with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	tr.Middleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	if err := tr.Shutdown(context.Background()); err != nil { // flushes
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) == 0 || paths[0] != "/v1/traces" {
		t.Fatalf("collector got %v, want a POST to /v1/traces", paths)
	}
	for _, want := range []string{"orders", "orders-1", "service.instance.id"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("exported spans lack %q", want)
		}
	}
}

func TestNewLogger(t *testing.T) {
	t.Setenv("SHOAL_INSTANCE_ID", "svc-3")
	var buf bytes.Buffer
	logger := NewLogger(&buf, LogOptions{Service: "orders", Level: slog.LevelDebug})
	logger.Debug("hello", "k", 1)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not JSON on a buffer: %q", buf.String())
	}
	if line["instance"] != "svc-3" || line["service"] != "orders" || line["msg"] != "hello" {
		t.Errorf("line = %v", line)
	}
	if _, ok := line["trace_id"]; ok {
		t.Error("trace_id without a span")
	}
	buf.Reset()
	NewLogger(&buf, LogOptions{Format: LogText}).WithGroup("g").Info("x", "a", 1)
	if !strings.Contains(buf.String(), "g.a=1") || !strings.Contains(buf.String(), "instance=svc-3") {
		t.Errorf("text line = %q", buf.String())
	}
}
