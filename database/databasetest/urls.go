// Package databasetest is the conformance suite every SQL backend of package database passes
// ([Run]), and helpers that give a test an isolated database of its own on the machine's
// PostgreSQL and MariaDB, or a SQLite file, so other packages (jobs, eventstore) test against
// the real thing the same way.
package databasetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the admin connection that creates test databases
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/internal/servicetest"
)

// Backend is one SQL backend the suite runs on.
type Backend struct {
	Name string
	// NewURL returns the URL of a new, empty database that lives as long as t; it skips t (or
	// fails it with SHOAL_TEST_SERVICES=required) when the server is not running.
	NewURL func(t testing.TB) string
}

// Backends are the machine's PostgreSQL and MariaDB, and SQLite.
var Backends = []Backend{
	{"postgres", PostgresURL},
	{"mysql", MySQLURL},
	{"sqlite", SQLiteURL},
}

func suffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PostgresURL creates a schema of its own in the machine's PostgreSQL (database test) and returns
// a URL whose search_path is that schema; the schema is dropped when t ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	addr := servicetest.Need(t, servicetest.Postgres)
	base := "postgres://postgres@" + addr + "/test?sslmode=disable"
	schema := "t_" + suffix()
	admin(t, "pgx", base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { admin(t, "pgx", base, "DROP SCHEMA "+schema+" CASCADE") })
	return base + "&search_path=" + schema
}

// MySQLURL creates a database of its own in the machine's MariaDB and returns its URL; it is
// dropped when t ends.
func MySQLURL(t testing.TB) string {
	t.Helper()
	addr := servicetest.Need(t, servicetest.MariaDB)
	name := "t_" + suffix()
	admin(t, "mysql", "root@tcp("+addr+")/", "CREATE DATABASE "+name)
	t.Cleanup(func() { admin(t, "mysql", "root@tcp("+addr+")/", "DROP DATABASE "+name) })
	return "mysql://root@" + addr + "/" + name
}

// SQLiteURL returns the URL of a new SQLite file in t's temporary directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.ToSlash(filepath.Join(t.TempDir(), "test.db"))
}

func admin(t testing.TB, driver, dsn, stmt string) {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("opening %s: %v", database.Redact(dsn), err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// Config returns a database block for raw with shoal's defaults and small bounds fit for tests
// (acquire_timeout 2s); change its fields before opening.
func Config(raw string) config.Database {
	return config.Database{
		URL:                  raw,
		MaxConnections:       4,
		ConnectTimeout:       config.Duration(5 * time.Second),
		IdleTimeout:          config.Duration(time.Minute),
		MaxLifetime:          config.Duration(10 * time.Minute),
		AcquireTimeout:       config.Duration(2 * time.Second),
		ReplicaMaxLag:        config.Duration(time.Second),
		ReplicaCheckInterval: config.Duration(time.Second),
		ReadYourWrites:       config.Duration(3 * time.Second),
	}
}

// Open opens cfg and closes it when t ends.
func Open(t testing.TB, cfg config.Database, opts ...database.Opt) *database.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, cfg, opts...)
	if err != nil {
		t.Fatalf("database.Open(%s): %v", database.Redact(cfg.URL), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
