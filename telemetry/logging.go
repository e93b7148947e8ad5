package telemetry

import (
	"context"
	"io"
	"log/slog"
	"os"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/term"
)

// Log formats.
const (
	LogAuto = ""     // JSON unless the output is a terminal
	LogJSON = "json" // one JSON object per line
	LogText = "text" // key=value, for people
)

// LogOptions configure NewLogger.
type LogOptions struct {
	// Level is the lowest level logged. Defaults to Info.
	Level slog.Leveler
	// Format is LogAuto, LogJSON or LogText. Defaults to LogAuto.
	Format string
	// Service is logged as "service" on every line when set.
	Service string
	// Instance is logged as "instance" on every line. Defaults to SHOAL_INSTANCE_ID; no
	// attribute when both are empty.
	Instance string
}

// NewLogger returns a structured logger writing to w: JSON lines unless w is a terminal, every
// line with the service and instance, and with trace_id and span_id when the context passed to
// a *Context method (InfoContext, …) holds a span — the request's context inside
// Tracing.Middleware.
func NewLogger(w io.Writer, opts LogOptions) *slog.Logger {
	ho := &slog.HandlerOptions{Level: opts.Level}
	format := opts.Format
	if format == LogAuto {
		format = LogJSON
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = LogText
		}
	}
	var h slog.Handler
	if format == LogText {
		h = slog.NewTextHandler(w, ho)
	} else {
		h = slog.NewJSONHandler(w, ho)
	}
	var attrs []slog.Attr
	if opts.Service != "" {
		attrs = append(attrs, slog.String("service", opts.Service))
	}
	if opts.Instance == "" {
		opts.Instance = os.Getenv("SHOAL_INSTANCE_ID")
	}
	if opts.Instance != "" {
		attrs = append(attrs, slog.String("instance", opts.Instance))
	}
	if len(attrs) > 0 {
		h = h.WithAttrs(attrs)
	}
	return slog.New(NewTraceHandler(h))
}

// TraceHandler adds trace_id and span_id to records logged with a context that holds a valid
// span context, then passes them to the handler it wraps.
type TraceHandler struct {
	next slog.Handler
}

var _ slog.Handler = (*TraceHandler)(nil)

// NewTraceHandler wraps next.
func NewTraceHandler(next slog.Handler) *TraceHandler { return &TraceHandler{next: next} }

// Enabled implements slog.Handler.
func (h *TraceHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *TraceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *TraceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &TraceHandler{next: h.next.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h *TraceHandler) WithGroup(name string) slog.Handler {
	return &TraceHandler{next: h.next.WithGroup(name)}
}
