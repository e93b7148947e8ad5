package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// ServerOptions configure the listener side of the proxy.
type ServerOptions struct {
	// MaxHeaderBytes limits a request's header block; larger ones get 431. Defaults to 64 KiB.
	MaxHeaderBytes int
	// DrainTimeout is how long in-flight requests may finish after shutdown begins. Defaults to 15s.
	DrainTimeout time.Duration
	// ReadHeaderTimeout limits how long a client may take to send its headers. Defaults to 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections. Defaults to 120s.
	IdleTimeout time.Duration
	// ReadBodyTimeout and MinBodyRate bound how long a client may take to send a request body:
	// after n bytes it may have kept the proxy waiting ReadBodyTimeout + n/MinBodyRate in all,
	// else it gets 408. ReadBodyTimeout defaults to 10s; MinBodyRate (bytes per second) to
	// 1024, and negative turns the rate off.
	ReadBodyTimeout time.Duration
	MinBodyRate     int64
	// Middleware, when set, wraps the proxy's handler (tracing's server spans).
	Middleware func(http.Handler) http.Handler
}

// ServerFromConfig derives the listener side's options from a loaded configuration.
func ServerFromConfig(c *config.Config) ServerOptions {
	rate := c.Server.MinBodyRate
	if rate == 0 {
		rate = -1 // off
	}
	return ServerOptions{
		MaxHeaderBytes:    c.Server.MaxHeaderBytes,
		DrainTimeout:      c.Scaling.Instances.Shutdown.DrainTimeout.D(),
		ReadHeaderTimeout: c.Server.ReadHeaderTimeout.D(),
		ReadBodyTimeout:   c.Server.ReadBodyTimeout.D(),
		MinBodyRate:       rate,
		IdleTimeout:       c.Server.IdleTimeout.D(),
	}
}

// Serve runs the proxy on ln — HTTP/1.1 and HTTP/2 without TLS (h2c) — until ctx is done,
// then stops accepting, lets in-flight requests finish for DrainTimeout, and closes. It
// returns nil after a complete drain.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, so ServerOptions) error {
	if so.MaxHeaderBytes <= 0 {
		so.MaxHeaderBytes = 64 << 10
	}
	if so.DrainTimeout <= 0 {
		so.DrainTimeout = 15 * time.Second
	}
	if so.ReadHeaderTimeout <= 0 {
		so.ReadHeaderTimeout = 10 * time.Second
	}
	if so.IdleTimeout <= 0 {
		so.IdleTimeout = 120 * time.Second
	}
	if so.ReadBodyTimeout <= 0 {
		so.ReadBodyTimeout = 10 * time.Second
	}
	switch {
	case so.MinBodyRate == 0:
		so.MinBodyRate = 1024
	case so.MinBodyRate < 0:
		so.MinBodyRate = 0
	}
	if so.Middleware == nil {
		return p.serveFast(ctx, ln, so)
	}
	return p.serveStd(ctx, ln, so)
}

// serveStd serves through net/http's server, for when a middleware wraps the proxy's handler.
func (p *Proxy) serveStd(ctx context.Context, ln net.Listener, so ServerOptions) error {
	handler := so.Middleware(p)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           handler,
		MaxHeaderBytes:    so.MaxHeaderBytes,
		ReadHeaderTimeout: so.ReadHeaderTimeout,
		IdleTimeout:       so.IdleTimeout,
		Protocols:         &protos,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				p.metrics.connections.Inc()
			case http.StateClosed, http.StateHijacked:
				p.metrics.connections.Dec()
			}
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(framingListener{ln}) }()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy listener: %w", err)
	case <-ctx.Done():
	}
	p.log.Info("draining: no new connections; waiting for in-flight requests", "timeout", so.DrainTimeout.String())
	dctx, cancel := context.WithTimeout(context.Background(), so.DrainTimeout)
	defer cancel()
	err := srv.Shutdown(dctx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		return fmt.Errorf("drain timeout %s passed with requests still in flight; they were cut off", so.DrainTimeout)
	}
	<-errc
	return err
}
