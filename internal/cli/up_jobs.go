package cli

import (
	"context"
	"fmt"

	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/jobs"
)

// jobsMetricSources gives the fleet's autoscaler job_queue_depth when the jobs block is
// enabled: the backlog of the job store every instance shares (jobs.url, or the state
// directory's jobs.db for sqlite), read at each evaluation. The jobs schema is migrated first,
// so the instances and `shoal jobs` find it. close releases the store.
func (a *app) jobsMetricSources(ctx context.Context, c *config.Config) (sources []autoscale.MetricSource, close func(), err error) {
	if !c.Jobs.Enabled {
		return nil, func() {}, nil
	}
	dbc, err := jobsDatabase(c)
	if err != nil {
		return nil, nil, err
	}
	db, err := database.Open(ctx, dbc, database.WithManualReplicaChecks())
	if err != nil {
		return nil, nil, fmt.Errorf("the job store (jobs.url): %w", err)
	}
	cl, err := jobs.New(db, jobs.Options{Config: c.Jobs, AnyKind: true, WorkerID: "shoal-up"})
	if err == nil {
		err = cl.Migrate(ctx)
	}
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	src := autoscale.Gauge(config.MetricJobQueueDepth, func(ctx context.Context) (float64, error) {
		n, err := cl.Depth(ctx)
		return float64(n), err
	})
	return []autoscale.MetricSource{src}, func() { db.Close() }, nil
}
