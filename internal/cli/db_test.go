package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database/databasetest"
)

func writeDBConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "shoal.yml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDB_MigrateAndPing(t *testing.T) {
	t.Parallel()
	for _, b := range databasetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			url := b.NewURL(t)
			cfgPath := writeDBConfig(t, "name: shop\napp:\n  command: ./shop\ndatabase:\n  url: \"${DATABASE_URL}\"\n")
			vars := map[string]string{"DATABASE_URL": url}
			dir := filepath.Dir(cfgPath)

			code, out, errs := run(t, vars, "db", "migrate", "create", "add users", "-f", cfgPath)
			if code != ExitOK || !strings.Contains(out, "created "+filepath.Join(dir, "migrations")) || !strings.HasSuffix(strings.TrimSpace(out), "_add_users.sql") {
				t.Fatalf("create: %d %q %q", code, out, errs)
			}
			created := strings.TrimPrefix(strings.TrimSpace(out), "created ")
			if err := os.WriteFile(created, []byte("-- +goose Up\nCREATE TABLE users (id INT PRIMARY KEY);\n-- +goose Down\nDROP TABLE users;\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "migrations", "00001_first.sql"), []byte("-- +goose Up\nCREATE TABLE first (id INT);\n-- +goose Down\nDROP TABLE first;\n"), 0o644); err != nil {
				t.Fatal(err)
			}

			code, out, errs = run(t, vars, "db", "migrate", "status", "-f", cfgPath)
			if code != ExitOK || strings.Count(out, "pending") != 2 {
				t.Fatalf("status before: %d %q %q", code, out, errs)
			}
			code, out, errs = run(t, vars, "db", "migrate", "up", "-f", cfgPath)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != ExitOK || len(lines) != 3 || !strings.HasPrefix(lines[0], "applied 00001_first.sql (") ||
				!strings.Contains(lines[1], "_add_users.sql") || !strings.Contains(lines[2], "(2 applied)") {
				t.Fatalf("up: %d %q %q", code, out, errs)
			}
			code, out, _ = run(t, vars, "db", "migrate", "up", "-f", cfgPath)
			if code != ExitOK || !strings.Contains(out, "is up to date") {
				t.Fatalf("up again: %d %q", code, out)
			}
			code, out, _ = run(t, vars, "db", "migrate", "down", "-f", cfgPath)
			if code != ExitOK || !strings.HasPrefix(out, "rolled back ") || !strings.Contains(out, "_add_users.sql") {
				t.Fatalf("down: %d %q", code, out)
			}
			code, out, _ = run(t, vars, "db", "migrate", "status", "-f", cfgPath)
			if code != ExitOK || strings.Count(out, "applied") != 1 || strings.Count(out, "pending") != 1 {
				t.Fatalf("status after down: %d %q", code, out)
			}

			code, out, errs = run(t, vars, "db", "ping", "-f", cfgPath)
			if code != ExitOK || !strings.Contains(out, ": ok, ping ") || !strings.Contains(out, "POOL") || !strings.Contains(out, "primary") {
				t.Fatalf("ping: %d %q %q", code, out, errs)
			}
		})
	}
}

func TestDB_Errors(t *testing.T) {
	t.Parallel()
	cfgPath := writeDBConfig(t, "name: shop\napp:\n  command: ./shop\ndatabase:\n  url: \"${DATABASE_URL}\"\n")
	t.Run("unreachable, password masked", func(t *testing.T) {
		code, _, errs := run(t, map[string]string{"DATABASE_URL": "postgres://u:hunter2@127.0.0.1:1/app?sslmode=disable"}, "db", "ping", "-f", cfgPath)
		if code != ExitFailure || strings.Contains(errs, "hunter2") || !strings.Contains(errs, "cannot be reached") || strings.Count(errs, "\n") != 1 {
			t.Fatalf("%d %q", code, errs)
		}
	})
	t.Run("a failing migration names its file and line", func(t *testing.T) {
		url := databasetest.SQLiteURL(t)
		dir := filepath.Join(filepath.Dir(cfgPath), "bad")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "00001_bad.sql"), []byte("-- +goose Up\n\nCREATE TABLE x (;\n-- +goose Down\n"), 0o644)
		code, _, errs := run(t, map[string]string{"DATABASE_URL": url}, "db", "migrate", "up", "-f", cfgPath, "--dir", dir)
		if code != ExitFailure || !strings.Contains(errs, "migration 00001_bad.sql:3 failed") {
			t.Fatalf("%d %q", code, errs)
		}
	})
	t.Run("no migrations directory", func(t *testing.T) {
		code, _, errs := run(t, map[string]string{"DATABASE_URL": databasetest.SQLiteURL(t)}, "db", "migrate", "up", "-f", cfgPath, "--dir", "/nonexistent/m")
		if code != ExitFailure || !strings.Contains(errs, "shoal db migrate create NAME") {
			t.Fatalf("%d %q", code, errs)
		}
	})
	t.Run("bad create name", func(t *testing.T) {
		code, _, errs := run(t, nil, "db", "migrate", "create", "!!!", "--dir", t.TempDir())
		if code != ExitFailure || !strings.Contains(errs, "has no letters or digits") {
			t.Fatalf("%d %q", code, errs)
		}
	})
}

// With no database configured, the db commands and shoal up use one SQLite file in the state
// directory; a configured database is left alone.
func TestDB_EmbeddedDefault(t *testing.T) {
	t.Parallel()
	cfgPath := writeDBConfig(t, "name: shop\napp:\n  command: ./shop\n")
	code, out, errs := run(t, nil, "db", "ping", "-f", cfgPath)
	want := filepath.Join(filepath.Dir(cfgPath), ".shoal", "database.db")
	if code != ExitOK || !strings.Contains(errs, "sqlite://"+want) || !strings.Contains(out, "(sqlite): ok") {
		t.Fatalf("%d %q %q", code, out, errs)
	}
	if _, err := os.Stat(want); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath, config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	a := &app{stderr: &strings.Builder{}}
	if env := a.embeddedDatabase(c); len(env) != 1 || env[0] != "DATABASE_URL=sqlite://"+want {
		t.Errorf("embedded env: %v", env)
	}
	c.Database.URL = "postgres://db/shop"
	if env := a.embeddedDatabase(c); env != nil {
		t.Errorf("a configured database got %v", env)
	}
}
