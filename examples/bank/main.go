// Command bank is shoal's example of every building block in one service, run by
// `shoal up` (3 instances on one SQLite file and the embedded NATS server):
//
//	go run ./cmd/shoal up -f examples/bank/shoal.yml
//
// Accounts are event-sourced aggregates (package eventstore on eventstore/sqlstore), changed
// through a command bus and read through a query bus (package cqrs) from a read model
// projected in the append's transaction. Every withdrawal of 1,000 or more goes, in the same
// transaction, into the outbox (messaging/outbox); its relay publishes it on
// bank.alerts.large_withdrawal; one member of the fleet's consumer group enqueues a notify
// job (package jobs) that writes one notifications row per event id. A cron schedule writes
// account statements every 10s. See README.md for the API.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/cqrs"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/health"
	"github.com/shoal-sh/shoal/jobs"
	"github.com/shoal-sh/shoal/messaging/broker"
	"github.com/shoal-sh/shoal/telemetry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// loadConfig reads the shoal.yml shoal passes in SHOAL_CONFIG; run alone, the defaults
// with DATABASE_URL (or a SQLite file in the working directory) and an in-memory broker.
func loadConfig() (*config.Config, error) {
	if path := os.Getenv("SHOAL_CONFIG"); path != "" {
		return config.Load(path, config.Options{Env: os.Getenv("SHOAL_ENV")})
	}
	c := config.Default()
	c.Name = "bank"
	c.Database.URL = os.Getenv("DATABASE_URL")
	if c.Database.URL == "" {
		c.Database.URL = "sqlite://bank.db"
	}
	c.Jobs.Schedules = []config.Schedule{{Name: "statements", Cron: "@every 10s", Job: "statements", Queue: "default"}}
	return c, nil
}

func run() error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if cfg.Database.URL == "" {
		return errors.New("no database: set database.url in shoal.yml or DATABASE_URL (shoal up gives every instance a SQLite file when neither is set)")
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	id := os.Getenv("SHOAL_INSTANCE_ID")
	if id == "" {
		id = "bank-local"
	}
	logger := telemetry.NewLogger(os.Stdout, telemetry.LogOptions{Service: cfg.Name, Instance: id})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	db, err := database.Open(ctx, cfg.Database, database.WithLogger(logger))
	if err != nil {
		return err
	}
	defer db.Close()
	bus, err := broker.Open(ctx, cfg.Messaging, broker.Options(cfg.Messaging))
	if err != nil {
		return err
	}
	defer bus.Close()
	bank, err := NewBank(ctx, db, bus, jobs.Options{Config: cfg.Jobs, WorkerID: id, Heartbeat: 500 * time.Millisecond}, logger)
	if err != nil {
		return err
	}
	defer bank.Close()

	checks, err := health.FromConfig(cfg, health.WithDB("database", db))
	if err != nil {
		return err
	}
	checks.Start()
	defer checks.Close()

	// The background parts: outbox relay (one instance relays at a time), the consumer
	// group's member, the job workers and the schedule.
	bg, cancelBG := context.WithCancel(context.Background())
	defer cancelBG()
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		if err := bank.Outbox.Run(bg); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error("outbox relay stopped", "error", err)
		}
	}()
	sub, err := bank.Subscribe(bg, bus)
	if err != nil {
		return err
	}
	if err := bank.Jobs.Start(bg); err != nil {
		return err
	}

	mux := http.NewServeMux()
	checks.Mount(mux, cfg)
	mux.Handle("/", bank.Handler(id))
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("listening", "addr", srv.Addr, "database", db.Dialect().String(), "broker", cfg.Messaging.Type)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Graceful: stop being ready, finish requests, then the workers and the subscription.
	checks.SetDraining(true)
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err := bank.Jobs.Stop(sctx); err != nil {
		logger.Warn("stopping the job workers", "error", err)
	}
	if err := sub.Close(); err != nil {
		logger.Warn("closing the subscription", "error", err)
	}
	cancelBG()
	<-relayDone
	return nil
}

// Handler is the HTTP API. Writes take an optional Idempotency-Key header (a UUID): a
// request retried with the same key is applied once.
func (b *Bank) Handler(instance string) http.Handler {
	mux := http.NewServeMux()
	opID := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		k := r.Header.Get("Idempotency-Key")
		if k == "" {
			return "", true
		}
		if err := eventstore.ValidateStream("account-" + k); err != nil || len(k) != 36 {
			writeError(w, http.StatusBadRequest, "bad_request", "the Idempotency-Key header must be a UUID such as 0190d6c4-5d1e-7cc0-a2b4-3f9b8f1c2d3e")
			return "", false
		}
		return k, true
	}
	mux.HandleFunc("POST /accounts", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Owner string `json:"owner"`
		}
		k, ok := opID(w, r)
		if !ok || !decode(w, r, &body) {
			return
		}
		v, err := cqrs.Dispatch[OpenAccount, View](r.Context(), b.Commands, OpenAccount{OpID: k, Owner: body.Owner})
		reply(w, http.StatusCreated, v, err)
	})
	amount := func(w http.ResponseWriter, r *http.Request) (int64, bool) {
		var body struct {
			Amount json.RawMessage `json:"amount"`
		}
		if !decode(w, r, &body) {
			return 0, false
		}
		n, err := strconv.ParseInt(string(body.Amount), 10, 64) // a JSON number, not "5" or 1.5
		if err != nil || positive(n) != nil {
			writeError(w, http.StatusBadRequest, "bad_request", `"amount" must be a positive whole number of cents, e.g. {"amount": 2500}`)
			return 0, false
		}
		return n, true
	}
	mux.HandleFunc("POST /accounts/{id}/deposits", func(w http.ResponseWriter, r *http.Request) {
		k, ok := opID(w, r)
		if !ok {
			return
		}
		if n, ok := amount(w, r); ok {
			v, err := cqrs.Dispatch[Deposit, View](r.Context(), b.Commands, Deposit{OpID: k, ID: r.PathValue("id"), Amount: n})
			reply(w, http.StatusOK, v, err)
		}
	})
	mux.HandleFunc("POST /accounts/{id}/withdrawals", func(w http.ResponseWriter, r *http.Request) {
		k, ok := opID(w, r)
		if !ok {
			return
		}
		ff := r.URL.Query().Get("fail_first_notify")
		if ff != "" && ff != "0" && ff != "1" {
			writeError(w, http.StatusBadRequest, "bad_request", "fail_first_notify must be 0 or 1")
			return
		}
		if n, ok := amount(w, r); ok {
			v, err := cqrs.Dispatch[Withdraw, View](r.Context(), b.Commands, Withdraw{OpID: k, ID: r.PathValue("id"), Amount: n, FailFirst: ff == "1"})
			reply(w, http.StatusOK, v, err)
		}
	})
	mux.HandleFunc("GET /accounts/{id}", func(w http.ResponseWriter, r *http.Request) {
		q := GetAccount{ID: r.PathValue("id")}
		if at := r.URL.Query().Get("at"); at != "" {
			t, err := time.Parse(time.RFC3339Nano, at)
			if err != nil {
				writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("at=%q is not an RFC 3339 time such as 2026-12-03T12:00:00Z", at))
				return
			}
			q.At = t
		}
		v, err := cqrs.Ask[GetAccount, View](r.Context(), b.Queries, q)
		reply(w, http.StatusOK, v, err)
	})
	mux.HandleFunc("GET /accounts/{id}/notifications", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if _, err := cqrs.Ask[GetAccount, View](r.Context(), b.Queries, GetAccount{ID: id}); err != nil {
			reply(w, 0, View{}, err)
			return
		}
		ids, err := b.Notifications(r.Context(), id)
		if err != nil {
			reply(w, 0, View{}, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"account": id, "event_ids": ids})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		s, err := b.Stats(r.Context())
		if err != nil {
			reply(w, 0, View{}, err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Shoal-Instance", instance)
		mux.ServeHTTP(w, r)
	})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "the body is not the JSON expected: "+err.Error())
		return false
	}
	return true
}

func reply(w http.ResponseWriter, status int, v View, err error) {
	var verr *cqrs.ValidationError
	switch {
	case err == nil:
		if v.Replayed && status == http.StatusCreated {
			status = http.StatusOK
		}
		writeJSON(w, status, v)
	case errors.Is(err, ErrInsufficientFunds):
		writeError(w, http.StatusConflict, "insufficient_funds", "the balance does not cover the withdrawal")
	case errors.Is(err, ErrNotFound) || errors.Is(err, eventstore.ErrInvalidStream):
		writeError(w, http.StatusNotFound, "not_found", "no such account")
	case errors.Is(err, ErrKeyReused):
		writeError(w, http.StatusUnprocessableEntity, "idempotency_key_reused", err.Error())
	case errors.As(err, &verr) || errors.Is(err, cqrs.ErrInvalid):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the request was cancelled")
	default:
		slog.Error("request failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "the request failed; retry it with the same Idempotency-Key")
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
