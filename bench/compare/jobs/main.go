// Command jobs measures shoal's jobs package against River on the same PostgreSQL (and both
// SQLite drivers): EnqueueMany vs InsertMany (batches of 5,000), a burn-down of N no-op jobs, a
// continuous mode (producers inserting while workers work) and single-insert latency. A job
// counts as worked only once its completion is recorded in the database (both are polled by a
// COUNT of completed rows). Each run uses its own schema or file and drops it.
//
//	go run ./jobs -n 200000
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/jobs"
	_ "modernc.org/sqlite"
)

var (
	pgURL     = flag.String("pg", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL to run on")
	n         = flag.Int("n", 200_000, "jobs in the burn-down and the insert test")
	sqliteN   = flag.Int("sqlite-n", 20_000, "jobs in the SQLite tests")
	batch     = flag.Int("batch", 5000, "InsertMany / EnqueueMany batch size")
	singles   = flag.Int("singles", 2000, "single inserts timed for latency")
	contDur   = flag.Duration("continuous", 10*time.Second, "length of the continuous mode (0 skips it)")
	conns     = flag.Int("conns", 20, "connections in each pool")
	only      = flag.String("only", "", "comma list of parts to run: insert,burndown,continuous,latency,sqlite (default all)")
	quiet     = slog.New(slog.NewTextHandler(io.Discard, nil))
	figures   = map[string]float64{}
	figuresMu sync.Mutex
)

type NoopArgs struct{ N int }

func (NoopArgs) Kind() string { return "noop" }

type riverNoop struct{ river.WorkerDefaults[NoopArgs] }

func (riverNoop) Work(context.Context, *river.Job[NoopArgs]) error { return nil }

// system is one queue implementation under test.
type system interface {
	name() string
	insertMany(ctx context.Context, n int) error
	insertOne(ctx context.Context, i int) error
	start(ctx context.Context) error
	stop(ctx context.Context)
	completed(ctx context.Context) (int64, error)
	close()
}

func want(part string) bool {
	if *only == "" {
		return true
	}
	for _, p := range strings.Split(*only, ",") {
		if p == part {
			return true
		}
	}
	return false
}

func record(key string, v float64) {
	figuresMu.Lock()
	figures[key] = v
	figuresMu.Unlock()
}

func main() {
	flag.Parse()
	ctx := context.Background()
	type cfg struct {
		label    string
		workers  int
		cooldown time.Duration
		poll     time.Duration
	}
	riverCfgs := []cfg{{"river-default", 100, 0, 0}, {"river-best", 2000, time.Millisecond, 50 * time.Millisecond}}
	shoalCfg := cfg{"shoal", 2000, time.Millisecond, 50 * time.Millisecond}
	newPG := func(c cfg) system {
		if strings.HasPrefix(c.label, "river") {
			return must(newRiverPG(ctx, c.label, c.workers, c.cooldown, c.poll))
		}
		return must(newShoal(ctx, c.label, "postgres", c.workers, c.poll))
	}
	all := append([]cfg{shoalCfg}, riverCfgs...)

	if want("insert") {
		for _, c := range all[:2] { // River's insert does not depend on its worker settings
			s := newPG(c)
			rate := timeInsertMany(ctx, s, *n)
			fmt.Printf("postgres insert-many  %-14s %9.0f jobs/s (%d jobs, batches of %d)\n", s.name(), rate, *n, *batch)
			record("insert/"+s.name(), rate)
			s.close()
		}
	}
	if want("latency") {
		for _, c := range all[:2] {
			s := newPG(c)
			p50, p99 := timeSingles(ctx, s, *singles)
			fmt.Printf("postgres insert-one   %-14s p50 %6.0fµs p99 %6.0fµs (%d sequential inserts)\n", s.name(), us(p50), us(p99), *singles)
			record("p50/"+s.name(), us(p50))
			record("p99/"+s.name(), us(p99))
			s.close()
		}
	}
	if want("burndown") {
		for _, c := range all {
			s := newPG(c)
			rate := burnDown(ctx, s, *n)
			fmt.Printf("postgres burn-down    %-14s %9.0f jobs/s worked (%d no-op jobs, %d workers)\n", s.name(), rate, *n, c.workers)
			record("burndown/"+s.name(), rate)
			s.close()
		}
	}
	if want("continuous") && *contDur > 0 {
		for _, c := range all {
			s := newPG(c)
			rate := continuous(ctx, s, *contDur)
			fmt.Printf("postgres continuous   %-14s %9.0f jobs/s worked (4 producers inserting for %s)\n", s.name(), rate, *contDur)
			record("continuous/"+s.name(), rate)
			s.close()
		}
	}
	if want("sqlite") {
		dir, err := os.MkdirTemp("", "jobsbench")
		check(err)
		defer os.RemoveAll(dir)
		for _, mk := range []func() (system, error){
			func() (system, error) {
				return newShoal(ctx, "shoal", "sqlite://"+filepath.Join(dir, "shoal.db"), 100, 50*time.Millisecond)
			},
			func() (system, error) { return newRiverSQLite(ctx, filepath.Join(dir, "river.db")) },
		} {
			s := must(mk())
			rate := timeInsertMany(ctx, s, *sqliteN)
			fmt.Printf("sqlite   insert-many  %-14s %9.0f jobs/s (%d jobs)\n", s.name(), rate, *sqliteN)
			record("sqlite-insert/"+s.name(), rate)
			s.close()
			s = must(mk())
			rate = burnDown(ctx, s, *sqliteN)
			fmt.Printf("sqlite   burn-down    %-14s %9.0f jobs/s worked (%d jobs)\n", s.name(), rate, *sqliteN)
			record("sqlite-burndown/"+s.name(), rate)
			s.close()
		}
	}
	ratio := func(what, ours, anchor string) {
		figuresMu.Lock()
		a, b := figures[ours], figures[anchor]
		figuresMu.Unlock()
		if a > 0 && b > 0 {
			fmt.Printf("ratio %s/%s %s = %.2f\n", strings.SplitN(ours, "/", 2)[1], strings.SplitN(anchor, "/", 2)[1], what, a/b)
		}
	}
	ratio("EnqueueMany/InsertMany jobs/s (postgres)", "insert/shoal", "insert/river-default")
	ratio("single insert p50 latency (postgres, lower is better)", "p50/shoal", "p50/river-default")
	ratio("single insert p99 latency (postgres, lower is better)", "p99/shoal", "p99/river-default")
	ratio("burn-down worked jobs/s (postgres)", "burndown/shoal", "burndown/river-default")
	ratio("burn-down worked jobs/s (postgres)", "burndown/shoal", "burndown/river-best")
	ratio("continuous worked jobs/s (postgres)", "continuous/shoal", "continuous/river-default")
	ratio("continuous worked jobs/s (postgres)", "continuous/shoal", "continuous/river-best")
	ratio("EnqueueMany/InsertMany jobs/s (sqlite)", "sqlite-insert/shoal", "sqlite-insert/river-sqlite")
	ratio("burn-down worked jobs/s (sqlite)", "sqlite-burndown/shoal", "sqlite-burndown/river-sqlite")
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "jobs bench:", err)
		os.Exit(1)
	}
}

func must(s system, err error) system { check(err); return s }

func timeInsertMany(ctx context.Context, s system, total int) float64 {
	start := time.Now()
	for done := 0; done < total; done += *batch {
		check(s.insertMany(ctx, min(*batch, total-done)))
	}
	return float64(total) / time.Since(start).Seconds()
}

func timeSingles(ctx context.Context, s system, k int) (p50, p99 time.Duration) {
	lat := make([]time.Duration, k)
	for i := range lat {
		t := time.Now()
		check(s.insertOne(ctx, i))
		lat[i] = time.Since(t)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[k/2], lat[k*99/100]
}

// waitCompleted polls the count of completed jobs until it reaches target.
func waitCompleted(ctx context.Context, s system, target int64) {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		c, err := s.completed(ctx)
		check(err)
		if c >= target {
			return
		}
		if time.Now().After(deadline) {
			check(fmt.Errorf("%s: only %d of %d jobs completed in 10 minutes", s.name(), c, target))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func burnDown(ctx context.Context, s system, total int) float64 {
	for done := 0; done < total; done += *batch {
		check(s.insertMany(ctx, min(*batch, total-done)))
	}
	start := time.Now()
	check(s.start(ctx))
	waitCompleted(ctx, s, int64(total))
	el := time.Since(start)
	s.stop(ctx)
	return float64(total) / el.Seconds()
}

func continuous(ctx context.Context, s system, d time.Duration) float64 {
	check(s.start(ctx))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var inserted atomic.Int64
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				check(s.insertMany(ctx, 500))
				inserted.Add(500)
			}
		}()
	}
	time.Sleep(2 * time.Second) // warm up
	c0, err := s.completed(ctx)
	check(err)
	t0 := time.Now()
	time.Sleep(d)
	c1, err := s.completed(ctx)
	check(err)
	el := time.Since(t0)
	close(stop)
	wg.Wait()
	s.stop(ctx)
	return float64(c1-c0) / el.Seconds()
}

// ---- shoal

type shoalSys struct {
	label string
	db    *database.DB
	c     *jobs.Client
	drop  func()
	seq   int
}

func newShoal(ctx context.Context, label, where string, workers int, poll time.Duration) (system, error) {
	url := where
	var drop func()
	if where == "postgres" {
		schema := fmt.Sprintf("bench_shoal_%d", time.Now().UnixNano())
		if err := adminPG(ctx, "CREATE SCHEMA "+schema); err != nil {
			return nil, err
		}
		drop = func() { _ = adminPG(context.Background(), "DROP SCHEMA "+schema+" CASCADE") }
		url = *pgURL + "&search_path=" + schema
	}
	db, err := database.Open(ctx, config.Database{URL: url, MaxConnections: *conns,
		ConnectTimeout: config.Duration(5 * time.Second), AcquireTimeout: config.Duration(30 * time.Second),
		IdleTimeout: config.Duration(time.Minute), MaxLifetime: config.Duration(time.Hour)})
	if err != nil {
		return nil, err
	}
	if err := jobs.Migrate(ctx, db); err != nil {
		return nil, err
	}
	c, err := jobs.New(db, jobs.Options{Config: config.Jobs{Workers: workers, MaxRetries: 3,
		RetryDelay: config.Duration(time.Second), PollInterval: config.Duration(poll), RescueAfter: config.Duration(time.Hour),
		Queues: map[string]int{"default": 1}}, Logger: quiet})
	if err != nil {
		return nil, err
	}
	if err := jobs.Register(c, jobs.WorkerFunc[NoopArgs](func(context.Context, *jobs.Job[NoopArgs]) error { return nil })); err != nil {
		return nil, err
	}
	return &shoalSys{label: label, db: db, c: c, drop: drop}, nil
}

func (s *shoalSys) name() string { return s.label }
func (s *shoalSys) insertMany(ctx context.Context, k int) error {
	ins := make([]jobs.Insert, k)
	for i := range ins {
		s.seq++
		ins[i] = jobs.Insert{Args: NoopArgs{s.seq}}
	}
	_, err := s.c.EnqueueMany(ctx, ins)
	return err
}
func (s *shoalSys) insertOne(ctx context.Context, i int) error {
	_, err := s.c.Enqueue(ctx, NoopArgs{i})
	return err
}
func (s *shoalSys) start(ctx context.Context) error { return s.c.Start(ctx) }
func (s *shoalSys) stop(ctx context.Context)        { _ = s.c.Stop(ctx) }
func (s *shoalSys) completed(ctx context.Context) (int64, error) {
	var c int64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM shoal_jobs WHERE state = 'completed'`).Scan(&c)
	return c, err
}
func (s *shoalSys) close() {
	_ = s.c.Stop(context.Background())
	s.db.Close()
	if s.drop != nil {
		s.drop()
	}
}

// ---- River

type riverSys[TTx any] struct {
	label     string
	c         *river.Client[TTx]
	count     func(ctx context.Context) (int64, error)
	closeFunc func()
	seq       int
}

func adminPG(ctx context.Context, stmt string) error {
	conn, err := pgx.Connect(ctx, *pgURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, stmt)
	return err
}

func riverConfig(workers int, cooldown, poll time.Duration, schema string) *river.Config {
	w := river.NewWorkers()
	river.AddWorker(w, &riverNoop{})
	return &river.Config{Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
		Workers: w, FetchCooldown: cooldown, FetchPollInterval: poll, Schema: schema, Logger: quiet}
}

func newRiverPG(ctx context.Context, label string, workers int, cooldown, poll time.Duration) (system, error) {
	schema := fmt.Sprintf("bench_river_%d", time.Now().UnixNano())
	if err := adminPG(ctx, "CREATE SCHEMA "+schema); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(*pgURL)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = int32(*conns)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	drv := riverpgxv5.New(pool)
	m, err := rivermigrate.New(drv, &rivermigrate.Config{Schema: schema, Logger: quiet})
	if err != nil {
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, err
	}
	c, err := river.NewClient(drv, riverConfig(workers, cooldown, poll, schema))
	if err != nil {
		return nil, err
	}
	return &riverSys[pgx.Tx]{label: label, c: c,
		count: func(ctx context.Context) (int64, error) {
			var n int64
			err := pool.QueryRow(ctx, `SELECT COUNT(*) FROM `+schema+`.river_job WHERE state = 'completed'`).Scan(&n)
			return n, err
		},
		closeFunc: func() {
			pool.Close()
			_ = adminPG(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		}}, nil
}

func newRiverSQLite(ctx context.Context, file string) (system, error) {
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // as riversqlite's documentation asks
	drv := riversqlite.New(db)
	m, err := rivermigrate.New(drv, &rivermigrate.Config{Logger: quiet})
	if err != nil {
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, err
	}
	c, err := river.NewClient(drv, riverConfig(100, time.Millisecond, 50*time.Millisecond, ""))
	if err != nil {
		return nil, err
	}
	return &riverSys[*sql.Tx]{label: "river-sqlite", c: c,
		count: func(ctx context.Context) (int64, error) {
			var n int64
			err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM river_job WHERE state = 'completed'`).Scan(&n)
			return n, err
		},
		closeFunc: func() { db.Close() }}, nil
}

func (s *riverSys[TTx]) name() string { return s.label }
func (s *riverSys[TTx]) insertMany(ctx context.Context, k int) error {
	ps := make([]river.InsertManyParams, k)
	for i := range ps {
		s.seq++
		ps[i] = river.InsertManyParams{Args: NoopArgs{s.seq}}
	}
	_, err := s.c.InsertMany(ctx, ps)
	return err
}
func (s *riverSys[TTx]) insertOne(ctx context.Context, i int) error {
	_, err := s.c.Insert(ctx, NoopArgs{i}, nil)
	return err
}
func (s *riverSys[TTx]) start(ctx context.Context) error { return s.c.Start(ctx) }
func (s *riverSys[TTx]) stop(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = s.c.Stop(sctx)
}
func (s *riverSys[TTx]) completed(ctx context.Context) (int64, error) { return s.count(ctx) }
func (s *riverSys[TTx]) close() {
	s.stop(context.Background())
	s.closeFunc()
}
