package jobs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/jobs"
	"github.com/shoal-sh/shoal/jobs/jobstest"
)

func TestMain(m *testing.M) {
	if os.Getenv("SHOAL_JOBS_CHILD") != "" {
		crashChild() // never returns: the parent SIGKILLs it
	}
	if os.Getenv("SHOAL_JOBS_SCHED_CHILD") != "" {
		schedChild()
	}
	os.Exit(m.Run())
}

// CrashArgs is a job of the crash test: it records that it started, then works WorkMs.
type CrashArgs struct {
	N      int
	WorkMs int
}

func (CrashArgs) Kind() string { return "crash" }

type parentNoop struct{}

func (parentNoop) Kind() string { return "crash_parent_noop" }

const (
	crashHeartbeat = 100 * time.Millisecond
	crashLease     = 600 * time.Millisecond
)

func crashOptions(worker string, workers int) jobs.Options {
	return jobs.Options{
		Config: config.Jobs{Workers: workers, MaxRetries: 200, RetryDelay: config.Duration(time.Millisecond),
			PollInterval: config.Duration(20 * time.Millisecond), RescueAfter: config.Duration(time.Hour),
			Queues: map[string]int{"default": 1}},
		Heartbeat: crashHeartbeat, Lease: crashLease, WorkerID: worker, AnyKind: true,
		Logger: jobstest.Quiet(),
	}
}

// crashChild is a worker process: it works crash jobs until it is killed.
func crashChild() {
	ctx := context.Background()
	db, err := database.Open(ctx, databasetest.Config(os.Getenv("SHOAL_JOBS_DB")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(2)
	}
	worker := os.Getenv("SHOAL_JOBS_CHILD")
	c, err := jobs.New(db, crashOptions(worker, 2))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	err = jobs.Register(c, jobs.WorkerFunc[CrashArgs](func(ctx context.Context, j *jobs.Job[CrashArgs]) error {
		if _, err := db.ExecContext(ctx, `INSERT INTO crash_effects (job_id, started_ms, worker) VALUES ($1, $2, $3)`, j.ID, time.Now().UnixMilli(), worker); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(j.Args.WorkMs) * time.Millisecond):
			return nil
		}
	}))
	if err == nil {
		err = c.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	select {}
}

// TestCrash_WorkerSIGKILLed100Times: worker processes are SIGKILLed mid-job 100 times (set
// SHOAL_JOBS_KILLS for another count) over a queue of jobs, on PostgreSQL and SQLite. Every job
// completes, none is lost, none runs again after its success was recorded, and every job a
// killed worker held is rescued by its lease (long before rescue_after); the slowest rescue is printed.
func TestCrash_WorkerSIGKILLed100Times(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns worker processes")
	}
	kills := 100
	if raceEnabled {
		kills = 15 // a race-built child starts several times slower; 100 kills run without -race
	}
	if s := os.Getenv("SHOAL_JOBS_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("SHOAL_JOBS_KILLS=%q: want a positive number", s)
		}
		kills = n
	}
	for _, b := range []databasetest.Backend{databasetest.Backends[0], databasetest.Backends[2]} {
		t.Run(b.Name, func(t *testing.T) { crashTest(t, b.NewURL(t), kills) })
	}
}

func crashTest(t *testing.T, url string, kills int) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	db := databasetest.Open(t, databasetest.Config(url))
	if err := jobs.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE crash_effects (job_id BIGINT NOT NULL, started_ms BIGINT NOT NULL, worker VARCHAR(64) NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	// The parent's client works no crash job; its rescuer runs all along.
	parent, err := jobs.New(db, crashOptions("parent", 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Register(parent, jobs.WorkerFunc[parentNoop](func(context.Context, *jobs.Job[parentNoop]) error { return nil })); err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer parent.Stop(context.Background())
	enqueued := 0
	topUp := func(n int) {
		var ins []jobs.Insert
		for i := 0; i < n; i++ {
			ins = append(ins, jobs.Insert{Args: CrashArgs{N: enqueued, WorkMs: 20 + rand.IntN(30)}})
			enqueued++
		}
		if _, err := parent.EnqueueMany(ctx, ins); err != nil {
			t.Fatal(err)
		}
	}
	topUp(200)
	count := func(q string, args ...any) int {
		var n int
		if err := db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	spawn := func(worker string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SHOAL_JOBS_CHILD="+worker, "SHOAL_JOBS_DB="+url)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	killedAt := map[string]int64{}
	held := map[string]int{}
	for k := 0; k < kills; k++ {
		if count(`SELECT COUNT(*) FROM shoal_jobs WHERE state = 'available'`) < 30 {
			topUp(100)
		}
		worker := fmt.Sprintf("child-%d", k)
		cmd := spawn(worker)
		// Wait until it runs a job, let it work a little, kill it.
		deadline := time.Now().Add(time.Minute)
		for count(`SELECT COUNT(*) FROM shoal_jobs WHERE state = 'running' AND worker = $1`, worker) == 0 {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("child %d never ran a job", k)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		killedAt[worker] = time.Now().UnixMilli()
		held[worker] = count(`SELECT COUNT(*) FROM shoal_jobs WHERE state = 'running' AND worker = $1`, worker)
	}
	// A last worker, not killed, finishes the queue.
	last := spawn("last")
	defer func() { last.Process.Kill(); last.Wait() }()
	deadline := time.Now().Add(3 * time.Minute)
	for count(`SELECT COUNT(*) FROM shoal_jobs WHERE state <> 'completed'`) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs never completed", count(`SELECT COUNT(*) FROM shoal_jobs WHERE state <> 'completed'`))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := count(`SELECT COUNT(*) FROM shoal_jobs WHERE kind = 'crash'`); n != enqueued {
		t.Fatalf("%d crash jobs stored, %d enqueued", n, enqueued)
	}
	// None ran after its success was recorded.
	if n := count(`SELECT COUNT(*) FROM crash_effects e JOIN shoal_jobs j ON j.id = e.job_id WHERE e.started_ms > j.finalized_at`); n != 0 {
		t.Fatalf("%d runs started after their job's success was recorded", n)
	}
	if n := count(`SELECT COUNT(*) FROM shoal_jobs j WHERE NOT EXISTS (SELECT 1 FROM crash_effects e WHERE e.job_id = j.id) AND kind = 'crash'`); n != 0 {
		t.Fatalf("%d jobs completed without running", n)
	}
	// Rescue times: every job a killed worker held was rescued within the bound.
	rows, err := db.QueryContext(ctx, `SELECT error, at_ms FROM shoal_job_errors WHERE error LIKE 'rescued%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	re := regexp.MustCompile(`worker (\S+) expired`)
	rescued := map[string]int{}
	var worst time.Duration
	for rows.Next() {
		var msg string
		var at int64
		if err := rows.Scan(&msg, &at); err != nil {
			t.Fatal(err)
		}
		m := re.FindStringSubmatch(msg)
		if m == nil {
			t.Fatalf("rescue error %q", msg)
		}
		rescued[m[1]]++
		if k, ok := killedAt[m[1]]; ok {
			if d := time.Duration(at-k) * time.Millisecond; d > worst {
				worst = d
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// A job still running under a killed worker is rescued — unless the worker's last batch of
	// successes had reached the server before the kill and commits after it (then the job is
	// completed, as recorded). Every job completed above, so none stayed held. A worker slowed
	// down past its lease (the race detector on a loaded machine) may lose jobs to the rescuer
	// before it is killed: those count as rescued too.
	heldTotal, rescuedTotal := 0, 0
	for w, n := range held {
		heldTotal += n
		rescuedTotal += rescued[w]
	}
	if heldTotal > 0 && rescuedTotal == 0 {
		t.Fatalf("killed workers held %d jobs, none was rescued", heldTotal)
	}
	// The rescue must come from the lease (600 ms here), not from rescue_after (an hour here).
	// The check is deliberately far from the lease so that a loaded machine cannot fail it; how
	// fast rescue is goes into the line printed below, not into an assertion.
	if bound := 30 * time.Second; worst > bound {
		t.Errorf("a job was rescued %s after its worker was killed: not by its lease (%s, heartbeat %s) but later; rescue_after is an hour here", worst, crashLease, crashHeartbeat)
	}
	runs := count(`SELECT COUNT(*) FROM crash_effects`)
	fmt.Printf("jobs crash test (%s): %d workers SIGKILLed mid-job, %d jobs all completed, %d runs, %d jobs held by killed workers, %d rescued, slowest rescue %s after the kill (lease %s)\n",
		db.Dialect(), kills, enqueued, runs, heldTotal, rescuedTotal, worst, crashLease)
}

// TickArgs is the scheduled job of the scheduler test.
type TickArgs struct{}

func (TickArgs) Kind() string { return "tick" }

// schedChild runs the scheduler of "every-2s" until it is killed.
func schedChild() {
	ctx := context.Background()
	db, err := database.Open(ctx, databasetest.Config(os.Getenv("SHOAL_JOBS_DB")))
	if err == nil {
		var c *jobs.Client
		if c, err = jobs.New(db, crashOptions(os.Getenv("SHOAL_JOBS_SCHED_CHILD"), 2)); err == nil {
			if err = jobs.Register(c, jobs.WorkerFunc[TickArgs](func(context.Context, *jobs.Job[TickArgs]) error { return nil })); err == nil {
				if err = c.Schedule("every-2s", "@every 2s", TickArgs{}); err == nil {
					err = c.Start(ctx)
				}
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scheduler child:", err)
		os.Exit(2)
	}
	select {}
}

// TestSchedule_ThreeProcesses: three processes run the same @every 2s schedule (for 12s, or
// SHOAL_JOBS_SCHED_DURATION, e.g. 3m); one is SIGKILLed halfway. Every tick from the first to
// the last is enqueued exactly once: no duplicate while three run, none missed after one died.
func TestSchedule_ThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns scheduler processes")
	}
	d := 12 * time.Second
	if s := os.Getenv("SHOAL_JOBS_SCHED_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v < 3*time.Second {
			t.Fatalf("SHOAL_JOBS_SCHED_DURATION=%q: want a duration of 3s or more", s)
		}
		d = v
	}
	for _, b := range []databasetest.Backend{databasetest.Backends[0], databasetest.Backends[2]} {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			url := b.NewURL(t)
			ctx := context.Background()
			db := databasetest.Open(t, databasetest.Config(url))
			if err := jobs.Migrate(ctx, db); err != nil {
				t.Fatal(err)
			}
			var cmds []*exec.Cmd
			for i := 0; i < 3; i++ {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), fmt.Sprintf("SHOAL_JOBS_SCHED_CHILD=sched-%d", i), "SHOAL_JOBS_DB="+url)
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, cmd)
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			}
			time.Sleep(d / 2)
			cmds[0].Process.Signal(syscall.SIGKILL)
			time.Sleep(d / 2)
			for _, cmd := range cmds {
				cmd.Process.Signal(syscall.SIGKILL)
			}
			rows, err := db.QueryContext(ctx, `SELECT run_at, unique_key FROM shoal_jobs WHERE kind = 'tick' ORDER BY run_at`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var ticks []int64
			keys := map[string]bool{}
			for rows.Next() {
				var at int64
				var key string
				if err := rows.Scan(&at, &key); err != nil {
					t.Fatal(err)
				}
				if keys[key] {
					t.Fatalf("unique key %s twice", key)
				}
				keys[key] = true
				if len(ticks) > 0 && at == ticks[len(ticks)-1] {
					t.Fatalf("tick %s enqueued twice", time.UnixMilli(at))
				}
				ticks = append(ticks, at)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if len(ticks) < int(d/(2*time.Second))/2 {
				t.Fatalf("%d ticks in %s", len(ticks), d)
			}
			for i := 1; i < len(ticks); i++ {
				if gap := ticks[i] - ticks[i-1]; gap != 2000 {
					t.Fatalf("ticks %s and %s are %dms apart: a tick was missed", time.UnixMilli(ticks[i-1]), time.UnixMilli(ticks[i]), gap)
				}
			}
			fmt.Printf("jobs scheduler test (%s): 3 processes (one SIGKILLed halfway) over %s: %d ticks, each enqueued once, none missed\n", db.Dialect(), d, len(ticks))
		})
	}
}
