package database

import (
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"postgres://u:secret@h/db":                "postgres://u:[redacted]@h/db",
		"postgres://u@h/db":                       "postgres://u@h/db",
		"postgres://h/db?password=secret&x=1":     "postgres://h/db?password=[redacted]&x=1",
		"mysql://root:p%40ss@db:3307/app":         "mysql://root:[redacted]@db:3307/app",
		"postgres://u:se%zzcret@h/db":             "postgres://u:[redacted]@h/db",
		"sqlite:///var/lib/app.db":                "sqlite:///var/lib/app.db",
		"mongodb+srv://u:pw@cluster.example/db":   "mongodb+srv://u:[redacted]@cluster.example/db",
		"postgres://h/db?sslpassword=k&sslmode=x": "postgres://h/db?sslmode=x&sslpassword=[redacted]",
	}
	for in, want := range cases {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMySQLConfig(t *testing.T) {
	t.Parallel()
	cfg := config.Database{ConnectTimeout: config.Duration(3 * time.Second)}
	mc, err := mysqlConfig("mysql://root:p%40ss@db:3307/app?loc=Local&tls=skip-verify&charset=utf8mb4", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if mc.User != "root" || mc.Passwd != "p@ss" || mc.Addr != "db:3307" || mc.DBName != "app" || !mc.ParseTime ||
		mc.Loc != time.Local || mc.TLSConfig != "skip-verify" || mc.Timeout != 3*time.Second {
		t.Errorf("parsed %+v", mc)
	}
	mc, err = mysqlConfig("mariadb://u@h/app?parseTime=false&timeout=1s", cfg)
	if err != nil || mc.Addr != "h:3306" || mc.ParseTime || mc.Timeout != time.Second {
		t.Errorf("defaults overridden by the URL: %+v, %v", mc, err)
	}
	mc, err = mysqlConfig("mysql://u@/app?socket=/run/mysqld/mysqld.sock", cfg)
	if err != nil || mc.Net != "unix" || mc.Addr != "/run/mysqld/mysqld.sock" {
		t.Errorf("socket: %+v, %v", mc, err)
	}
	cfg.User, cfg.Password = "fromcfg", "pw"
	mc, err = mysqlConfig("mysql://h/app", cfg)
	if err != nil || mc.User != "fromcfg" || mc.Passwd != "pw" {
		t.Errorf("database.user/password: %+v, %v", mc, err)
	}
	if _, err := mysqlConfig("mysql://u:secret@h/app?parseTime=maybe", cfg); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad parameter: %v", err)
	}
}

func TestParseSQLite(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, path string
		memory   bool
	}{
		{"sqlite:///var/lib/app.db", "/var/lib/app.db", false},
		{"sqlite://rel/app.db", "rel/app.db", false},
		{"sqlite://.shoal/jobs.db", ".shoal/jobs.db", false},
		{"sqlite:app.db?_pragma=foreign_keys(0)", "app.db", false},
		{"file:app.db", "app.db", false},
		{"sqlite3:///x.db", "/x.db", false},
		{"sqlite://:memory:", ":memory:", true},
		{"sqlite://x?mode=memory", ":memory:", true},
		{"/abs/bare.db", "/abs/bare.db", false},
		{"sqlite:///with%20space.db", "/with space.db", false},
	}
	for _, c := range cases {
		f, err := parseSQLite(c.in)
		if err != nil || f.path != c.path || f.memory != c.memory {
			t.Errorf("parseSQLite(%q) = %+v, %v; want %s memory=%v", c.in, f, err, c.path, c.memory)
		}
	}
	if _, err := parseSQLite("sqlite://"); err == nil {
		t.Error("sqlite:// without a file accepted")
	}
	f, _ := parseSQLite("sqlite:app.db?_pragma=foreign_keys(0)&_busy_timeout=9")
	dsn := f.dsn(time.Second, true)
	if strings.Contains(dsn, "_foreign_keys") || strings.Contains(dsn, "_busy_timeout=1000") || !strings.Contains(dsn, "_txlock=immediate") ||
		!strings.Contains(dsn, "_journal_mode=WAL") {
		t.Errorf("the URL's own settings must win: %s", dsn)
	}
	if r := f.dsn(time.Second, false); !strings.Contains(r, "_query_only=1") || strings.Contains(r, "_txlock") {
		t.Errorf("reader DSN: %s", r)
	}
}

func TestDialectOf(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]Dialect{
		"postgres://h/db": Postgres, "postgresql://h/db": Postgres, "pgx://h/db": Postgres, "mysql://h/db": MySQL,
		"mariadb://h/db": MySQL, "sqlite:///a.db": SQLite, "file:a.db": SQLite, "mongodb://h/db": MongoDB, "mongodb+srv://h/db": MongoDB,
	} {
		if d, err := dialectOf("", raw); err != nil || d != want {
			t.Errorf("dialectOf(%q) = %q, %v", raw, d, err)
		}
	}
	if d, err := dialectOf("mysql", "whatever://x"); err != nil || d != MySQL {
		t.Errorf("database.type wins: %q %v", d, err)
	}
	for _, raw := range []string{"redis://u:pw@h/0", "h/db", "://x"} {
		if _, err := dialectOf("", raw); err == nil || strings.Contains(err.Error(), "pw@") {
			t.Errorf("dialectOf(%q): %v", raw, err)
		}
	}
}

// FuzzParseURL feeds arbitrary URLs to every parser Open uses: none may panic, and no error
// may show the password.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"postgres://u:sekrit@h:5432/db?sslmode=disable", "mysql://u:sekrit@h/db?parseTime=true&loc=UTC",
		"sqlite:///a.db?_pragma=x", "postgres://u:sekrit@h:99999/db", "mysql://u:sekrit@[::1/db",
		"postgres://u:sekrit@h/db?pool_max_conns=x", "pgx://u:sekrit@a,b/db",
	} {
		f.Add(s)
	}
	cfg := config.Database{MaxConnections: 2, ConnectTimeout: config.Duration(time.Second)}
	f.Fuzz(func(t *testing.T, raw string) {
		check := func(err error) {
			if err != nil && strings.Contains(raw, "//u:sekrit@") && strings.Contains(err.Error(), ":sekrit@") {
				t.Fatalf("error shows the password: %v", err)
			}
		}
		_, err := dialectOf("", raw)
		check(err)
		_, err = postgresConfig(raw, cfg)
		check(err)
		_, err = mysqlConfig(raw, cfg)
		check(err)
		if f, err := parseSQLite(raw); err == nil {
			_ = f.dsn(time.Second, true)
		} else {
			check(err)
		}
		if strings.Contains(raw, "//u:sekrit@") && strings.Contains(Redact(raw), ":sekrit@") {
			t.Fatalf("Redact(%q) = %q", raw, Redact(raw))
		}
	})
}
