package health

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// driverNames lists, per database kind, the database/sql driver names tried in order. The
// drivers are not imported here: a service links the one it uses (pgx's stdlib registers "pgx",
// lib/pq "postgres", go-sql-driver "mysql", modernc "sqlite", mattn "sqlite3"), so importing
// this package does not pull every database client into every binary.
var driverNames = map[string][]string{
	"postgres": {"pgx", "pgx/v5", "postgres"},
	"mysql":    {"mysql"},
	"sqlite":   {"sqlite", "sqlite3"},
}

var driverImports = map[string]string{
	"postgres": `import _ "github.com/jackc/pgx/v5/stdlib"`,
	"mysql":    `import _ "github.com/go-sql-driver/mysql"`,
	"sqlite":   `import _ "modernc.org/sqlite"`,
}

// pingDB is a database check over a pool it does not own.
func pingDB(db Pinger) Func {
	return func(ctx context.Context) error {
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		return nil
	}
}

// openDB opens a one-connection pool for a database check from a DSN URL. The pool is lazy:
// nothing is dialled until the first run.
func openDB(dsn string, interval time.Duration) (*sql.DB, error) {
	kind, driverDSN, err := driverDSN(dsn)
	if err != nil {
		return nil, err
	}
	registered := sql.Drivers()
	var driver string
	for _, name := range driverNames[kind] {
		if slices.Contains(registered, name) {
			driver = name
			break
		}
	}
	if driver == "" {
		return nil, fmt.Errorf("no %s driver is linked into this program (looked for %s); add %s",
			kind, strings.Join(driverNames[kind], ", "), driverImports[kind])
	}
	db, err := sql.Open(driver, driverDSN)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", redactDSN(dsn), err)
	}
	// One connection, kept between runs so a check costs a round trip, not a handshake; closed
	// after two idle intervals so a check that was disabled does not hold it.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(2 * interval)
	return db, nil
}

// driverDSN turns a database URL into the kind of database and the DSN its driver expects.
func driverDSN(dsn string) (kind, driverDSN string, err error) {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return "", "", fmt.Errorf("%q is not a database URL; start it with postgres://, mysql:// or sqlite://", redactDSN(dsn))
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return "postgres", dsn, nil
	case "mysql", "mariadb":
		return mysqlDSN(dsn)
	case "sqlite", "sqlite3", "file":
		// sqlite:///abs/app.db → /abs/app.db; sqlite://app.db → app.db (relative).
		return "sqlite", rest, nil
	case "mongodb", "mongodb+srv":
		return "", "", errors.New("MongoDB is not a database/sql database; check it with a custom check that pings the client")
	}
	return "", "", fmt.Errorf("cannot tell the database from %q; start it with postgres://, mysql:// or sqlite://", redactDSN(dsn))
}

// mysqlDSN turns mysql://user:pass@host:port/db?params into go-sql-driver's
// user:pass@tcp(host:port)/db?params.
func mysqlDSN(raw string) (string, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("parsing %s: %w", redactDSN(raw), errors.Unwrap(err))
	}
	var b strings.Builder
	if u.User != nil {
		b.WriteString(u.User.Username())
		if p, ok := u.User.Password(); ok {
			b.WriteString(":" + p)
		}
		b.WriteString("@")
	}
	host := u.Host
	if host == "" {
		host = "127.0.0.1:3306"
	} else if u.Port() == "" {
		host += ":3306"
	}
	b.WriteString("tcp(" + host + ")/" + strings.TrimPrefix(u.Path, "/"))
	if u.RawQuery != "" {
		b.WriteString("?" + u.RawQuery)
	}
	return "mysql", b.String(), nil
}

// redactDSN masks the password of a URL for error messages.
func redactDSN(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.Index(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "xxxxx" + raw[i:]
			}
		}
		return raw
	}
	return u.Redacted()
}
