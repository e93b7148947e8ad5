package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/shoal-sh/shoal/config"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqlPool is one database/sql pool and what guards its waits.
type sqlPool struct {
	label          string // "primary", "primary-read", "replica 1"
	name           string // the database's redacted URL
	db             *sql.DB
	max            int
	acquireTimeout time.Duration
	metrics        *poolMetrics
}

// endpoint is one database server (the primary or a replica) and its pools.
type endpoint struct {
	label   string
	name    string
	dialect Dialect
	pgx     *pgxpool.Pool // PostgreSQL only
	write   *sqlPool      // every backend; SQLite's single writer connection
	read    *sqlPool      // SQLite's read pool; otherwise write
	pgxm    *poolMetrics
	replica *replicaState // replicas only
	file    string        // SQLite: the database file ("" in memory)
	user    string        // the user the URL (or database.user) logs in as
}

func (e *endpoint) close() error {
	var errs []error
	if e.read != e.write {
		errs = append(errs, e.read.db.Close())
	}
	errs = append(errs, e.write.db.Close())
	if e.pgx != nil {
		e.pgx.Close()
	}
	return errors.Join(errs...)
}

// openEndpoint opens the pools of one server. Nothing is dialled here except by pgxpool for
// min_connections; ping does that.
func openEndpoint(ctx context.Context, label, raw string, d Dialect, cfg config.Database, m *metrics) (*endpoint, error) {
	e := &endpoint{label: label, name: Redact(raw), dialect: d, user: cfg.User}
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		e.user = u.User.Username()
	}
	newPool := func(label string, db *sql.DB, max int) *sqlPool {
		return &sqlPool{label: label, name: e.name, db: db, max: max, acquireTimeout: cfg.AcquireTimeout.D(), metrics: m.pool(label)}
	}
	switch d {
	case Postgres:
		pc, err := postgresConfig(raw, cfg)
		if err != nil {
			return nil, err
		}
		e.pgxm = m.pool(label + "-pgx")
		sqlConf := pc.ConnConfig.Copy()
		pc.ConnConfig.Tracer = &pgxTracer{m: e.pgxm, timeout: cfg.AcquireTimeout.D()}
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, errorf(ErrBadURL, "database %s: %s; write it as %s", e.name, unwrapMsg(err), postgresExample)
		}
		e.pgx = pool
		db := sql.OpenDB(guardConnector{stdlib.GetConnector(*sqlConf)})
		setSQLPool(db, cfg, int(pc.MaxConns))
		e.write = newPool(label, db, int(pc.MaxConns))
		e.read = e.write
	case MySQL:
		mc, err := mysqlConfig(raw, cfg)
		if err != nil {
			return nil, err
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, errorf(ErrBadURL, "database %s: %s; write it as %s", e.name, err, mysqlExample)
		}
		db := sql.OpenDB(guardConnector{conn})
		setSQLPool(db, cfg, cfg.MaxConnections)
		e.write = newPool(label, db, cfg.MaxConnections)
		e.read = e.write
	case SQLite:
		f, err := parseSQLite(raw)
		if err != nil {
			return nil, err
		}
		if !f.memory {
			e.file = f.path
			if dir := filepath.Dir(f.path); dir != "." {
				if err := os.MkdirAll(dir, 0o750); err != nil {
					return nil, fmt.Errorf("database %s: cannot create the directory %s (%v); create it or point database.url elsewhere", e.name, dir, errors.Unwrap(err))
				}
			}
		}
		wdb, err := openSQLite(f.dsn(cfg.AcquireTimeout.D(), true))
		if err != nil {
			return nil, errorf(ErrBadURL, "database %s: %s; write it as %s", e.name, err, sqliteExample)
		}
		// One writer connection: writers queue in the pool (bounded by acquire_timeout) instead
		// of failing with SQLITE_BUSY. It is kept open, so its settings are applied once.
		wdb.SetMaxOpenConns(1)
		wdb.SetMaxIdleConns(1)
		wdb.SetConnMaxIdleTime(0)
		wdb.SetConnMaxLifetime(0)
		e.write = newPool(label, wdb, 1)
		if f.memory {
			// Every connection to :memory: is a database of its own: one connection does it all.
			e.read = e.write
			break
		}
		rdb, err := openSQLite(f.dsn(cfg.AcquireTimeout.D(), false))
		if err != nil {
			wdb.Close()
			return nil, errorf(ErrBadURL, "database %s: %s; write it as %s", e.name, err, sqliteExample)
		}
		setSQLPool(rdb, cfg, cfg.MaxConnections)
		e.read = newPool(label+"-read", rdb, cfg.MaxConnections)
	default:
		return nil, errorf(ErrBadURL, "database %s is %s, which Open does not open; use github.com/shoal-sh/shoal/database/mongo", e.name, d)
	}
	return e, nil
}

func openSQLite(dsn string) (*sql.DB, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(guardConnector{c}), nil
}

// setSQLPool applies the pool settings to a database/sql pool. database/sql opens connections
// on demand and cannot keep min_connections open; it keeps up to max_connections idle instead,
// closed after idle_timeout.
func setSQLPool(db *sql.DB, cfg config.Database, max int) {
	db.SetMaxOpenConns(max)
	db.SetMaxIdleConns(max)
	db.SetConnMaxIdleTime(cfg.IdleTimeout.D())
	db.SetConnMaxLifetime(cfg.MaxLifetime.D())
}

// postgresConfig parses a postgres:// URL into pgxpool's config with the pool settings applied.
// Parameters pgx knows in the URL itself (pool_max_conns, connect_timeout, …) win over the
// settings of the database block.
func postgresConfig(raw string, cfg config.Database) (*pgxpool.Config, error) {
	if rest, ok := strings.CutPrefix(raw, "pgx://"); ok {
		raw = "postgres://" + rest
	}
	u, err := parseNetURL(raw, postgresExample)
	if err != nil {
		return nil, err
	}
	if s := strings.ToLower(u.Scheme); s != "postgres" && s != "postgresql" {
		return nil, errorf(ErrBadURL, "database %s is not a postgres:// URL; write it as %s", Redact(raw), postgresExample)
	}
	withCredentials(u, cfg)
	q := u.Query()
	pc, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		msg := unwrapMsg(err)
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, config.Redacted)
		}
		return nil, errorf(ErrBadURL, "database %s cannot be used (%s); write it as %s", Redact(raw), looksLikePassword.ReplaceAllString(msg, ":"+config.Redacted+"@"), postgresExample)
	}
	if !q.Has("pool_max_conns") {
		pc.MaxConns = int32(cfg.MaxConnections)
	}
	if !q.Has("pool_min_conns") {
		pc.MinConns = int32(min(cfg.MinConnections, int(pc.MaxConns)))
	}
	if !q.Has("pool_max_conn_idle_time") {
		pc.MaxConnIdleTime = cfg.IdleTimeout.D()
	}
	if !q.Has("pool_max_conn_lifetime") {
		pc.MaxConnLifetime = cfg.MaxLifetime.D()
	}
	if !q.Has("connect_timeout") {
		pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout.D()
	}
	return pc, nil
}

// unwrapMsg is the innermost useful message of a driver's parse error, which would otherwise
// repeat the connection string.
func unwrapMsg(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if inner := errors.Unwrap(pe); inner != nil {
			return inner.Error()
		}
	}
	return err.Error()
}

// pgxTracer bounds and measures pgxpool's acquires: pgxpool waits for a connection with the
// context TraceAcquireStart returns.
type pgxTracer struct {
	m       *poolMetrics
	timeout time.Duration
}

func (t *pgxTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (t *pgxTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceAcquireStart returns the context pgxpool waits with: guarded by acquire_timeout.
func (t *pgxTracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	if t.timeout <= 0 {
		return ctx
	}
	return newGuard(ctx, t.timeout, t.m)
}

func (t *pgxTracer) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, data pgxpool.TraceAcquireEndData) {
	g, ok := ctx.(*guardCtx)
	if !ok {
		return
	}
	if data.Err == nil {
		g.acquired()
		return
	}
	g.done()
}

// connectError turns an error of the first contact with a database into one sentence naming
// the database (password masked), what is wrong and how to fix it.
func connectError(name string, d Dialect, user string, err error) error {
	var pg *pgconn.PgError
	var my *mysql.MySQLError
	var lite *sqlite.Error
	switch {
	case errors.As(err, &pg) && (pg.Code == "28P01" || pg.Code == "28000"):
		return because(errorf(ErrAuth, "database %s refused the credentials of user %q (%s); check the user and password in database.url or DATABASE_URL", name, user, pg.Message), err)
	case errors.As(err, &pg) && pg.Code == "3D000":
		return fmt.Errorf("database %s: %s; create it (createdb) or fix the database name in database.url", name, pg.Message)
	case errors.As(err, &my) && (my.Number == 1045 || my.Number == 1044 || my.Number == 1698):
		return because(errorf(ErrAuth, "database %s refused the credentials of user %q (%s); check the user and password in database.url or DATABASE_URL", name, user, my.Message), err)
	case errors.As(err, &my) && my.Number == 1049:
		return fmt.Errorf("database %s: %s; create it (CREATE DATABASE) or fix the database name in database.url", name, my.Message)
	case errors.As(err, &lite) && lite.Code()&0xff == sqlite3.SQLITE_CANTOPEN:
		return fmt.Errorf("database %s: the file cannot be opened (%s); check that its directory exists and is writable", name, lite.Error())
	case errors.As(err, &lite) && lite.Code()&0xff == sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("database %s: the file is not a SQLite database (%s); point database.url at a SQLite file or a new path", name, lite.Error())
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("database %s: connecting was cancelled: %w", name, err)
	case errors.Is(err, context.DeadlineExceeded) || isConnError(err):
		return because(errorf(ErrUnreachable, "database %s cannot be reached (%s); check that the server is running and that database.url names the right host and port", name, innermost(err)), err)
	}
	if d == SQLite {
		return fmt.Errorf("database %s: %w", name, err)
	}
	return fmt.Errorf("database %s: %w; check database.url", name, err)
}

// innermost is the root cause's message (a dial error's "connection refused"), without the
// layers that repeat the address.
func innermost(err error) string {
	msg := err.Error()
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
		if m := err.Error(); m != "" {
			msg = m
		}
	}
	return msg
}
