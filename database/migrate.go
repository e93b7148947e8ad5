package database

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc64"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// DefaultMigrationsTable is the goose version table of a service's own migrations. A package
// that ships migrations of its own (jobs, eventstore) must use a table of its own —
// "shoal_jobs_migrations" — so that its versions and the service's never mix.
const DefaultMigrationsTable = "goose_db_version"

// MigrateOpt configures a [Migrator].
type MigrateOpt interface{ applyMigrate(*migrator) }

type migrateOptFunc func(*migrator)

func (f migrateOptFunc) applyMigrate(m *migrator) { f(m) }

// WithTable sets the version table. Defaults to DefaultMigrationsTable.
func WithTable(name string) MigrateOpt {
	return migrateOptFunc(func(m *migrator) { m.table = name })
}

// WithProgress calls fn after each migration applied or rolled back.
func WithProgress(fn func(MigrationResult)) MigrateOpt {
	return migrateOptFunc(func(m *migrator) { m.progress = fn })
}

// MigrationResult is one migration applied or rolled back.
type MigrationResult struct {
	// Version and File (its path within the migrations) of the migration.
	Version int64
	File    string
	// Direction is "up" or "down".
	Direction string
	Duration  time.Duration
}

// MigrationStatus is one migration and whether it is applied.
type MigrationStatus struct {
	Version   int64
	File      string
	Applied   bool
	AppliedAt time.Time // zero when pending
}

// MigrationError is a migration that failed: which file, which line of it the failing
// statement starts at (or, on PostgreSQL, the line the server points at), and the driver's
// error. Migrations before it in the same run stay applied; the failing one, run in a
// transaction unless it says -- +goose NO TRANSACTION, leaves nothing behind.
type MigrationError struct {
	File    string
	Line    int // 0 when unknown
	Version int64
	Err     error
}

func (e *MigrationError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("migration %s failed: %v; fix the statement and run the migrations again", loc, e.Err)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// Migrator applies the SQL migrations of one file system to a DB, with goose v3.
//
// The file system holds goose SQL files (00001_create_jobs.sql with -- +goose Up and
// -- +goose Down sections) at its root, or, when the SQL differs per dialect, in
// sub-directories named for the dialect — postgres/, mysql/, sqlite/ — of which the DB's is
// used. Embed them:
//
//	//go:embed migrations
//	var migrations embed.FS
//	sub, _ := fs.Sub(migrations, "migrations")
//	err := database.Migrate(ctx, db, sub, database.WithTable("shoal_jobs_migrations"))
//
// Concurrent Migrators on the same database and table (several instances starting at once)
// take turns: a PostgreSQL advisory lock, a MySQL GET_LOCK, a file lock beside a SQLite file.
type Migrator struct {
	m *migrator
}

type migrator struct {
	db       *DB
	fsys     fs.FS
	dir      string // the dialect's sub-directory, or "."
	table    string
	progress func(MigrationResult)
	provider *goose.Provider
	tracker  *stmtTracker
}

// NewMigrator reads the migrations of fsys for db's dialect.
func NewMigrator(db *DB, fsys fs.FS, opts ...MigrateOpt) (*Migrator, error) {
	m := &migrator{db: db, fsys: fsys, dir: ".", table: DefaultMigrationsTable}
	for _, o := range opts {
		o.applyMigrate(m)
	}
	if !validTable.MatchString(m.table) {
		return nil, fmt.Errorf("migrations table %q is not a plain SQL name; use letters, digits and underscores", m.table)
	}
	sub := fsys
	if st, err := fs.Stat(fsys, string(db.dialect)); err == nil && st.IsDir() {
		m.dir = string(db.dialect)
		s, err := fs.Sub(fsys, m.dir)
		if err != nil {
			return nil, err
		}
		sub = s
	}
	var dialect goose.Dialect
	var locker lock.SessionLocker
	id := int64(crc64.Checksum([]byte(m.table), crc64.MakeTable(crc64.ECMA)) >> 1)
	switch db.dialect {
	case Postgres:
		dialect = goose.DialectPostgres
		l, err := lock.NewPostgresSessionLocker(lock.WithLockID(id), lock.WithLockTimeout(1, 600))
		if err != nil {
			return nil, err
		}
		locker = l
	case MySQL:
		dialect = goose.DialectMySQL
		locker = mysqlLocker{name: "shoal_migrate_" + m.table}
	case SQLite:
		dialect = goose.DialectSQLite3
		if db.primary.file != "" {
			locker = &fileLocker{path: db.primary.file + "." + m.table + ".lock"}
		}
	}
	m.tracker = &stmtTracker{}
	popts := []goose.ProviderOption{
		goose.WithTableName(m.table),
		goose.WithVerbose(true),
		goose.WithSlog(slog.New(m.tracker)),
		goose.WithDisableGlobalRegistry(true),
	}
	if locker != nil {
		popts = append(popts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.SQL(), sub, popts...)
	if err != nil {
		if errors.Is(err, goose.ErrNoMigrations) {
			return nil, fmt.Errorf("no migrations found in %s: add NNNNN_name.sql files (shoal db migrate create NAME) or point at the right directory", m.where())
		}
		return nil, fmt.Errorf("reading the migrations in %s: %w", m.where(), err)
	}
	m.provider = p
	return &Migrator{m: m}, nil
}

var validTable = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func (m *migrator) where() string {
	if m.dir == "." {
		return "the migrations directory"
	}
	return "the " + m.dir + "/ migrations"
}

// Migrate applies every pending migration of fsys to db (see [Migrator]).
func Migrate(ctx context.Context, db *DB, fsys fs.FS, opts ...MigrateOpt) error {
	m, err := NewMigrator(db, fsys, opts...)
	if err != nil {
		return err
	}
	_, err = m.Up(ctx)
	return err
}

// Up applies every pending migration, one at a time in version order, and returns those it
// applied. On a failure it returns the ones applied before it and a *MigrationError.
func (mg *Migrator) Up(ctx context.Context) ([]MigrationResult, error) {
	m := mg.m
	var done []MigrationResult
	for {
		r, err := m.provider.UpByOne(ctx)
		if errors.Is(err, goose.ErrNoNextVersion) {
			return done, nil
		}
		if err != nil {
			return done, m.failure(err)
		}
		res := m.result(r)
		done = append(done, res)
		if m.progress != nil {
			m.progress(res)
		}
	}
}

// Down rolls back the latest applied migration. It returns nil and no error when none is
// applied.
func (mg *Migrator) Down(ctx context.Context) (*MigrationResult, error) {
	m := mg.m
	r, err := m.provider.Down(ctx)
	if errors.Is(err, goose.ErrNoNextVersion) {
		return nil, nil
	}
	if err != nil {
		return nil, m.failure(err)
	}
	res := m.result(r)
	if m.progress != nil {
		m.progress(res)
	}
	return &res, nil
}

// Status lists every migration and whether it is applied.
func (mg *Migrator) Status(ctx context.Context) ([]MigrationStatus, error) {
	st, err := mg.m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the migration status from %s (table %s): %w", mg.m.db.Name(), mg.m.table, Classify(err))
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationStatus{Version: s.Source.Version, File: mg.m.file(s.Source.Path),
			Applied: s.State == goose.StateApplied, AppliedAt: s.AppliedAt})
	}
	return out, nil
}

// Version returns the highest applied version, 0 when none.
func (mg *Migrator) Version(ctx context.Context) (int64, error) {
	return mg.m.provider.GetDBVersion(ctx)
}

func (m *migrator) file(p string) string {
	if m.dir == "." {
		return p
	}
	return path.Join(m.dir, p)
}

func (m *migrator) result(r *goose.MigrationResult) MigrationResult {
	return MigrationResult{Version: r.Source.Version, File: m.file(r.Source.Path), Direction: r.Direction, Duration: r.Duration}
}

// failure turns goose's error into a MigrationError naming the file and line.
func (m *migrator) failure(err error) error {
	var pe *goose.PartialError
	if !errors.As(err, &pe) || pe.Failed == nil || pe.Failed.Source == nil {
		return fmt.Errorf("migrating %s: %w", m.db.Name(), Classify(err))
	}
	src := pe.Failed.Source
	me := &MigrationError{File: m.file(src.Path), Version: src.Version, Err: Classify(innermostDriver(pe.Err))}
	stmt, source := m.tracker.last()
	if stmt != "" && filepath.Base(source) == filepath.Base(src.Path) {
		if body, rerr := fs.ReadFile(m.subFS(), src.Path); rerr == nil {
			me.Line = lineOf(body, stmt, pe.Err)
		}
	}
	return me
}

func (m *migrator) subFS() fs.FS {
	if m.dir == "." {
		return m.fsys
	}
	s, err := fs.Sub(m.fsys, m.dir)
	if err != nil {
		return m.fsys
	}
	return s
}

// innermostDriver drops goose's wrapping ("failed to run SQL migration: …") down to the
// driver's error, which says what is wrong with the statement.
func innermostDriver(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// lineOf finds stmt in the migration file and returns the line it starts on, moved on to the
// line PostgreSQL's error position points at when there is one.
func lineOf(body []byte, stmt string, err error) int {
	stmt = strings.TrimSpace(stmt)
	i := bytes.Index(body, []byte(stmt))
	if i < 0 {
		// goose may have trimmed lines; look for the first line of the statement.
		first, _, _ := strings.Cut(stmt, "\n")
		if i = bytes.Index(body, []byte(strings.TrimSpace(first))); i < 0 {
			return 0
		}
	}
	line := 1 + bytes.Count(body[:i], []byte("\n"))
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Position > 0 {
		runes := []rune(stmt)
		if int(pg.Position) <= len(runes) {
			line += strings.Count(string(runes[:pg.Position-1]), "\n")
		}
	}
	return line
}

// stmtTracker is a slog.Handler that keeps the statement goose ran last, so a failure can be
// located in its file.
type stmtTracker struct {
	mu     sync.Mutex
	stmt   string
	source string
}

func (t *stmtTracker) Enabled(context.Context, slog.Level) bool { return true }

func (t *stmtTracker) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "executing statement" {
		return nil
	}
	var stmt, source string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "statement":
			stmt = a.Value.String()
		case "source":
			source = a.Value.String()
		}
		return true
	})
	t.mu.Lock()
	t.stmt, t.source = stmt, source
	t.mu.Unlock()
	return nil
}

func (t *stmtTracker) WithAttrs([]slog.Attr) slog.Handler { return t }
func (t *stmtTracker) WithGroup(string) slog.Handler      { return t }

func (t *stmtTracker) last() (string, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stmt, t.source
}

// mysqlLocker takes a MySQL named lock for the session. goose's own MySQL locker keeps a lock
// row alive with a heartbeat goroutine; GET_LOCK is MySQL's session lock, released by the
// server when the connection ends, which is all a migration run needs.
type mysqlLocker struct{ name string }

func (l mysqlLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 1)", l.name).Scan(&got); err != nil {
			return fmt.Errorf("taking the migration lock %s: %w", l.name, err)
		}
		if got.Valid && got.Int64 == 1 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("waiting for the migration lock %s (another instance is migrating): %w", l.name, err)
		}
	}
}

func (l mysqlLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT RELEASE_LOCK(?)", l.name)
	return err
}

// CreateMigration writes a new, empty goose SQL migration NAME into dir, versioned by the
// time (20260102150405_name.sql, goose's default), and returns its path. It is written here
// rather than with goose.Create, which logs through goose's global logger.
func CreateMigration(dir, name string, now time.Time) (string, error) {
	clean := strings.Trim(nonName.ReplaceAllString(strings.ToLower(name), "_"), "_")
	if clean == "" {
		return "", fmt.Errorf("migration name %q has no letters or digits; name it for what it does, e.g. add_users", name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the migrations directory: %w", err)
	}
	p := filepath.Join(dir, now.UTC().Format("20060102150405")+"_"+clean+".sql")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", p, err)
	}
	_, err = f.WriteString(migrationTemplate)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return p, err
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

const migrationTemplate = `-- +goose Up
-- Statements run in order, in one transaction. Wrap a statement that has semicolons inside
-- (a function, a trigger) in -- +goose StatementBegin and -- +goose StatementEnd.

-- +goose Down
-- Undo the Up section, in reverse order.
`
