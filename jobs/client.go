package jobs

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
)

//go:embed migrations
var migrations embed.FS

// MigrationsTable is the goose version table of the jobs schema.
const MigrationsTable = "shoal_jobs_migrations"

// Options configure a [Client]. Config is the `jobs:` block of shoal.yml; the rest are for code
// and tests, with defaults that suit a service.
type Options struct {
	// Config is the jobs block (workers, max_retries, retry_delay, poll_interval,
	// rescue_after, queues, schedules). Zero fields take shoal's defaults.
	Config config.Jobs
	// QueueWorkers gives a queue its own pool of workers instead of sharing jobs.workers.
	QueueWorkers map[string]int
	// Heartbeat is how often a worker renews the leases of its running jobs and learns of
	// cancels. Defaults to 1s.
	Heartbeat time.Duration
	// Lease is how long a job stays claimed without a heartbeat; a job whose worker died is
	// made available again within Lease plus Heartbeat. Defaults to 10 × Heartbeat.
	Lease time.Duration
	// MaxBackoff caps the exponential retry delay. Defaults to 24h.
	MaxBackoff time.Duration
	// FetchCooldown is the least time between two fetches of one queue. Defaults to 1ms.
	FetchCooldown time.Duration
	// CompleteBatch and CompleteFlush bound how many successes wait to be recorded together,
	// and for how long. Default 2000 and 2ms.
	CompleteBatch int
	CompleteFlush time.Duration
	// ShutdownTimeout is how long Stop waits for running jobs when its context has no
	// deadline. Defaults to 30s.
	ShutdownTimeout time.Duration
	// AnyKind lets Enqueue insert kinds this client has no worker for (a producer-only
	// client). By default such an Enqueue fails with ErrUnknownKind.
	AnyKind bool
	// WorkerID names this client in the jobs it runs. Defaults to host-random.
	WorkerID string
	// Logger receives errors of the background loops. Defaults to slog.Default().
	Logger *slog.Logger
	// Now and Rand replace the clock and the jitter source (tests).
	Now  func() time.Time
	Rand func() float64
}

// Result is the outcome of one insert: the job's ID, and whether a unique job already held the
// key (then ID is that job's and nothing was inserted).
type Result struct {
	ID        int64
	Duplicate bool
}

// Client enqueues jobs and, once started, works them. One per process; safe for concurrent use.
type Client struct {
	db    *database.DB
	st    *store
	opts  Options
	cfg   config.Jobs
	now   func() time.Time
	rnd   func() float64
	log   *slog.Logger
	id    string
	mu    sync.Mutex
	kinds map[string]*kind
	sched []*schedule
	run   *runner2
	stats stats
}

// New builds a client on db (PostgreSQL, MySQL/MariaDB or SQLite). Call Migrate once (or let
// `shoal up` do it), Register the workers, then Start.
func New(db *database.DB, opts Options) (*Client, error) {
	if db == nil {
		return nil, errors.New("jobs: New needs a *database.DB; open one with database.Open")
	}
	switch db.Dialect() {
	case database.Postgres, database.MySQL, database.SQLite:
	default:
		return nil, fmt.Errorf("jobs: the %s database cannot store jobs; use PostgreSQL, MySQL/MariaDB or SQLite", db.Dialect())
	}
	cfg := opts.Config
	if cfg.Workers == 0 {
		cfg.Workers = 4
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = config.Duration(60 * time.Second)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = config.Duration(time.Second)
	}
	if cfg.RescueAfter == 0 {
		cfg.RescueAfter = config.Duration(time.Hour)
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = map[string]int{"default": 1}
	}
	if cfg.Workers < 1 || cfg.MaxRetries < 0 {
		return nil, fmt.Errorf("jobs: jobs.workers must be 1 or more and jobs.max_retries 0 or more, got %d and %d", cfg.Workers, cfg.MaxRetries)
	}
	for q, n := range opts.QueueWorkers {
		if _, ok := cfg.Queues[q]; !ok {
			return nil, fmt.Errorf("%w: QueueWorkers names %q, which is not one of jobs.queues (%s)", ErrUnknownQueue, q, queueNames(cfg.Queues))
		}
		if n < 1 {
			return nil, fmt.Errorf("jobs: QueueWorkers[%q] must be 1 or more, got %d", q, n)
		}
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	if opts.Lease <= 0 {
		opts.Lease = 10 * opts.Heartbeat
	}
	if opts.Lease < 2*opts.Heartbeat {
		return nil, fmt.Errorf("jobs: Lease (%s) must be at least twice Heartbeat (%s), or one slow heartbeat loses the job", opts.Lease, opts.Heartbeat)
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 24 * time.Hour
	}
	if opts.FetchCooldown <= 0 {
		opts.FetchCooldown = time.Millisecond
	}
	if opts.CompleteBatch <= 0 {
		opts.CompleteBatch = 2000
	}
	if opts.CompleteFlush <= 0 {
		opts.CompleteFlush = 2 * time.Millisecond
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = mrand.Float64
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.WorkerID == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		opts.WorkerID = hostname() + "-" + hex.EncodeToString(b)
	}
	if len(opts.WorkerID) > 64 {
		return nil, fmt.Errorf("jobs: WorkerID %q is longer than 64 characters", opts.WorkerID)
	}
	c := &Client{
		db: db, st: &store{db: db, d: db.Dialect()}, opts: opts, cfg: cfg,
		now: opts.Now, rnd: opts.Rand, log: opts.Logger, id: opts.WorkerID,
		kinds: map[string]*kind{},
	}
	c.stats.init()
	return c, nil
}

// Migrate applies the jobs schema (its own goose version table, shoal_jobs_migrations).
func (c *Client) Migrate(ctx context.Context) error { return Migrate(ctx, c.db) }

// Migrate applies the jobs schema to db.
func Migrate(ctx context.Context, db *database.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return database.Migrate(ctx, db, sub, database.WithTable(MigrationsTable))
}

// ID is the worker ID this client records in the jobs it runs.
func (c *Client) ID() string { return c.id }

func queueNames(m map[string]int) string {
	var names []string
	for q := range m {
		names = append(names, q)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// kind is a registered worker with its policy.
type kind struct {
	name string
	cfg  kindConfig
	work func(ctx context.Context, f *fetched) error
}

// Register adds the worker of T's kind to c. It fails for a kind registered twice or a policy
// out of range. Register before Start.
func Register[T Args](c *Client, w Worker[T], opts ...KindOption) (err error) {
	if w == nil {
		return errors.New("jobs: Register needs a worker")
	}
	var zero T
	name, err := kindOf(zero)
	if err != nil {
		return err
	}
	k := &kind{name: name}
	if rp, ok := w.(RetryPolicy); ok {
		n := rp.MaxRetries()
		k.cfg.maxRetries = &n
		k.cfg.backoff = rp.RetryDelay
	}
	if tp, ok := w.(TimeoutPolicy); ok {
		k.cfg.timeout = tp.Timeout()
	}
	for _, o := range opts {
		o(&k.cfg)
	}
	if err := k.cfg.validate(name); err != nil {
		return err
	}
	k.work = func(ctx context.Context, f *fetched) error {
		job := &Job[T]{ID: f.id, Kind: f.kind, Queue: f.queue, Priority: f.priority, Attempt: f.attempt,
			MaxAttempts: f.maxAttempts, CreatedAt: msTime(f.createdAt)}
		if err := json.Unmarshal([]byte(f.args), &job.Args); err != nil {
			return &decodeError{fmt.Errorf("jobs: the arguments of job %d do not decode into %T: %v (was it enqueued by an older version of the kind?)", f.id, zero, err)}
		}
		if f.tags != "" {
			_ = json.Unmarshal([]byte(f.tags), &job.Tags)
		}
		if f.metadata != "" {
			_ = json.Unmarshal([]byte(f.metadata), &job.Metadata)
		}
		return w.Work(ctx, job)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.run != nil {
		return fmt.Errorf("jobs: Register(%q) after Start; register every worker first", name)
	}
	if _, dup := c.kinds[name]; dup {
		return fmt.Errorf("jobs: kind %q is registered twice", name)
	}
	c.kinds[name] = k
	return nil
}

// decodeError is a job whose arguments cannot be decoded: retrying cannot help.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

func kindOf(a Args) (name string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("jobs: Kind() of %T panicked on its zero value (%v); define Kind on the value type, not the pointer", a, r)
		}
	}()
	if a == nil {
		return "", errors.New("jobs: nil args; pass a value whose type has a Kind() string method")
	}
	name = a.Kind()
	if name == "" || len(name) > 255 {
		return "", fmt.Errorf("jobs: %T.Kind() must return 1 to 255 characters, got %q", a, name)
	}
	return name, nil
}

// Insert is one job of EnqueueMany.
type Insert struct {
	Args Args
	Opts []EnqueueOption
}

// Enqueue inserts a job. With Unique, a duplicate returns the existing job's ID.
func (c *Client) Enqueue(ctx context.Context, args Args, opts ...EnqueueOption) (Result, error) {
	res, err := c.enqueue(ctx, nil, []Insert{{args, opts}})
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// EnqueueMany inserts jobs in one transaction (all or none), in one statement on PostgreSQL.
func (c *Client) EnqueueMany(ctx context.Context, jobs []Insert) ([]Result, error) {
	return c.enqueue(ctx, nil, jobs)
}

// EnqueueTx inserts a job inside the caller's transaction: it exists only if tx commits.
func (c *Client) EnqueueTx(ctx context.Context, tx *sql.Tx, args Args, opts ...EnqueueOption) (Result, error) {
	if tx == nil {
		return Result{}, errors.New("jobs: EnqueueTx needs a transaction; use Enqueue outside one")
	}
	res, err := c.enqueue(ctx, tx, []Insert{{args, opts}})
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// EnqueueManyTx is EnqueueMany inside the caller's transaction.
func (c *Client) EnqueueManyTx(ctx context.Context, tx *sql.Tx, jobs []Insert) ([]Result, error) {
	if tx == nil {
		return nil, errors.New("jobs: EnqueueManyTx needs a transaction; use EnqueueMany outside one")
	}
	return c.enqueue(ctx, tx, jobs)
}

// EnqueueRaw inserts a job of kind with args already encoded as JSON (the CLI's enqueue).
func (c *Client) EnqueueRaw(ctx context.Context, kind string, args json.RawMessage, opts ...EnqueueOption) (Result, error) {
	if !json.Valid(args) {
		return Result{}, fmt.Errorf("jobs: the arguments of a %s job are not valid JSON", kind)
	}
	res, err := c.enqueue(ctx, nil, []Insert{{rawArgs{kind, args}, opts}})
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

type rawArgs struct {
	kind string
	raw  json.RawMessage
}

func (r rawArgs) Kind() string                 { return r.kind }
func (r rawArgs) MarshalJSON() ([]byte, error) { return r.raw, nil }

func (c *Client) enqueue(ctx context.Context, tx *sql.Tx, ins []Insert) ([]Result, error) {
	if len(ins) == 0 {
		return nil, nil
	}
	now := c.now()
	rows := make([]insertRow, len(ins))
	for i, in := range ins {
		row, err := c.buildRow(in, now)
		if err != nil {
			if len(ins) > 1 {
				return nil, fmt.Errorf("job %d of the batch: %w", i, err)
			}
			return nil, err
		}
		rows[i] = row
	}
	var res []Result
	var err error
	switch {
	case tx != nil:
		res, err = c.st.insert(ctx, sqlRunner{tx, c.st.d}, rows)
	case len(rows) == 1 && c.st.d != database.MySQL || c.st.d == database.Postgres: // one statement (PostgreSQL: IDs first, then one INSERT)
		res, err = c.st.insert(ctx, c.st.writer(), rows)
	default:
		err = c.st.tx(ctx, func(r runner) error {
			var e error
			res, e = c.st.insert(ctx, r, rows)
			return e
		})
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: enqueue: %w", err)
	}
	for i, r := range res {
		if !r.Duplicate {
			c.stats.enqueued(rows[i].kind, rows[i].queue)
		}
	}
	if tx == nil && c.run != nil {
		c.run.wake(rows)
	}
	return res, nil
}

func (c *Client) buildRow(in Insert, now time.Time) (insertRow, error) {
	name, err := kindOf(in.Args)
	if err != nil {
		return insertRow{}, err
	}
	var o enqueueOpts
	for _, f := range in.Opts {
		f(&o)
	}
	if o.queue == "" {
		o.queue = "default"
	}
	if _, ok := c.cfg.Queues[o.queue]; !ok {
		return insertRow{}, fmt.Errorf("%w %q for a %s job; jobs.queues has %s — add it there or pick one of those", ErrUnknownQueue, o.queue, name, queueNames(c.cfg.Queues))
	}
	c.mu.Lock()
	k := c.kinds[name]
	c.mu.Unlock()
	if k == nil && !c.opts.AnyKind {
		return insertRow{}, fmt.Errorf("%w %q: no worker is registered for it on this client; call jobs.Register first (or set Options.AnyKind on a producer-only client)", ErrUnknownKind, name)
	}
	args, err := json.Marshal(in.Args)
	if err != nil {
		return insertRow{}, fmt.Errorf("jobs: the arguments of a %s job do not encode as JSON: %w", name, err)
	}
	runAt := now
	if !o.runAt.IsZero() {
		runAt = o.runAt
	}
	if o.delay > 0 {
		runAt = runAt.Add(o.delay)
	}
	maxAttempts := c.cfg.MaxRetries + 1
	if k != nil && k.cfg.maxRetries != nil {
		maxAttempts = *k.cfg.maxRetries + 1
	}
	if o.maxAttempts != 0 {
		if o.maxAttempts < 1 {
			return insertRow{}, fmt.Errorf("jobs: MaxAttempts must be 1 or more, got %d", o.maxAttempts)
		}
		maxAttempts = o.maxAttempts
	}
	timeout := o.timeout
	if timeout == 0 && k != nil {
		timeout = k.cfg.timeout
	}
	if timeout < 0 {
		return insertRow{}, fmt.Errorf("jobs: Timeout must be positive, got %s", timeout)
	}
	prio := 0
	if o.priority != nil {
		prio = *o.priority
	}
	row := insertRow{kind: name, queue: o.queue, priority: prio, maxAttempts: maxAttempts, args: args,
		runAt: runAt.UnixMilli(), createdAt: now.UnixMilli(), timeoutMs: timeout.Milliseconds(),
		notify: !runAt.After(now)}
	if len(o.tags) > 0 {
		b, _ := json.Marshal(o.tags)
		row.tags = string(b)
	}
	if len(o.metadata) > 0 {
		b, _ := json.Marshal(o.metadata)
		row.metadata = string(b)
	}
	if o.unique != nil {
		key, states, err := o.unique.key(name, o.queue, args, runAt)
		if err != nil {
			return insertRow{}, err
		}
		row.uniqueKey, row.uniqueStates = &key, &states
	}
	return row, nil
}

// backoff is the delay before retry number attempt of kind k.
func (c *Client) backoff(k *kind, attempt int) time.Duration {
	if k != nil && k.cfg.backoff != nil {
		return k.cfg.backoff(attempt)
	}
	return Backoff(c.cfg.RetryDelay.D(), c.opts.MaxBackoff, attempt, c.rnd())
}

// Backoff is the default retry delay: base × 2^(attempt-1), times a jitter factor in
// [0.75, 1.25) from r in [0, 1), capped at max.
func Backoff(base, max time.Duration, attempt int, r float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	exp := math.Pow(2, float64(attempt-1))
	d := float64(base) * exp * (0.75 + 0.5*r)
	if d > float64(max) || math.IsInf(d, 0) || math.IsNaN(d) {
		return max
	}
	return time.Duration(d)
}

// Get returns a job with every attempt's error.
func (c *Client) Get(ctx context.Context, id int64) (*JobRow, error) { return c.st.get(ctx, id) }

// Cancel cancels a job: an available job is cancelled at once; a running job's context is
// cancelled with ErrJobCancelled at its worker's next heartbeat (or at once on PostgreSQL, by
// NOTIFY), and it is recorded cancelled when its handler returns. A finished job gives ErrFinal.
func (c *Client) Cancel(ctx context.Context, id int64) (*JobRow, error) {
	now := c.now().UnixMilli()
	w := c.st.writer()
	n, err := w.exec(ctx, `UPDATE shoal_jobs SET state = 'cancelled', finalized_at = $2, `+uniqueKeep(StateCancelled)+` WHERE id = $1 AND state = 'available'`, id, now)
	if err != nil {
		return nil, fmt.Errorf("jobs: cancel %d: %w", id, err)
	}
	if n == 0 {
		n, err = w.exec(ctx, `UPDATE shoal_jobs SET cancel_requested = 1 WHERE id = $1 AND state = 'running'`, id)
		if err != nil {
			return nil, fmt.Errorf("jobs: cancel %d: %w", id, err)
		}
		if n > 0 && c.st.d == database.Postgres {
			_, _ = w.exec(ctx, `SELECT pg_notify('shoal_jobs_cancel', current_schema() || ':' || $1)`, fmt.Sprint(id))
		}
	}
	j, err := c.st.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return j, fmt.Errorf("%w: job %d is %s", ErrFinal, id, j.State)
	}
	return j, nil
}

// Retry makes a finished (completed, cancelled, discarded) or waiting job run now, with one more
// attempt if it had used them all. A running job gives ErrFinal.
func (c *Client) Retry(ctx context.Context, id int64) (*JobRow, error) {
	now := c.now().UnixMilli()
	n, err := c.st.writer().exec(ctx, `UPDATE shoal_jobs SET state = 'available', run_at = $2, finalized_at = NULL, cancel_requested = 0,
		max_attempts = CASE WHEN attempt >= max_attempts THEN attempt + 1 ELSE max_attempts END
		WHERE id = $1 AND state <> 'running'`, id, now)
	if err != nil {
		return nil, fmt.Errorf("jobs: retry %d: %w", id, err)
	}
	j, err := c.st.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return j, fmt.Errorf("%w: job %d is running; cancel it first", ErrFinal, id)
	}
	if c.run != nil {
		c.run.wakeQueue(j.Queue)
	}
	return j, nil
}

// ListParams filter List. Zero fields match everything.
type ListParams struct {
	State State
	Kind  string
	Queue string
	// Limit defaults to 100; AfterID pages (jobs with a smaller ID, newest first).
	Limit   int
	AfterID int64
}

// List returns jobs, newest first.
func (c *Client) List(ctx context.Context, p ListParams) ([]*JobRow, error) {
	q := `SELECT ` + rowCols + ` FROM shoal_jobs WHERE 1 = 1`
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		q += fmt.Sprintf(" AND "+cond, len(args))
	}
	if p.State != "" {
		if _, err := ParseState(string(p.State)); err != nil {
			return nil, err
		}
		add("state = $%d", string(p.State))
	}
	if p.Kind != "" {
		add("kind = $%d", p.Kind)
	}
	if p.Queue != "" {
		add("queue = $%d", p.Queue)
	}
	if p.AfterID > 0 {
		add("id < $%d", p.AfterID)
	}
	if p.Limit <= 0 || p.Limit > 10000 {
		p.Limit = 100
	}
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", p.Limit)
	rs, closeRows, err := c.st.reader().query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("jobs: list: %w", err)
	}
	defer closeRows()
	var out []*JobRow
	for rs.Next() {
		j, err := scanRow(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, database.Classify(rs.Err())
}

// QueueDepth is the number of jobs by queue and state.
type QueueDepth struct {
	Queue string `json:"queue"`
	State State  `json:"state"`
	Count int64  `json:"count"`
	// OldestAvailable is the run time of the oldest job available now (state available only).
	OldestAvailable *time.Time `json:"oldest_available,omitempty"`
}

// Depths counts jobs by queue and state; for available jobs, only those whose run time has come
// (the backlog a worker could take now), with the oldest run time.
func (c *Client) Depths(ctx context.Context) ([]QueueDepth, error) {
	now := c.now().UnixMilli()
	rs, closeRows, err := c.st.reader().query(ctx, `SELECT queue, state, COUNT(*), MIN(run_at) FROM shoal_jobs
		WHERE state <> 'available' OR run_at <= $1 GROUP BY queue, state ORDER BY queue, state`, now)
	if err != nil {
		return nil, fmt.Errorf("jobs: depths: %w", err)
	}
	defer closeRows()
	var out []QueueDepth
	for rs.Next() {
		var d QueueDepth
		var st string
		var oldest sql.NullInt64
		if err := rs.Scan(&d.Queue, &st, &d.Count, &oldest); err != nil {
			return nil, database.Classify(err)
		}
		d.State = State(st)
		if d.State == StateAvailable && oldest.Valid {
			t := msTime(oldest.Int64)
			d.OldestAvailable = &t
		}
		out = append(out, d)
	}
	return out, database.Classify(rs.Err())
}

func msTime(ms int64) time.Time    { return time.UnixMilli(ms).UTC() }
func msDur(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// Depth is job_queue_depth: the jobs available to run now over every queue (not those waiting
// for a later run time). The autoscaler scales on it:
//
//	autoscale.Gauge(config.MetricJobQueueDepth, func(ctx context.Context) (float64, error) {
//		n, err := client.Depth(ctx)
//		return float64(n), err
//	})
func (c *Client) Depth(ctx context.Context) (int64, error) {
	var n int64
	err := queryOne(ctx, c.st.reader(), `SELECT COUNT(*) FROM shoal_jobs WHERE state = 'available' AND run_at <= $1`, []any{c.now().UnixMilli()}, &n)
	if err != nil {
		return 0, fmt.Errorf("jobs: queue depth: %w", err)
	}
	return n, nil
}
