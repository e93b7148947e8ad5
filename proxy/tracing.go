package proxy

import (
	"context"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing is what the proxy traces its requests with (Options.Tracing). Each request gets a
// server span, a child of the trace context the client sent. Each attempt to reach an instance
// gets a client span "proxy METHOD", a child of the server span. The instance receives that
// client span's context in traceparent, with the client's tracestate and baggage.
//
// Unlike ServerOptions.Middleware and Options.WrapTransport, which wrap net/http interfaces,
// Tracing keeps the raw lane on (rawlane.go): the proxy makes the spans on every path itself.
type Tracing struct {
	Provider trace.TracerProvider
	// Propagator reads and writes the trace context; nil means W3C trace context and baggage.
	Propagator propagation.TextMapPropagator
}

type tracer struct {
	t    trace.Tracer
	prop propagation.TextMapPropagator
}

func newTracer(t *Tracing) *tracer {
	if t == nil || t.Provider == nil {
		return nil
	}
	prop := t.Propagator
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return &tracer{t: t.Provider.Tracer("github.com/shoal-sh/shoal/proxy"), prop: prop}
}

// server starts the span of a request whose headers carrier reads.
func (t *tracer) server(ctx context.Context, carrier propagation.TextMapCarrier, method, path, host, client string) (context.Context, trace.Span) {
	ctx, span := t.t.Start(t.prop.Extract(ctx, carrier), method, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("http.request.method", method),
			attribute.String("url.path", path),
			attribute.String("url.scheme", "http"),
			attribute.String("server.address", host),
			attribute.String("client.address", client),
		)
	}
	return ctx, span
}

// endServer ends a request's span with the status the client got (499: it left first).
func endServer(span trace.Span, status int) {
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, "")
		}
	}
	span.End()
}

// hop starts the span of one attempt to reach u and writes its context to carrier.
func (t *tracer) hop(ctx context.Context, carrier propagation.TextMapCarrier, method string, u *upstream) trace.Span {
	ctx, span := t.t.Start(ctx, "proxy "+method, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", method),
			attribute.String("server.address", u.url.Hostname()),
			attribute.String("shoal.instance", u.id),
		}
		if port, err := strconv.Atoi(u.url.Port()); err == nil {
			attrs = append(attrs, attribute.Int("server.port", port))
		}
		span.SetAttributes(attrs...)
	}
	t.prop.Inject(ctx, carrier)
	return span
}

// endHop ends an attempt's span with the instance's status, or with why there was none.
func endHop(span trace.Span, status int, err error) {
	if span.IsRecording() {
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		default:
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 400 {
				span.SetStatus(codes.Error, "")
			}
		}
	}
	span.End()
}

// traceHeaders are the headers the propagators write; the raw lane forwards its own instead of
// the client's.
var traceHeaders = []string{"traceparent", "tracestate", "baggage"}

// rawCarrier reads a raw-lane request head's headers for the propagator.
type rawCarrier struct{ h *rawHead }

func (c rawCarrier) Get(key string) string {
	for i := 0; i < c.h.n; i++ {
		if hd := &c.h.headers[i]; strings.EqualFold(string(hd.name), key) {
			return string(hd.value)
		}
	}
	return ""
}

func (c rawCarrier) Set(string, string) {} // only read

func (c rawCarrier) Keys() []string {
	keys := make([]string, 0, c.h.n)
	for i := 0; i < c.h.n; i++ {
		keys = append(keys, string(c.h.headers[i].name))
	}
	return keys
}

// lineCarrier appends the headers the propagator writes as head lines.
type lineCarrier struct{ b []byte }

func (c *lineCarrier) Get(string) string { return "" }
func (c *lineCarrier) Keys() []string    { return nil }
func (c *lineCarrier) Set(key, value string) {
	c.b = append(append(append(append(c.b, key...), ": "...), value...), "\r\n"...)
}
