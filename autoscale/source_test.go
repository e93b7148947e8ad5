package autoscale

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// TestJobQueueDepth scales workers on the backlog of package jobs through a MetricSource, the
// way KEDA's queue scalers do: a target per instance (AverageValue) and a threshold rule, both
// on job_queue_depth, from a source read once per evaluation.
func TestJobQueueDepth(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte(`
name: workers
scaling:
  instances: {min_instances: 1, max_instances: 30, target_cpu_utilization: 70, scale_up_cooldown: 0s, scale_down_cooldown: 60s}
observability:
  auto_scaling:
    enabled: true
    metrics:
      - {metric: job_queue_depth, target: 50}
      - {metric: job_queue_depth, threshold: 2000, action: scale_up, step: 10, cooldown: 5m}
`), "shoal.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	s := SettingsFrom(c)
	if got := s.Uses(); len(got) != 3 || got[2] != config.MetricJobQueueDepth {
		t.Fatalf("Uses() = %v, want cpu, memory and job_queue_depth", got)
	}
	depth, fail := 0.0, error(nil)
	src := Gauge(config.MetricJobQueueDepth, func(context.Context) (float64, error) { return depth, fail })
	a := New(s)
	at := t0
	observe := func(n int) Input {
		at = at.Add(15 * time.Second)
		in := cpuFleet(n, 70)(at)
		ReadSources(context.Background(), &in, []MetricSource{src})
		return in
	}
	apply := func(context.Context, int, string) error { return nil }

	// 400 jobs waiting on 4 workers at 50 per worker: ⌈400/50⌉ = 8.
	depth = 400
	if d := a.Step(context.Background(), observe(4), apply); d.Desired != 8 || !strings.Contains(d.Winner, "job_queue_depth") {
		t.Fatalf("desired %d by %q, want 8 by the job_queue_depth target: %s", d.Desired, d.Winner, d.Reason)
	}
	// 8 workers, 420 waiting: within the tolerance.
	depth = 420
	if d := a.Step(context.Background(), observe(8), apply); d.Change != ChangeNone {
		t.Fatalf("within the tolerance: %s", d.Reason)
	}
	// The rule compares the backlog per worker with its threshold: 16800 on 8 is 2100 each, so
	// it recommends 8 + 10; the target recommends ⌈16800/50⌉ = 336; the larger wins, and the
	// scale-up policies allow 16 now.
	depth = 16800
	d := a.Step(context.Background(), observe(8), apply)
	if d.Desired != 16 || d.Limit != LimitRate || d.Recommended != 336 {
		t.Fatalf("a backlog of 16800: desired %d of %d (limit %q), want 16 of 336 by the rate policies: %s", d.Desired, d.Recommended, d.Limit, d.Reason)
	}
	ruleSaid := false
	for _, p := range d.Policies {
		ruleSaid = ruleSaid || (p.Kind == KindRule && p.Replicas == 18 && strings.Contains(p.Note, "crossed: 2100"))
	}
	if !ruleSaid {
		t.Errorf("the rule on job_queue_depth should recommend 18 (crossed at 2100 per worker): %+v", d.Policies)
	}

	// The source fails: its metric recommends nothing, says why, and keeps the fleet from
	// shrinking although the CPU target alone would.
	fail = errors.New("the jobs database is unreachable")
	at = at.Add(2 * time.Minute)
	in := cpuFleet(16, 10)(at)
	ReadSources(context.Background(), &in, []MetricSource{src})
	d = a.Decide(in)
	if d.Desired != 16 {
		t.Errorf("with job_queue_depth unreadable the fleet must not shrink: %s", d.Reason)
	}
	found := false
	for _, p := range d.Policies {
		if p.Metric == config.MetricJobQueueDepth && strings.Contains(p.Note, "the jobs database is unreachable") {
			found = true
		}
	}
	if !found {
		t.Errorf("the decision does not say why job_queue_depth is missing: %+v", d.Policies)
	}
}

func TestReadSources(t *testing.T) {
	t.Parallel()
	for _, bad := range []float64{math.NaN(), math.Inf(1), -3} {
		in := Input{}
		ReadSources(context.Background(), &in, []MetricSource{Gauge("job_queue_depth", func(context.Context) (float64, error) { return bad, nil })})
		if _, ok := in.Values["job_queue_depth"]; ok || !strings.Contains(in.Unavailable["job_queue_depth"], "not a count") {
			t.Errorf("%g: values %v, unavailable %v", bad, in.Values, in.Unavailable)
		}
	}
	in := Input{}
	ReadSources(context.Background(), &in, []MetricSource{Gauge("job_queue_depth", func(context.Context) (float64, error) { return 7, nil })})
	if in.Values["job_queue_depth"] != 7 || len(in.Unavailable) != 0 {
		t.Errorf("values %v, unavailable %v", in.Values, in.Unavailable)
	}
}
