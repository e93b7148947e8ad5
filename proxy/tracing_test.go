package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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

// headRecorder is an instance that reports each request head's lines as they came, and
// answers 200 "ok".
func headRecorder(t *testing.T) (*backend, <-chan []string) {
	t.Helper()
	heads := make(chan []string, 16)
	b := connBackend(t, "heads", func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			var lines []string
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if line = strings.TrimRight(line, "\r\n"); line == "" {
					break
				}
				lines = append(lines, line)
			}
			heads <- lines
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	return b, heads
}

// With Options.Tracing the proxy makes its spans itself and the raw lane stays on: the head
// reaches the instance byte for byte (header case kept), with exactly one traceparent, that of
// the attempt that reached it. An attempt that found no instance is a span of its own.
func TestProxy_TracingKeepsTheRawLane(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	live, heads := headRecorder(t)
	deadLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := &backend{id: "dead", addr: deadLn.Addr().String(), hosts: map[string]int{}}
	deadLn.Close() // connections to it are refused: the attempt is retried on the live one
	h := startProxyWith(t, Options{HealthCheck: HealthCheck{}, Tracing: &Tracing{Provider: tp}},
		ServerOptions{DrainTimeout: time.Second, MaxHeaderBytes: 8 << 10}, dead, live)
	if h.p.rawLane() == nil {
		t.Fatal("tracing turned the raw lane off")
	}

	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for i := 0; i < 2; i++ { // round robin: one of the two meets the dead instance first
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /orders/7?x=1 HTTP/1.1\r\nHost: shop\r\nx-CUSTOM-case: kept\r\n"+
			"traceparent: 00-%s-00f067aa0ba902b7-01\r\ntracestate: vendor=1\r\nConnection: close\r\n\r\n", clientTrace)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}

	// A server span ends just after its answer is written: wait for both.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		n := 0
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindServer {
				n++
			}
		}
		if n == 2 {
			break
		}
	}
	hops := map[string]sdktrace.ReadOnlySpan{} // client spans by span ID
	var servers []sdktrace.ReadOnlySpan
	failed := 0
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != clientTrace {
			t.Errorf("span %q is outside the client's trace", s.Name())
		}
		switch s.SpanKind() {
		case trace.SpanKindServer:
			servers = append(servers, s)
			if s.Parent().SpanID().String() != "00f067aa0ba902b7" || s.Name() != "GET" {
				t.Errorf("server span %q has parent %s; want the client's span", s.Name(), s.Parent().SpanID())
			}
		case trace.SpanKindClient:
			hops[s.SpanContext().SpanID().String()] = s
			if s.Status().Code == codes.Error {
				failed++
			}
		}
	}
	if len(servers) != 2 || failed < 1 || len(hops) != 2+failed {
		t.Fatalf("got %d server spans and %d client spans (%d failed); want 2, and one that reached the instance per request plus one per refused attempt (at least one)",
			len(servers), len(hops), failed)
	}
	for _, s := range servers {
		if !slices.Contains(s.Attributes(), attribute.Int("http.response.status_code", 200)) ||
			!slices.Contains(s.Attributes(), attribute.String("url.path", "/orders/7")) {
			t.Errorf("server span attributes %v; want the path and status 200", s.Attributes())
		}
	}
	for i := 0; i < 2; i++ {
		lines := <-heads
		var parents []string
		kept := false
		for _, l := range lines {
			name, value, _ := strings.Cut(l, ": ")
			switch {
			case strings.EqualFold(name, "traceparent"):
				parents = append(parents, value)
			case strings.EqualFold(name, "tracestate") && value != "vendor=1":
				t.Errorf("tracestate %q; want the client's", value)
			case name == "x-CUSTOM-case":
				kept = true
			}
		}
		if !kept {
			t.Errorf("the head lost its header's case (not the raw lane): %q", lines)
		}
		if len(parents) != 1 || len(parents[0]) != 55 || parents[0][3:35] != clientTrace {
			t.Fatalf("the instance got traceparent %q; want one, in the client's trace", parents)
		}
		hop, ok := hops[parents[0][36:52]]
		if !ok || hop.Status().Code == codes.Error || !slices.Contains(hop.Attributes(), attribute.Int("http.response.status_code", 200)) {
			t.Errorf("the instance's parent span %s is not the attempt that reached it", parents[0][36:52])
		}
	}
}

// The standard path (here a chunked body) and its retries are traced the same way.
func TestProxy_TracingTheStandardPath(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	got := make(chan []string, 1)
	be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- r.Header.Values("Traceparent")
	})
	h := startProxy(t, Options{HealthCheck: HealthCheck{}, Tracing: &Tracing{Provider: tp}}, be)
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("POST", h.url+"/upload", io.NopCloser(strings.NewReader("chunked body")))
	req.ContentLength = -1 // sent chunked: not the raw lane
	req.Header.Set("Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parents := <-got
	if len(parents) != 1 || parents[0][3:35] != clientTrace {
		t.Fatalf("the instance got traceparent %q; want one, in the client's trace", parents)
	}
	var server, hop sdktrace.ReadOnlySpan
	deadline := time.Now().Add(5 * time.Second)
	for (server == nil || hop == nil) && time.Now().Before(deadline) { // the server span ends after the answer is written
		for _, s := range rec.Ended() {
			switch s.SpanKind() {
			case trace.SpanKindServer:
				server = s
			case trace.SpanKindClient:
				hop = s
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if server == nil || hop == nil {
		t.Fatalf("want a server and a client span; got %d spans", len(rec.Ended()))
	}
	if hop.Parent().SpanID() != server.SpanContext().SpanID() || parents[0][36:52] != hop.SpanContext().SpanID().String() ||
		server.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("spans are not chained client → proxy → attempt → instance")
	}
}
