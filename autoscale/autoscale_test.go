package autoscale

import (
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
)

func seed(t *testing.T) *config.Config {
	t.Helper()
	c, err := config.Load("../testdata/rustform.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	return c // rules: cpu>70 up (300s), cpu<20 down (600s), p95>2000 up (180s), conns>1000 up (120s); 2..20
}

func TestAutoscaler_Evaluate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	type step struct {
		after   time.Duration
		values  map[string]float64
		current int
		to      int    // 0: no decision expected
		skipped string // substring of Skipped; "" means applied
	}
	cases := map[string][]step{
		"calm fleet does nothing": {
			{0, map[string]float64{"cpu_utilization_percentage": 45, "response_time_p95": 300}, 4, 0, ""},
		},
		"busy cpu scales up by one": {
			{0, map[string]float64{"cpu_utilization_percentage": 85}, 4, 5, ""},
		},
		"scale-up wins over scale-down": {
			{0, map[string]float64{"cpu_utilization_percentage": 10, "active_connections": 5000}, 4, 5, ""},
		},
		"rule and scale_up_cooldown": {
			{0, map[string]float64{"cpu_utilization_percentage": 90}, 4, 5, ""},
			{time.Minute, map[string]float64{"cpu_utilization_percentage": 90}, 5, 6, "cooling down"},
			// another rule, but the instances' scale_up_cooldown (300s) still holds
			{2 * time.Minute, map[string]float64{"response_time_p95": 2500}, 5, 6, "scale_up_cooldown"},
			{5*time.Minute + time.Second, map[string]float64{"cpu_utilization_percentage": 90}, 5, 6, ""},
		},
		"no scale-down right after a scale-up": {
			{0, map[string]float64{"cpu_utilization_percentage": 90}, 4, 5, ""},
			{2 * time.Minute, map[string]float64{"cpu_utilization_percentage": 5}, 5, 4, "scale_down_cooldown"},
			{6 * time.Minute, map[string]float64{"cpu_utilization_percentage": 5}, 5, 4, ""},
		},
		"bounds": {
			{0, map[string]float64{"cpu_utilization_percentage": 99}, 20, 20, "max_instances"},
			{0, map[string]float64{"cpu_utilization_percentage": 1}, 2, 2, "min_instances"},
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := New(seed(t))
			for i, s := range steps {
				d := a.Evaluate(t0.Add(s.after), s.values, s.current)
				switch {
				case s.to == 0 && d != nil:
					t.Fatalf("step %d: unexpected decision %+v", i, d)
				case s.to == 0:
					continue
				case d == nil:
					t.Fatalf("step %d: no decision, want %d", i, s.to)
				case d.To != s.to:
					t.Fatalf("step %d: to %d, want %d (%+v)", i, d.To, s.to, d)
				case s.skipped == "" && d.Skipped != "":
					t.Fatalf("step %d: skipped (%s), want applied", i, d.Skipped)
				case s.skipped != "" && !strings.Contains(d.Skipped, s.skipped):
					t.Fatalf("step %d: skipped %q, want %q", i, d.Skipped, s.skipped)
				}
			}
		})
	}
}

func TestDecision_Reason(t *testing.T) {
	d := Decision{Rule: 2, Metric: "response_time_p95", Value: 2500, Action: config.ScaleUp}
	if got := d.Reason(); got != "response_time_p95 2500 > threshold (rule 2)" {
		t.Errorf("Reason = %q", got)
	}
}
