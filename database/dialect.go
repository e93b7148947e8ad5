package database

import (
	"strconv"
	"strings"
)

// Dialect names the SQL a database speaks. Branch on it where one statement cannot serve every
// backend (upserts, identity columns, locking clauses):
//
//	switch db.Dialect() {
//	case database.Postgres, database.SQLite:
//		q = `INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v`
//	case database.MySQL:
//		q = `INSERT INTO kv (k, v) VALUES ($1, $2) ON DUPLICATE KEY UPDATE v = VALUES(v)`
//	}
type Dialect string

// Dialects. The values are those of database.type in shoal.yml.
const (
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql" // MySQL and MariaDB
	SQLite   Dialect = "sqlite"
	MongoDB  Dialect = "mongodb" // opened by the database/mongo package, never by Open
)

// String returns the dialect's name.
func (d Dialect) String() string { return string(d) }

// Placeholder returns the n-th (1-based) bind parameter in the dialect: $n for PostgreSQL and
// SQLite, ? for MySQL.
func (d Dialect) Placeholder(n int) string {
	if d == MySQL {
		return "?"
	}
	return "$" + strconv.Itoa(n)
}

// Rebind rewrites the $1, $2, … placeholders of query for the dialect: unchanged for PostgreSQL,
// ?1, ?2, … for SQLite (its numbered form, so a parameter may be used twice and in any order),
// ? for MySQL. Placeholders inside string literals, quoted identifiers and comments are left
// alone.
//
// MySQL's ? is positional: a query that uses a parameter twice or out of order needs its
// arguments repeated and reordered as well, which [Dialect.RebindArgs] does. Rebind alone is
// right for MySQL only when $1…$n each appear once, in order — most statements.
func (d Dialect) Rebind(query string) string {
	if d == Postgres || d == "" || strings.IndexByte(query, '$') < 0 {
		return query
	}
	q, _ := d.rebind(query, nil, false)
	return q
}

// RebindArgs is [Dialect.Rebind] that also fits args to the rewritten query: for MySQL the
// arguments are repeated and reordered to follow the placeholders as they occur. For the other
// dialects args is returned unchanged. A placeholder with no matching argument is left for
// the driver to report.
func (d Dialect) RebindArgs(query string, args []any) (string, []any) {
	if d == Postgres || d == "" || strings.IndexByte(query, '$') < 0 {
		return query, args
	}
	return d.rebind(query, args, d == MySQL)
}

// rebind scans query once. It is hand-written rather than taken from sqlx: sqlx's Rebind turns
// ? into $n (the other way round) and does not skip literals or comments.
func (d Dialect) rebind(query string, args []any, reorder bool) (string, []any) {
	var (
		b       strings.Builder
		out     []any
		inOrder = true
		next    = 1
	)
	b.Grow(len(query))
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := skipQuoted(query, i, c, d == MySQL && c != '`')
			b.WriteString(query[i:j])
			i = j
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j
		case c == '#' && d == MySQL:
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			j := strings.Index(query[i+2:], "*/")
			if j < 0 {
				j = len(query)
			} else {
				j = i + 2 + j + 2
			}
			b.WriteString(query[i:j])
			i = j
		case c == '$' && i+1 < len(query) && isDigit(query[i+1]) && (i == 0 || !isIdent(query[i-1])):
			j := i + 1
			for j < len(query) && isDigit(query[j]) {
				j++
			}
			n, err := strconv.Atoi(query[i+1 : j])
			if err != nil || n == 0 {
				b.WriteString(query[i:j])
				i = j
				continue
			}
			if d == MySQL {
				b.WriteByte('?')
			} else {
				b.WriteString("?")
				b.WriteString(query[i+1 : j])
			}
			if reorder {
				if n != next {
					inOrder = false
				}
				next++
				if n <= len(args) {
					out = append(out, args[n-1])
				} else {
					inOrder = false
				}
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	if !reorder || (inOrder && len(out) == len(args)) {
		return b.String(), args
	}
	return b.String(), out
}

// skipQuoted returns the index just past the quoted run starting at query[i]. A doubled quote
// stays inside; with backslash, a backslash escapes the next byte (MySQL strings).
func skipQuoted(query string, i int, q byte, backslash bool) int {
	for j := i + 1; j < len(query); j++ {
		switch query[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if j+1 < len(query) && query[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(query)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || c >= 0x80
}
