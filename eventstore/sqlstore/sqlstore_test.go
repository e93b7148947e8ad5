package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/eventstore/eventstoretest"
	"github.com/shoal-sh/shoal/eventstore/sqlstore"
)

// open opens a new database handle on url and a store on it, as another process would,
// both closed when t ends.
func open(t testing.TB, url string, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	return openWith(t, url, opts, func(*config.Database) {})
}

// openWith is open with the test's changes to the database settings.
func openWith(t testing.TB, url string, opts sqlstore.Options, change func(*config.Database)) *sqlstore.Store {
	t.Helper()
	cfg := databasetest.Config(url)
	cfg.MaxConnections = 6
	change(&cfg)
	db := databasetest.Open(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlstore.New(ctx, db, opts)
	if err != nil {
		t.Fatalf("sqlstore.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func harness(newURL func(testing.TB) string) func(t *testing.T) eventstoretest.Harness {
	return func(t *testing.T) eventstoretest.Harness {
		url := newURL(t)
		var clock eventstore.Clock
		return eventstoretest.Harness{Open: func(t testing.TB, c eventstore.Clock) eventstore.Store {
			if clock == nil {
				clock = c
			}
			return open(t, url, sqlstore.Options{Clock: clock})
		}}
	}
}

func TestSQLiteConformance(t *testing.T) {
	eventstoretest.Run(t, harness(databasetest.SQLiteURL))
}

func TestPostgresConformance(t *testing.T) {
	eventstoretest.Run(t, harness(databasetest.PostgresURL))
}

func TestNotSupported(t *testing.T) {
	if _, err := sqlstore.New(context.Background(), nil, sqlstore.Options{}); err == nil {
		t.Fatal("a nil database was accepted")
	}
	_ = database.Postgres
}
