package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/shoal-sh/shoal/cqrs"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/eventstore/sqlstore"
)

// Events.
type (
	AccountOpened  struct{ Owner string }
	MoneyDeposited struct{ Amount int64 }
	MoneyWithdrawn struct{ Amount int64 }
)

// Account is the aggregate's state.
type Account struct {
	Owner   string `json:"owner"`
	Balance int64  `json:"balance"`
}

// Apply folds one event.
func (a *Account) Apply(e any) {
	switch e := e.(type) {
	case AccountOpened:
		a.Owner = e.Owner
	case MoneyDeposited:
		a.Balance += e.Amount
	case MoneyWithdrawn:
		a.Balance -= e.Amount
	}
}

// Commands and queries.
type (
	OpenAccount struct{ Owner string }
	Deposit     struct {
		ID     string
		Amount int64
	}
	Withdraw struct {
		ID     string
		Amount int64
	}
	GetAccount struct {
		ID string
		At time.Time // zero: now
	}
)

func (c OpenAccount) Validate() error {
	if strings.TrimSpace(c.Owner) == "" || len(c.Owner) > 200 {
		return errors.New("owner must be 1 to 200 characters")
	}
	return nil
}

func (c Deposit) Validate() error  { return positive(c.Amount) }
func (c Withdraw) Validate() error { return positive(c.Amount) }

func positive(n int64) error {
	if n <= 0 {
		return errors.New("amount must be a positive integer of cents")
	}
	return nil
}

// View is an account as the API shows it.
type View struct {
	ID      string `json:"id"`
	Owner   string `json:"owner"`
	Balance int64  `json:"balance"`
	Version int64  `json:"version"`
}

// Errors of the domain.
var (
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrNotFound          = errors.New("account not found")
)

// Bank wires HTTP → command bus → aggregate → events → projection → query bus.
type Bank struct {
	Store    *sqlstore.Store
	Commands *cqrs.CommandBus
	Queries  *cqrs.QueryBus
	repo     *eventstore.Repository[Account]
	db       *database.DB
}

// accountsProjection is the read model: one row per account, updated inline in the append's
// transaction, so a read after a write sees it.
func accountsProjection(db *database.DB) cqrs.Projection {
	return cqrs.Projection{
		Name: "bank_accounts", Table: "bank_accounts",
		Filter: eventstore.Filter{StreamPrefixes: []string{"account-"}},
		Setup: func(ctx context.Context, tx *sql.Tx, table string) error {
			_, err := tx.ExecContext(ctx, "CREATE TABLE "+table+` (id VARCHAR(64) PRIMARY KEY, owner VARCHAR(200) NOT NULL,
				balance BIGINT NOT NULL, version BIGINT NOT NULL)`)
			return err
		},
		Apply: func(ctx context.Context, tx *sql.Tx, table string, e eventstore.RecordedEvent) error {
			id := strings.TrimPrefix(e.Stream, "account-")
			var q string
			var args []any
			switch e.Type {
			case "AccountOpened":
				var v AccountOpened
				if err := json.Unmarshal(e.Data, &v); err != nil {
					return err
				}
				q, args = "INSERT INTO "+table+" (id, owner, balance, version) VALUES ($1, $2, 0, $3)", []any{id, v.Owner, e.Version}
			case "MoneyDeposited", "MoneyWithdrawn":
				var v MoneyDeposited
				if err := json.Unmarshal(e.Data, &v); err != nil {
					return err
				}
				if e.Type == "MoneyWithdrawn" {
					v.Amount = -v.Amount
				}
				q, args = "UPDATE "+table+" SET balance = balance + $1, version = $2 WHERE id = $3", []any{v.Amount, e.Version, id}
			default:
				return nil
			}
			_, err := tx.ExecContext(ctx, db.Rebind(q), args...)
			return err
		},
	}
}

// NewBank sets the bank up on db.
func NewBank(ctx context.Context, db *database.DB, logger *slog.Logger) (*Bank, error) {
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[AccountOpened](reg, "AccountOpened")
	eventstore.MustRegister[MoneyDeposited](reg, "MoneyDeposited")
	eventstore.MustRegister[MoneyWithdrawn](reg, "MoneyWithdrawn")
	p := accountsProjection(db)
	var pr *cqrs.Projector
	store, err := sqlstore.New(ctx, db, sqlstore.Options{Logger: logger, Inline: []sqlstore.InlineProjection{
		func(ctx context.Context, tx *sql.Tx, evs []eventstore.RecordedEvent) error {
			return pr.ApplyTx(ctx, tx, evs)
		},
	}})
	if err != nil {
		return nil, err
	}
	if pr, err = cqrs.NewProjector(ctx, db, store, p, cqrs.ProjectorOptions{Logger: logger}); err != nil {
		return nil, err
	}
	b := &Bank{Store: store, db: db,
		Commands: cqrs.NewCommandBus(cqrs.Recover(), cqrs.Logging(logger), cqrs.Validation(), cqrs.RetryOnConflict(20)),
		Queries:  cqrs.NewQueryBus(cqrs.Recover(), cqrs.Validation()),
		repo:     eventstore.NewRepository[Account](store, reg, eventstore.RepositoryOptions{Prefix: "account-", SnapshotEvery: 50, Logger: logger}),
	}
	cqrs.MustRegister(b.Commands, func(ctx context.Context, c OpenAccount) (View, error) {
		id := eventstore.NewID()
		a, err := b.repo.Create(ctx, id, func(a *eventstore.Aggregate[Account]) error { a.Raise(AccountOpened{c.Owner}); return nil })
		if err != nil {
			return View{}, err
		}
		return view(a), nil
	})
	cqrs.MustRegister(b.Commands, func(ctx context.Context, c Deposit) (View, error) {
		return b.update(ctx, c.ID, func(a *eventstore.Aggregate[Account]) error { a.Raise(MoneyDeposited{c.Amount}); return nil })
	})
	cqrs.MustRegister(b.Commands, func(ctx context.Context, c Withdraw) (View, error) {
		return b.update(ctx, c.ID, func(a *eventstore.Aggregate[Account]) error {
			if a.State.Balance < c.Amount {
				return ErrInsufficientFunds
			}
			a.Raise(MoneyWithdrawn{c.Amount})
			return nil
		})
	})
	cqrs.MustRegisterQuery(b.Queries, func(ctx context.Context, q GetAccount) (View, error) {
		if !q.At.IsZero() {
			a, err := b.repo.LoadAsOf(ctx, q.ID, q.At)
			if err != nil {
				return View{}, err
			}
			if !a.Exists() {
				return View{}, ErrNotFound
			}
			return view(a), nil
		}
		var v View
		err := db.QueryRowContext(ctx, "SELECT id, owner, balance, version FROM bank_accounts WHERE id = $1", q.ID).Scan(&v.ID, &v.Owner, &v.Balance, &v.Version)
		if errors.Is(err, database.ErrNotFound) {
			return View{}, ErrNotFound
		}
		return v, err
	})
	return b, nil
}

func (b *Bank) update(ctx context.Context, id string, cmd func(a *eventstore.Aggregate[Account]) error) (View, error) {
	a, err := b.repo.Update(ctx, id, func(a *eventstore.Aggregate[Account]) error {
		if !a.Exists() {
			return ErrNotFound
		}
		return cmd(a)
	})
	if err != nil {
		return View{}, err
	}
	return view(a), nil
}

func view(a *eventstore.Aggregate[Account]) View {
	return View{ID: a.ID, Owner: a.State.Owner, Balance: a.State.Balance, Version: a.Version}
}

// Handler is the HTTP API.
func (b *Bank) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /accounts", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Owner string `json:"owner"`
		}
		if !decode(w, r, &body) {
			return
		}
		v, err := cqrs.Dispatch[OpenAccount, View](r.Context(), b.Commands, OpenAccount{body.Owner})
		reply(w, http.StatusCreated, v, err)
	})
	amount := func(w http.ResponseWriter, r *http.Request) (int64, bool) {
		var body struct {
			Amount *int64 `json:"amount"`
		}
		if !decode(w, r, &body) {
			return 0, false
		}
		if body.Amount == nil || *body.Amount <= 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad_request", "message": `"amount" must be a positive integer of cents`})
			return 0, false
		}
		return *body.Amount, true
	}
	mux.HandleFunc("POST /accounts/{id}/deposits", func(w http.ResponseWriter, r *http.Request) {
		if n, ok := amount(w, r); ok {
			v, err := cqrs.Dispatch[Deposit, View](r.Context(), b.Commands, Deposit{r.PathValue("id"), n})
			reply(w, http.StatusOK, v, err)
		}
	})
	mux.HandleFunc("POST /accounts/{id}/withdrawals", func(w http.ResponseWriter, r *http.Request) {
		if n, ok := amount(w, r); ok {
			v, err := cqrs.Dispatch[Withdraw, View](r.Context(), b.Commands, Withdraw{r.PathValue("id"), n})
			reply(w, http.StatusOK, v, err)
		}
	})
	mux.HandleFunc("GET /accounts/{id}", func(w http.ResponseWriter, r *http.Request) {
		q := GetAccount{ID: r.PathValue("id")}
		if at := r.URL.Query().Get("at"); at != "" {
			t, err := time.Parse(time.RFC3339Nano, at)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad_request", "message": fmt.Sprintf("at=%q is not an RFC 3339 time", at)})
				return
			}
			q.At = t
		}
		v, err := cqrs.Ask[GetAccount, View](r.Context(), b.Queries, q)
		reply(w, http.StatusOK, v, err)
	})
	return mux
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad_request", "message": "the body is not the JSON expected: " + err.Error()})
		return false
	}
	return true
}

func reply(w http.ResponseWriter, status int, v View, err error) {
	switch {
	case err == nil:
		writeJSON(w, status, v)
	case errors.Is(err, ErrInsufficientFunds):
		writeJSON(w, http.StatusConflict, map[string]string{"error": "insufficient_funds", "message": "the balance does not cover the withdrawal"})
	case errors.Is(err, ErrNotFound) || errors.Is(err, eventstore.ErrInvalidStream):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "message": "no such account"})
	case errors.Is(err, cqrs.ErrInvalid):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad_request", "message": err.Error()})
	default:
		slog.Error("request failed", "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal", "message": "the request failed; try again"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
