package database_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/internal/servicetest"
)

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestOpen_BadInput checks that each bad database block gives one sentence naming the database
// (password masked) and the fix, with the right sentinel, and that nothing panics.
func TestOpen_BadInput(t *testing.T) {
	t.Parallel()
	dead := closedPort(t)
	cases := []struct {
		name, url string
		is        error
		says      []string
	}{
		{"empty", "", database.ErrBadURL, []string{"database.url is empty"}},
		{"unknown scheme", "redis://u:hunter2@localhost:6379/0", database.ErrBadURL, []string{"unknown scheme \"redis\"", "postgres://", "u:[redacted]@"}},
		{"no scheme", "localhost/app", database.ErrBadURL, []string{"no scheme"}},
		{"malformed port", "postgres://u:hunter2@localhost:54x2/app", database.ErrBadURL, []string{"u:[redacted]@", "write it as"}},
		{"port out of range", "mysql://u:hunter2@localhost:99999/app", database.ErrBadURL, []string{"invalid port \"99999\""}},
		{"bad mysql parameter", "mysql://u:hunter2@localhost/app?parseTime=sometimes", database.ErrBadURL, []string{"parameter", "[redacted]"}},
		{"bad postgres parameter", "postgres://u:hunter2@localhost/app?pool_max_conns=lots", database.ErrBadURL, []string{"pool_max_conns", "[redacted]"}},
		{"unreachable postgres", "postgres://u:hunter2@" + dead + "/app?sslmode=disable", database.ErrUnreachable, []string{"cannot be reached", "u:[redacted]@" + dead, "check that the server is running"}},
		{"unreachable mysql", "mysql://u:hunter2@" + dead + "/app", database.ErrUnreachable, []string{"cannot be reached", "u:[redacted]@" + dead}},
		{"mongodb", "mongodb://u:hunter2@localhost/app", database.ErrBadURL, []string{"database/mongo", "u:[redacted]@"}},
		{"sqlite in a file", "sqlite:///dev/null/x/app.db", nil, []string{"/dev/null/x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := databasetest.Config(c.url)
			cfg.ConnectTimeout = config.Duration(2 * time.Second)
			db, err := database.Open(context.Background(), cfg)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("%v is not %v", err, c.is)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("the password shows: %s", msg)
			}
			if strings.Count(strings.ReplaceAll(msg, "e.g. ", ""), ". ") > 0 || strings.Contains(msg, "\n") {
				t.Errorf("not one sentence: %s", msg)
			}
			for _, s := range c.says {
				if !strings.Contains(msg, s) {
					t.Errorf("%q does not say %q", msg, s)
				}
			}
		})
	}
}

func TestOpen_WrongCredentials(t *testing.T) {
	t.Parallel()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		addr := servicetest.Need(t, servicetest.Postgres)
		_, err := database.Open(context.Background(), databasetest.Config("postgres://nosuchuser:hunter2@"+addr+"/test?sslmode=disable"))
		if !errors.Is(err, database.ErrAuth) || strings.Contains(err.Error(), "hunter2") ||
			!strings.Contains(err.Error(), `user "nosuchuser"`) || !strings.Contains(err.Error(), "check the user and password") {
			t.Fatalf("wrong user: %v", err)
		}
	})
	t.Run("mysql", func(t *testing.T) {
		t.Parallel()
		addr := servicetest.Need(t, servicetest.MariaDB)
		_, err := database.Open(context.Background(), databasetest.Config("mysql://root:hunter2@"+addr+"/test"))
		if !errors.Is(err, database.ErrAuth) || strings.Contains(err.Error(), "hunter2") ||
			!strings.Contains(err.Error(), "root:[redacted]@") || !strings.Contains(err.Error(), "check the user and password") {
			t.Fatalf("wrong password: %v", err)
		}
	})
	t.Run("postgres database missing", func(t *testing.T) {
		t.Parallel()
		addr := servicetest.Need(t, servicetest.Postgres)
		_, err := database.Open(context.Background(), databasetest.Config("postgres://postgres@"+addr+"/no_such_db_here?sslmode=disable"))
		if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "createdb") {
			t.Fatalf("missing database: %v", err)
		}
	})
}

func TestOpen_SQLiteDefaults(t *testing.T) {
	t.Parallel()
	raw := databasetest.SQLiteURL(t)
	db := databasetest.Open(t, databasetest.Config(raw))
	ctx := context.Background()
	var mode string
	if err := db.SQL().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	var fk int
	if err := db.ReadSQL().QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v", fk, err)
	}
	if _, err := db.ReadSQL().ExecContext(ctx, "CREATE TABLE nope (a INT)"); err == nil {
		t.Error("the read pool accepted a write")
	}
	if db.SQL().Stats().MaxOpenConnections != 1 {
		t.Errorf("writer pool: %+v", db.SQL().Stats())
	}
	mem := databasetest.Open(t, databasetest.Config("sqlite://:memory:"))
	if _, err := mem.ExecContext(ctx, "CREATE TABLE m (a INT)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := mem.QueryRowContext(ctx, "SELECT COUNT(*) FROM m").Scan(&n); err != nil {
		t.Fatalf("in-memory reads see the writer's table: %v", err)
	}
}

// A relative file under a directory that does not exist yet is created.
func TestOpen_SQLiteRelative(t *testing.T) {
	t.Chdir(t.TempDir())
	db := databasetest.Open(t, databasetest.Config("sqlite://state/sub/app.db"))
	if _, err := db.ExecContext(context.Background(), "CREATE TABLE a (b INT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("state/sub/app.db"); err != nil {
		t.Fatal(err)
	}
}

// A file that is not a SQLite database, or one in a directory that cannot be created, fails
// Open with one sentence naming it and the fix.
func TestOpen_SQLiteBadFile(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/notes.db"
	if err := os.WriteFile(path, []byte("these are not the pages of a SQLite database, though long enough to look like a header"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := database.Open(context.Background(), databasetest.Config("sqlite://"+path))
	if err == nil || !strings.Contains(err.Error(), "not a SQLite database") || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), "point database.url at a SQLite file") {
		t.Fatalf("Open of a text file: %v", err)
	}
}
