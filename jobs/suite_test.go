package jobs_test

import (
	"testing"

	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/jobs/jobstest"
)

func newDB(newURL func(testing.TB) string) jobstest.NewDB {
	return func(t testing.TB) *database.DB {
		cfg := databasetest.Config(newURL(t))
		cfg.MaxConnections = 8
		return databasetest.Open(t, cfg)
	}
}

func TestConformance(t *testing.T) {
	for _, b := range databasetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			jobstest.Run(t, newDB(b.NewURL))
		})
	}
}
