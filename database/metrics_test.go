package database_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/shoal-sh/shoal/database/databasetest"
)

func TestCollector(t *testing.T) {
	t.Parallel()
	db := databasetest.Open(t, databasetest.Config(databasetest.SQLiteURL(t)))
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE m (a INT)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM m").Scan(&n); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(db.Collector())
	if problems, err := testutil.CollectAndLint(db.Collector()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if got := metricValue(t, reg, "shoal_db_pool_max_connections", "primary"); got != 1 {
		t.Errorf("SQLite writer max = %v", got)
	}
	if got := metricValue(t, reg, "shoal_db_pool_max_connections", "primary-read"); got != 4 {
		t.Errorf("SQLite read pool max = %v", got)
	}
	if got := metricValue(t, reg, "shoal_db_reads_total", "primary-read"); got != 1 {
		t.Errorf("reads = %v", got)
	}
	mfs, _ := reg.Gather()
	var hist bool
	for _, mf := range mfs {
		if mf.GetName() == "shoal_db_pool_acquire_seconds" {
			for _, m := range mf.GetMetric() {
				hist = hist || m.GetHistogram().GetSampleCount() > 0
			}
		}
	}
	if !hist {
		t.Error("no acquire observed in shoal_db_pool_acquire_seconds")
	}
}
