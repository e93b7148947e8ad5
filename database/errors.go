package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors. Errors returned by [DB]'s methods and by [DB.WithTx] match them with
// errors.Is; an error from one of the raw accessors ([DB.SQL], [DB.Pool], …) matches them once
// passed through [Classify]. The driver's own error stays reachable with errors.As
// (*pgconn.PgError, *mysql.MySQLError, *sqlite.Error).
var (
	// ErrNotFound is returned when a query that must return a row returned none. It is
	// sql.ErrNoRows itself, so errors.Is(err, database.ErrNotFound) holds for the error of
	// (*sql.Row).Scan and of pgx's Row.Scan (pgx.ErrNoRows wraps sql.ErrNoRows) without Classify.
	ErrNotFound = sql.ErrNoRows

	// ErrUniqueViolation is returned when a statement would duplicate a unique key or primary
	// key (PostgreSQL 23505, MySQL 1062, SQLite SQLITE_CONSTRAINT_UNIQUE/PRIMARYKEY, MongoDB
	// E11000).
	ErrUniqueViolation = errors.New("unique constraint violated")

	// ErrForeignKeyViolation is returned when a statement would break a foreign key
	// (PostgreSQL 23503, MySQL 1451/1452, SQLite SQLITE_CONSTRAINT_FOREIGNKEY).
	ErrForeignKeyViolation = errors.New("foreign key constraint violated")

	// ErrNotNullViolation is returned when a statement would store NULL in a NOT NULL column
	// (PostgreSQL 23502, MySQL 1048/1364, SQLite SQLITE_CONSTRAINT_NOTNULL).
	ErrNotNullViolation = errors.New("not-null constraint violated")

	// ErrCheckViolation is returned when a statement would break a CHECK constraint
	// (PostgreSQL 23514, MySQL 3819, SQLite SQLITE_CONSTRAINT_CHECK).
	ErrCheckViolation = errors.New("check constraint violated")

	// ErrConflict is returned when a transaction lost to a concurrent one and running it again
	// may succeed: a serialization failure (PostgreSQL 40001), a deadlock (PostgreSQL 40P01,
	// MySQL 1213) or a locked database (SQLITE_BUSY, SQLITE_LOCKED). [DB.WithTx] retries these
	// itself and returns ErrConflict only when its attempts are used up.
	ErrConflict = errors.New("transaction conflict")

	// ErrPoolExhausted is returned when no connection of the pool became free within
	// database.acquire_timeout (see [PoolTimeoutError]).
	ErrPoolExhausted = errors.New("connection pool exhausted")

	// ErrUnreachable is returned by Open and Ping when the database's host cannot be reached.
	ErrUnreachable = errors.New("database unreachable")

	// ErrAuth is returned by Open and Ping when the database refuses the credentials.
	ErrAuth = errors.New("database refused the credentials")

	// ErrBadURL is returned by Open when database.url cannot be used: an unknown scheme, a
	// malformed URL, a parameter the driver rejects.
	ErrBadURL = errors.New("invalid database URL")

	// ErrClosed is returned by every method of a DB after Close.
	ErrClosed = errors.New("database is closed")
)

// Error is a classified database error: Kind is one of the sentinel errors above, Code the
// backend's own code, Err the driver's error. errors.Is matches both Kind and anything Err
// matches; errors.As reaches the driver's error type.
type Error struct {
	// Kind is the sentinel error this error is, e.g. ErrUniqueViolation.
	Kind error
	// Code is the backend's code: a SQLSTATE ("23505"), a MySQL error number ("1062"), a SQLite
	// extended result code name ("SQLITE_CONSTRAINT_UNIQUE"), a MongoDB code ("11000").
	Code string
	// Constraint is the name of the violated constraint, when the backend reports it
	// (PostgreSQL).
	Constraint string
	// Err is the driver's error.
	Err error
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Err.Error() }

// Unwrap returns Kind and Err, so errors.Is and errors.As see both.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// PoolTimeoutError is returned when a caller waited database.acquire_timeout for a connection and
// none became free. It matches ErrPoolExhausted.
type PoolTimeoutError struct {
	// Database is the database's URL with its password masked.
	Database string
	// Pool names the pool: "primary", "primary-read" (SQLite's read pool), "replica 1", …
	Pool string
	// Max is the pool's size, Waited how long the caller waited.
	Max    int
	Waited string
}

func (e *PoolTimeoutError) Error() string {
	return fmt.Sprintf("database %s: no connection of the %s pool (%d connections) became free within %s; "+
		"raise database.max_connections or database.acquire_timeout, or hold connections for less time (close rows, keep transactions short)",
		e.Database, e.Pool, e.Max, e.Waited)
}

// Is reports whether target is ErrPoolExhausted.
func (e *PoolTimeoutError) Is(target error) bool { return target == ErrPoolExhausted }

// kindError is an error whose message is a whole sentence of its own but which matches a
// sentinel (and its cause) with errors.Is.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// because sets the cause errors.Is and errors.As reach, without printing it.
func because(err, cause error) error {
	if k, ok := err.(*kindError); ok && k.cause == nil {
		k.cause = cause
	}
	return err
}

// errorf returns a kindError; a %w verb in format names the cause.
func errorf(kind error, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &kindError{kind: kind, msg: err.Error(), cause: errors.Unwrap(err)}
}

// Classify returns err as an [*Error] when it is a database error this package recognises
// (unique, foreign-key, not-null and check violations, conflicts), so that errors.Is(err,
// database.ErrUniqueViolation) and the like hold; any other error, and nil, is returned
// unchanged. Use it on errors from the raw accessors ([DB.SQL], [DB.Pool], a *sql.Tx);
// errors from DB's own methods are classified already.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if kind, code, constraint := classify(err); kind != nil {
		return &Error{Kind: kind, Code: code, Constraint: constraint, Err: err}
	}
	return err
}

// IsRetryable reports whether err is a transaction conflict that running the transaction again
// may resolve (ErrConflict, or a driver error that classifies as one).
func IsRetryable(err error) bool {
	if errors.Is(err, ErrConflict) {
		return true
	}
	kind, _, _ := classify(err)
	return kind == ErrConflict
}

func classify(err error) (kind error, code, constraint string) {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505":
			kind = ErrUniqueViolation
		case "23503":
			kind = ErrForeignKeyViolation
		case "23502":
			kind = ErrNotNullViolation
		case "23514":
			kind = ErrCheckViolation
		case "40001", "40P01":
			kind = ErrConflict
		}
		return kind, pg.Code, pg.ConstraintName
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		switch my.Number {
		case 1062, 1586:
			kind = ErrUniqueViolation
		case 1451, 1452, 1216, 1217:
			kind = ErrForeignKeyViolation
		case 1048, 1364:
			kind = ErrNotNullViolation
		case 3819:
			kind = ErrCheckViolation
		case 1213:
			kind = ErrConflict
		}
		return kind, strconv.Itoa(int(my.Number)), ""
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		c := lite.Code()
		switch c {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			kind = ErrUniqueViolation
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			kind = ErrForeignKeyViolation
		case sqlite3.SQLITE_CONSTRAINT_NOTNULL:
			kind = ErrNotNullViolation
		case sqlite3.SQLITE_CONSTRAINT_CHECK:
			kind = ErrCheckViolation
		default:
			if c&0xff == sqlite3.SQLITE_BUSY || c&0xff == sqlite3.SQLITE_LOCKED {
				kind = ErrConflict
			}
		}
		name := sqlite.ErrorCodeString[c]
		if name == "" {
			name = strconv.Itoa(c)
		}
		return kind, name, ""
	}
	return nil, "", ""
}

// isConnError reports whether err says the connection or server failed (rather than the
// statement), so that a read may be tried again elsewhere: a dial or I/O error, a broken
// connection, a server shutting down.
func isConnError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now.
		return len(pg.Code) == 5 && (pg.Code[:2] == "08" || pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P03")
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}
