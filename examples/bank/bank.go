package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-sh/shoal/cqrs"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/eventstore/sqlstore"
	"github.com/shoal-sh/shoal/jobs"
	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/outbox"
)

// The events of an account's stream.
type (
	AccountOpened  struct{ Owner string }
	MoneyDeposited struct{ Amount int64 }
	MoneyWithdrawn struct{ Amount int64 }
)

// Account is the aggregate's state, folded from its events.
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

// LargeWithdrawal is the amount (in cents) from which a withdrawal raises an alert.
const LargeWithdrawal = 1000

// AlertTopic is where large withdrawals are published, through the outbox.
const AlertTopic = "bank.alerts.large_withdrawal"

// HeaderFailFirst is the event metadata header asking the notify job to fail its first attempt.
const HeaderFailFirst = "fail_first_notify"

// Commands and queries. OpID is the client's Idempotency-Key: the ID of the event the
// command appends, so a retried request is recognised and applied once.
type (
	OpenAccount struct{ OpID, Owner string }
	Deposit     struct {
		OpID, ID string
		Amount   int64
	}
	Withdraw struct {
		OpID, ID  string
		Amount    int64
		FailFirst bool
	}
	GetAccount struct {
		ID string
		At time.Time // zero: now, from the read model; else folded from the events up to At
	}
)

func (c OpenAccount) Validate() error {
	if strings.TrimSpace(c.Owner) == "" || len(c.Owner) > 200 {
		return errors.New(`"owner" must be 1 to 200 characters`)
	}
	return nil
}
func (c Deposit) Validate() error  { return positive(c.Amount) }
func (c Withdraw) Validate() error { return positive(c.Amount) }

func positive(n int64) error {
	if n <= 0 || n > 1_000_000_000_00 {
		return errors.New(`"amount" must be a positive whole number of cents, at most 100000000000`)
	}
	return nil
}

// View is an account as the API shows it. Replayed is set when the request was a retry of
// one already applied (same Idempotency-Key): nothing new was appended.
type View struct {
	ID       string `json:"id"`
	Owner    string `json:"owner"`
	Balance  int64  `json:"balance"`
	Version  int64  `json:"version"`
	Replayed bool   `json:"replayed,omitempty"`
}

// Errors of the domain.
var (
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrNotFound          = errors.New("account not found")
	ErrKeyReused         = errors.New("the Idempotency-Key was already used for another operation")
)

// Bank wires the HTTP API → command bus → aggregate → event store (inline read model and
// outbox in the append's transaction) → outbox relay → broker → consumer group → notify job.
type Bank struct {
	DB       *database.DB
	Store    *sqlstore.Store
	Outbox   *outbox.Outbox
	Jobs     *jobs.Client
	Commands *cqrs.CommandBus
	Queries  *cqrs.QueryBus
	repo     *eventstore.Repository[Account]
	reg      *eventstore.Registry
	log      *slog.Logger
	// period is the statements schedule's slot: a tick is aligned to it (see statements).
	period time.Duration
}

// schema is the bank's own tables beside the event store's, the projection's, the outbox's
// and the jobs' (which their packages migrate). Every statement is valid on PostgreSQL and
// SQLite and may run on every instance at once.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS bank_ledger (event_id VARCHAR(64) PRIMARY KEY, account_id VARCHAR(64) NOT NULL,
		kind VARCHAR(20) NOT NULL, amount BIGINT NOT NULL, version BIGINT NOT NULL, balance BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS notifications (event_id VARCHAR(64) PRIMARY KEY, account_id VARCHAR(64) NOT NULL,
		amount BIGINT NOT NULL, attempt INTEGER NOT NULL, job_id BIGINT NOT NULL, created_at BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS statement_runs (tick BIGINT PRIMARY KEY, job_id BIGINT NOT NULL, accounts INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS statements (account_id VARCHAR(64) NOT NULL, tick BIGINT NOT NULL,
		balance BIGINT NOT NULL, version BIGINT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS statements_account ON statements (account_id, version)`,
	`CREATE INDEX IF NOT EXISTS bank_ledger_account ON bank_ledger (account_id)`,
}

// accountsProjection is the read model: one row per account and one ledger row per
// operation, written inline in the append's transaction, so a read after a write sees it.
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
			var amount int64
			switch e.Type {
			case "AccountOpened":
				var v AccountOpened
				if err := json.Unmarshal(e.Data, &v); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, db.Rebind("INSERT INTO "+table+" (id, owner, balance, version) VALUES ($1, $2, 0, $3)"), id, v.Owner, e.Version); err != nil {
					return err
				}
			case "MoneyDeposited", "MoneyWithdrawn":
				var v MoneyDeposited
				if err := json.Unmarshal(e.Data, &v); err != nil {
					return err
				}
				amount = v.Amount
				if e.Type == "MoneyWithdrawn" {
					amount = -amount
				}
				if _, err := tx.ExecContext(ctx, db.Rebind("UPDATE "+table+" SET balance = balance + $1, version = $2 WHERE id = $3"), amount, e.Version, id); err != nil {
					return err
				}
			default:
				return nil
			}
			if table != "bank_accounts" { // a rebuild: the ledger is already there
				return nil
			}
			var balance int64
			if err := tx.QueryRowContext(ctx, db.Rebind("SELECT balance FROM "+table+" WHERE id = $1"), id).Scan(&balance); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO bank_ledger (event_id, account_id, kind, amount, version, balance)
				VALUES ($1, $2, $3, $4, $5, $6)`), e.ID, id, e.Type, amount, e.Version, balance)
			return err
		},
	}
}

// largeWithdrawals keeps the events that raise an alert.
func largeWithdrawals(events []eventstore.RecordedEvent) []eventstore.RecordedEvent {
	var out []eventstore.RecordedEvent
	for _, e := range events {
		if e.Type != "MoneyWithdrawn" {
			continue
		}
		var v MoneyWithdrawn
		if json.Unmarshal(e.Data, &v) == nil && v.Amount >= LargeWithdrawal {
			out = append(out, e)
		}
	}
	return out
}

// NotifyArgs is the notify job: one per large withdrawal event.
type NotifyArgs struct {
	EventID   string `json:"event_id"`
	AccountID string `json:"account_id"`
	Amount    int64  `json:"amount"`
	FailFirst bool   `json:"fail_first,omitempty"`
}

func (NotifyArgs) Kind() string { return "notify" }

// StatementsArgs is the statements job the `statements` schedule enqueues every tick.
type StatementsArgs struct{}

func (StatementsArgs) Kind() string { return "statements" }

// NewBank sets the bank up on db: migrations, event store with the inline read model and
// outbox, the job client with its workers and schedule. pub is where the outbox relay
// publishes; Run starts the background parts.
func NewBank(ctx context.Context, db *database.DB, pub messaging.Publisher, jobsOpts jobs.Options, logger *slog.Logger) (*Bank, error) {
	for _, q := range schema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("creating the bank's tables: %w", err)
		}
	}
	reg := eventstore.NewRegistry()
	eventstore.MustRegister[AccountOpened](reg, "AccountOpened")
	eventstore.MustRegister[MoneyDeposited](reg, "MoneyDeposited")
	eventstore.MustRegister[MoneyWithdrawn](reg, "MoneyWithdrawn")

	ob, err := outbox.New(db, outbox.Options{Publisher: pub, Logger: logger, PollInterval: 50 * time.Millisecond, LeaseTTL: 3 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := ob.Migrate(ctx); err != nil {
		return nil, err
	}
	toOutbox := cqrs.OutboxInline(ob, func(eventstore.RecordedEvent) string { return AlertTopic })
	var pr *cqrs.Projector
	store, err := sqlstore.New(ctx, db, sqlstore.Options{Logger: logger, Inline: []sqlstore.InlineProjection{
		func(ctx context.Context, tx *sql.Tx, evs []eventstore.RecordedEvent) error {
			return pr.ApplyTx(ctx, tx, evs)
		},
		func(ctx context.Context, tx *sql.Tx, evs []eventstore.RecordedEvent) error {
			return toOutbox(ctx, tx, largeWithdrawals(evs))
		},
	}})
	if err != nil {
		return nil, err
	}
	if pr, err = cqrs.NewProjector(ctx, db, store, accountsProjection(db), cqrs.ProjectorOptions{Logger: logger}); err != nil {
		store.Close()
		return nil, err
	}
	jobsOpts.Logger = logger
	jc, err := jobs.New(db, jobsOpts)
	if err != nil {
		store.Close()
		return nil, err
	}
	if err := jc.Migrate(ctx); err != nil {
		store.Close()
		return nil, err
	}
	b := &Bank{DB: db, Store: store, Outbox: ob, Jobs: jc, reg: reg, log: logger,
		Commands: cqrs.NewCommandBus(cqrs.Recover(), cqrs.Logging(logger), cqrs.Validation()),
		Queries:  cqrs.NewQueryBus(cqrs.Recover(), cqrs.Validation()),
		repo:     eventstore.NewRepository[Account](store, reg, eventstore.RepositoryOptions{Prefix: "account-", SnapshotEvery: 50, Logger: logger}),
	}
	if err := jobs.Register(jc, jobs.WorkerFunc[NotifyArgs](b.notify)); err != nil {
		return nil, err
	}
	if err := jobs.Register(jc, jobs.WorkerFunc[StatementsArgs](b.statements)); err != nil {
		return nil, err
	}
	if err := jc.ScheduleConfig(); err != nil {
		return nil, err
	}
	b.period = time.Minute // a five-field cron ticks on whole minutes
	for _, sc := range jobsOpts.Config.Schedules {
		if every, ok := strings.CutPrefix(sc.Cron, "@every "); ok && sc.Job == (StatementsArgs{}).Kind() {
			if d, err := time.ParseDuration(every); err == nil && d >= time.Second {
				b.period = d
			}
		}
	}

	cqrs.MustRegister(b.Commands, func(ctx context.Context, c OpenAccount) (View, error) {
		id := c.OpID
		if id == "" {
			id = eventstore.NewID()
		}
		ev, err := b.event(c.OpID, AccountOpened{c.Owner}, nil)
		if err != nil {
			return View{}, err
		}
		res, err := store.Append(ctx, b.repo.Stream(id), eventstore.NoStream, ev)
		if eventstore.IsConflict(err) {
			return View{}, ErrKeyReused
		}
		if err != nil {
			return View{}, err
		}
		return View{ID: id, Owner: c.Owner, Version: res.LastVersion, Replayed: res.Duplicate}, nil
	})
	cqrs.MustRegister(b.Commands, func(ctx context.Context, c Deposit) (View, error) {
		return b.apply(ctx, c.ID, c.OpID, MoneyDeposited{c.Amount}, nil, nil)
	})
	cqrs.MustRegister(b.Commands, func(ctx context.Context, c Withdraw) (View, error) {
		var h map[string]string
		if c.FailFirst {
			h = map[string]string{HeaderFailFirst: "1"}
		}
		return b.apply(ctx, c.ID, c.OpID, MoneyWithdrawn{c.Amount}, h, func(a *Account) error {
			if a.Balance < c.Amount {
				return ErrInsufficientFunds
			}
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
			return View{ID: a.ID, Owner: a.State.Owner, Balance: a.State.Balance, Version: a.Version}, nil
		}
		var v View
		err := db.QueryRowContext(ctx, db.Rebind("SELECT id, owner, balance, version FROM bank_accounts WHERE id = $1"), q.ID).Scan(&v.ID, &v.Owner, &v.Balance, &v.Version)
		if errors.Is(err, database.ErrNotFound) {
			return View{}, ErrNotFound
		}
		return v, err
	})
	return b, nil
}

// event encodes v as the event of operation opID (a UUID; empty: a new one).
func (b *Bank) event(opID string, v any, headers map[string]string) (eventstore.EventData, error) {
	d, err := b.reg.Encode(v)
	if err != nil {
		return d, err
	}
	if opID != "" {
		d.ID = opID
	}
	if headers != nil {
		d.Metadata.Headers = headers
	}
	return d, nil
}

// apply appends the event of one operation on account id after rule accepts the state, with
// optimistic concurrency (reloading on a conflict). An operation already applied (its opID
// is in the ledger) is answered with the account as it is now, Replayed set.
func (b *Bank) apply(ctx context.Context, id, opID string, v any, headers map[string]string, rule func(*Account) error) (View, error) {
	replay := func() (View, error) {
		var acc string
		err := b.DB.QueryRowContext(ctx, b.DB.Rebind("SELECT account_id FROM bank_ledger WHERE event_id = $1"), opID).Scan(&acc)
		if err != nil {
			return View{}, err
		}
		if acc != id {
			return View{}, ErrKeyReused
		}
		view, err := cqrs.Ask[GetAccount, View](ctx, b.Queries, GetAccount{ID: id})
		view.Replayed = true
		return view, err
	}
	if opID != "" {
		if view, err := replay(); !errors.Is(err, database.ErrNotFound) {
			return view, err
		}
	}
	for attempt := 1; ; attempt++ {
		a, err := b.repo.Load(ctx, id)
		if err != nil {
			return View{}, err
		}
		if !a.Exists() {
			return View{}, ErrNotFound
		}
		if rule != nil {
			if err := rule(&a.State); err != nil {
				return View{}, err
			}
		}
		ev, err := b.event(opID, v, headers)
		if err != nil {
			return View{}, err
		}
		res, err := b.Store.Append(ctx, a.Stream, eventstore.Exact(a.Version), ev)
		var dup *eventstore.DuplicateEventError
		switch {
		case err == nil && res.Duplicate, errors.As(err, &dup):
			return replay()
		case err == nil:
			a.Raise(v)
			return View{ID: id, Owner: a.State.Owner, Balance: a.State.Balance, Version: res.LastVersion}, nil
		case eventstore.IsConflict(err) && attempt < 50:
			continue
		default:
			return View{}, err
		}
	}
}

// Subscribe joins the fleet's consumer group for large withdrawals: each alert enqueues one
// notify job (unique by its arguments in every state, so a redelivered alert adds none).
func (b *Bank) Subscribe(ctx context.Context, sub messaging.Subscriber) (*messaging.Subscription, error) {
	return sub.Subscribe(ctx, AlertTopic, func(ctx context.Context, m *messaging.Message) error {
		e, err := cqrs.FromMessage(m)
		if err != nil {
			return err
		}
		var v MoneyWithdrawn
		if err := json.Unmarshal(e.Data, &v); err != nil {
			return fmt.Errorf("alert %s: %w", m.ID, err)
		}
		args := NotifyArgs{EventID: e.ID, AccountID: strings.TrimPrefix(e.Stream, "account-"), Amount: v.Amount,
			FailFirst: m.Headers[HeaderFailFirst] == "1"}
		_, err = b.Jobs.Enqueue(ctx, args, jobs.Unique(jobs.UniqueOpts{ByArgs: true, States: []jobs.State{
			jobs.StateAvailable, jobs.StateRunning, jobs.StateCompleted, jobs.StateCancelled, jobs.StateDiscarded}}))
		return err
	}, messaging.Group("bank-notify"))
}

// notify writes the notification of one large withdrawal, once per event id.
func (b *Bank) notify(ctx context.Context, j *jobs.Job[NotifyArgs]) error {
	if j.Args.FailFirst && j.Attempt == 1 {
		return errors.New("failing the first attempt on purpose (fail_first_notify=1)")
	}
	q := `INSERT INTO notifications (event_id, account_id, amount, attempt, job_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (event_id) DO NOTHING`
	_, err := b.DB.ExecContext(ctx, b.DB.Rebind(q), j.Args.EventID, j.Args.AccountID, j.Args.Amount, j.Attempt, j.ID, time.Now().UnixMilli())
	return err
}

// statements writes, for the tick the job was enqueued for, one statement per account that
// changed since its last statement — all in one transaction with the tick's run row, so a
// retried job writes nothing twice.
//
// The tick is aligned to the schedule's period: package jobs computes an `@every` schedule's
// ticks from each process's own start, so instances started at different seconds enqueue
// one job each for what is one tick of the fleet (jobs dedupes equal ticks only). Aligned,
// the second of them finds its slot's run row and writes nothing.
func (b *Bank) statements(ctx context.Context, j *jobs.Job[StatementsArgs]) error {
	tick := time.Now().UTC()
	if s := j.Metadata["tick"]; s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return jobs.Cancel(fmt.Errorf("the job's tick %q is not an RFC 3339 time: %w", s, err))
		}
		tick = t
	}
	if b.period > 0 {
		tick = tick.Truncate(b.period)
	}
	return b.DB.WithTx(ctx, nil, func(tx *sql.Tx) error {
		var done int
		if err := tx.QueryRowContext(ctx, b.DB.Rebind("SELECT COUNT(*) FROM statement_runs WHERE tick = $1"), tick.Unix()).Scan(&done); err != nil {
			return err
		}
		if done > 0 {
			return nil
		}
		res, err := tx.ExecContext(ctx, b.DB.Rebind(`INSERT INTO statements (account_id, tick, balance, version)
			SELECT a.id, $1, a.balance, a.version FROM bank_accounts a
			WHERE a.version > COALESCE((SELECT MAX(s.version) FROM statements s WHERE s.account_id = a.id), 0)`), tick.Unix())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, b.DB.Rebind("INSERT INTO statement_runs (tick, job_id, accounts) VALUES ($1, $2, $3)"), tick.Unix(), j.ID, n)
		return err
	})
}

// Stats are the counts GET /stats shows.
type Stats struct {
	Accounts      int64 `json:"accounts"`
	Events        int64 `json:"events"`
	Operations    int64 `json:"operations"`
	Alerts        int64 `json:"large_withdrawals"`
	Notifications int64 `json:"notifications"`
	Statements    int64 `json:"statements"`
	StatementRuns int64 `json:"statement_runs"`
	JobsPending   int64 `json:"jobs_pending"`
}

// Stats counts the bank's rows.
func (b *Bank) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	st, err := b.Store.Stats(ctx)
	if err != nil {
		return s, err
	}
	s.Events = st.Events
	for _, c := range []struct {
		q   string
		dst *int64
	}{
		{"SELECT COUNT(*) FROM bank_accounts", &s.Accounts},
		{"SELECT COUNT(*) FROM bank_ledger", &s.Operations},
		{"SELECT COUNT(*) FROM bank_ledger WHERE kind = 'MoneyWithdrawn' AND amount <= -" + strconv.Itoa(LargeWithdrawal), &s.Alerts},
		{"SELECT COUNT(*) FROM notifications", &s.Notifications},
		{"SELECT COUNT(*) FROM statements", &s.Statements},
		{"SELECT COUNT(*) FROM statement_runs", &s.StatementRuns},
	} {
		if err := b.DB.QueryRowContext(ctx, c.q).Scan(c.dst); err != nil {
			return s, err
		}
	}
	depths, err := b.Jobs.Depths(ctx)
	if err != nil {
		return s, err
	}
	for _, d := range depths {
		if d.State == jobs.StateAvailable || d.State == jobs.StateRunning {
			s.JobsPending += d.Count
		}
	}
	return s, nil
}

// Notifications lists the event ids notified for an account, oldest first.
func (b *Bank) Notifications(ctx context.Context, id string) ([]string, error) {
	rows, err := b.DB.QueryContext(ctx, b.DB.Rebind("SELECT event_id FROM notifications WHERE account_id = $1 ORDER BY created_at, event_id"), id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Close releases the store.
func (b *Bank) Close() error { return b.Store.Close() }
