package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/resilience"
)

// DB is an open database: its pools, the read replicas and the checks that route reads to them.
// It is safe for concurrent use. Open it once per process and share it; Close it on shutdown.
type DB struct {
	dialect  Dialect
	cfg      config.Database
	primary  *endpoint
	replicas []*endpoint
	rr       atomic.Uint64
	retry    *resilience.Retry
	clock    Clock
	log      *slog.Logger
	metrics  *metrics

	closeOnce sync.Once
	closed    atomic.Bool
	stop      context.CancelFunc
	checkers  sync.WaitGroup
}

// Open opens the database cfg describes, chosen by cfg.Type or else by the scheme of cfg.URL:
//
//   - postgres:// (postgresql://, pgx://): pgx v5 — a *pgxpool.Pool ([DB.Pool]) and a *sql.DB
//     over pgx's database/sql driver ([DB.SQL]), each with the pool settings;
//   - mysql:// (mariadb://): go-sql-driver/mysql; the URL's parameters are the driver's
//     (parseTime defaults to true, loc to UTC, timeout to connect_timeout; tls, charset, … kept);
//   - sqlite:// (sqlite3://, file:): modernc.org/sqlite, no cgo — WAL, busy_timeout, foreign keys
//     on, one writer connection ([DB.SQL]) and a read-only pool ([DB.ReadSQL]), so writers
//     queue instead of failing with SQLITE_BUSY. sqlite:///abs/app.db, sqlite://rel/app.db,
//     sqlite://:memory: (one connection).
//
// mongodb:// is opened by the database/mongo package, so that programs using SQL do not link
// the MongoDB driver.
//
// Open pings the primary (within connect_timeout) and returns an error that names the database
// with its password masked and says how to fix it: an unknown scheme or malformed URL
// (ErrBadURL), an unreachable host (ErrUnreachable), refused credentials (ErrAuth). Replicas
// are checked in the background; one that is down does not fail Open.
func Open(ctx context.Context, cfg config.Database, opts ...Opt) (*DB, error) {
	o := options{clock: wallClock{}, log: slog.Default()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	fillDefaults(&cfg)
	if cfg.URL == "" {
		return nil, errorf(ErrBadURL, "database.url is empty; set it (or DATABASE_URL), e.g. %s or sqlite:///var/lib/app/app.db", postgresExample)
	}
	d, err := dialectOf(cfg.Type, cfg.URL)
	if err != nil {
		return nil, err
	}
	if d == MongoDB {
		return nil, errorf(ErrBadURL, "database %s is MongoDB, which database.Open does not open; use mongo.Open from github.com/shoal-sh/shoal/database/mongo (kept apart so SQL programs do not link the MongoDB driver)", Redact(cfg.URL))
	}
	retry, err := resilience.NewRetry(defaultRetry(o.retry))
	if err != nil {
		return nil, err
	}
	db := &DB{dialect: d, cfg: cfg, retry: retry, clock: o.clock, log: o.log, metrics: newMetrics(d)}
	db.primary, err = openEndpoint(ctx, "primary", cfg.URL, d, cfg, db.metrics)
	if err != nil {
		return nil, err
	}
	for i, raw := range cfg.ReadReplicas {
		rd, err := dialectOf(cfg.Type, raw)
		if err == nil && rd != d {
			err = errorf(ErrBadURL, "read replica %s is %s but database.url is %s; a replica must be the same kind of database", Redact(raw), rd, d)
		}
		var e *endpoint
		if err == nil {
			e, err = openEndpoint(ctx, fmt.Sprintf("replica %d", i+1), raw, d, cfg, db.metrics)
		}
		if err != nil {
			db.closeEndpoints()
			return nil, err
		}
		e.replica = &replicaState{}
		db.replicas = append(db.replicas, e)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout.D())
	err = db.Ping(pctx)
	cancel()
	if err != nil {
		db.closeEndpoints()
		return nil, err
	}
	if len(db.replicas) > 0 {
		db.startChecks(ctx, o.manualChecks)
	}
	return db, nil
}

func fillDefaults(cfg *config.Database) {
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 10
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = config.Duration(5 * time.Second)
	}
	if cfg.AcquireTimeout <= 0 {
		cfg.AcquireTimeout = config.Duration(10 * time.Second)
	}
	if cfg.ReplicaCheckInterval <= 0 {
		cfg.ReplicaCheckInterval = config.Duration(time.Second)
	}
}

// Dialect returns the SQL dialect: Postgres, MySQL or SQLite.
func (db *DB) Dialect() Dialect { return db.dialect }

// Name returns the primary's URL with its password masked, for messages.
func (db *DB) Name() string { return db.primary.name }

// Config returns the database block the DB was opened with, defaults filled in. Its URLs hold
// passwords: print them through [Redact].
func (db *DB) Config() config.Database { return db.cfg }

// Pool returns the native pgx pool of the primary for PostgreSQL (nil for the other dialects):
// for pgx-only features such as LISTEN/NOTIFY, COPY, batches. It has the pool settings of its
// own, apart from [DB.SQL]'s pool.
func (db *DB) Pool() *pgxpool.Pool { return db.primary.pgx }

// SQL returns the primary's *sql.DB: every write goes here. For SQLite it is the single writer
// connection, so a write through it never meets SQLITE_BUSY from this process; keep its
// transactions short, as every other writer waits for them.
func (db *DB) SQL() *sql.DB { return db.primary.write.db }

// ReadSQL returns the primary's *sql.DB for reads: SQLite's read-only pool (many readers beside
// the one writer, under WAL); the same as [DB.SQL] for the other dialects. It never routes to a
// replica — [DB.Reader] does.
func (db *DB) ReadSQL() *sql.DB { return db.primary.read.db }

// Reader returns the *sql.DB a read made with ctx should use: a healthy replica within
// replica_max_lag (round robin), or the primary when there is none, when ctx is within the
// read-your-writes window of its session, or when ctx was marked with [OnPrimary].
// DB's QueryContext and QueryRowContext do this and also fail over when the replica breaks
// mid-call; Reader leaves that to the caller.
func (db *DB) Reader(ctx context.Context) *sql.DB { return db.readPool(ctx).db }

// Rebind rewrites $1-style placeholders for the DB's dialect (see [Dialect.Rebind]).
func (db *DB) Rebind(query string) string { return db.dialect.Rebind(query) }

// ExecContext runs a statement on the primary. query uses $1, $2, … placeholders whatever the
// dialect. Errors are classified (ErrUniqueViolation, …; ErrPoolExhausted after
// acquire_timeout). It counts as a write for read-your-writes.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	q, a := db.dialect.RebindArgs(query, args)
	p := db.primary.write
	gctx, g := p.guard(ctx)
	res, err := p.db.ExecContext(gctx, q, a...)
	g.done()
	if err != nil {
		return nil, db.callError(ctx, p, g, err)
	}
	db.wrote(ctx)
	return res, nil
}

// QueryContext runs a query that returns rows. A read (SELECT, WITH … without a write, SHOW,
// EXPLAIN, VALUES) goes where [DB.Reader] says; when that replica fails with a connection
// error it is marked down and the next replica, then the primary, is tried, so a replica going
// away fails no read. A statement that writes (INSERT … RETURNING, SELECT … FOR UPDATE) goes to
// the primary and counts as a write. Placeholders are $1, $2, … whatever the dialect.
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	q, a := db.dialect.RebindArgs(query, args)
	if isWrite(query) {
		p := db.primary.write
		gctx, g := p.guard(ctx)
		rows, err := p.db.QueryContext(gctx, q, a...)
		g.done()
		if err != nil {
			return nil, db.callError(ctx, p, g, err)
		}
		db.wrote(ctx)
		return rows, nil
	}
	for {
		e, p := db.route(ctx)
		gctx, g := p.guard(ctx)
		rows, err := p.db.QueryContext(gctx, q, a...)
		g.done()
		if err == nil {
			p.metrics.reads.Add(1)
			return rows, nil
		}
		if e != nil && db.failed(ctx, e, err) {
			continue
		}
		return nil, db.callError(ctx, p, g, err)
	}
}

// QueryRowContext is QueryContext for at most one row; its error, classified, comes from
// [Row.Scan] or [Row.Err].
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *Row {
	if db.closed.Load() {
		return &Row{err: ErrClosed}
	}
	q, a := db.dialect.RebindArgs(query, args)
	if isWrite(query) {
		p := db.primary.write
		gctx, g := p.guard(ctx)
		row := p.db.QueryRowContext(gctx, q, a...)
		g.done()
		if err := row.Err(); err != nil {
			return &Row{err: db.callError(ctx, p, g, err)}
		}
		db.wrote(ctx)
		return &Row{row: row}
	}
	for {
		e, p := db.route(ctx)
		gctx, g := p.guard(ctx)
		row := p.db.QueryRowContext(gctx, q, a...)
		g.done()
		err := row.Err()
		if err == nil {
			p.metrics.reads.Add(1)
			return &Row{row: row}
		}
		if e != nil && db.failed(ctx, e, err) {
			continue
		}
		return &Row{err: db.callError(ctx, p, g, err)}
	}
}

// Row is the result of [DB.QueryRowContext].
type Row struct {
	row *sql.Row
	err error
}

// Scan copies the row's columns into dest. With no row it returns ErrNotFound (sql.ErrNoRows);
// other errors are classified.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return Classify(r.row.Scan(dest...))
}

// Err returns the error of running the query, without scanning.
func (r *Row) Err() error {
	if r.err != nil {
		return r.err
	}
	return Classify(r.row.Err())
}

// Ping checks that the primary answers (both of SQLite's pools), with errors worded as Open's.
func (db *DB) Ping(ctx context.Context) error {
	if db.closed.Load() {
		return ErrClosed
	}
	return db.primary.ping(ctx)
}

// PingContext is Ping, so that a DB is a health.Pinger: health.WithDB("database", db).
func (db *DB) PingContext(ctx context.Context) error { return db.Ping(ctx) }

func (e *endpoint) ping(ctx context.Context) error {
	pools := []*sqlPool{e.write}
	if e.read != e.write {
		pools = append(pools, e.read)
	}
	for _, p := range pools {
		gctx, g := p.guard(ctx)
		err := p.db.PingContext(gctx)
		g.done()
		if err != nil {
			if g.timedOut() {
				return p.timeoutError()
			}
			return connectError(e.name, e.dialect, e.user, err)
		}
	}
	return nil
}

// Close stops the replica checks and closes every pool. Calls after the first return nil.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() {
		db.closed.Store(true)
		if db.stop != nil {
			db.stop()
		}
		db.checkers.Wait()
		err = db.closeEndpoints()
	})
	return err
}

func (db *DB) closeEndpoints() error {
	var errs []error
	if db.primary != nil {
		errs = append(errs, db.primary.close())
	}
	for _, r := range db.replicas {
		errs = append(errs, r.close())
	}
	return errors.Join(errs...)
}

// callError classifies the error of a call made through one of DB's methods, and says so when
// the call waited acquire_timeout for a connection in vain.
func (db *DB) callError(ctx context.Context, p *sqlPool, g *guardCtx, err error) error {
	if g.timedOut() {
		return p.timeoutError()
	}
	if errors.Is(err, sql.ErrConnDone) && db.closed.Load() {
		return ErrClosed
	}
	_ = ctx
	return Classify(err)
}

func (p *sqlPool) timeoutError() error {
	return &PoolTimeoutError{Database: p.name, Pool: p.label, Max: p.max, Waited: p.acquireTimeout.String()}
}

// Stats is a snapshot of the DB's pools.
type Stats struct {
	Dialect Dialect
	Pools   []PoolStats
	// TxRetries counts transactions WithTx ran again after a conflict.
	TxRetries uint64
}

// PoolStats describes one pool.
type PoolStats struct {
	// Pool is the pool's label: "primary", "primary-read", "primary-pgx", "replica 1", …
	Pool string
	// Database is the pool's URL, password masked.
	Database string
	// Open connections, of which InUse are in use and Idle idle; Max is the most it opens.
	Open, InUse, Idle, Max int
	// WaitCount is how often a caller had to wait for a connection, WaitDuration their total wait.
	WaitCount    int64
	WaitDuration time.Duration
	// AcquireTimeouts counts callers that gave up after acquire_timeout.
	AcquireTimeouts uint64
	// Reads counts reads DB's query methods routed to the pool.
	Reads uint64
}

// Stats returns the state of every pool, the primary's first.
func (db *DB) Stats() Stats {
	s := Stats{Dialect: db.dialect, TxRetries: db.metrics.txRetries.Load()}
	for _, e := range append([]*endpoint{db.primary}, db.replicas...) {
		s.Pools = append(s.Pools, e.stats()...)
	}
	return s
}

func (e *endpoint) stats() []PoolStats {
	sqlStats := func(p *sqlPool) PoolStats {
		st := p.db.Stats()
		return PoolStats{Pool: p.label, Database: p.name, Open: st.OpenConnections, InUse: st.InUse, Idle: st.Idle,
			Max: p.max, WaitCount: st.WaitCount, WaitDuration: st.WaitDuration,
			AcquireTimeouts: p.metrics.acquireTimeouts.Load(), Reads: p.metrics.reads.Load()}
	}
	out := []PoolStats{sqlStats(e.write)}
	if e.read != e.write {
		out = append(out, sqlStats(e.read))
	}
	if e.pgx != nil {
		st := e.pgx.Stat()
		out = append(out, PoolStats{Pool: e.label + "-pgx", Database: e.name, Open: int(st.TotalConns()),
			InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()), Max: int(st.MaxConns()),
			WaitCount: st.EmptyAcquireCount(), WaitDuration: st.EmptyAcquireWaitTime(),
			AcquireTimeouts: e.pgxm.acquireTimeouts.Load()})
	}
	return out
}
