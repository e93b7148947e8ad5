package database_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
)

// TestOpen_PoolSettings checks that the pool settings do what docs/architecture.md says on each
// SQL backend: max_connections sizes every pool (SQLite's writer stays at 1), idle_timeout and
// max_lifetime close connections, and on PostgreSQL the pgx pool gets the same settings and keeps
// min_connections open.
func TestOpen_PoolSettings(t *testing.T) {
	t.Parallel()
	for _, b := range databasetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			url := b.NewURL(t)
			ctx := context.Background()

			cfg := databasetest.Config(url)
			cfg.MaxConnections = 3
			cfg.MinConnections = 2
			cfg.ConnectTimeout = config.Duration(3 * time.Second)
			cfg.IdleTimeout = config.Duration(50 * time.Millisecond)
			cfg.MaxLifetime = 0
			db := databasetest.Open(t, cfg)
			pools := map[string]*sql.DB{"SQL": db.SQL()}
			if db.Dialect() == database.SQLite {
				pools["ReadSQL"] = db.ReadSQL()
				if n := db.SQL().Stats().MaxOpenConnections; n != 1 {
					t.Errorf("SQLite's writer has %d connections, want 1", n)
				}
				if n := db.ReadSQL().Stats().MaxOpenConnections; n != 3 {
					t.Errorf("SQLite's read pool has %d connections, want max_connections 3", n)
				}
			} else if n := db.SQL().Stats().MaxOpenConnections; n != 3 {
				t.Errorf("SQL() has %d connections, want max_connections 3", n)
			}
			if db.Dialect() == database.Postgres {
				pc := db.Pool().Config()
				if pc.MaxConns != 3 || pc.MinConns != 2 || pc.MaxConnIdleTime != 50*time.Millisecond ||
					pc.ConnConfig.ConnectTimeout != 3*time.Second {
					t.Errorf("pgx pool: max %d, min %d, idle %s, connect %s", pc.MaxConns, pc.MinConns, pc.MaxConnIdleTime, pc.ConnConfig.ConnectTimeout)
				}
				waitFor(t, "the pgx pool to open min_connections", func() bool { return db.Pool().Stat().TotalConns() >= 2 })
			}
			// idle_timeout: a connection left idle is closed (the SQLite writer is kept on purpose).
			if _, err := db.ExecContext(ctx, "CREATE TABLE s (a INT)"); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM s").Scan(&n); err != nil {
				t.Fatal(err)
			}
			idle := db.SQL()
			if db.Dialect() == database.SQLite {
				idle = db.ReadSQL()
			}
			waitFor(t, "idle_timeout to close an idle connection", func() bool { return idle.Stats().MaxIdleTimeClosed > 0 })

			// max_lifetime: a connection older than it is closed.
			cfg = databasetest.Config(url)
			cfg.IdleTimeout = 0
			cfg.MaxLifetime = config.Duration(50 * time.Millisecond)
			db2 := databasetest.Open(t, cfg)
			if db2.Dialect() == database.Postgres {
				if lt := db2.Pool().Config().MaxConnLifetime; lt != 50*time.Millisecond {
					t.Errorf("pgx pool lifetime %s", lt)
				}
			}
			if err := db2.QueryRowContext(ctx, "SELECT COUNT(*) FROM s").Scan(&n); err != nil {
				t.Fatal(err)
			}
			old := db2.SQL()
			if db2.Dialect() == database.SQLite {
				old = db2.ReadSQL()
			}
			waitFor(t, "max_lifetime to close an old connection", func() bool { return old.Stats().MaxLifetimeClosed > 0 })
		})
	}
}

// waitFor polls cond until it holds, failing t after 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
