package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingOptions configure NewTracing.
type TracingOptions struct {
	// Service is the service.name resource attribute. Defaults to OTEL_SERVICE_NAME, else
	// "unknown_service".
	Service string
	// Version is the service.version resource attribute. Defaults to none.
	Version string
	// Instance is the service.instance.id resource attribute. Defaults to SHOAL_INSTANCE_ID.
	Instance string
	// Provider, when set, is used as it is and no exporter is made: tests pass an SDK provider
	// with a tracetest.SpanRecorder. Shutdown does not shut it down.
	Provider trace.TracerProvider
}

// Tracing is OpenTelemetry tracing for a service: spans for inbound requests and for each hop
// the proxy makes, W3C trace context (traceparent, tracestate) and baggage propagated.
type Tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	exporting  bool
	shutdown   func(context.Context) error
}

// exportEnabled reports whether the environment asks for spans to be exported.
func exportEnabled() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// NewTracing sets up tracing. When OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, spans are batched to an OTLP/HTTP exporter that
// reads the other OTEL_EXPORTER_OTLP_* variables (headers, timeout, TLS) itself, sampled by
// OTEL_TRACES_SAMPLER (default: parent-based, always on). Otherwise nothing is recorded or
// exported, but incoming trace context still flows to outgoing requests and into logs.
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn exporting off.
// NewTracing does not touch the global provider; call SetGlobal for libraries that use it.
func NewTracing(ctx context.Context, opts TracingOptions) (*Tracing, error) {
	t := &Tracing{
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		shutdown:   func(context.Context) error { return nil },
	}
	if opts.Provider != nil {
		t.provider = opts.Provider
		return t, nil
	}
	if !exportEnabled() {
		t.provider = noop.NewTracerProvider()
		return t, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating the OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(resourceAttrs(opts)...))
	if err != nil {
		return nil, fmt.Errorf("describing the service for traces: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t.provider, t.exporting, t.shutdown = tp, true, tp.Shutdown
	return t, nil
}

func resourceAttrs(opts TracingOptions) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if opts.Service == "" {
		opts.Service = os.Getenv("OTEL_SERVICE_NAME")
	}
	if opts.Service != "" {
		attrs = append(attrs, attribute.String("service.name", opts.Service))
	}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	if opts.Instance == "" {
		opts.Instance = os.Getenv("SHOAL_INSTANCE_ID")
	}
	if opts.Instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", opts.Instance))
	}
	return attrs
}

// Exporting reports whether spans are exported (an OTLP endpoint is configured).
func (t *Tracing) Exporting() bool { return t.exporting }

// Provider returns the tracer provider: the SDK's when exporting, else a no-op one.
func (t *Tracing) Provider() trace.TracerProvider { return t.provider }

// Propagator returns the W3C trace-context and baggage propagator.
func (t *Tracing) Propagator() propagation.TextMapPropagator { return t.propagator }

// SetGlobal makes the provider and propagator the OpenTelemetry globals.
func (t *Tracing) SetGlobal() {
	otel.SetTracerProvider(t.provider)
	otel.SetTextMapPropagator(t.propagator)
}

// Middleware starts a server span for each request next handles, as a child of the trace
// context the request carries (traceparent), and puts it in the request's context.
func (t *Tracing) Middleware(next http.Handler) http.Handler {
	return otelhttp.NewHandler(next, "http.server",
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Pattern // "GET /orders/{id}" when a ServeMux routed it
			}
			return r.Method
		}),
	)
}

// Transport wraps base (nil means http.DefaultTransport) so each request it sends is a client
// span named "proxy <METHOD>", a child of the span in the request's context, and carries that
// span's trace context in its traceparent header. Wrap the proxy's transport with it: every
// attempt, retries included, becomes one span of the hop.
func (t *Tracing) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "proxy " + r.Method }),
	)
}

// Shutdown flushes the spans not yet exported and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }
