package health

import "testing"

func TestDriverDSN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, kind, dsn string }{
		{"postgres://u:p@db:5432/app?sslmode=disable", "postgres", "postgres://u:p@db:5432/app?sslmode=disable"},
		{"postgresql://db/app", "postgres", "postgresql://db/app"},
		{"mysql://root:p%40ss@db:3307/app?parseTime=true", "mysql", "root:p@ss@tcp(db:3307)/app?parseTime=true"},
		{"mysql://db/app", "mysql", "tcp(db:3306)/app"},
		{"mariadb://u@[::1]/app", "mysql", "u@tcp([::1]:3306)/app"},
		{"sqlite:///var/lib/app.db", "sqlite", "/var/lib/app.db"},
		{"sqlite://app.db", "sqlite", "app.db"},
	} {
		kind, dsn, err := driverDSN(tc.in)
		if err != nil || kind != tc.kind || dsn != tc.dsn {
			t.Errorf("driverDSN(%q) = %q, %q, %v; want %q, %q", tc.in, kind, dsn, err, tc.kind, tc.dsn)
		}
	}
	if _, _, err := driverDSN("redis://x"); err == nil {
		t.Error("redis:// taken for a database")
	}
}

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:secret@db/app": "postgres://u:xxxxx@db/app",
		"postgres://db/app":          "postgres://db/app",
		"mysql://u:se%zzcret@db/app": "mysql://xxxxx@db/app",
	} {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
