package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/proxy"
	"github.com/shoal-sh/shoal/telemetry"
)

// isTerminal reports whether w is an interactive terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger logs for people on a terminal and as JSON lines otherwise (files, log collectors).
func newLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if isTerminal(w) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// proxyTracing sets up OpenTelemetry tracing of the proxy hop when OTEL_EXPORTER_OTLP_ENDPOINT
// asks for it: a server span per request joined to the client's trace and a client span per
// attempt, whose context the instance receives. Without an exporter the proxy passes the
// client's traceparent through untouched and pays nothing.
func proxyTracing(ctx context.Context, c *config.Config, popts *proxy.Options, log *slog.Logger) (shutdown func(), err error) {
	tr, err := telemetry.NewTracing(ctx, telemetry.TracingOptions{Service: c.Name + "-proxy", Version: version()})
	if err != nil {
		return nil, fmt.Errorf("setting up tracing: %w", err)
	}
	if tr.Exporting() {
		// The proxy makes the spans itself, so its raw lane stays on (proxy.Tracing).
		popts.Tracing = &proxy.Tracing{Provider: tr.Provider(), Propagator: tr.Propagator()}
		log.Info("tracing the proxy hop to the OTLP endpoint", "service", c.Name+"-proxy")
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("flushing traces failed", "err", err)
		}
	}, nil
}
