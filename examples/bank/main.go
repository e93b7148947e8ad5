// Command bank is the event-sourcing example: accounts opened, deposited to and withdrawn
// from (never below zero), over HTTP, wired end to end through shoal's packages:
//
//	HTTP → command bus → aggregate (eventstore.Repository) → events (sqlstore)
//	     → inline projection (bank_accounts) → query bus → HTTP
//
// Run it under shoal (3 instances on one SQLite file in the state directory, or PostgreSQL
// when DATABASE_URL says so):
//
//	go run ./cmd/shoal up -f examples/bank/shoal.yml
//	curl -s -XPOST localhost:8080/accounts -d '{"owner":"ada"}'            # 201 {"id":…,"balance":0,"version":1}
//	curl -s -XPOST localhost:8080/accounts/ID/deposits -d '{"amount":500}'  # 200 the account
//	curl -s -XPOST localhost:8080/accounts/ID/withdrawals -d '{"amount":900}' # 409 insufficient_funds
//	curl -s localhost:8080/accounts/ID                                      # {"id","owner","balance","version"}
//	curl -s 'localhost:8080/accounts/ID?at=2026-12-03T12:00:00Z'            # the balance as of then
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		url = "sqlite://" + filepath.ToSlash(filepath.Join(os.TempDir(), "shoal-bank.db"))
	}
	db, err := database.Open(ctx, config.Database{URL: url})
	if err != nil {
		return err
	}
	defer db.Close()
	bank, err := NewBank(ctx, db, logger)
	if err != nil {
		return err
	}
	defer bank.Store.Close()
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.Handle("/accounts", bank.Handler())
	mux.Handle("/accounts/", bank.Handler())
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if err := db.Ping(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "healthy"})
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "live"})
	})
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("bank listening", "addr", srv.Addr, "database", db.Name())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
