package database_test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
)

// BenchmarkPostgres compares package database with the raw pools it is made of, on the same
// server and the same loops, 8 callers on a pool of 8: database's *sql.DB path (DB.QueryRowContext,
// DB.ExecContext, DB.WithTx) with a raw database/sql pool over pgx's driver, and its pgx path
// (DB.Pool, DB.WithPgxTx) with a raw *pgxpool.Pool. bench/database.sh runs it and prints the
// ratios.
func BenchmarkPostgres(b *testing.B) {
	url := databasetest.PostgresURL(b)
	ctx := context.Background()
	cfg := databasetest.Config(url)
	cfg.MaxConnections = 8
	db := databasetest.Open(b, cfg)
	if _, err := db.ExecContext(ctx, "CREATE TABLE bench (id BIGSERIAL PRIMARY KEY, v INT NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	raw, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	raw.SetMaxOpenConns(8)
	raw.SetMaxIdleConns(8)
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	pc.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()

	par := func(b *testing.B, fn func(i int) error) {
		b.SetParallelism(4) // 4 × GOMAXPROCS (2) = 8 callers
		b.ReportAllocs()
		runCPU(b, func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if err := fn(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	const sel = "SELECT $1::int"
	const ins = "INSERT INTO bench (v) VALUES ($1)"

	b.Run("select/shoal", func(b *testing.B) {
		par(b, func(i int) error { var n int; return db.QueryRowContext(ctx, sel, i).Scan(&n) })
	})
	b.Run("select/database_sql", func(b *testing.B) {
		par(b, func(i int) error { var n int; return raw.QueryRowContext(ctx, sel, i).Scan(&n) })
	})
	b.Run("select/shoal_pgx", func(b *testing.B) {
		p := db.Pool()
		par(b, func(i int) error { var n int; return p.QueryRow(ctx, sel, i).Scan(&n) })
	})
	b.Run("select/pgxpool", func(b *testing.B) {
		par(b, func(i int) error { var n int; return pool.QueryRow(ctx, sel, i).Scan(&n) })
	})
	b.Run("insert/shoal", func(b *testing.B) {
		par(b, func(i int) error { _, err := db.ExecContext(ctx, ins, i); return err })
	})
	b.Run("insert/database_sql", func(b *testing.B) {
		par(b, func(i int) error { _, err := raw.ExecContext(ctx, ins, i); return err })
	})
	b.Run("insert/shoal_pgx", func(b *testing.B) {
		p := db.Pool()
		par(b, func(i int) error { _, err := p.Exec(ctx, ins, i); return err })
	})
	b.Run("insert/pgxpool", func(b *testing.B) {
		par(b, func(i int) error { _, err := pool.Exec(ctx, ins, i); return err })
	})
	b.Run("tx/shoal", func(b *testing.B) {
		par(b, func(i int) error {
			return db.WithTx(ctx, nil, func(tx *sql.Tx) error { _, err := tx.ExecContext(ctx, ins, i); return err })
		})
	})
	b.Run("tx/database_sql", func(b *testing.B) {
		par(b, func(i int) error {
			tx, err := raw.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, ins, i); err != nil {
				tx.Rollback()
				return err
			}
			return tx.Commit()
		})
	})
	b.Run("tx/shoal_pgx", func(b *testing.B) {
		par(b, func(i int) error {
			return db.WithPgxTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, ins, i); return err })
		})
	})
	b.Run("tx/pgxpool", func(b *testing.B) {
		par(b, func(i int) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, ins, i); return err })
		})
	})
}

// BenchmarkReplicaRead compares shoal's read routing — a replica chosen round robin among
// those that passed their latest check and lag less than replica_max_lag, the request's
// read-your-writes window consulted — with the static split of gorm's dbresolver: reads to a
// replica picked at random (its default policy), writes to the primary, nothing checked. Both
// read `SELECT $1::int` with 8 callers through a session per call (as a request would), over
// pools of 8 to the same server, which serves as its own replica: what is measured is the
// routing, not replication. dbresolver itself needs gorm, whose ORM layer would dwarf the
// split; the split is written out here as dbresolver does it, on database/sql.
func BenchmarkReplicaRead(b *testing.B) {
	url := databasetest.PostgresURL(b)
	ctx := context.Background()
	cfg := databasetest.Config(url)
	cfg.MaxConnections = 8
	cfg.ReadReplicas = []string{url}
	db := databasetest.Open(b, cfg)
	if !db.ReplicaStatus()[0].Routable {
		b.Fatalf("the replica gets no reads: %+v", db.ReplicaStatus()[0])
	}
	open := func() *sql.DB {
		d, err := sql.Open("pgx", url)
		if err != nil {
			b.Fatal(err)
		}
		d.SetMaxOpenConns(8)
		d.SetMaxIdleConns(8)
		b.Cleanup(func() { d.Close() })
		return d
	}
	split := &staticSplit{primary: open(), replicas: []*sql.DB{open()}}
	const sel = "SELECT $1::int"
	par := func(b *testing.B, fn func(ctx context.Context, i int) error) {
		b.SetParallelism(4)
		b.ReportAllocs()
		runCPU(b, func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if err := fn(database.NewSession(ctx), i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("replica/shoal", func(b *testing.B) {
		par(b, func(ctx context.Context, i int) error { var n int; return db.QueryRowContext(ctx, sel, i).Scan(&n) })
	})
	b.Run("replica/dbresolver", func(b *testing.B) {
		par(b, func(ctx context.Context, i int) error { var n int; return split.QueryRowContext(ctx, sel, i).Scan(&n) })
	})
	for _, p := range db.Stats().Pools {
		if p.Pool == "replica 1" && p.Reads == 0 {
			b.Errorf("no read reached the replica: %+v", p)
		}
	}
}

// staticSplit is gorm dbresolver's routing on database/sql: a SELECT goes to a random replica,
// anything else to the primary.
type staticSplit struct {
	primary  *sql.DB
	replicas []*sql.DB
}

func (s *staticSplit) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	db := s.primary
	if len(q) > 6 && strings.EqualFold(strings.TrimSpace(q)[:6], "select") {
		db = s.replicas[rand.IntN(len(s.replicas))]
	}
	return db.QueryRowContext(ctx, q, args...)
}

// BenchmarkSQLiteRead is the read loop on SQLite, where a query costs a few microseconds of CPU
// and no network: what shoal adds to a call (the guard, $n rebinding, the classified Row, the
// route) shows here at its largest. DB.QueryRowContext on the read pool against a raw
// database/sql pool of 8 on the same WAL file, 8 callers.
func BenchmarkSQLiteRead(b *testing.B) {
	url := databasetest.SQLiteURL(b)
	ctx := context.Background()
	cfg := databasetest.Config(url)
	cfg.MaxConnections = 8
	db := databasetest.Open(b, cfg)
	if _, err := db.ExecContext(ctx, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v INT NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if _, err := db.ExecContext(ctx, "INSERT INTO kv (k, v) VALUES ($1, $2)", i, i*i); err != nil {
			b.Fatal(err)
		}
	}
	raw, err := sql.Open("sqlite", strings.TrimPrefix(url, "sqlite://")+"?_pragma=busy_timeout(2000)&_pragma=query_only(1)")
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	raw.SetMaxOpenConns(8)
	raw.SetMaxIdleConns(8)
	par := func(b *testing.B, fn func(i int) error) {
		b.SetParallelism(4)
		b.ReportAllocs()
		runCPU(b, func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if err := fn(i % 100); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("sqlite_select/shoal", func(b *testing.B) {
		par(b, func(i int) error {
			var v int
			return db.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = $1", i).Scan(&v)
		})
	})
	b.Run("sqlite_select/database_sql", func(b *testing.B) {
		par(b, func(i int) error {
			var v int
			return raw.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = ?1", i).Scan(&v)
		})
	})
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runCPU runs fn in b.RunParallel and reports the client's CPU time per operation beside the
// wall time: on a shared, busy machine throughput swings with the neighbours, the CPU a call
// costs in this process much less (the server's share is the same for every variant).
func runCPU(b *testing.B, fn func(pb *testing.PB)) {
	start := cpuTime(b)
	b.RunParallel(fn)
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkRebind is the cost DB's methods add to every call on MySQL and SQLite.
func BenchmarkRebind(b *testing.B) {
	q := "SELECT a, b FROM t WHERE a = $1 AND b > $2 ORDER BY a LIMIT $3"
	args := []any{1, 2, 3}
	b.ReportAllocs()
	for b.Loop() {
		database.MySQL.RebindArgs(q, args)
	}
}
