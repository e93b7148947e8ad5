package autoscale

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func seed(t *testing.T, env string) *config.Config {
	t.Helper()
	c, err := config.Load("../testdata/rustform.yml", config.Options{Env: env, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	return c // rules: cpu>70 up (300s), cpu<20 down (600s), p95>2000 up (180s), conns>1000 up (120s); 2..20; windows 300s
}

// cpuOnly is the HPA's own setting: one CPU target, its default behaviour and tolerance.
func cpuOnly(target float64, min, max int) Settings {
	return Settings{Min: min, Max: max, Interval: 15 * time.Second, Tolerance: 0.1, CPUInitializationPeriod: 5 * time.Minute,
		Targets: []Target{{Metric: config.MetricCPUUtilization, Value: target}}, ScaleUp: HPAScaleUp, ScaleDown: HPAScaleDown}
}

// settled is a ready instance started long ago.
func settled(cpu float64) Instance {
	return Instance{Ready: true, Started: t0.Add(-time.Hour), ReadySince: t0.Add(-time.Hour), CPU: cpu, HasCPU: true, Memory: 10, HasMemory: true}
}

// fleetAt is an Input of settled instances with these CPU percentages at time at.
func fleetAt(at time.Time, cpus ...float64) Input {
	in := Input{Time: at, Current: len(cpus), Values: map[string]float64{}}
	for _, c := range cpus {
		in.Instances = append(in.Instances, settled(c))
	}
	return in
}

// TestUtilizationReplicas_HPACases replays the cases of the HPA's replica_calculator_test.go
// (Kubernetes), with CPU levels written as percentages of a request of one core.
func TestUtilizationReplicas_HPACases(t *testing.T) {
	t.Parallel()
	now := t0
	unreadyNever := Instance{Ready: false, Started: now.Add(-time.Hour)}
	hot := Instance{Ready: true, Started: now.Add(-time.Minute), ReadySince: now.Add(-5 * time.Second), HasCPU: true}
	missing := Instance{Ready: true, Started: now.Add(-time.Hour), ReadySince: now.Add(-time.Hour)}
	withCPU := func(i Instance, cpu float64) Instance { i.CPU, i.HasCPU = cpu, true; return i }
	cases := []struct {
		name      string
		instances []Instance
		target    float64
		want      int
	}{
		{"ScaleUp", []Instance{settled(30), settled(50), settled(70)}, 30, 5},
		{"ScaleUpUnreadyLessScale", []Instance{withCPU(unreadyNever, 30), settled(50), settled(70)}, 30, 4},
		{"ScaleUpHotCpuLessScale", []Instance{withCPU(hot, 30), settled(50), settled(70)}, 30, 4},
		{"ScaleUpUnreadyNoScale", []Instance{settled(40), withCPU(unreadyNever, 50), withCPU(unreadyNever, 70)}, 30, 3},
		{"ScaleDown", []Instance{settled(10), settled(30), settled(50), settled(25), settled(25)}, 50, 3},
		{"ScaleDownIgnoresUnreadyPods", []Instance{settled(10), settled(30), settled(50), withCPU(unreadyNever, 25), withCPU(unreadyNever, 25)}, 50, 2},
		{"Tolerance", []Instance{settled(101), settled(103), settled(102)}, 100, 3},
		{"MissingMetricsNoChangeLt", []Instance{settled(60), missing}, 100, 2},
		{"MissingMetricsUnreadyNoChange", []Instance{withCPU(unreadyNever, 10), settled(45), missing}, 50, 3},
		{"MissingMetricsUnreadyScaleUp", []Instance{withCPU(unreadyNever, 10), settled(200), missing}, 50, 4},
		{"MissingMetricsUnreadyScaleDown", []Instance{withCPU(unreadyNever, 10), settled(10), settled(10), missing}, 50, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := cpuOnly(tc.target, 1, 100)
			in := Input{Time: now, Current: len(tc.instances), Instances: tc.instances}
			p, err := utilizationReplicas(in.Current, s.utilizationSamples(in, config.MetricCPUUtilization), tc.target, s.Tolerance)
			if err != nil {
				t.Fatal(err)
			}
			if p.replicas != tc.want {
				t.Errorf("replicas = %d, want %d (%s)", p.replicas, tc.want, p.note)
			}
		})
	}
	t.Run("no samples from any ready instance", func(t *testing.T) {
		s := cpuOnly(50, 1, 10)
		in := Input{Time: now, Current: 2, Instances: []Instance{missing, unreadyNever}}
		if _, err := utilizationReplicas(2, s.utilizationSamples(in, config.MetricCPUUtilization), 50, 0.1); !errors.Is(err, errNoSamples) {
			t.Errorf("err = %v, want errNoSamples", err)
		}
	})
}

func TestAverageAndValueReplicas(t *testing.T) {
	t.Parallel()
	// External AverageValue: 5000 connections at 500 per instance → 10, unless within 10%.
	if p := averageValueReplicas(4, 5000, 500, 0.1); p.replicas != 10 {
		t.Errorf("average value: %d, want 10", p.replicas)
	}
	if p := averageValueReplicas(10, 5200, 500, 0.1); p.replicas != 10 {
		t.Errorf("average value within tolerance: %d, want 10", p.replicas)
	}
	// Object Value: p95 3000 ms against 1000 with 4 ready → 12.
	if p := valueReplicas(4, 4, 3000, 1000, 0.1); p.replicas != 12 {
		t.Errorf("value: %d, want 12", p.replicas)
	}
}

// TestScaleLimits checks the rate policies against the HPA documentation's examples.
func TestScaleLimits(t *testing.T) {
	t.Parallel()
	now := t0
	t.Run("default scale-up: 4 pods or 100% per 15s", func(t *testing.T) {
		if got := scaleUpLimit(now, 2, nil, HPAScaleUp); got != 6 {
			t.Errorf("from 2: %d, want 6", got)
		}
		if got := scaleUpLimit(now, 10, nil, HPAScaleUp); got != 20 {
			t.Errorf("from 10: %d, want 20", got)
		}
		// 4 were added 5 s ago: the period started at 2, so 6 is still the limit.
		if got := scaleUpLimit(now, 6, []scaleEvent{{now.Add(-5 * time.Second), 4}}, HPAScaleUp); got != 6 {
			t.Errorf("within the period: %d, want 6", got)
		}
		if got := scaleUpLimit(now, 6, []scaleEvent{{now.Add(-15 * time.Second), 4}}, HPAScaleUp); got != 12 {
			t.Errorf("after the period: %d, want 12", got)
		}
	})
	t.Run("documented scale-down: 4 pods or 10% per minute", func(t *testing.T) {
		b := Behavior{Select: config.SelectMax, Policies: []RatePolicy{{Value: 4, Period: time.Minute}, {Percent: true, Value: 10, Period: time.Minute}}}
		// "if there are 80 replicas … during the first step 8 replicas will be reduced. In the
		// next iteration when the number of replicas is 72, 10% of the pods is 7.2 but the number
		// is rounded up to 8 … When the number of replicas falls below 40 the first policy (Pods)
		// is applied and 4 replicas will be reduced at a time."
		for _, c := range [][2]int{{80, 72}, {72, 64}, {40, 36}, {30, 26}} {
			if got := scaleDownLimit(now, c[0], nil, b); got != c[1] {
				t.Errorf("from %d: %d, want %d", c[0], got, c[1])
			}
		}
		b.Select = config.SelectMin
		if got := scaleDownLimit(now, 80, nil, b); got != 76 {
			t.Errorf("selectPolicy Min from 80: %d, want 76", got)
		}
		b.Select = config.SelectDisabled
		if got := scaleDownLimit(now, 80, nil, b); got != 80 {
			t.Errorf("disabled: %d, want 80", got)
		}
	})
}

// step is one evaluation of a scenario: the input after some time and what must come of it.
type step struct {
	after  time.Duration
	in     func(at time.Time) Input
	want   int    // desired count
	reason string // a substring of the reason, when not empty
}

// run plays steps on a fresh autoscaler, applying every change.
func run(t *testing.T, a *Autoscaler, steps []step) {
	t.Helper()
	for i, s := range steps {
		in := s.in(t0.Add(s.after))
		d := a.Step(context.Background(), in, func(context.Context, int, string) error { return nil })
		if d.Desired != s.want {
			t.Fatalf("step %d (+%s): desired %d, want %d: %s", i, s.after, d.Desired, s.want, d.Reason)
		}
		if s.reason != "" && !strings.Contains(d.Reason, s.reason) {
			t.Fatalf("step %d (+%s): reason %q does not say %q", i, s.after, d.Reason, s.reason)
		}
	}
}

// cpuFleet returns a step input of n settled instances at cpu percent each.
func cpuFleet(n int, cpu float64) func(time.Time) Input {
	return func(at time.Time) Input {
		cpus := make([]float64, n)
		for i := range cpus {
			cpus[i] = cpu
		}
		return fleetAt(at, cpus...)
	}
}

func TestAutoscaler_Stabilization(t *testing.T) {
	t.Parallel()
	t.Run("scale-down takes the highest recommendation of its window", func(t *testing.T) {
		a := New(cpuOnly(50, 1, 20))
		run(t, a, []step{
			{0, cpuFleet(10, 50), 10, "within the tolerance"},
			{time.Minute, cpuFleet(10, 40), 10, "scale-down window"}, // wants 8
			{2 * time.Minute, cpuFleet(10, 25), 10, "scale-down window"},
			// at +5m the 10 of +0 has left the window; the highest left is +1m's 8
			{5*time.Minute + time.Second, cpuFleet(10, 25), 8, "scale down from 10 to 8"},
			{6*time.Minute + time.Second, cpuFleet(8, 31.25), 5, "scale down from 8 to 5"}, // 25% of 10 on 8 → 5
		})
	})
	t.Run("scale-up takes the lowest recommendation of its window", func(t *testing.T) {
		s := cpuOnly(50, 1, 20)
		s.ScaleUp.Window = 2 * time.Minute
		a := New(s)
		run(t, a, []step{
			{0, cpuFleet(4, 50), 4, ""},
			{30 * time.Second, cpuFleet(4, 100), 4, "scale-up window"}, // wants 8; 4 is in the window
			{2*time.Minute + time.Second, cpuFleet(4, 100), 8, "scale up from 4 to 8"},
		})
	})
	t.Run("a brief spike does not scale up with a window", func(t *testing.T) {
		s := cpuOnly(50, 1, 20)
		s.ScaleUp.Window = time.Minute
		a := New(s)
		run(t, a, []step{
			{0, cpuFleet(4, 50), 4, ""},
			{15 * time.Second, cpuFleet(4, 150), 4, ""},
			{30 * time.Second, cpuFleet(4, 50), 4, ""},
			{45 * time.Second, cpuFleet(4, 150), 4, ""},
		})
	})
}

func TestAutoscaler_RatePolicies(t *testing.T) {
	t.Parallel()
	a := New(cpuOnly(10, 1, 100))
	run(t, a, []step{
		// 1000% on 2 wants 20; 4 pods or 100% per 15s allows 6.
		{0, cpuFleet(2, 100), 6, "scale-up policies allow 6"},
		// 5 s later the period still counts the 4 added: no more.
		{5 * time.Second, cpuFleet(6, 100), 6, "allow 6"},
		{15 * time.Second, cpuFleet(6, 100), 12, "allow 12"},
		{30 * time.Second, cpuFleet(12, 100), 24, "allow 24"},
		{45 * time.Second, cpuFleet(24, 100), 48, "allow 48"},
		{60 * time.Second, cpuFleet(48, 100), 96, "allow 96"},
		{75 * time.Second, cpuFleet(96, 100), 100, "max_instances is 100"},
	})
}

func TestAutoscaler_Bounds(t *testing.T) {
	t.Parallel()
	a := New(cpuOnly(50, 2, 5))
	run(t, a, []step{
		{0, cpuFleet(1, 50), 2, "below min_instances"},
		{time.Minute, cpuFleet(7, 50), 5, "above max_instances"},
		{2 * time.Minute, cpuFleet(5, 100), 5, "max_instances is 5"},
		{5 * time.Minute, cpuFleet(5, 1), 5, "scale-down window"}, // the 10 wanted at +2m is in the window
		{20 * time.Minute, cpuFleet(5, 1), 2, "min_instances is 2"},
	})
	// Whatever the input, the decision stays within the bounds.
	r := rand.New(rand.NewPCG(1, 2))
	a = New(cpuOnly(50, 2, 5))
	cur := 3
	for i := range 2000 {
		in := cpuFleet(cur, r.Float64()*300)(t0.Add(time.Duration(i) * 15 * time.Second))
		d := a.Step(context.Background(), in, func(context.Context, int, string) error { return nil })
		if d.Desired < 2 || d.Desired > 5 {
			t.Fatalf("evaluation %d: desired %d outside 2..5", i, d.Desired)
		}
		cur = d.Desired
	}
}

func TestAutoscaler_MultiMetricMax(t *testing.T) {
	t.Parallel()
	s := cpuOnly(50, 1, 50)
	s.Targets = append(s.Targets,
		Target{Metric: config.MetricMemoryUtilization, Value: 20},
		Target{Metric: config.MetricResponseTimeP95, Value: 100})
	a := New(s)
	in := cpuFleet(4, 60)(t0) // cpu: ⌈4 × 60/50⌉ = 5; memory 10% of 20 → 2
	in.Values[config.MetricResponseTimeP95] = 100
	d := a.Decide(in)
	if d.Desired != 5 || !strings.HasPrefix(d.Winner, "target cpu") {
		t.Fatalf("cpu should win with 5: %d by %s (%s)", d.Desired, d.Winner, d.Reason)
	}
	a.Done(d, nil)
	in = cpuFleet(5, 48)(t0.Add(time.Minute))
	in.Values[config.MetricResponseTimeP95] = 250 // ⌈5 × 2.5⌉ = 13, rate-limited to 100% of 5
	d = a.Decide(in)
	if d.Recommended != 13 || !strings.HasPrefix(d.Winner, "target response_time_p95") || d.Desired != 10 {
		t.Fatalf("p95 should win with 13, limited to 10: %d (recommended %d) by %s (%s)", d.Desired, d.Recommended, d.Winner, d.Reason)
	}
	if len(d.Policies) != 3 {
		t.Errorf("every policy's recommendation is logged: %+v", d.Policies)
	}
}

func TestAutoscaler_MissingMetricBlocksScaleDown(t *testing.T) {
	t.Parallel()
	s := cpuOnly(50, 1, 50)
	s.ScaleDown.Window = 0
	s.Targets = append(s.Targets, Target{Metric: config.MetricResponseTimeP95, Value: 100})
	a := New(s)
	d := a.Decide(cpuFleet(8, 10)(t0)) // cpu wants 2; p95 has no sample
	if d.Desired != 8 || !strings.Contains(d.Reason, "no scale-down") {
		t.Fatalf("a target without samples must hold a scale-down: %d (%s)", d.Desired, d.Reason)
	}
	a.Done(d, nil)
	d = a.Decide(cpuFleet(8, 100)(t0.Add(time.Minute))) // but not a scale-up
	if d.Desired != 16 {
		t.Fatalf("the readable target may still grow the fleet: %d (%s)", d.Desired, d.Reason)
	}
}

func TestAutoscaler_SeedRulesFire(t *testing.T) {
	t.Parallel()
	c := seed(t, "")
	with := func(cpu, p95, conns float64) func(time.Time) Input {
		return func(at time.Time) Input {
			in := cpuFleet(4, cpu)(at)
			in.Values[config.MetricResponseTimeP95] = p95
			in.Values[config.MetricActiveConnections] = conns
			return in
		}
	}
	cases := []struct {
		name string
		in   func(time.Time) Input
		want int
		rule string
	}{
		// cpu at the 70% target is within the tolerance: only the rule moves the count.
		{"p95 over 2000ms", with(70, 2500, 100), 5, "rule response_time_p95 > 2000ms"},
		{"active connections over 1000 per instance", with(70, 300, 4400), 5, "rule active_connections > 1000"},
		{"cpu over 70%", with(75, 300, 100), 5, "rule cpu_utilization_percentage > 70%"},  // the target says 4 (within tolerance)
		{"cpu under 20%", with(15, 300, 100), 3, "rule cpu_utilization_percentage < 20%"}, // the target says 1, bounded to 2; the rule's 3 is larger
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := New(SettingsFrom(c))
			d := a.Decide(tc.in(t0))
			if d.Desired != tc.want || d.Winner != tc.rule {
				t.Fatalf("desired %d by %q, want %d by %q: %s", d.Desired, d.Winner, tc.want, tc.rule, d.Reason)
			}
		})
	}
}

func TestAutoscaler_RuleCooldowns(t *testing.T) {
	t.Parallel()
	c := seed(t, "")
	p95 := func(n int, v float64) func(time.Time) Input {
		return func(at time.Time) Input {
			in := cpuFleet(n, 70)(at)
			in.Values[config.MetricResponseTimeP95] = v
			return in
		}
	}
	a := New(SettingsFrom(c))
	run(t, a, []step{
		{0, p95(4, 2500), 5, "rule response_time_p95"},
		{time.Minute, p95(5, 2500), 5, ""}, // the rule's cooldown is 180s
		{3*time.Minute + time.Second, p95(5, 2500), 6, "rule response_time_p95"},
	})
	last := a.Log().Since(time.Time{}, 0)
	if n := len(last); n != 3 {
		t.Fatalf("%d decisions logged, want 3 (no change included)", n)
	}
	if !strings.Contains(last[1].Reason, "no change") {
		t.Errorf("the middle decision is a logged no change: %q", last[1].Reason)
	}
	found := false
	for _, p := range last[1].Policies {
		found = found || strings.Contains(p.Note, "cooling down until")
	}
	if !found {
		t.Errorf("the cooling rule's note says so: %+v", last[1].Policies)
	}

	t.Run("no scale-down rule within scale_down_cooldown of a scale-up", func(t *testing.T) {
		a := New(SettingsFrom(c))
		run(t, a, []step{
			{0, p95(4, 2500), 5, ""},
			{2 * time.Minute, cpuFleet(5, 15), 5, "scale-down window"},
			{5*time.Minute + time.Second, cpuFleet(5, 15), 4, "rule cpu_utilization_percentage < 20%"},
		})
	})
}

func TestAutoscaler_NoFlappingOnNoise(t *testing.T) {
	t.Parallel()
	c := seed(t, "") // cpu rules at 70 and 20, target 70, windows 300s
	a := New(SettingsFrom(c))
	r := rand.New(rand.NewPCG(7, 7))
	cur := 5
	var changes []Decision
	for i := range 2 * 60 * 2 { // two hours at 30 s
		at := t0.Add(time.Duration(i) * 30 * time.Second)
		// A steady load of 5 instances at the 70% threshold, noisy by ±8 points, spread over the
		// instances there are.
		cpu := (5*70 + (r.Float64()*2-1)*8*5) / float64(cur)
		d := a.Step(context.Background(), cpuFleet(cur, cpu)(at), func(context.Context, int, string) error { return nil })
		if d.Change != ChangeNone {
			changes = append(changes, d)
		}
		cur = d.Desired
	}
	// The threshold rule fires on the ups (at most once per 300 s cooldown) and the target then
	// brings the count back only after the 300 s scale-down window: never faster.
	for i := 1; i < len(changes); i++ {
		prev, d := changes[i-1], changes[i]
		if prev.Change != d.Change {
			w := c.Scaling.Instances.ScaleDownCooldown.D()
			if d.Change == ChangeUp {
				w = c.Scaling.Instances.ScaleUpCooldown.D()
			}
			if gap := d.Time.Sub(prev.Time); gap < w {
				t.Errorf("%s at %s only %s after the %s at %s (window %s)", d.Change, d.Time.Format(time.TimeOnly), gap, prev.Change, prev.Time.Format(time.TimeOnly), w)
			}
		}
	}
	// The rule adds one when the noise crosses 70%; the target then sees 6 instances at about
	// 58%, ⌈6 × 58/70⌉ = 5 only when the noise is down, and the scale-down window takes the
	// highest of 5 minutes: so the fleet settles instead of going round.
	t.Logf("%d changes in two hours", len(changes))
	if len(changes) > 4 {
		t.Errorf("%d changes in two hours of noise: flapping: %v", len(changes), changes)
	}

	t.Run("inside the tolerance, proportional control alone never moves", func(t *testing.T) {
		a := New(cpuOnly(70, 1, 20))
		for i := range 1000 {
			d := a.Step(context.Background(), cpuFleet(6, 70+(r.Float64()*2-1)*6.9)(t0.Add(time.Duration(i)*15*time.Second)),
				func(context.Context, int, string) error { return nil })
			if d.Change != ChangeNone {
				t.Fatalf("evaluation %d changed the count: %s", i, d.Reason)
			}
		}
	})
}

func TestAutoscaler_ManualScaleRespected(t *testing.T) {
	t.Parallel()
	s := cpuOnly(50, 1, 20)
	a := New(s)
	run(t, a, []step{{0, cpuFleet(3, 50), 3, ""}})
	a.Observed(t0.Add(time.Minute), 3, 8) // someone ran scale-up --instances 8 on an idle fleet
	run(t, a, []step{
		{2 * time.Minute, cpuFleet(8, 5), 8, "scale-down window"},
		{5 * time.Minute, cpuFleet(8, 5), 8, "scale-down window"},
		{6*time.Minute + time.Second, cpuFleet(8, 5), 1, "scale down from 8 to 1"},
	})
	t.Run("a change made outside is detected and held", func(t *testing.T) {
		a := New(s)
		run(t, a, []step{
			{0, cpuFleet(3, 50), 3, ""},
			{time.Minute, cpuFleet(7, 5), 7, "outside the autoscaler"}, // kubectl scale --replicas 7
			{6*time.Minute + time.Second, cpuFleet(7, 5), 1, ""},
		})
	})
}

func TestAutoscaler_CPUIgnoredDuringStartup(t *testing.T) {
	t.Parallel()
	s := cpuOnly(50, 1, 20)
	s.ScaleUp = Behavior{Select: config.SelectMax, Policies: []RatePolicy{{Value: 100, Period: time.Second}}}
	a := New(s)
	now := t0
	// Two settled instances at 50%, two just started and busy compiling templates at 100%.
	in := fleetAt(now, 50, 50)
	in.Current = 4
	for range 2 {
		in.Instances = append(in.Instances, Instance{Ready: true, Started: now.Add(-20 * time.Second), ReadySince: now.Add(-2 * time.Second), CPU: 100, HasCPU: true})
	}
	d := a.Decide(in)
	if d.Change != ChangeNone {
		t.Fatalf("start-up CPU must not scale the fleet: %s", d.Reason)
	}
	for _, m := range d.Metrics {
		if m.Metric == config.MetricCPUUtilization && (m.Ignored != 2 || m.Value != 50 || m.Instances != 2) {
			t.Errorf("cpu metric %+v, want 50%% over 2 instances with 2 ignored", m)
		}
	}
}

func TestAutoscaler_DoneWithError(t *testing.T) {
	t.Parallel()
	a := New(cpuOnly(50, 1, 20))
	d := a.Step(context.Background(), cpuFleet(2, 100)(t0), func(context.Context, int, string) error { return errors.New("the API server refused") })
	if d.Applied || d.Error == "" {
		t.Fatalf("a failed scale is logged as such: %+v", d)
	}
	logged := a.Log().Since(t0, 1)[0]
	if logged.Applied || logged.Error != "the API server refused" {
		t.Errorf("log entry %+v", logged)
	}
	// A failed scale does not count for the rate policies: the next tick may try again.
	d = a.Step(context.Background(), cpuFleet(2, 100)(t0.Add(time.Second)), func(context.Context, int, string) error { return nil })
	if d.Desired != 4 || !d.Applied {
		t.Errorf("retry: %+v", d)
	}
}

func TestSettingsFrom(t *testing.T) {
	t.Parallel()
	s := SettingsFrom(seed(t, ""))
	if s.Min != 2 || s.Max != 20 || len(s.Rules) != 4 || len(s.Targets) != 2 {
		t.Fatalf("settings %+v", s)
	}
	if s.ScaleUp.Window != 300*time.Second || s.ScaleDown.Window != 300*time.Second || s.Tolerance != 0.1 {
		t.Errorf("windows and tolerance: %+v", s)
	}
	if len(s.ScaleUp.Policies) != 2 || s.ScaleUp.Policies[0] != (RatePolicy{Value: 4, Period: 15 * time.Second}) {
		t.Errorf("the HPA's default scale-up policies: %+v", s.ScaleUp.Policies)
	}
	if s.Rules[1].Cooldown != 600*time.Second || s.Rules[3].Cooldown != 120*time.Second {
		t.Errorf("rule cooldowns: %+v", s.Rules)
	}
	// Per-environment overrides: production runs 3..50.
	if p := SettingsFrom(seed(t, "production")); p.Min != 3 || p.Max != 50 {
		t.Errorf("production bounds %d..%d, want 3..50", p.Min, p.Max)
	}
	on, why := Enabled(seed(t, ""), config.AutoscaleTargetFleet)
	if !on || !strings.Contains(why, "4 threshold rules") {
		t.Errorf("Enabled = %v, %q", on, why)
	}
	c := seed(t, "")
	c.Observability.AutoScaling.Enabled = false
	if on, why := Enabled(c, config.AutoscaleTargetFleet); on || !strings.Contains(why, "observability.auto_scaling.enabled is false") {
		t.Errorf("Enabled = %v, %q", on, why)
	}
	c = seed(t, "")
	c.Scaling.Enabled = false
	if on, why := Enabled(c, config.AutoscaleTargetFleet); on || !strings.Contains(why, "scaling.enabled is false") {
		t.Errorf("Enabled = %v, %q", on, why)
	}
	c = seed(t, "")
	c.Observability.AutoScaling.Target = config.AutoscaleTargetKubernetes
	if on, why := Enabled(c, config.AutoscaleTargetFleet); on || !strings.Contains(why, "shoal autoscale") {
		t.Errorf("Enabled = %v, %q", on, why)
	}
}

func TestLog(t *testing.T) {
	t.Parallel()
	l := NewLog(3)
	for i := range 5 {
		l.Add(Decision{Time: t0.Add(time.Duration(i) * time.Minute), Current: i})
	}
	got := l.Since(time.Time{}, 0)
	if len(got) != 3 || got[0].Current != 2 || got[2].Current != 4 {
		t.Fatalf("Since = %+v", got)
	}
	if got := l.Since(t0.Add(3*time.Minute), 0); len(got) != 2 {
		t.Errorf("Since(+3m) = %d decisions, want 2", len(got))
	}
	if got := l.Since(time.Time{}, 1); len(got) != 1 || got[0].Current != 4 {
		t.Errorf("limit 1 = %+v", got)
	}
}

func BenchmarkAutoscaler_Decide(b *testing.B) {
	c, err := config.Load("../testdata/rustform.yml", config.Options{Env: "production", LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		b.Fatal(err)
	}
	a := New(SettingsFrom(c))
	cpus := make([]float64, 50)
	for i := range cpus {
		cpus[i] = 60 + float64(i%10)
	}
	i := 0
	for b.Loop() {
		in := fleetAt(t0.Add(time.Duration(i)*30*time.Second), cpus...)
		in.Values[config.MetricResponseTimeP95] = 300
		in.Values[config.MetricActiveConnections] = 5000
		a.Decide(in)
		i++
	}
}
