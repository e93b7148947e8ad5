// Package jobstest is the conformance suite every driver of package jobs passes (PostgreSQL,
// MySQL/MariaDB, SQLite): each subtest builds clients on a new, empty database from newDB and
// checks what the package promises — every job runs, retries keep every attempt's error,
// snooze, cancel, priorities, unique jobs under concurrent enqueuers, transactions, rescue of a
// dead worker's jobs, graceful shutdown, limits and schedules.
package jobstest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/jobs"
)

// NewDB returns a new, empty database that lives as long as t (skipping t when its server is
// not running). For SQLite, a second call with the same t must not be needed: tests open one DB
// and build several clients on it.
type NewDB func(t testing.TB) *database.DB

// Run runs the suite.
func Run(t *testing.T, newDB NewDB) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *database.DB)
	}{
		{"EnqueueAndWork", testEnqueueAndWork},
		{"EnqueueMany", testEnqueueMany},
		{"EnqueueTx", testEnqueueTx},
		{"RetryThenDiscardKeepsEveryError", testDiscard},
		{"KindPolicy", testKindPolicy},
		{"Snooze", testSnooze},
		{"CancelFromHandler", testCancelFromHandler},
		{"CancelRunningJob", testCancelRunning},
		{"CancelAndRetryAPI", testCancelRetryAPI},
		{"Priority", testPriority},
		{"UniqueUnderConcurrentEnqueuers", testUnique},
		{"UniqueByPeriodAndState", testUniqueStates},
		{"RescueDeadWorker", testRescue},
		{"GracefulShutdownReleases", testShutdown},
		{"Timeout", testTimeout},
		{"BadInput", testBadInput},
		{"QueueWorkers", testQueueWorkers},
		{"ConcurrencyLimit", testConcurrencyLimit},
		{"RateLimit", testRateLimit},
		{"ScheduleOncePerTick", testSchedule},
		{"ListAndDepths", testList},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			if err := jobs.Migrate(ctxT(t), db); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			tc.fn(t, db)
		})
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Quiet is a logger that drops everything (the loops log expected failures in some tests).
func Quiet() *slog.Logger { return quiet }

// Options are fast settings for tests: short heartbeats and polls.
func Options() jobs.Options {
	return jobs.Options{
		Config: config.Jobs{Workers: 4, MaxRetries: 3, RetryDelay: config.Duration(time.Millisecond),
			PollInterval: config.Duration(50 * time.Millisecond), RescueAfter: config.Duration(time.Hour),
			Queues: map[string]int{"default": 1, "high": 10, "low": 0}},
		Heartbeat:       50 * time.Millisecond,
		Lease:           2 * time.Second, // a loaded machine (race detector, 2 shared cores) must not lose leases
		ShutdownTimeout: 10 * time.Second,
	}
}

// testHandler fails the test on an error logged by the client's background loops, and logs
// the rest to t.
type testHandler struct {
	t     testing.TB
	attrs []slog.Attr
}

func (h testHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h testHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	if r.Level >= slog.LevelError {
		h.t.Errorf("client logged an error: %s", b.String())
	} else {
		h.t.Logf("client: %s", b.String())
	}
	return nil
}
func (h testHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return testHandler{h.t, append(h.attrs, a...)}
}
func (h testHandler) WithGroup(string) slog.Handler { return h }

// NewClient builds a client with opts (Options() when nil) and stops it when t ends. Errors the
// client logs fail t.
func NewClient(t testing.TB, db *database.DB, opts *jobs.Options) *jobs.Client {
	t.Helper()
	o := Options()
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil || o.Logger == quiet {
		o.Logger = slog.New(testHandler{t: t})
	}
	c, err := jobs.New(db, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return c
}

func start(t testing.TB, c *jobs.Client) {
	t.Helper()
	if err := c.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// Eventually polls cond every 10ms until it holds or a minute passes.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitState waits until job id is in state and returns it.
func WaitState(t testing.TB, c *jobs.Client, id int64, want jobs.State) *jobs.JobRow {
	t.Helper()
	var j *jobs.JobRow
	Eventually(t, fmt.Sprintf("job %d to be %s", id, want), func() bool {
		var err error
		j, err = c.Get(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		return j.State == want
	})
	return j
}

func enqueue(t testing.TB, c *jobs.Client, a jobs.Args, opts ...jobs.EnqueueOption) int64 {
	t.Helper()
	r, err := c.Enqueue(ctxT(t), a, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// Noop is a job that does nothing; N tells jobs apart.
type Noop struct{ N int }

func (Noop) Kind() string { return "noop" }

// Fail fails as its worker says.
type Fail struct{ N int }

func (Fail) Kind() string { return "fail" }

// Block blocks until its context ends or it is released.
type Block struct{ N int }

func (Block) Kind() string { return "block" }

func testEnqueueAndWork(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	var mu sync.Mutex
	seen := map[int]int{}
	if err := jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error {
		mu.Lock()
		seen[j.Args.N]++
		mu.Unlock()
		if j.Attempt != 1 || j.Kind != "noop" || j.Queue != "default" {
			return fmt.Errorf("job %+v", j)
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	start(t, c)
	var ids []int64
	for i := 0; i < 50; i++ {
		ids = append(ids, enqueue(t, c, Noop{i}, jobs.Tags("t1"), jobs.Metadata(map[string]string{"k": "v"})))
	}
	for _, id := range ids {
		j := WaitState(t, c, id, jobs.StateCompleted)
		if j.Attempt != 1 || j.FinalizedAt == nil || len(j.Errors) != 0 || j.Tags[0] != "t1" || j.Metadata["k"] != "v" {
			t.Errorf("completed job %+v", j)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < 50; i++ {
		if seen[i] != 1 {
			t.Errorf("job %d ran %d times", i, seen[i])
		}
	}
	if s := c.Stats(); s.Completed != 50 || s.Enqueued != 50 {
		t.Errorf("stats %+v", s)
	}
}

func testEnqueueMany(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	var ran atomic.Int64
	must(t, jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error { ran.Add(1); return nil })))
	var batch []jobs.Insert
	for i := 0; i < 120; i++ {
		batch = append(batch, jobs.Insert{Args: Noop{i}})
	}
	// Two unique ones with the same key: the second is a duplicate of the first.
	u := jobs.Unique(jobs.UniqueOpts{Key: "one"})
	batch = append(batch, jobs.Insert{Args: Noop{1000}, Opts: []jobs.EnqueueOption{u}}, jobs.Insert{Args: Noop{1001}, Opts: []jobs.EnqueueOption{u}})
	res, err := c.EnqueueMany(ctxT(t), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 122 || res[120].Duplicate || !res[121].Duplicate || res[121].ID != res[120].ID {
		t.Fatalf("results: %d, last two %+v %+v", len(res), res[120], res[121])
	}
	ids := map[int64]bool{}
	for _, r := range res[:121] {
		if ids[r.ID] {
			t.Fatalf("ID %d twice", r.ID)
		}
		ids[r.ID] = true
	}
	j, err := c.Get(ctxT(t), res[7].ID)
	if err != nil || string(j.Args) != `{"N":7}` {
		t.Fatalf("job 7: %+v %v", j, err)
	}
	start(t, c)
	Eventually(t, "121 jobs run", func() bool { return ran.Load() >= 121 })
	WaitState(t, c, res[120].ID, jobs.StateCompleted)
}

func testEnqueueTx(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	must(t, jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error { return nil })))
	ctx := ctxT(t)
	boom := errors.New("boom")
	var rolled int64
	err := db.WithTx(ctx, nil, func(tx *sql.Tx) error {
		r, err := c.EnqueueTx(ctx, tx, Noop{1})
		if err != nil {
			return err
		}
		rolled = r.ID
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("rollback: %v", err)
	}
	if _, err := c.Get(ctx, rolled); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("a rolled back job exists: %v", err)
	}
	var kept int64
	err = db.WithTx(ctx, nil, func(tx *sql.Tx) error {
		rs, err := c.EnqueueManyTx(ctx, tx, []jobs.Insert{{Args: Noop{2}}, {Args: Noop{3}}})
		if err != nil {
			return err
		}
		kept = rs[1].ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, c)
	WaitState(t, c, kept, jobs.StateCompleted)
	n, err := c.List(ctx, jobs.ListParams{})
	if err != nil || len(n) != 2 {
		t.Fatalf("list after commit: %d jobs, %v", len(n), err)
	}
}

func testDiscard(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	must(t, jobs.Register(c, jobs.WorkerFunc[Fail](func(ctx context.Context, j *jobs.Job[Fail]) error {
		return fmt.Errorf("failure %d", j.Attempt)
	})))
	start(t, c)
	id := enqueue(t, c, Fail{}) // jobs.max_retries 3: four attempts
	j := WaitState(t, c, id, jobs.StateDiscarded)
	if j.Attempt != 4 || len(j.Errors) != 4 {
		t.Fatalf("discarded after %d attempts with %d errors: %+v", j.Attempt, len(j.Errors), j.Errors)
	}
	for i, e := range j.Errors {
		if e.Attempt != i+1 || e.Error != fmt.Sprintf("failure %d", i+1) {
			t.Errorf("error %d: %+v", i, e)
		}
	}
}

type policyWorker struct{ runs atomic.Int64 }

func (w *policyWorker) Work(ctx context.Context, j *jobs.Job[Fail]) error {
	w.runs.Add(1)
	return errors.New("no")
}
func (w *policyWorker) MaxRetries() int                      { return 1 }
func (w *policyWorker) RetryDelay(attempt int) time.Duration { return 0 }

func testKindPolicy(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	w := &policyWorker{}
	must(t, jobs.Register[Fail](c, w))
	start(t, c)
	id := enqueue(t, c, Fail{})
	j := WaitState(t, c, id, jobs.StateDiscarded)
	if j.Attempt != 2 || j.MaxAttempts != 2 || w.runs.Load() != 2 {
		t.Fatalf("MaxRetries 1: attempt %d of %d, %d runs", j.Attempt, j.MaxAttempts, w.runs.Load())
	}
	// MaxAttempts at enqueue overrides the kind.
	id = enqueue(t, c, Fail{1}, jobs.MaxAttempts(1))
	if j := WaitState(t, c, id, jobs.StateDiscarded); j.Attempt != 1 {
		t.Fatalf("MaxAttempts(1): %d attempts", j.Attempt)
	}
}

func testSnooze(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	var runs atomic.Int64
	must(t, jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error {
		if runs.Add(1) <= 5 {
			if j.Attempt != 1 {
				return fmt.Errorf("snooze spent an attempt: %d", j.Attempt)
			}
			return jobs.Snooze(time.Millisecond)
		}
		return nil
	})))
	start(t, c)
	id := enqueue(t, c, Noop{}, jobs.MaxAttempts(1))
	j := WaitState(t, c, id, jobs.StateCompleted)
	if runs.Load() != 6 || j.Attempt != 1 || len(j.Errors) != 0 {
		t.Fatalf("after 5 snoozes: %d runs, attempt %d, errors %v", runs.Load(), j.Attempt, j.Errors)
	}
	if s := c.Stats(); s.Snoozed != 5 {
		t.Errorf("snoozed %d", s.Snoozed)
	}
}

func testCancelFromHandler(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	var runs atomic.Int64
	must(t, jobs.Register(c, jobs.WorkerFunc[Fail](func(ctx context.Context, j *jobs.Job[Fail]) error {
		runs.Add(1)
		return jobs.Cancel(errors.New("the account is gone"))
	})))
	start(t, c)
	id := enqueue(t, c, Fail{})
	j := WaitState(t, c, id, jobs.StateCancelled)
	if runs.Load() != 1 || len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Error, "the account is gone") {
		t.Fatalf("cancelled: %d runs, %+v", runs.Load(), j.Errors)
	}
}

func testCancelRunning(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	started := make(chan int64, 1)
	cause := make(chan error, 1)
	must(t, jobs.Register(c, jobs.WorkerFunc[Block](func(ctx context.Context, j *jobs.Job[Block]) error {
		started <- j.ID
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	})))
	start(t, c)
	id := enqueue(t, c, Block{})
	<-started
	if _, err := c.Cancel(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	if err := <-cause; !errors.Is(err, jobs.ErrJobCancelled) {
		t.Fatalf("the handler's context ended with %v, want ErrJobCancelled", err)
	}
	j := WaitState(t, c, id, jobs.StateCancelled)
	if j.Attempt != 1 || len(j.Errors) != 1 {
		t.Fatalf("%+v", j)
	}
	if _, err := c.Cancel(ctxT(t), id); !errors.Is(err, jobs.ErrFinal) {
		t.Fatalf("cancel of a cancelled job: %v", err)
	}
}

func testCancelRetryAPI(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	var runs atomic.Int64
	must(t, jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error { runs.Add(1); return nil })))
	ctx := ctxT(t)
	id := enqueue(t, c, Noop{}, jobs.Delay(time.Hour))
	j, err := c.Cancel(ctx, id)
	if err != nil || j.State != jobs.StateCancelled {
		t.Fatalf("cancel a waiting job: %+v %v", j, err)
	}
	if _, err := c.Cancel(ctx, 1<<40); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("cancel a missing job: %v", err)
	}
	start(t, c)
	if _, err := c.Retry(ctx, id); err != nil {
		t.Fatal(err)
	}
	WaitState(t, c, id, jobs.StateCompleted)
	if runs.Load() != 1 {
		t.Fatalf("%d runs after retry", runs.Load())
	}
	if _, err := c.Retry(ctx, 1<<40); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("retry a missing job: %v", err)
	}
}

func testPriority(t *testing.T, db *database.DB) {
	o := Options()
	o.Config.Workers = 1
	c := NewClient(t, db, &o)
	var mu sync.Mutex
	var order []int
	must(t, jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error {
		mu.Lock()
		order = append(order, j.Args.N)
		mu.Unlock()
		return nil
	})))
	// Queue weights first (high 10, default 1, low 0), then the job's priority, then age.
	enqueue(t, c, Noop{6}, jobs.Queue("low"), jobs.Priority(100))
	enqueue(t, c, Noop{5}, jobs.Priority(-1))
	enqueue(t, c, Noop{3}, jobs.Priority(0))
	enqueue(t, c, Noop{4}, jobs.Priority(0))
	enqueue(t, c, Noop{2}, jobs.Priority(5))
	enqueue(t, c, Noop{1}, jobs.Queue("high"))
	start(t, c)
	Eventually(t, "six jobs", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 6 })
	if fmt.Sprint(order) != "[1 2 3 4 5 6]" {
		t.Fatalf("order %v, want [1 2 3 4 5 6]", order)
	}
}

func testUnique(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	must(t, jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error { return nil })))
	var wg sync.WaitGroup
	results := make([]jobs.Result, 16)
	errs := make([]error, 16)
	gate := make(chan struct{})
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-gate
			results[i], errs[i] = c.Enqueue(ctxT(t), Noop{7}, jobs.Unique(jobs.UniqueOpts{ByArgs: true}))
		}(i)
	}
	close(gate)
	wg.Wait()
	inserted := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("enqueuer %d: %v", i, errs[i])
		}
		if !results[i].Duplicate {
			inserted++
		}
		if results[i].ID != results[0].ID {
			t.Errorf("enqueuer %d got job %d, enqueuer 0 job %d", i, results[i].ID, results[0].ID)
		}
	}
	if inserted != 1 {
		t.Fatalf("%d of 16 concurrent unique enqueues inserted, want exactly 1", inserted)
	}
	// Other args are another key.
	if r, err := c.Enqueue(ctxT(t), Noop{8}, jobs.Unique(jobs.UniqueOpts{ByArgs: true})); err != nil || r.Duplicate {
		t.Fatalf("other args: %+v %v", r, err)
	}
}

func testUniqueStates(t *testing.T, db *database.DB) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	o := Options()
	o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := NewClient(t, db, &o)
	must(t, jobs.Register(c, jobs.WorkerFunc[Fail](func(ctx context.Context, j *jobs.Job[Fail]) error {
		return jobs.Cancel(nil)
	})))
	hourly := jobs.Unique(jobs.UniqueOpts{ByPeriod: time.Hour})
	a := enqueue(t, c, Fail{}, hourly)
	if r, _ := c.Enqueue(ctxT(t), Fail{}, hourly); !r.Duplicate || r.ID != a {
		t.Fatalf("same hour: %+v", r)
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	b := enqueue(t, c, Fail{}, hourly)
	if b == a {
		t.Fatal("the next hour was a duplicate")
	}
	// Cancelled jobs free their key by default.
	if _, err := c.Cancel(ctxT(t), b); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Enqueue(ctxT(t), Fail{}, hourly); r.Duplicate {
		t.Fatal("a cancelled job still held its unique key")
	}
	// With cancelled among the states, it keeps it.
	keep := jobs.Unique(jobs.UniqueOpts{Key: "k", States: []jobs.State{jobs.StateAvailable, jobs.StateCancelled}})
	d := enqueue(t, c, Fail{}, keep)
	if _, err := c.Cancel(ctxT(t), d); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Enqueue(ctxT(t), Fail{}, keep); !r.Duplicate || r.ID != d {
		t.Fatalf("a cancelled job with cancelled in its unique states: %+v", r)
	}
	if _, err := c.Enqueue(ctxT(t), Fail{}, jobs.Unique(jobs.UniqueOpts{States: []jobs.State{"nope"}})); err == nil {
		t.Fatal("an unknown unique state was accepted")
	}
}

func testRescue(t *testing.T, db *database.DB) {
	// A dead client: it claimed a job (running, its lease set) and stopped heartbeating.
	dead := NewClient(t, db, nil)
	must(t, jobs.Register(dead, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error { return nil })))
	ctx := ctxT(t)
	id := enqueue(t, dead, Noop{})
	past := time.Now().Add(-time.Second).UnixMilli()
	if _, err := db.ExecContext(ctx, `UPDATE shoal_jobs SET state = 'running', attempt = 1, attempted_at = $1, lease_until = $1, worker = 'dead-worker' WHERE id = $2`, past, id); err != nil {
		t.Fatal(err)
	}
	c := NewClient(t, db, nil)
	var ran atomic.Int64
	must(t, jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error {
		ran.Add(1)
		if j.Attempt != 2 {
			return fmt.Errorf("attempt %d after a rescue, want 2", j.Attempt)
		}
		return nil
	})))
	start(t, c)
	j := WaitState(t, c, id, jobs.StateCompleted)
	if ran.Load() != 1 || len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Error, "dead-worker") {
		t.Fatalf("rescued job: %d runs, errors %+v", ran.Load(), j.Errors)
	}
	if c.Stats().Rescued < 1 {
		t.Error("rescue not counted")
	}
	// A job past rescue_after is rescued even though its lease is fresh.
	id2 := enqueue(t, c, Noop{}, jobs.Delay(time.Hour))
	future := time.Now().Add(time.Hour).UnixMilli()
	if _, err := db.ExecContext(ctx, `UPDATE shoal_jobs SET state = 'running', attempt = 1, attempted_at = $1, lease_until = $2, worker = 'stuck-worker' WHERE id = $3`,
		time.Now().Add(-2*time.Hour).UnixMilli(), future, id2); err != nil {
		t.Fatal(err)
	}
	// The job is available again but waits for its run time: look at its error instead.
	Eventually(t, "the stuck job rescued", func() bool {
		j, err := c.Get(ctx, id2)
		return err == nil && j.State != jobs.StateRunning
	})
	j, _ = c.Get(ctx, id2)
	if len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Error, "rescue_after") {
		t.Fatalf("stuck job errors %+v", j.Errors)
	}
}

func testShutdown(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	started := make(chan struct{}, 1)
	var causes atomic.Value
	must(t, jobs.Register(c, jobs.WorkerFunc[Block](func(ctx context.Context, j *jobs.Job[Block]) error {
		started <- struct{}{}
		<-ctx.Done()
		causes.Store(context.Cause(ctx))
		return ctx.Err()
	})))
	start(t, c)
	id := enqueue(t, c, Block{})
	<-started
	stopCtx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err, _ := causes.Load().(error); !errors.Is(err, jobs.ErrShutdown) {
		t.Fatalf("cause %v, want ErrShutdown", err)
	}
	j, err := c.Get(ctxT(t), id)
	if err != nil || j.State != jobs.StateAvailable || j.Attempt != 0 || len(j.Errors) != 0 {
		t.Fatalf("released job: %+v %v", j, err)
	}
	// Another client runs it.
	c2 := NewClient(t, db, nil)
	must(t, jobs.Register(c2, jobs.WorkerFunc[Block](func(ctx context.Context, j *jobs.Job[Block]) error { return nil })))
	start(t, c2)
	WaitState(t, c2, id, jobs.StateCompleted)
}

func testTimeout(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	must(t, jobs.Register(c, jobs.WorkerFunc[Block](func(ctx context.Context, j *jobs.Job[Block]) error {
		<-ctx.Done()
		return context.Cause(ctx)
	}), jobs.WithTimeout(20*time.Millisecond), jobs.WithRetries(0)))
	start(t, c)
	id := enqueue(t, c, Block{})
	j := WaitState(t, c, id, jobs.StateDiscarded)
	if len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Error, "timed out") {
		t.Fatalf("errors %+v", j.Errors)
	}
}

// Other is registered on no client.
type Other struct{}

func (Other) Kind() string { return "other" }

// BadArgs decodes from nothing but a string.
type BadArgs struct{ N int }

func (BadArgs) Kind() string { return "bad_args" }

func testBadInput(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	must(t, jobs.Register(c, jobs.WorkerFunc[BadArgs](func(ctx context.Context, j *jobs.Job[BadArgs]) error { return nil })))
	ctx := ctxT(t)
	if _, err := c.Enqueue(ctx, Other{}); !errors.Is(err, jobs.ErrUnknownKind) || !strings.Contains(err.Error(), "Register") {
		t.Errorf("unregistered kind: %v", err)
	}
	if _, err := c.Enqueue(ctx, BadArgs{}, jobs.Queue("nope")); !errors.Is(err, jobs.ErrUnknownQueue) || !strings.Contains(err.Error(), "default") {
		t.Errorf("unknown queue: %v", err)
	}
	if err := jobs.Register(c, jobs.WorkerFunc[BadArgs](func(ctx context.Context, j *jobs.Job[BadArgs]) error { return nil })); err == nil {
		t.Error("a kind registered twice")
	}
	if err := c.Schedule("s", "every minute", Noop{}); err == nil || !strings.Contains(err.Error(), "cron") {
		t.Errorf("malformed cron: %v", err)
	}
	if _, err := c.EnqueueRaw(ctx, "bad_args", []byte(`{"N":`)); err == nil {
		t.Error("invalid JSON accepted")
	}
	// Arguments that do not decode: discarded at once with the reason, not retried.
	r, err := c.EnqueueRaw(ctx, "bad_args", []byte(`{"N":"seven"}`))
	if err != nil {
		t.Fatal(err)
	}
	start(t, c)
	j := WaitState(t, c, r.ID, jobs.StateDiscarded)
	if j.Attempt != 1 || len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Error, "do not decode") {
		t.Fatalf("undecodable job: %+v", j)
	}
	if err := jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error { return nil })); err == nil {
		t.Error("Register after Start")
	}
}

func testQueueWorkers(t *testing.T, db *database.DB) {
	// Queue low has a pool of its own of 1 worker; its blocked jobs take nothing from the others.
	o := Options()
	o.QueueWorkers = map[string]int{"low": 1}
	c := NewClient(t, db, &o)
	release := make(chan struct{})
	var lowRunning, lowPeak atomic.Int64
	must(t, jobs.Register(c, jobs.WorkerFunc[Block](func(ctx context.Context, j *jobs.Job[Block]) error {
		n := lowRunning.Add(1)
		defer lowRunning.Add(-1)
		for p := lowPeak.Load(); n > p && !lowPeak.CompareAndSwap(p, n); p = lowPeak.Load() {
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})))
	must(t, jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error { return nil })))
	var low []int64
	for i := 0; i < 3; i++ {
		low = append(low, enqueue(t, c, Block{i}, jobs.Queue("low")))
	}
	start(t, c)
	Eventually(t, "a low job running", func() bool { return lowRunning.Load() == 1 })
	id := enqueue(t, c, Noop{})
	WaitState(t, c, id, jobs.StateCompleted)
	if p := lowPeak.Load(); p != 1 {
		t.Fatalf("queue low with 1 worker ran %d jobs at once", p)
	}
	close(release)
	for _, id := range low {
		WaitState(t, c, id, jobs.StateCompleted)
	}
	if lowPeak.Load() != 1 {
		t.Fatalf("queue low ran %d at once", lowPeak.Load())
	}
	if _, err := jobs.New(db, jobs.Options{QueueWorkers: map[string]int{"nope": 1}}); !errors.Is(err, jobs.ErrUnknownQueue) {
		t.Fatalf("QueueWorkers for an unknown queue: %v", err)
	}
}

func testConcurrencyLimit(t *testing.T, db *database.DB) {
	// Two clients, 4 workers each, 12 jobs and a limit of 2 running jobs of the kind across both.
	var running, peak atomic.Int64
	work := jobs.WorkerFunc[Block](func(ctx context.Context, j *jobs.Job[Block]) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		return nil
	})
	var clients []*jobs.Client
	for i := 0; i < 2; i++ {
		c := NewClient(t, db, nil)
		must(t, jobs.Register(c, work, jobs.WithConcurrency(2)))
		clients = append(clients, c)
	}
	var ins []jobs.Insert
	for i := 0; i < 12; i++ {
		ins = append(ins, jobs.Insert{Args: Block{i}})
	}
	if _, err := clients[0].EnqueueMany(ctxT(t), ins); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		start(t, c)
	}
	Eventually(t, "12 jobs done", func() bool {
		l, err := clients[0].List(ctxT(t), jobs.ListParams{State: jobs.StateCompleted})
		return err == nil && len(l) == 12
	})
	if p := peak.Load(); p > 2 || p < 1 {
		t.Fatalf("peak of %d jobs running at once under a limit of 2", p)
	}
}

func testRateLimit(t *testing.T, db *database.DB) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	o := Options()
	o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := NewClient(t, db, &o)
	var ran atomic.Int64
	must(t, jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error { ran.Add(1); return nil }),
		jobs.WithRateLimit(3, time.Minute)))
	var ins []jobs.Insert
	for i := 0; i < 10; i++ {
		ins = append(ins, jobs.Insert{Args: Noop{i}})
	}
	if _, err := c.EnqueueMany(ctxT(t), ins); err != nil {
		t.Fatal(err)
	}
	start(t, c)
	Eventually(t, "3 jobs in the first minute", func() bool { return ran.Load() == 3 })
	// No fourth within the minute, over several polls (the clock does not move).
	for i := 0; i < 5; i++ {
		time.Sleep(60 * time.Millisecond)
		if n := ran.Load(); n != 3 {
			t.Fatalf("%d jobs ran within one minute under a limit of 3", n)
		}
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	Eventually(t, "3 more in the next minute", func() bool { return ran.Load() == 6 })
}

// Tick is a scheduled job.
type Tick struct{}

func (Tick) Kind() string { return "tick" }

func testSchedule(t *testing.T, db *database.DB) {
	var clients []*jobs.Client
	for i := 0; i < 3; i++ {
		c := NewClient(t, db, nil)
		must(t, jobs.Register(c, jobs.WorkerFunc[Tick](func(ctx context.Context, j *jobs.Job[Tick]) error { return nil })))
		must(t, c.Schedule("every-second", "@every 1s", Tick{}))
		clients = append(clients, c)
	}
	for _, c := range clients {
		start(t, c)
	}
	var list []*jobs.JobRow
	Eventually(t, "3 ticks", func() bool {
		var err error
		list, err = clients[0].List(ctxT(t), jobs.ListParams{Kind: "tick"})
		return err == nil && len(list) >= 3
	})
	ticks := map[string]int{}
	for _, j := range list {
		ticks[j.Metadata["tick"]]++
	}
	for tick, n := range ticks {
		if n != 1 {
			t.Errorf("tick %s enqueued %d times by 3 clients", tick, n)
		}
	}
}

func testList(t *testing.T, db *database.DB) {
	c := NewClient(t, db, nil)
	must(t, jobs.Register(c, jobs.WorkerFunc[Noop](func(ctx context.Context, j *jobs.Job[Noop]) error { return nil })))
	ctx := ctxT(t)
	for i := 0; i < 5; i++ {
		enqueue(t, c, Noop{i})
	}
	enqueue(t, c, Noop{9}, jobs.Queue("high"))
	enqueue(t, c, Noop{10}, jobs.Delay(time.Hour))
	l, err := c.List(ctx, jobs.ListParams{Queue: "default", Limit: 3})
	if err != nil || len(l) != 3 || l[0].ID < l[1].ID {
		t.Fatalf("list: %d %v", len(l), err)
	}
	next, err := c.List(ctx, jobs.ListParams{Queue: "default", AfterID: l[2].ID})
	if err != nil || len(next) != 3 {
		t.Fatalf("page 2: %d %v", len(next), err)
	}
	if _, err := c.List(ctx, jobs.ListParams{State: "weird"}); err == nil {
		t.Fatal("an unknown state was accepted")
	}
	d, err := c.Depths(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, x := range d {
		got[x.Queue+"/"+string(x.State)] = x.Count
	}
	if got["default/available"] != 5 || got["high/available"] != 1 {
		t.Fatalf("depths %v (the delayed job is not yet in the backlog)", got)
	}
	if n, err := c.Depth(ctx); err != nil || n != 6 {
		t.Fatalf("Depth = %d, %v; want 6 (the delayed job is not in the backlog)", n, err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c.Collector()); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP job_queue_depth Jobs available to run now, by queue: the backlog the autoscaler scales workers on.
# TYPE job_queue_depth gauge
job_queue_depth{queue="default"} 5
job_queue_depth{queue="high"} 1
job_queue_depth{queue="low"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "job_queue_depth"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "shoal_jobs_total"); err != nil || n != 1 {
		t.Fatalf("shoal_jobs_total: %d series, %v (want enqueued for noop)", n, err)
	}
	sort.Slice(d, func(i, j int) bool { return d[i].Queue < d[j].Queue })
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
