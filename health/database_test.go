package health

import (
	"path/filepath"
	"testing"

	"github.com/shoal-sh/shoal/config"
)

// A database check of a SQLite file runs with nothing installed, through package database.
func TestDatabase_SQLite(t *testing.T) {
	t.Parallel()
	res, code := runCheck(t, config.Check{Type: config.CheckDatabase, URL: "sqlite://" + filepath.Join(t.TempDir(), "app.db")})
	wantPass(t, res, code)
	wantDown(t, config.Check{Type: config.CheckDatabase, URL: "sqlite:///dev/null/nope/app.db"}, "/dev/null/nope")
}
