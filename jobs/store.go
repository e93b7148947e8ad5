package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shoal-sh/shoal/database"
)

// The store is the SQL of the three drivers. PostgreSQL's hot paths (fetch, complete,
// heartbeat, EnqueueMany) go through the native pgx pool with arrays; SQLite and MySQL go
// through database/sql. Times are stored as Unix milliseconds taken from the client's clock,
// so the SQL is the same on every dialect and tests can inject a clock.

type rowsI interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

type runner interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	query(ctx context.Context, q string, args ...any) (rowsI, func(), error)
}

type pgxQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type pgxRunner struct{ q pgxQuerier }

func (r pgxRunner) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := r.q.Exec(ctx, q, args...)
	if err != nil {
		return 0, database.Classify(err)
	}
	return tag.RowsAffected(), nil
}

func (r pgxRunner) query(ctx context.Context, q string, args ...any) (rowsI, func(), error) {
	rows, err := r.q.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, database.Classify(err)
	}
	return rows, rows.Close, nil
}

type sqlQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type sqlRunner struct {
	q sqlQuerier
	d database.Dialect
}

func (r sqlRunner) exec(ctx context.Context, q string, args ...any) (int64, error) {
	q, args = r.d.RebindArgs(q, args)
	res, err := r.q.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, database.Classify(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (r sqlRunner) query(ctx context.Context, q string, args ...any) (rowsI, func(), error) {
	q, args = r.d.RebindArgs(q, args)
	rows, err := r.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, database.Classify(err)
	}
	return rows, func() { rows.Close() }, nil
}

type store struct {
	db *database.DB
	d  database.Dialect
}

// writer runs outside a transaction on the primary: pgx for PostgreSQL, the writer *sql.DB else.
func (s *store) writer() runner {
	if s.d == database.Postgres {
		return pgxRunner{s.db.Pool()}
	}
	return sqlRunner{s.db.SQL(), s.d}
}

// reader runs reads that need no lock.
func (s *store) reader() runner {
	if s.d == database.Postgres {
		return pgxRunner{s.db.Pool()}
	}
	return sqlRunner{s.db.ReadSQL(), s.d}
}

// tx runs fn in a transaction on the primary, retried on a conflict.
func (s *store) tx(ctx context.Context, fn func(r runner) error) error {
	if s.d == database.Postgres {
		return s.db.WithPgxTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error { return fn(pgxRunner{tx}) })
	}
	var opts *sql.TxOptions
	if s.d == database.MySQL {
		// READ COMMITTED: no gap locks, so a fetch's SKIP LOCKED scan does not block inserts.
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	return s.db.WithTx(ctx, opts, func(tx *sql.Tx) error { return fn(sqlRunner{tx, s.d}) })
}

// insertRow is one job to insert.
type insertRow struct {
	kind, queue      string
	priority         int
	maxAttempts      int
	args             []byte
	runAt, createdAt int64
	timeoutMs        int64
	uniqueKey        *string
	uniqueStates     *string
	tags, metadata   string
	notify           bool
}

const insertCols = `kind, queue, state, priority, attempt, max_attempts, args, run_at, created_at, timeout_ms, unique_key, unique_states, tags, metadata, cancel_requested`

// insert stores rows through r (a transaction of the caller's or the store's) and returns each
// row's ID and whether it was a duplicate of a unique job.
func (s *store) insert(ctx context.Context, r runner, rows []insertRow) ([]Result, error) {
	out := make([]Result, len(rows))
	if s.d == database.Postgres && len(rows) > 1 {
		return out, s.insertManyPG(ctx, r, rows, out)
	}
	if s.d == database.SQLite && len(rows) > 1 {
		if sr, ok := r.(sqlRunner); ok && noUniqueKeys(rows) {
			return out, s.insertManySQLite(ctx, sr, rows, out)
		}
	}
	for i := range rows {
		res, err := s.insertOne(ctx, r, &rows[i])
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}

func (s *store) insertOne(ctx context.Context, r runner, row *insertRow) (Result, error) {
	args := []any{row.kind, row.queue, row.priority, row.maxAttempts, string(row.args), row.runAt, row.createdAt,
		row.timeoutMs, row.uniqueKey, row.uniqueStates, row.tags, row.metadata}
	vals := `($1, $2, 'available', $3, 0, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0)`
	var id int64
	var found bool
	switch s.d {
	case database.Postgres:
		q := `INSERT INTO shoal_jobs (` + insertCols + `) VALUES ` + vals + ` ON CONFLICT (unique_key) DO NOTHING RETURNING id`
		if row.notify {
			q = `WITH ins AS (` + q + `), n AS (SELECT pg_notify('shoal_jobs', current_schema() || ':' || $2) FROM ins LIMIT 1)
				SELECT ins.id FROM ins CROSS JOIN (SELECT count(*) FROM n) x`
		}
		err := queryOne(ctx, r, q, args, &id)
		if err == nil {
			found = true
		} else if !errors.Is(err, sql.ErrNoRows) {
			return Result{}, err
		}
	case database.SQLite:
		q := `INSERT INTO shoal_jobs (` + insertCols + `) VALUES ` + vals + ` ON CONFLICT (unique_key) DO NOTHING RETURNING id`
		err := queryOne(ctx, r, q, args, &id)
		if err == nil {
			found = true
		} else if !errors.Is(err, sql.ErrNoRows) {
			return Result{}, err
		}
	default: // MySQL: no RETURNING; a duplicate key fails the statement only, not the transaction.
		sr, ok := r.(sqlRunner)
		if !ok {
			return Result{}, fmt.Errorf("jobs: MySQL insert through %T", r)
		}
		q, qargs := s.d.RebindArgs(`INSERT INTO shoal_jobs (`+insertCols+`) VALUES `+vals, args)
		res, err := sr.q.ExecContext(ctx, q, qargs...)
		if err != nil {
			if err = database.Classify(err); !errors.Is(err, database.ErrUniqueViolation) || row.uniqueKey == nil {
				return Result{}, err
			}
		} else if id, err = res.LastInsertId(); err != nil {
			return Result{}, database.Classify(err)
		} else {
			found = true
		}
	}
	if found {
		return Result{ID: id}, nil
	}
	if row.uniqueKey == nil {
		return Result{}, fmt.Errorf("jobs: the insert returned no row")
	}
	if err := queryOne(ctx, r, `SELECT id FROM shoal_jobs WHERE unique_key = $1`, []any{*row.uniqueKey}, &id); err != nil {
		return Result{}, fmt.Errorf("jobs: finding the job that holds unique key %s: %w", *row.uniqueKey, err)
	}
	return Result{ID: id, Duplicate: true}, nil
}

func noUniqueKeys(rows []insertRow) bool {
	for i := range rows {
		if rows[i].uniqueKey != nil {
			return false
		}
	}
	return true
}

// insertManySQLite inserts rows without unique keys in multi-row INSERTs of up to 500 rows.
// With AUTOINCREMENT and the single writer, one statement's rows take consecutive IDs ending
// at its last insert ID.
func (s *store) insertManySQLite(ctx context.Context, r sqlRunner, rows []insertRow, out []Result) error {
	const chunk = 500
	for start := 0; start < len(rows); start += chunk {
		part := rows[start:min(start+chunk, len(rows))]
		var b strings.Builder
		b.WriteString(`INSERT INTO shoal_jobs (` + insertCols + `) VALUES `)
		args := make([]any, 0, len(part)*10)
		for i, row := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`(?, ?, 'available', ?, 0, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, 0)`)
			args = append(args, row.kind, row.queue, row.priority, row.maxAttempts, string(row.args), row.runAt, row.createdAt, row.timeoutMs, row.tags, row.metadata)
		}
		res, err := r.q.ExecContext(ctx, b.String(), args...)
		if err != nil {
			return database.Classify(err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return database.Classify(err)
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(len(part)) {
			return fmt.Errorf("jobs: a batch of %d jobs inserted %d rows (%v)", len(part), n, err)
		}
		for i := range part {
			out[start+i] = Result{ID: last - int64(len(part)-1-i)}
		}
	}
	return nil
}

// insertManyPG inserts a batch in one statement over arrays, with IDs taken from the sequence
// first so each row's ID is known whether or not it was a duplicate.
func (s *store) insertManyPG(ctx context.Context, r runner, rows []insertRow, out []Result) error {
	n := len(rows)
	ids := make([]int64, 0, n)
	rs, closeRows, err := r.query(ctx, `SELECT nextval(pg_get_serial_sequence('shoal_jobs', 'id')) FROM generate_series(1, $1)`, n)
	if err != nil {
		return err
	}
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			closeRows()
			return err
		}
		ids = append(ids, id)
	}
	closeRows()
	if err := rs.Err(); err != nil {
		return database.Classify(err)
	}
	if len(ids) != n {
		return fmt.Errorf("jobs: the sequence gave %d IDs for %d jobs", len(ids), n)
	}
	kinds, queues, args, tags, md := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	prios, maxes := make([]int32, n), make([]int32, n)
	runAts, createds, timeouts := make([]int64, n), make([]int64, n), make([]int64, n)
	ukeys, ustates := make([]*string, n), make([]*string, n)
	notify := map[string]bool{}
	for i, row := range rows {
		kinds[i], queues[i], args[i], tags[i], md[i] = row.kind, row.queue, string(row.args), row.tags, row.metadata
		prios[i], maxes[i] = int32(row.priority), int32(row.maxAttempts)
		runAts[i], createds[i], timeouts[i] = row.runAt, row.createdAt, row.timeoutMs
		ukeys[i], ustates[i] = row.uniqueKey, row.uniqueStates
		if row.notify {
			notify[row.queue] = true
		}
	}
	var nq []string
	for q := range notify {
		nq = append(nq, q)
	}
	q := `WITH ins AS (
		INSERT INTO shoal_jobs (id, ` + insertCols + `)
		SELECT id, kind, queue, 'available', priority, 0, max_attempts, args, run_at, created_at, timeout_ms, unique_key, unique_states, tags, metadata, 0
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[])
			AS t(id, kind, queue, priority, max_attempts, args, run_at, created_at, timeout_ms, unique_key, unique_states, tags, metadata)
		ON CONFLICT (unique_key) DO NOTHING RETURNING id),
	n AS (SELECT pg_notify('shoal_jobs', current_schema() || ':' || q) FROM unnest($14::text[]) q)
	SELECT ins.id FROM ins CROSS JOIN (SELECT count(*) FROM n) x`
	rs, closeRows, err = r.query(ctx, q, ids, kinds, queues, prios, maxes, args, runAts, createds, timeouts, ukeys, ustates, tags, md, nq)
	if err != nil {
		return err
	}
	inserted := make(map[int64]bool, n)
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			closeRows()
			return err
		}
		inserted[id] = true
	}
	closeRows()
	if err := rs.Err(); err != nil {
		return database.Classify(err)
	}
	for i := range rows {
		if inserted[ids[i]] {
			out[i] = Result{ID: ids[i]}
			continue
		}
		if rows[i].uniqueKey == nil {
			return fmt.Errorf("jobs: job %d of the batch was not inserted", i)
		}
		var id int64
		if err := queryOne(ctx, r, `SELECT id FROM shoal_jobs WHERE unique_key = $1`, []any{*rows[i].uniqueKey}, &id); err != nil {
			return fmt.Errorf("jobs: finding the job that holds unique key %s: %w", *rows[i].uniqueKey, err)
		}
		out[i] = Result{ID: id, Duplicate: true}
	}
	return nil
}

func queryOne(ctx context.Context, r runner, q string, args []any, dest ...any) error {
	rs, closeRows, err := r.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer closeRows()
	if !rs.Next() {
		if err := rs.Err(); err != nil {
			return database.Classify(err)
		}
		return sql.ErrNoRows
	}
	if err := rs.Scan(dest...); err != nil {
		return database.Classify(err)
	}
	return nil
}

// fetched is a job claimed by a worker.
type fetched struct {
	id                   int64
	kind, queue          string
	priority             int
	attempt, maxAttempts int
	args                 string
	createdAt, timeoutMs int64
	tags, metadata       string
}

const fetchedCols = `id, kind, queue, priority, attempt, max_attempts, args, created_at, timeout_ms, tags, metadata`

func scanFetched(rs rowsI) ([]fetched, error) {
	var out []fetched
	for rs.Next() {
		var f fetched
		if err := rs.Scan(&f.id, &f.kind, &f.queue, &f.priority, &f.attempt, &f.maxAttempts, &f.args, &f.createdAt, &f.timeoutMs, &f.tags, &f.metadata); err != nil {
			return nil, database.Classify(err)
		}
		out = append(out, f)
	}
	return out, database.Classify(rs.Err())
}

// fetch claims up to limit available jobs of queue and kinds whose run time has come, highest
// priority first, and marks them running under worker with a lease until leaseUntil.
func (s *store) fetch(ctx context.Context, r runner, queue string, kinds []string, now, leaseUntil int64, worker string, limit int) ([]fetched, error) {
	if limit <= 0 || len(kinds) == 0 {
		return nil, nil
	}
	switch s.d {
	case database.Postgres:
		q := `WITH picked AS (
			SELECT id FROM shoal_jobs
			WHERE state = 'available' AND queue = $1 AND run_at <= $2 AND kind = ANY($3)
			ORDER BY priority DESC, run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
		UPDATE shoal_jobs j SET state = 'running', attempt = j.attempt + 1, attempted_at = $2, lease_until = $5, worker = $6
		FROM picked WHERE j.id = picked.id
		RETURNING j.id, j.kind, j.queue, j.priority, j.attempt, j.max_attempts, j.args, j.created_at, j.timeout_ms, j.tags, j.metadata`
		rs, closeRows, err := r.query(ctx, q, queue, now, kinds, limit, leaseUntil, worker)
		if err != nil {
			return nil, err
		}
		defer closeRows()
		return scanFetched(rs)
	case database.SQLite:
		in, args := inList(kinds, 6)
		q := `UPDATE shoal_jobs SET state = 'running', attempt = attempt + 1, attempted_at = $2, lease_until = $4, worker = $5
		WHERE id IN (SELECT id FROM shoal_jobs WHERE state = 'available' AND queue = $1 AND run_at <= $2 AND kind IN (` + in + `)
			ORDER BY priority DESC, run_at, id LIMIT $3)
		RETURNING ` + fetchedCols
		rs, closeRows, err := r.query(ctx, q, append([]any{queue, now, limit, leaseUntil, worker}, args...)...)
		if err != nil {
			return nil, err
		}
		defer closeRows()
		return scanFetched(rs)
	}
	// MySQL: lock with SKIP LOCKED, update, read back, in the caller's transaction.
	in, args := inList(kinds, 4)
	q := `SELECT id FROM shoal_jobs WHERE state = 'available' AND queue = $1 AND run_at <= $2 AND kind IN (` + in + `)
		ORDER BY priority DESC, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED`
	rs, closeRows, err := r.query(ctx, q, append([]any{queue, now, limit}, args...)...)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			closeRows()
			return nil, database.Classify(err)
		}
		ids = append(ids, id)
	}
	closeRows()
	if err := rs.Err(); err != nil || len(ids) == 0 {
		return nil, database.Classify(err)
	}
	idl := intList(ids)
	if _, err := r.exec(ctx, `UPDATE shoal_jobs SET state = 'running', attempt = attempt + 1, attempted_at = $1, lease_until = $2, worker = $3 WHERE id IN (`+idl+`)`, now, leaseUntil, worker); err != nil {
		return nil, err
	}
	rs, closeRows, err = r.query(ctx, `SELECT `+fetchedCols+` FROM shoal_jobs WHERE id IN (`+idl+`)`)
	if err != nil {
		return nil, err
	}
	defer closeRows()
	return scanFetched(rs)
}

// inList returns "$n, $n+1, …" for vals, the placeholders numbered from first.
func inList(vals []string, first int) (string, []any) {
	var b strings.Builder
	args := make([]any, len(vals))
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(first+i))
		args[i] = v
	}
	return b.String(), args
}

func intList(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return b.String()
}

// done is one finished run to record.
type done struct {
	id      int64
	attempt int
	kind    string
}

// uniqueKeep keeps a job's unique key when state is one of its unique states, else frees it.
func uniqueKeep(state State) string {
	return `unique_key = CASE WHEN unique_states LIKE '%` + string(state) + `%' THEN unique_key ELSE NULL END`
}

// complete records a batch of successful runs of worker. Only runs that still hold their lease
// (same attempt, same worker, still running) are recorded; it returns how many were.
func (s *store) complete(ctx context.Context, worker string, now int64, batch []done) (int64, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	set := `state = 'completed', finalized_at = $1, lease_until = NULL, ` + uniqueKeep(StateCompleted)
	switch s.d {
	case database.Postgres:
		ids, atts := make([]int64, len(batch)), make([]int32, len(batch))
		for i, d := range batch {
			ids[i], atts[i] = d.id, int32(d.attempt)
		}
		// id = ANY keeps the plan on the primary key whatever the statistics say (a join with
		// unnest was planned as a nested loop over the running rows: quadratic).
		return s.writer().exec(ctx, `UPDATE shoal_jobs j SET `+set+`
			WHERE j.id = ANY($2::bigint[]) AND j.state = 'running' AND j.worker = $4
			AND j.attempt = ($3::int[])[array_position($2::bigint[], j.id)]`, now, ids, atts, worker)
	}
	var b strings.Builder
	for i, d := range batch {
		if i > 0 {
			b.WriteByte(',')
		}
		if s.d == database.SQLite {
			b.WriteString("VALUES")
		}
		fmt.Fprintf(&b, "(%d,%d)", d.id, d.attempt)
	}
	list := b.String()
	if s.d == database.SQLite {
		list = strings.ReplaceAll(list, ",VALUES", ",") // VALUES (a,b),(c,d)
	}
	return s.writer().exec(ctx, `UPDATE shoal_jobs SET `+set+` WHERE (id, attempt) IN (`+list+`) AND state = 'running' AND worker = $2`, now, worker)
}

// outcome is a run that did not succeed.
type outcome struct {
	id      int64
	attempt int
	state   State // available (retry or snooze), cancelled, discarded
	runAt   int64
	err     string // empty for a snooze
	snooze  bool
	release bool // shutdown: give the attempt back
}

// finish records one unsuccessful run of worker (a retry, snooze, cancel, discard or release).
// It reports whether the run still held its lease.
func (s *store) finish(ctx context.Context, worker string, now int64, o outcome) (bool, error) {
	var n int64
	err := s.tx(ctx, func(r runner) error {
		var set string
		args := []any{o.id, o.attempt, worker}
		switch {
		case o.snooze || o.release:
			set = `state = 'available', attempt = attempt - 1, run_at = $4, lease_until = NULL, worker = NULL`
			args = append(args, o.runAt)
		case o.state == StateAvailable:
			set = `state = 'available', run_at = $4, lease_until = NULL, worker = NULL`
			args = append(args, o.runAt)
		default:
			set = `state = '` + string(o.state) + `', finalized_at = $4, lease_until = NULL, ` + uniqueKeep(o.state)
			args = append(args, now)
		}
		var err error
		n, err = r.exec(ctx, `UPDATE shoal_jobs SET `+set+` WHERE id = $1 AND attempt = $2 AND worker = $3 AND state = 'running'`, args...)
		if err != nil || n == 0 || o.err == "" {
			return err
		}
		_, err = r.exec(ctx, `INSERT INTO shoal_job_errors (job_id, attempt, at_ms, error) VALUES ($1, $2, $3, $4)`, o.id, o.attempt, now, o.err)
		return err
	})
	return n > 0, err
}

// heartbeat renews the lease of every job worker runs and returns, for each job that still
// holds it, whether a cancel was requested.
func (s *store) heartbeat(ctx context.Context, worker string, leaseUntil int64) (map[int64]hb, error) {
	out := map[int64]hb{}
	collect := func(rs rowsI) error {
		for rs.Next() {
			var id int64
			var att, cancel int
			if err := rs.Scan(&id, &att, &cancel); err != nil {
				return database.Classify(err)
			}
			out[id] = hb{attempt: att, cancel: cancel != 0}
		}
		return database.Classify(rs.Err())
	}
	if s.d == database.MySQL {
		if _, err := s.writer().exec(ctx, `UPDATE shoal_jobs SET lease_until = $1 WHERE state = 'running' AND worker = $2`, leaseUntil, worker); err != nil {
			return nil, err
		}
		rs, closeRows, err := s.writer().query(ctx, `SELECT id, attempt, cancel_requested FROM shoal_jobs WHERE state = 'running' AND worker = $1`, worker)
		if err != nil {
			return nil, err
		}
		defer closeRows()
		return out, collect(rs)
	}
	rs, closeRows, err := s.writer().query(ctx, `UPDATE shoal_jobs SET lease_until = $1 WHERE state = 'running' AND worker = $2 RETURNING id, attempt, cancel_requested`, leaseUntil, worker)
	if err != nil {
		return nil, err
	}
	defer closeRows()
	return out, collect(rs)
}

type hb struct {
	attempt int
	cancel  bool
}

// rescue makes running jobs whose lease expired (their worker died) or that ran longer than
// rescueAfter available again — or discarded when that was their last attempt — with an error
// saying so. It returns the rescued jobs' IDs.
func (s *store) rescue(ctx context.Context, now, startedBefore int64) ([]int64, error) {
	var rescued []int64
	err := s.tx(ctx, func(r runner) error {
		rescued = rescued[:0]
		lock := ` FOR UPDATE SKIP LOCKED`
		if s.d == database.SQLite {
			lock = ""
		}
		rs, closeRows, err := r.query(ctx, `SELECT id, attempt, max_attempts, lease_until, attempted_at, worker FROM shoal_jobs
			WHERE state = 'running' AND (lease_until < $1 OR attempted_at < $2) ORDER BY id LIMIT 1000`+lock, now, startedBefore)
		if err != nil {
			return err
		}
		type exp struct {
			id             int64
			attempt, max   int
			lease, started sql.NullInt64
			worker         sql.NullString
		}
		var list []exp
		for rs.Next() {
			var e exp
			if err := rs.Scan(&e.id, &e.attempt, &e.max, &e.lease, &e.started, &e.worker); err != nil {
				closeRows()
				return database.Classify(err)
			}
			list = append(list, e)
		}
		closeRows()
		if err := rs.Err(); err != nil {
			return database.Classify(err)
		}
		for _, e := range list {
			why := fmt.Sprintf("rescued: the lease of worker %s expired (it stopped heartbeating: crashed, killed or cut off)", e.worker.String)
			if e.started.Valid && e.started.Int64 < startedBefore && (!e.lease.Valid || e.lease.Int64 >= now) {
				why = fmt.Sprintf("rescued: the run on worker %s went on longer than jobs.rescue_after", e.worker.String)
			}
			set := `state = 'available', run_at = $2, lease_until = NULL, worker = NULL`
			if e.attempt >= e.max {
				set = `state = 'discarded', finalized_at = $2, lease_until = NULL, worker = NULL, ` + uniqueKeep(StateDiscarded)
			}
			if _, err := r.exec(ctx, `UPDATE shoal_jobs SET `+set+` WHERE id = $1 AND state = 'running'`, e.id, now); err != nil {
				return err
			}
			if _, err := r.exec(ctx, `INSERT INTO shoal_job_errors (job_id, attempt, at_ms, error) VALUES ($1, $2, $3, $4)`, e.id, e.attempt, now, why); err != nil {
				return err
			}
			rescued = append(rescued, e.id)
		}
		return nil
	})
	return rescued, err
}

const rowCols = `id, kind, queue, state, priority, attempt, max_attempts, args, run_at, created_at, attempted_at, finalized_at, worker, unique_key, tags, metadata, timeout_ms`

func scanRow(rs rowsI) (*JobRow, error) {
	var j JobRow
	var args, tags, md string
	var state string
	var runAt, created, timeout int64
	var attempted, finalized sql.NullInt64
	var worker, ukey sql.NullString
	if err := rs.Scan(&j.ID, &j.Kind, &j.Queue, &state, &j.Priority, &j.Attempt, &j.MaxAttempts, &args, &runAt, &created,
		&attempted, &finalized, &worker, &ukey, &tags, &md, &timeout); err != nil {
		return nil, database.Classify(err)
	}
	j.State = State(state)
	j.Args = json.RawMessage(args)
	j.RunAt, j.CreatedAt = msTime(runAt), msTime(created)
	if attempted.Valid {
		t := msTime(attempted.Int64)
		j.AttemptedAt = &t
	}
	if finalized.Valid {
		t := msTime(finalized.Int64)
		j.FinalizedAt = &t
	}
	j.Worker, j.UniqueKey = worker.String, ukey.String
	j.Timeout = msDur(timeout)
	if tags != "" {
		_ = json.Unmarshal([]byte(tags), &j.Tags) // written by this package
	}
	if md != "" {
		_ = json.Unmarshal([]byte(md), &j.Metadata)
	}
	return &j, nil
}

// get returns one job with its errors.
func (s *store) get(ctx context.Context, id int64) (*JobRow, error) {
	r := s.writer()
	rs, closeRows, err := r.query(ctx, `SELECT `+rowCols+` FROM shoal_jobs WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	if !rs.Next() {
		closeRows()
		if err := rs.Err(); err != nil {
			return nil, database.Classify(err)
		}
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	j, err := scanRow(rs)
	closeRows()
	if err != nil {
		return nil, err
	}
	rs, closeRows, err = r.query(ctx, `SELECT attempt, at_ms, error FROM shoal_job_errors WHERE job_id = $1 ORDER BY at_ms, attempt`, id)
	if err != nil {
		return nil, err
	}
	defer closeRows()
	for rs.Next() {
		var e AttemptError
		var at int64
		if err := rs.Scan(&e.Attempt, &at, &e.Error); err != nil {
			return nil, database.Classify(err)
		}
		e.At = msTime(at)
		j.Errors = append(j.Errors, e)
	}
	return j, database.Classify(rs.Err())
}

// ensureLimit creates the limit row of kind.
func (s *store) ensureLimit(ctx context.Context, kind string) error {
	q := `INSERT INTO shoal_job_limits (kind, window_start, window_count) VALUES ($1, 0, 0) ON CONFLICT (kind) DO NOTHING`
	if s.d == database.MySQL {
		q = `INSERT IGNORE INTO shoal_job_limits (kind, window_start, window_count) VALUES ($1, 0, 0)`
	}
	_, err := s.writer().exec(ctx, q, kind)
	return err
}

// fetchLimited claims jobs of one kind with a concurrency or rate limit. The kind's limit row is
// locked for the transaction, so clients on every instance take turns and the counts hold
// across the fleet.
func (s *store) fetchLimited(ctx context.Context, queue, kind string, cfg kindConfig, now, leaseUntil int64, worker string, limit int) ([]fetched, error) {
	var got []fetched
	err := s.tx(ctx, func(r runner) error {
		got = nil
		// An UPDATE first takes the row's write lock on every dialect (SQLite: the write lock).
		if _, err := r.exec(ctx, `UPDATE shoal_job_limits SET window_count = window_count WHERE kind = $1`, kind); err != nil {
			return err
		}
		var start int64
		var count int
		if err := queryOne(ctx, r, `SELECT window_start, window_count FROM shoal_job_limits WHERE kind = $1`, []any{kind}, &start, &count); err != nil {
			return fmt.Errorf("reading the limits of kind %s: %w", kind, err)
		}
		allowed := limit
		if cfg.concurrency > 0 {
			var running int
			if err := queryOne(ctx, r, `SELECT COUNT(*) FROM shoal_jobs WHERE kind = $1 AND state = 'running'`, []any{kind}, &running); err != nil {
				return err
			}
			allowed = min(allowed, cfg.concurrency-running)
		}
		if cfg.rateN > 0 {
			if per := cfg.ratePer.Milliseconds(); now >= start+per {
				start, count = now, 0
			}
			allowed = min(allowed, cfg.rateN-count)
		}
		if allowed <= 0 {
			return nil
		}
		var err error
		if got, err = s.fetch(ctx, r, queue, []string{kind}, now, leaseUntil, worker, allowed); err != nil {
			return err
		}
		_, err = r.exec(ctx, `UPDATE shoal_job_limits SET window_start = $2, window_count = $3 WHERE kind = $1`, kind, start, count+len(got))
		return err
	})
	return got, err
}
