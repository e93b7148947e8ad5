// Package sqlstore is the event store on a SQL database of package database: SQLite (the
// embedded default) and PostgreSQL. It passes the same conformance suite as the memory store
// (package eventstoretest).
//
//	db, _ := database.Open(ctx, cfg.Database)
//	store, _ := sqlstore.New(ctx, db, sqlstore.Options{})   // migrates its own tables
//	defer store.Close()                                    // not db: that is the caller's
//
// # Global order without visible gaps
//
// Positions of $all are 1, 2, 3, … with no holes, and a reader never sees a position P and
// later a position below P appear (the gap that makes Marten's async daemon skip an event
// committed late). Both dialects get this from one rule: positions are handed out in commit
// order.
//
// On PostgreSQL every append runs the function shoal_events_append (one round trip), which
// first locks the single row of shoal_events_head with SELECT … FOR UPDATE and holds that
// lock until its transaction ends. A second append waits for the lock, and PostgreSQL
// releases a transaction's row locks only after its commit is visible to new snapshots; so
// the second append reads the head the first one wrote and its positions follow them, and it
// can commit only after the first did. An uncommitted append holds only positions above every
// committed one. A sequence would not do: nextval is not transactional, so two appends can
// commit in the other order than they drew their numbers — the gap race. The price is that
// appends are serialized (one commit at a time, across all streams), which the single round
// trip keeps cheap; bench/eventstore.sh measures it against a plain INSERT loop.
//
// On SQLite the database has one writer at a time (BEGIN IMMEDIATE, and package database
// keeps one writer connection), which gives the same order.
//
// Reads of $all first read the committed head H, then the events up to H: all of them are
// committed, so a page never ends at a hole.
//
// # Live delivery
//
// WaitForAppend wakes on LISTEN/NOTIFY on PostgreSQL (the append function notifies at
// commit), with a poll every Options.PollInterval as a safety net; on SQLite it polls the head
// every Options.PollInterval (default 20ms) and wakes at once for appends of its own process.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/eventstore"
)

//go:embed migrations
var migrations embed.FS

// MigrationsTable is the goose version table of the store's own migrations.
const MigrationsTable = "shoal_eventstore_migrations"

// Options configure a Store.
type Options struct {
	// Clock stamps events, checkpoints and snapshots. Defaults to the system clock.
	Clock eventstore.Clock
	// PollInterval is how often WaitForAppend looks at the head: SQLite's live delivery,
	// PostgreSQL's fallback when a notification is lost. Defaults to 20ms on SQLite and 1s
	// on PostgreSQL.
	PollInterval time.Duration
	// SkipMigrate leaves the tables alone (they were migrated by `shoal db migrate` or an
	// earlier run).
	SkipMigrate bool
	// Inline are projections run in each append's transaction (see [InlineProjection]).
	Inline []InlineProjection
	// Logger receives the LISTEN connection's errors. Defaults to slog.Default().
	Logger *slog.Logger
}

// InlineProjection updates a read model in the same transaction as the append that
// produced events: the read model then never lags, and an append whose projection fails is
// rolled back (the error reaches the caller of Append). tx's statements need the dialect's
// placeholders ([database.DB.Rebind]).
type InlineProjection func(ctx context.Context, tx *sql.Tx, events []eventstore.RecordedEvent) error

// Store is the SQL event store. It implements eventstore.Store.
type Store struct {
	db      *database.DB
	pg      bool
	opts    Options
	channel string

	closed    atomic.Bool
	closeCh   chan struct{}
	mu        sync.Mutex
	appended  chan struct{} // closed and replaced when an append (or a notification) is seen
	listenMu  sync.Mutex
	listening bool
	wg        sync.WaitGroup
}

var _ eventstore.Store = (*Store)(nil)

// New returns a store on db (PostgreSQL or SQLite), migrating its tables first unless
// opts.SkipMigrate. The store does not own db: Close leaves it open.
func New(ctx context.Context, db *database.DB, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("eventstore/sqlstore: the database is nil; open one with database.Open")
	}
	pg := false
	switch db.Dialect() {
	case database.Postgres:
		pg = true
	case database.SQLite:
	default:
		return nil, fmt.Errorf("eventstore/sqlstore: %s is not supported; use PostgreSQL or SQLite", db.Dialect())
	}
	if opts.Clock == nil {
		opts.Clock = eventstore.SystemClock{}
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 20 * time.Millisecond
		if pg {
			opts.PollInterval = time.Second
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{db: db, pg: pg, opts: opts, channel: "shoal_events", closeCh: make(chan struct{}), appended: make(chan struct{})}
	if !opts.SkipMigrate {
		if err := Migrate(ctx, db); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Migrate creates or updates the store's tables in db (its own version table,
// shoal_eventstore_migrations).
func Migrate(ctx context.Context, db *database.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	if err := database.Migrate(ctx, db, sub, database.WithTable(MigrationsTable)); err != nil {
		return fmt.Errorf("eventstore/sqlstore: migrating: %w", err)
	}
	return nil
}

// DB is the database the store is on.
func (s *Store) DB() *database.DB { return s.db }

func (s *Store) check() error {
	if s.closed.Load() {
		return eventstore.ErrClosed
	}
	return nil
}

// wrap classifies a database error and names the store.
func (s *Store) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if s.closed.Load() {
		return eventstore.ErrClosed
	}
	return fmt.Errorf("eventstore: %s: %w", what, database.Classify(err))
}

func (s *Store) notifyLocal() {
	s.mu.Lock()
	close(s.appended)
	s.appended = make(chan struct{})
	s.mu.Unlock()
}

func (s *Store) waitCh() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// Append implements eventstore.Appender.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	evs, err := eventstore.PrepareAppend(stream, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := s.check(); err != nil {
		return eventstore.AppendResult{}, err
	}
	var res eventstore.AppendResult
	var dup bool
	var current int64
	run := func(tx *sql.Tx) error {
		var recorded []eventstore.RecordedEvent
		var err error
		res, recorded, dup, current, err = s.appendTx(ctx, tx, stream, expected, evs)
		if err != nil || dup || res.LastVersion == 0 {
			return err
		}
		for _, p := range s.opts.Inline {
			if err := p(ctx, tx, recorded); err != nil {
				return fmt.Errorf("eventstore: inline projection: %w; nothing was appended", err)
			}
		}
		return nil
	}
	if s.pg && len(s.opts.Inline) == 0 {
		// One statement in autocommit: one round trip.
		res, _, dup, current, err = s.appendTx(ctx, nil, stream, expected, evs)
	} else {
		err = s.db.WithTx(ctx, nil, run)
	}
	if err != nil {
		return eventstore.AppendResult{}, s.wrapAppend(err)
	}
	if dup {
		return s.resolveRetry(ctx, stream, expected, evs, current)
	}
	if res.LastVersion == 0 {
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: stream, Expected: expected, Actual: current}
	}
	s.notifyLocal()
	return res, nil
}

func (s *Store) wrapAppend(err error) error {
	var ce *eventstore.ConflictError
	if errors.As(err, &ce) || strings.HasPrefix(err.Error(), "eventstore:") {
		return err
	}
	return s.wrap("append", err)
}

// appendTx appends in tx (nil: autocommit, PostgreSQL only). It returns dup when an event ID
// is stored already, and a zero result with current when expected does not hold.
func (s *Store) appendTx(ctx context.Context, tx *sql.Tx, stream string, expected eventstore.ExpectedVersion, evs []eventstore.EventData) (
	res eventstore.AppendResult, recorded []eventstore.RecordedEvent, dup bool, current int64, err error) {
	if s.pg {
		return s.appendPG(ctx, tx, stream, expected, evs)
	}
	return s.appendSQLite(ctx, tx, stream, expected, evs)
}

func (s *Store) appendPG(ctx context.Context, tx *sql.Tx, stream string, expected eventstore.ExpectedVersion, evs []eventstore.EventData) (
	res eventstore.AppendResult, recorded []eventstore.RecordedEvent, dup bool, current int64, err error) {
	ids, types, data, meta := make([]string, len(evs)), make([]string, len(evs)), make([]string, len(evs)), make([]string, len(evs))
	for i, e := range evs {
		ids[i], types[i], data[i] = e.ID, e.Type, string(e.Data)
		meta[i] = string(eventstore.EncodeMetadata(e.Metadata))
	}
	const q = `SELECT status, first_version, first_position, current_version, event_time
		FROM shoal_events_append($1, $2, $3, $4, $5, $6, $7, $8)`
	args := []any{stream, int64(expected), ids, types, data, meta, s.opts.Clock.Now().UTC().Truncate(time.Microsecond), s.channel}
	var row *sql.Row
	if tx != nil {
		row = tx.QueryRowContext(ctx, q, args...)
	} else {
		row = s.db.SQL().QueryRowContext(ctx, q, args...)
	}
	var status string
	var fv, fp sql.NullInt64
	var at sql.NullTime
	if err := row.Scan(&status, &fv, &fp, &current, &at); err != nil {
		return res, nil, false, 0, err
	}
	switch status {
	case "duplicate":
		return res, nil, true, current, nil
	case "conflict":
		return res, nil, false, current, nil
	}
	return s.result(stream, evs, fv.Int64, eventstore.Position(fp.Int64), at.Time, tx != nil)
}

func (s *Store) result(stream string, evs []eventstore.EventData, firstVersion int64, firstPos eventstore.Position, at time.Time, wantRecorded bool) (
	res eventstore.AppendResult, recorded []eventstore.RecordedEvent, dup bool, current int64, err error) {
	n := int64(len(evs))
	res = eventstore.AppendResult{Stream: stream, FirstVersion: firstVersion, LastVersion: firstVersion + n - 1,
		FirstPosition: firstPos, LastPosition: firstPos + eventstore.Position(n-1)}
	if wantRecorded {
		recorded = make([]eventstore.RecordedEvent, len(evs))
		for i, e := range evs {
			recorded[i] = eventstore.RecordedEvent{ID: e.ID, Stream: stream, Version: firstVersion + int64(i),
				Position: firstPos + eventstore.Position(i), Type: e.Type, Data: e.Data, Metadata: e.Metadata, Time: at.UTC()}
		}
	}
	return res, recorded, false, firstVersion - 1, nil
}

func (s *Store) appendSQLite(ctx context.Context, tx *sql.Tx, stream string, expected eventstore.ExpectedVersion, evs []eventstore.EventData) (
	res eventstore.AppendResult, recorded []eventstore.RecordedEvent, dup bool, current int64, err error) {
	var head, lastUs int64
	if err := tx.QueryRowContext(ctx, "SELECT position, created_us FROM shoal_events_head WHERE id = 1").Scan(&head, &lastUs); err != nil {
		return res, nil, false, 0, err
	}
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM shoal_events WHERE stream = ?", stream).Scan(&current); err != nil {
		return res, nil, false, 0, err
	}
	q := "SELECT 1 FROM shoal_events WHERE id IN (?" + strings.Repeat(",?", len(evs)-1) + ") LIMIT 1"
	args := make([]any, len(evs))
	for i, e := range evs {
		args[i] = e.ID
	}
	var one int
	switch err := tx.QueryRowContext(ctx, q, args...).Scan(&one); {
	case err == nil:
		return res, nil, true, current, nil
	case !errors.Is(err, sql.ErrNoRows):
		return res, nil, false, 0, err
	}
	if !expected.Allows(current) {
		return res, nil, false, current, nil
	}
	var last time.Time
	if lastUs > 0 {
		last = fromMicros(lastUs)
	}
	at := eventstore.EventTime(s.opts.Clock.Now(), last)
	// Multi-row inserts of up to 100 events.
	for start := 0; start < len(evs); start += 100 {
		end := min(start+100, len(evs))
		var b strings.Builder
		b.WriteString("INSERT INTO shoal_events (position, id, stream, version, type, data, metadata, created_us) VALUES ")
		args := make([]any, 0, 8*(end-start))
		for i := start; i < end; i++ {
			if i > start {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?)")
			e := evs[i]
			var md any
			if m := eventstore.EncodeMetadata(e.Metadata); m != nil {
				md = m
			}
			args = append(args, head+int64(i)+1, e.ID, stream, current+int64(i)+1, e.Type, e.Data, md, micros(at))
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return res, nil, false, 0, err
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE shoal_events_head SET position = ?, created_us = ? WHERE id = 1", head+int64(len(evs)), micros(at)); err != nil {
		return res, nil, false, 0, err
	}
	return s.result(stream, evs, current+1, eventstore.Position(head+1), at, true)
}

// AppendTx appends events in the caller's transaction tx (on the store's database), so that
// the events and the caller's own writes commit or roll back together. The result holds only
// once tx commits. On PostgreSQL the append holds the head lock until tx ends: keep tx short.
// Inline projections run here too. A conflict or duplicate is returned as by Append (a retry
// is answered with Duplicate set), and tx may then still be committed or rolled back.
func (s *Store) AppendTx(ctx context.Context, tx *sql.Tx, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	evs, err := eventstore.PrepareAppend(stream, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := s.check(); err != nil {
		return eventstore.AppendResult{}, err
	}
	res, recorded, dup, current, err := s.appendTx(ctx, tx, stream, expected, evs)
	if err != nil {
		return eventstore.AppendResult{}, s.wrap("append", err)
	}
	if dup {
		stored, err := s.storedByIDs(ctx, tx, evs)
		if err != nil {
			return eventstore.AppendResult{}, err
		}
		return eventstore.ResolveRetry(stream, expected, ids(evs), stored, current)
	}
	if res.LastVersion == 0 {
		return eventstore.AppendResult{}, &eventstore.ConflictError{Stream: stream, Expected: expected, Actual: current}
	}
	for _, p := range s.opts.Inline {
		if err := p(ctx, tx, recorded); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("eventstore: inline projection: %w", err)
		}
	}
	return res, nil
}

func ids(evs []eventstore.EventData) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func (s *Store) resolveRetry(ctx context.Context, stream string, expected eventstore.ExpectedVersion, evs []eventstore.EventData, current int64) (eventstore.AppendResult, error) {
	stored, err := s.storedByIDs(ctx, nil, evs)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return eventstore.ResolveRetry(stream, expected, ids(evs), stored, current)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) storedByIDs(ctx context.Context, tx *sql.Tx, evs []eventstore.EventData) ([]eventstore.RecordedEvent, error) {
	var q querier = s.db.SQL()
	if tx != nil {
		q = tx
	}
	var where string
	var args []any
	if s.pg {
		where, args = "id = ANY($1::uuid[])", []any{ids(evs)}
	} else {
		where = "id IN (?" + strings.Repeat(",?", len(evs)-1) + ")"
		for _, e := range evs {
			args = append(args, e.ID)
		}
	}
	rows, err := q.QueryContext(ctx, s.selectEvents()+" WHERE "+where, args...)
	if err != nil {
		return nil, s.wrap("reading stored event ids", err)
	}
	return s.scanEvents(rows)
}

func (s *Store) selectEvents() string {
	if s.pg {
		return "SELECT position, id::text, stream, version, type, data::text, metadata::text, created_at FROM shoal_events"
	}
	return "SELECT position, id, stream, version, type, data, metadata, created_us FROM shoal_events"
}

func (s *Store) scanEvents(rows *sql.Rows) ([]eventstore.RecordedEvent, error) {
	defer rows.Close()
	var out []eventstore.RecordedEvent
	for rows.Next() {
		var e eventstore.RecordedEvent
		var data, meta []byte
		var pos int64
		var err error
		if s.pg {
			var at time.Time
			var md sql.NullString
			var d string
			err = rows.Scan(&pos, &e.ID, &e.Stream, &e.Version, &e.Type, &d, &md, &at)
			data, e.Time = []byte(d), at.UTC()
			if md.Valid {
				meta = []byte(md.String)
			}
		} else {
			var us int64
			err = rows.Scan(&pos, &e.ID, &e.Stream, &e.Version, &e.Type, &data, &meta, &us)
			e.Time = fromMicros(us)
		}
		if err != nil {
			return nil, s.wrap("reading events", err)
		}
		e.Position = eventstore.Position(pos)
		e.Data = data
		if e.Metadata, err = eventstore.DecodeMetadata(meta); err != nil {
			return nil, fmt.Errorf("event at position %d: %w", pos, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("reading events", err)
	}
	return out, nil
}

// ReadStream implements eventstore.Reader.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	if err := eventstore.ValidateStream(stream); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	limit := int64(opts.Limit)
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	var q string
	var args []any
	if opts.Backward {
		from := opts.From
		if from <= 0 {
			from = 1 << 62
		}
		q = s.selectEvents() + " WHERE stream = $1 AND version <= $2 ORDER BY version DESC"
		args = []any{stream, from}
	} else {
		q = s.selectEvents() + " WHERE stream = $1 AND version >= $2 ORDER BY version"
		args = []any{stream, max(opts.From, 1)}
	}
	if limit > 0 {
		q += " LIMIT $3"
		args = append(args, limit)
	}
	rows, err := s.db.ReadSQL().QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, s.wrap("reading stream "+stream, err)
	}
	evs, err := s.scanEvents(rows)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		v, _, err := s.StreamVersion(ctx, stream)
		if err != nil {
			return nil, err
		}
		if v == 0 {
			return nil, eventstore.ErrStreamNotFound
		}
	}
	return evs, nil
}

// Head implements eventstore.Reader.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var h int64
	if err := s.db.ReadSQL().QueryRowContext(ctx, "SELECT position FROM shoal_events_head WHERE id = 1").Scan(&h); err != nil {
		return 0, s.wrap("reading the head", err)
	}
	return eventstore.Position(h), nil
}

// ReadAll implements eventstore.Reader.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) (eventstore.AllSlice, error) {
	head, err := s.Head(ctx)
	if err != nil {
		return eventstore.AllSlice{}, err
	}
	limit := opts.ReadLimit()
	window := opts.ScanWindow()
	sl := eventstore.AllSlice{Head: head}
	var lo, hi eventstore.Position
	if opts.Backward {
		hi = head
		if opts.From > 0 && opts.From < head {
			hi = opts.From
		}
		lo = max(hi-window+1, 1)
	} else {
		lo = max(opts.From, 1)
		hi = min(lo+window-1, head)
	}
	if lo > hi {
		if opts.Backward {
			sl.Next = 0
		} else {
			sl.Next = lo
		}
		return sl, nil
	}
	q := s.selectEvents() + " WHERE position >= $1 AND position <= $2"
	args := []any{int64(lo), int64(hi)}
	q, args = s.filterSQL(q, args, opts.Filter)
	if opts.Backward {
		q += " ORDER BY position DESC"
	} else {
		q += " ORDER BY position"
	}
	q += fmt.Sprintf(" LIMIT %d", limit)
	rows, err := s.db.ReadSQL().QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return sl, s.wrap("reading $all", err)
	}
	if sl.Events, err = s.scanEvents(rows); err != nil {
		return sl, err
	}
	full := len(sl.Events) == limit
	if opts.Backward {
		sl.Next = lo - 1
		if full {
			sl.Next = sl.Events[len(sl.Events)-1].Position - 1
		}
	} else {
		sl.Next = hi + 1
		if full {
			sl.Next = sl.Events[len(sl.Events)-1].Position + 1
		}
	}
	return sl, nil
}

// filterSQL adds f's conditions. Prefixes are compared as strings, not LIKE patterns.
func (s *Store) filterSQL(q string, args []any, f eventstore.Filter) (string, []any) {
	if len(f.StreamPrefixes) > 0 {
		var conds []string
		for _, p := range f.StreamPrefixes {
			args = append(args, p)
			n := len(args)
			if s.pg {
				conds = append(conds, fmt.Sprintf("starts_with(stream, $%d)", n))
			} else {
				conds = append(conds, fmt.Sprintf("substr(stream, 1, length($%d)) = $%d", n, n))
			}
		}
		q += " AND (" + strings.Join(conds, " OR ") + ")"
	}
	if len(f.Types) > 0 {
		var ph []string
		for _, t := range f.Types {
			args = append(args, t)
			ph = append(ph, fmt.Sprintf("$%d", len(args)))
		}
		q += " AND type IN (" + strings.Join(ph, ",") + ")"
	}
	return q, args
}

// StreamVersion implements eventstore.Reader.
func (s *Store) StreamVersion(ctx context.Context, stream string) (int64, time.Time, error) {
	if err := eventstore.ValidateStream(stream); err != nil {
		return 0, time.Time{}, err
	}
	if err := s.check(); err != nil {
		return 0, time.Time{}, err
	}
	q := "SELECT version, created_us FROM shoal_events WHERE stream = $1 ORDER BY version DESC LIMIT 1"
	if s.pg {
		q = "SELECT version, created_at FROM shoal_events WHERE stream = $1 ORDER BY version DESC LIMIT 1"
	}
	var v int64
	var at time.Time
	var us int64
	var err error
	if s.pg {
		err = s.db.ReadSQL().QueryRowContext(ctx, q, stream).Scan(&v, &at)
	} else {
		err = s.db.ReadSQL().QueryRowContext(ctx, s.db.Rebind(q), stream).Scan(&v, &us)
		at = fromMicros(us)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, s.wrap("reading the version of "+stream, err)
	}
	return v, at.UTC(), nil
}

// VersionAt implements eventstore.Reader.
func (s *Store) VersionAt(ctx context.Context, stream string, t time.Time) (int64, error) {
	if err := eventstore.ValidateStream(stream); err != nil {
		return 0, err
	}
	if err := s.check(); err != nil {
		return 0, err
	}
	var v int64
	var err error
	if s.pg {
		err = s.db.ReadSQL().QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM shoal_events WHERE stream = $1 AND created_at <= $2", stream, t).Scan(&v)
	} else {
		err = s.db.ReadSQL().QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM shoal_events WHERE stream = ? AND created_us <= ?", stream, micros(t)).Scan(&v)
	}
	if err != nil {
		return 0, s.wrap("reading the version of "+stream, err)
	}
	return v, nil
}

// WaitForAppend implements eventstore.Reader.
func (s *Store) WaitForAppend(ctx context.Context, after eventstore.Position) error {
	if s.pg {
		s.startListener()
	}
	for {
		ch := s.waitCh()
		head, err := s.Head(ctx)
		if err != nil {
			return err
		}
		if head > after {
			return nil
		}
		timer := time.NewTimer(s.opts.PollInterval)
		select {
		case <-ch:
		case <-timer.C:
		case <-s.closeCh:
			timer.Stop()
			return eventstore.ErrClosed
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
		timer.Stop()
	}
}

// startListener starts, once, the goroutine that LISTENs for appends of every process.
func (s *Store) startListener() {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.listening || s.closed.Load() {
		return
	}
	s.listening = true
	ctx, cancel := context.WithCancel(context.Background())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		<-s.closeCh
		cancel()
	}()
	go func() {
		defer s.wg.Done()
		s.listen(ctx)
	}()
}

func (s *Store) listen(ctx context.Context) {
	pool := s.db.Pool()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := func() error {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, "LISTEN "+s.channel); err != nil {
				conn.Conn().Close(context.Background()) // do not hand a listening connection back
				return err
			}
			defer func() {
				// The connection goes back to the pool: stop listening on it.
				uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if _, err := conn.Exec(uctx, "UNLISTEN "+s.channel); err != nil {
					conn.Conn().Close(uctx)
				}
			}()
			s.notifyLocal() // appends made while not listening
			attempt = 0
			for {
				if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
					return err
				}
				s.notifyLocal()
			}
		}()
		if ctx.Err() != nil {
			return
		}
		s.opts.Logger.Warn("event store cannot LISTEN for appends; polling meanwhile and retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(attempt+1)*200*time.Millisecond, 5*time.Second)):
		}
	}
}

// Close implements eventstore.Store. It leaves the database open.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.closeCh)
	s.wg.Wait()
	return nil
}
