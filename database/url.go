package database

import (
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/shoal-sh/shoal/config"
)

// Redact returns raw with the password of its user info, and the values of query parameters
// whose names look secret (password, sslpassword, token, …), replaced by [redacted]. A value
// that does not parse as a URL has anything between "://" and "@" after the first colon masked.
// Every error and log line of this package names a database by its redacted URL.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil && strings.Contains(raw, "@") {
		// Not a URL with user info Go can parse: mask whatever looks like :password@.
		return looksLikePassword.ReplaceAllString(raw, ":"+config.Redacted+"@")
	}
	changed := false
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "__shoal_redacted__")
			changed = true
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if config.IsSecretName(k) {
				q.Set(k, "__shoal_redacted__")
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	out := raw
	if changed {
		out = strings.ReplaceAll(u.String(), "__shoal_redacted__", config.Redacted)
	}
	// Whatever the parser made of it, nothing shaped like :password@ is left.
	return looksLikePassword.ReplaceAllString(out, ":"+config.Redacted+"@")
}

var looksLikePassword = regexp.MustCompile(`:[^:@/]+@`)

// DialectOf tells the dialect of a database URL from its scheme: postgres:// (postgresql://,
// pgx://), mysql:// (mariadb://), sqlite:// (sqlite3://, file:), mongodb:// (mongodb+srv://).
// Any other URL returns an ErrBadURL error, one sentence with the password masked.
func DialectOf(raw string) (Dialect, error) { return dialectOf("", raw) }

// dialectOf tells the dialect from database.type, else from the URL's scheme.
func dialectOf(typ, raw string) (Dialect, error) {
	switch strings.ToLower(typ) {
	case "postgres", "postgresql":
		return Postgres, nil
	case "mysql", "mariadb":
		return MySQL, nil
	case "sqlite", "sqlite3":
		return SQLite, nil
	case "mongodb", "mongo":
		return MongoDB, nil
	case "":
	default:
		return "", errorf(ErrBadURL, "database.type %q is not a database shoal opens; use postgres, mysql, sqlite or mongodb", typ)
	}
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, _, ok = strings.Cut(raw, ":")
	}
	if !ok || scheme == "" {
		return "", errorf(ErrBadURL, "database %q has no scheme; start it with postgres://, mysql://, sqlite:// or mongodb://", Redact(raw))
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql", "pgx":
		return Postgres, nil
	case "mysql", "mariadb":
		return MySQL, nil
	case "sqlite", "sqlite3", "file":
		return SQLite, nil
	case "mongodb", "mongodb+srv":
		return MongoDB, nil
	}
	return "", errorf(ErrBadURL, "database %s has the unknown scheme %q; use postgres://, mysql://, sqlite:// or mongodb:// (or set database.type)", Redact(raw), looksLikePassword.ReplaceAllString(scheme, ":"+config.Redacted+"@"))
}

// parseNetURL parses a postgres:// or mysql:// URL strictly enough that a typo is reported
// here, in one sentence, rather than as a driver's dial error.
func parseNetURL(raw, example string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		msg := err.Error()
		if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
		return nil, errorf(ErrBadURL, "database %s is malformed (%s); write it as %s", Redact(raw), msg, example)
	}
	if u.Opaque != "" {
		return nil, errorf(ErrBadURL, "database %s is malformed (no // after the scheme); write it as %s", Redact(raw), example)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, errorf(ErrBadURL, "database %s has the invalid port %q; write it as %s", Redact(raw), p, example)
		}
	}
	if strings.Contains(u.Host, ",") {
		return u, nil // several hosts (PostgreSQL failover lists): the driver parses them
	}
	if h := u.Hostname(); h != "" && strings.ContainsAny(h, " /\\") {
		return nil, errorf(ErrBadURL, "database %s has the invalid host %q; write it as %s", Redact(raw), h, example)
	}
	return u, nil
}

// withCredentials fills in user and password from database.user and database.password when
// the URL has none.
func withCredentials(u *url.URL, cfg config.Database) {
	if u.User == nil && cfg.User != "" {
		if cfg.Password != "" {
			u.User = url.UserPassword(cfg.User, cfg.Password)
		} else {
			u.User = url.User(cfg.User)
		}
	}
}

const (
	postgresExample = "postgres://user:password@host:5432/name?sslmode=disable"
	mysqlExample    = "mysql://user:password@host:3306/name"
	sqliteExample   = "sqlite:///absolute/path/app.db or sqlite://relative/app.db"
)

// mysqlConfig turns mysql://user:pass@host:port/db?params into go-sql-driver's Config. Every
// parameter the driver knows (parseTime, loc, tls, charset, collation, timeout, readTimeout,
// writeTimeout, …) is kept; others are sent as session variables, as the driver does. socket=
// connects over a Unix socket. parseTime defaults to true, so DATETIME scans into time.Time as
// on the other backends; timeout (the dial timeout) defaults to connect_timeout.
func mysqlConfig(raw string, cfg config.Database) (*mysql.Config, error) {
	u, err := parseNetURL(raw, mysqlExample)
	if err != nil {
		return nil, err
	}
	withCredentials(u, cfg)
	q := u.Query()
	netw, addr := "tcp", u.Host
	if s := q.Get("socket"); s != "" {
		netw, addr = "unix", s
		q.Del("socket")
	} else if addr == "" {
		addr = "127.0.0.1:3306"
	} else if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	dsn := netw + "(" + addr + ")/"
	if len(q) > 0 {
		dsn += "?" + q.Encode()
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, errorf(ErrBadURL, "database %s has a parameter the MySQL driver rejects (%s); see https://github.com/go-sql-driver/mysql#parameters", Redact(raw), strings.TrimPrefix(err.Error(), "invalid DSN: "))
	}
	mc.DBName = strings.TrimPrefix(u.Path, "/")
	if u.User != nil {
		mc.User = u.User.Username()
		mc.Passwd, _ = u.User.Password()
	}
	if !q.Has("parseTime") {
		mc.ParseTime = true
	}
	if !q.Has("timeout") {
		mc.Timeout = cfg.ConnectTimeout.D()
	}
	return mc, nil
}

// sqliteFile is a parsed sqlite:// URL.
type sqliteFile struct {
	path   string     // file path, or ":memory:"
	memory bool       // one in-memory database: a single connection serves reads and writes
	query  url.Values // the URL's own parameters, passed to the driver
}

// parseSQLite accepts sqlite:///abs/app.db, sqlite://rel/app.db, sqlite:app.db,
// sqlite://:memory:, file:app.db and a bare path, each with optional ?params for the driver.
func parseSQLite(raw string) (sqliteFile, error) {
	rest := raw
	if scheme, r, ok := strings.Cut(raw, ":"); ok && !strings.ContainsAny(scheme, `/\.`) && len(scheme) > 1 {
		rest = strings.TrimPrefix(r, "//")
	}
	path, rawQuery, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return sqliteFile{}, errorf(ErrBadURL, "database %s has malformed parameters (%s); write it as %s", Redact(raw), err, sqliteExample)
	}
	if p, err := url.PathUnescape(path); err == nil {
		path = p
	}
	f := sqliteFile{path: path, query: q}
	if path == ":memory:" || path == "" && q.Get("mode") == "memory" || q.Get("mode") == "memory" {
		f.memory, f.path = true, ":memory:"
		q.Del("mode")
		return f, nil
	}
	if path == "" {
		return sqliteFile{}, errorf(ErrBadURL, "database %s names no file; write it as %s (or sqlite://:memory:)", Redact(raw), sqliteExample)
	}
	f.path = filepath.Clean(path)
	return f, nil
}

// dsn returns the modernc.org/sqlite DSN of the file: shoal's settings first (WAL, busy_timeout,
// foreign keys, synchronous=NORMAL, UTC times written in SQLite's own format), each left out
// when the URL sets it itself.
func (f sqliteFile) dsn(busy time.Duration, writer bool) string {
	q := url.Values{}
	for k, v := range f.query {
		q[k] = v
	}
	mentions := func(name string) bool {
		for k, vs := range f.query {
			if strings.Contains(strings.ToLower(k), name) {
				return true
			}
			for _, v := range vs {
				if strings.Contains(strings.ToLower(v), name) {
					return true
				}
			}
		}
		return false
	}
	set := func(key, name, value string) {
		if !mentions(name) {
			q.Set(key, value)
		}
	}
	if !f.memory {
		set("_journal_mode", "journal_mode", "WAL")
		set("_synchronous", "synchronous", "NORMAL")
	}
	set("_busy_timeout", "busy_timeout", strconv.FormatInt(max(busy.Milliseconds(), 1), 10))
	set("_foreign_keys", "foreign_keys", "1")
	set("_time_format", "_time_format", "sqlite")
	set("_timezone", "_timezone", "UTC")
	if writer {
		set("_txlock", "_txlock", "immediate")
	} else {
		set("_query_only", "query_only", "1")
	}
	return f.path + "?" + q.Encode()
}
