package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/jobs"
)

func TestUp_JobQueueDepthSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &config.Config{Jobs: config.Jobs{Enabled: true, Driver: config.JobsSQLite,
		URL: "sqlite://" + filepath.ToSlash(filepath.Join(dir, "jobs.db")), Queues: map[string]int{"default": 1}}}
	a := &app{}
	ctx := context.Background()
	srcs, closeFn, err := a.jobsMetricSources(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if len(srcs) != 1 || srcs[0].Names()[0] != config.MetricJobQueueDepth {
		t.Fatalf("sources %v", srcs)
	}
	read := func() float64 {
		v, err := srcs[0].Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v[config.MetricJobQueueDepth]
	}
	if v := read(); v != 0 {
		t.Fatalf("empty queue: %v", v)
	}
	// An instance enqueues through its own client on the same store.
	db := databasetest.Open(t, databasetest.Config(c.Jobs.URL))
	cl, err := jobs.New(db, jobs.Options{Config: c.Jobs, AnyKind: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := cl.EnqueueRaw(ctx, "email", json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if v := read(); v != 3 {
		t.Fatalf("job_queue_depth %v, want 3", v)
	}
	// Jobs off: no source.
	srcs, closeFn2, err := a.jobsMetricSources(ctx, &config.Config{})
	if err != nil || len(srcs) != 0 {
		t.Fatalf("jobs disabled: %v %v", srcs, err)
	}
	closeFn2()
}
