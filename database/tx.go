package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// WithTx runs fn in a transaction on the primary and commits it when fn returns nil. When fn
// returns an error or panics, the transaction is rolled back (and the panic goes on). When the
// transaction loses a conflict — a serialization failure (40001), a deadlock (40P01, MySQL
// 1213) or SQLITE_BUSY, at any statement or at commit — it is rolled back and fn runs again in
// a new transaction, after a backoff with jitter, up to 5 attempts in all (see [WithTxRetry]);
// so fn must not have effects outside the transaction that cannot be repeated. ctx bounds the
// whole: its deadline ends waits, statements and backoffs alike.
//
// opts may be nil. A read-only transaction (opts.ReadOnly) on SQLite runs on the read pool,
// beside the writer; elsewhere every transaction runs on the primary, reads included. A
// committed read-write transaction counts as a write for read-your-writes.
//
// fn's *sql.Tx is the transaction type every SQL backend shares, and the one other shoal
// packages take: jobs.EnqueueTx(ctx, tx, …) enqueues in the caller's transaction. Statements
// on it need the dialect's placeholders: write $1, $2, … and pass the query through
// [DB.Rebind] (or [Dialect.RebindArgs]). Errors fn returns are classified (ErrUniqueViolation,
// …) before they reach the caller.
func (db *DB) WithTx(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	if db.closed.Load() {
		return ErrClosed
	}
	p := db.primary.write
	readOnly := opts != nil && opts.ReadOnly
	if readOnly && db.dialect == SQLite {
		p = db.primary.read
	}
	return db.retrying(ctx, readOnly, func() error { return db.runTx(ctx, p, opts, fn) })
}

func (db *DB) runTx(ctx context.Context, p *sqlPool, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	gctx, g := p.guard(ctx)
	tx, err := p.db.BeginTx(gctx, opts)
	g.done()
	if err != nil {
		return db.callError(ctx, p, g, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback() // after an error or a panic; a failed rollback discards the connection
		}
	}()
	if err := fn(tx); err != nil {
		return Classify(err)
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return Classify(err)
	}
	return nil
}

// WithPgxTx is [DB.WithTx] over the native pgx pool, for PostgreSQL code that uses pgx's own
// API (batches, COPY) in its transactions. It fails on the other dialects.
func (db *DB) WithPgxTx(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	if db.closed.Load() {
		return ErrClosed
	}
	if db.primary.pgx == nil {
		return fmt.Errorf("database %s: WithPgxTx needs PostgreSQL, and this database is %s; use WithTx", db.Name(), db.dialect)
	}
	readOnly := opts.AccessMode == pgx.ReadOnly
	return db.retrying(ctx, readOnly, func() error {
		tx, err := db.primary.pgx.BeginTx(ctx, opts)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return db.pgxTimeoutError()
			}
			return Classify(err)
		}
		committed := false
		defer func() {
			if !committed {
				_ = tx.Rollback(context.WithoutCancel(ctx))
			}
		}()
		if err := fn(tx); err != nil {
			return Classify(err)
		}
		committed = true
		return Classify(tx.Commit(ctx))
	})
}

func (db *DB) pgxTimeoutError() error {
	return &PoolTimeoutError{Database: db.primary.name, Pool: db.primary.label + "-pgx",
		Max: int(db.primary.pgx.Config().MaxConns), Waited: db.cfg.AcquireTimeout.D().String()}
}

// retrying runs one transaction attempt after another while they lose conflicts.
func (db *DB) retrying(ctx context.Context, readOnly bool, attempt func() error) error {
	for n := 0; ; n++ {
		err := attempt()
		if err == nil {
			if !readOnly {
				db.wrote(ctx)
			}
			return nil
		}
		if !IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		if n+1 >= db.retry.MaxAttempts() {
			return fmt.Errorf("database %s: the transaction lost a conflict %d times in a row, giving up: %w", db.Name(), n+1, err)
		}
		if db.retry.Sleep(ctx, db.retry.Backoff(n)) != nil {
			return err
		}
		db.metrics.txRetries.Add(1)
	}
}
