package database

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
)

// A session groups the calls of one unit of work — typically one HTTP request — for
// read-your-writes: once a write was made with a session's context, its reads go to the
// primary for database.read_your_writes, so a user never misses what they just wrote because a
// replica is behind. Without a session in the context, reads are routed by replica health and
// lag alone.
type session struct{ lastWrite atomic.Int64 } // UnixNano of the DB's clock; 0: none

type sessionKey struct{}

// NewSession returns ctx with a new read-your-writes session, or ctx itself when it has one.
func NewSession(ctx context.Context) context.Context {
	if _, ok := ctx.Value(sessionKey{}).(*session); ok {
		return ctx
	}
	return context.WithValue(ctx, sessionKey{}, &session{})
}

// Middleware gives every request's context a read-your-writes session.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(NewSession(r.Context())))
	})
}

type primaryKey struct{}

// OnPrimary returns ctx marked so that DB's reads made with it go to the primary: for a read
// that must see every committed write (a uniqueness check before an insert, say).
func OnPrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, primaryKey{}, true)
}

// Wrote records a write made with ctx outside DB's own methods (through [DB.SQL] or
// [DB.Pool]), so that the session's reads go to the primary for the read-your-writes window.
// DB's ExecContext, write queries and WithTx record their writes themselves.
func (db *DB) Wrote(ctx context.Context) { db.wrote(ctx) }

func (db *DB) wrote(ctx context.Context) {
	if len(db.replicas) == 0 || db.cfg.ReadYourWrites <= 0 {
		return
	}
	if s, ok := ctx.Value(sessionKey{}).(*session); ok {
		s.lastWrite.Store(db.clock.Now().UnixNano())
	}
}

// toPrimary reports whether a read made with ctx must go to the primary.
func (db *DB) toPrimary(ctx context.Context) bool {
	if ctx.Value(primaryKey{}) != nil {
		return true
	}
	if db.cfg.ReadYourWrites <= 0 {
		return false
	}
	s, ok := ctx.Value(sessionKey{}).(*session)
	if !ok {
		return false
	}
	last := s.lastWrite.Load()
	return last != 0 && db.clock.Now().UnixNano()-last < int64(db.cfg.ReadYourWrites)
}

// isWrite reports whether a statement given to QueryContext writes or locks, and so must run
// on the primary: anything but SELECT (without FOR UPDATE/SHARE, nextval, setval), SHOW,
// EXPLAIN, VALUES, TABLE, and WITH … that contains no INSERT, UPDATE, DELETE or MERGE. A word
// inside a string literal may send a read to the primary, never a write to a replica.
func isWrite(query string) bool {
	first := ""
	prevFor := false
	write := false
	words(query, func(w string) bool {
		if first == "" {
			first = strings.ToLower(w)
			switch first {
			case "select", "with":
				return true
			case "show", "explain", "values", "table", "describe", "desc":
				return false
			}
			write = true
			return false
		}
		switch {
		case prevFor && (strings.EqualFold(w, "update") || strings.EqualFold(w, "share") ||
			strings.EqualFold(w, "no") || strings.EqualFold(w, "key")):
			write = true
		case strings.EqualFold(w, "nextval") || strings.EqualFold(w, "setval"):
			write = true
		case first == "with" && (strings.EqualFold(w, "insert") || strings.EqualFold(w, "update") ||
			strings.EqualFold(w, "delete") || strings.EqualFold(w, "merge")):
			write = true
		}
		prevFor = strings.EqualFold(w, "for")
		return !write
	})
	return write || first == ""
}

// words calls fn with each run of letters and underscores of q outside comments, until fn
// returns false.
func words(q string, fn func(string) bool) {
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				return
			}
			i += j
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return
			}
			i += j + 4
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(q) && (q[j] == '_' || q[j] >= 'a' && q[j] <= 'z' || q[j] >= 'A' && q[j] <= 'Z' || isDigit(q[j])) {
				j++
			}
			if !fn(q[i:j]) {
				return
			}
			i = j
		case isDigit(c) || c >= 0x80:
			for i < len(q) && (isIdent(q[i])) {
				i++
			}
		default:
			i++
		}
	}
}
