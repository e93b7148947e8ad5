// Command quickstart is a small HTTP service to run under `shoal up`:
//
//	go run ./cmd/shoal up -f examples/quickstart/shoal.yml
//
// It reads its port from PORT, its identity from SHOAL_INSTANCE_ID and its configuration
// from SHOAL_CONFIG, all set by shoal, and answers:
//
//	/            a greeting naming the instance (also in the X-Shoal-Instance header)
//	/work?ms=N   N milliseconds of CPU work, for load tests and autoscaling
//	/health      shoal's health report of the checks in health.checks (JSON)
//	/ready       readiness: 503 until the checks passed once, and while shutting down
//	/live        the process is not wedged
//	/metrics     Prometheus metrics, shoal's scaling metrics included (METRICS_TOKEN if set)
//
// It uses shoal's health, telemetry (metrics, tracing, logs) packages the way a real service
// would. On SIGTERM it stops being ready, finishes in-flight requests and exits.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/health"
	"github.com/shoal-sh/shoal/telemetry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// loadConfig reads the shoal.yml shoal passes in SHOAL_CONFIG; run alone, the defaults do.
func loadConfig() (*config.Config, error) {
	if path := os.Getenv("SHOAL_CONFIG"); path != "" {
		return config.Load(path, config.Options{Env: os.Getenv("SHOAL_ENV")})
	}
	c := config.Default()
	c.Name = "quickstart"
	return c, nil
}

func run() error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	id := os.Getenv("SHOAL_INSTANCE_ID")
	if id == "" {
		id = "quickstart-local"
	}
	log := telemetry.NewLogger(os.Stdout, telemetry.LogOptions{Service: cfg.Name, Instance: id})
	var served atomic.Int64

	// Health: the checks of health.checks, plus this service's own custom check.
	checks, err := health.FromConfig(cfg, health.WithHandler("quickstart_self", func(ctx context.Context) error {
		return nil // a real service checks its own invariants here
	}))
	if err != nil {
		return err
	}
	checks.Start()
	defer checks.Close()

	metrics, err := telemetry.FromConfig(cfg)
	if err != nil {
		return err
	}
	tracing, err := telemetry.NewTracing(context.Background(), telemetry.TracingOptions{Service: cfg.Name, Instance: id})
	if err != nil {
		return err
	}
	defer tracing.Shutdown(context.Background())

	mux := http.NewServeMux()
	checks.Mount(mux, cfg)
	mux.Handle("GET /metrics", metrics.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("X-Shoal-Instance", id)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"message": "hello from shoal's quickstart", "instance": id, "served": served.Load()})
	})
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 10_000 {
			http.Error(w, "ms must be a whole number of milliseconds between 0 and 10000, e.g. /work?ms=50", http.StatusBadRequest)
			return
		}
		served.Add(1)
		w.Header().Set("X-Shoal-Instance", id)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"instance":%q,"worked_ms":%d,"result":%d}`+"\n", id, ms, burn(time.Duration(ms)*time.Millisecond))
	})

	srv := &http.Server{
		Addr:              "127.0.0.1:" + port,
		Handler:           tracing.Middleware(metrics.Middleware(mux)),
		ConnState:         metrics.ConnState,
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("listening", "addr", srv.Addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	checks.SetDraining(true)
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// burn keeps a CPU busy for d and returns a number so the work is not optimised away.
func burn(d time.Duration) uint64 {
	var x uint64 = 1
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	return x
}
