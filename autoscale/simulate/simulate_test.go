package simulate

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
)

// production is a setting one would size for a 100k req/s service: the HPA's policies, a CPU
// target of 70%, the seed's p95 rule, a one-minute scale-up window and five for scale-down.
func production() autoscale.Settings {
	s := autoscale.Settings{Min: 3, Max: 400, Interval: 15 * time.Second, Tolerance: 0.1, CPUInitializationPeriod: 5 * time.Minute,
		Targets: []autoscale.Target{
			{Metric: config.MetricCPUUtilization, Value: 70},
			{Metric: config.MetricMemoryUtilization, Value: 80},
		},
		Rules: []autoscale.Rule{
			{Metric: config.MetricResponseTimeP95, Threshold: 500, Action: config.ScaleUp, Cooldown: 2 * time.Minute, Step: 10},
		},
		ScaleUp: autoscale.HPAScaleUp, ScaleDown: autoscale.HPAScaleDown}
	s.ScaleUp.Window = time.Minute
	return s
}

func TestRun_DiurnalAt100k(t *testing.T) {
	t.Parallel()
	tr, err := Pattern("diurnal", 100_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := production()
	m := Model{Capacity: 500, Startup: 30 * time.Second}
	// Start sized for midnight's traffic, as a fleet that has been running would be.
	m.Initial = int(math.Ceil(tr.RPS[0] / (m.Capacity * 0.7)))
	r, err := Run(context.Background(), tr, s, m)
	if err != nil {
		t.Fatal(err)
	}
	sum := r.Summary
	t.Logf("%+v", sum)
	if len(r.Samples) != 86400 || sum.Evaluations != 86400/15 {
		t.Fatalf("%d samples, %d evaluations; want a day at 1 s and an evaluation every 15 s", len(r.Samples), sum.Evaluations)
	}
	// The fleet follows the day: about peak / (capacity × 70%) at the peak, and never at max.
	if want := 100_000 / (500 * 0.7); float64(sum.MaxInstances) < want*0.9 || float64(sum.MaxInstances) > want*1.3 {
		t.Errorf("peak of %d instances, want about %.0f", sum.MaxInstances, want)
	}
	if sum.AtMax > 0 {
		t.Errorf("%d seconds at max_instances", sum.AtMax)
	}

	// No scale action sooner than its cooldown: a change of direction waits for the window of
	// the new direction, and the rule fires at most once per its own cooldown.
	var lastUp, lastDown, lastRule = -1 << 30, -1 << 30, -1 << 30
	for _, e := range r.Events {
		switch e.Change {
		case autoscale.ChangeUp:
			if gap := e.T - lastDown; gap < int(s.ScaleUp.Window/time.Second) {
				t.Errorf("scale-up at %ds only %ds after a scale-down (window %s)", e.T, gap, s.ScaleUp.Window)
			}
			lastUp = e.T
		case autoscale.ChangeDown:
			if gap := e.T - lastUp; gap < int(s.ScaleDown.Window/time.Second) {
				t.Errorf("scale-down at %ds only %ds after a scale-up (window %s)", e.T, gap, s.ScaleDown.Window)
			}
			lastDown = e.T
		}
		if strings.HasPrefix(e.Winner, "rule") {
			if gap := e.T - lastRule; gap < int(s.Rules[0].Cooldown/time.Second) {
				t.Errorf("the rule fired at %ds only %ds after it last did (cooldown %s)", e.T, gap, s.Rules[0].Cooldown)
			}
			lastRule = e.T
		}
	}

	checkOverloadOnlyOnTheWayUp(t, r, m)
	if share := float64(sum.OverloadedSeconds) / 86400; share > 0.01 {
		t.Errorf("overloaded %.2f%% of the day", share*100)
	}
	if share := sum.Dropped / sum.Requests; share > 0.001 {
		t.Errorf("%.3f%% of requests dropped", share*100)
	}
}

// checkOverloadOnlyOnTheWayUp checks that every overloaded second of r has an instance
// starting, or lies in the interval before the evaluation that starts one.
func checkOverloadOnlyOnTheWayUp(t *testing.T, r *Result, m Model) {
	t.Helper()
	upAt := map[int]bool{}
	for _, e := range r.Events {
		if e.Change == autoscale.ChangeUp {
			upAt[e.T] = true
		}
	}
	every := int(r.Settings.Interval / time.Second)
	for _, smp := range r.Samples {
		if !smp.Overloaded() {
			continue
		}
		explained := smp.Ready < smp.Instances
		for dt := 0; dt <= every && !explained; dt++ {
			explained = upAt[smp.T+dt]
		}
		if !explained {
			t.Errorf("overloaded at %ds (%.0f rps on %d ready of %d, %.0f queued) with no instance starting and no scale-up due",
				smp.T, smp.RPS, smp.Ready, smp.Instances, smp.Queued)
			return
		}
	}
}

func TestRun_SpikeOverloadsOnlyUntilInstancesAreReady(t *testing.T) {
	t.Parallel()
	tr, err := Pattern("spike", 50_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := Model{Capacity: 500, Startup: 30 * time.Second, Initial: 29}
	s := production()
	// With a scale-up window the fleet would wait it out at each step, overloaded (which is what
	// the simulator is for: showing that); the HPA's default has none.
	s.ScaleUp.Window = 0
	r, err := Run(context.Background(), tr, s, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r.Summary)
	if r.Summary.OverloadedSeconds == 0 {
		t.Fatal("a jump from 10k to 50k req/s in 30 s should overload the fleet until new instances are ready")
	}
	checkOverloadOnlyOnTheWayUp(t, r, m)
	// Once the spike's instances are ready, the fleet copes: nothing is overloaded in the last
	// five minutes of the plateau.
	for _, smp := range r.Samples[65*60 : 70*60] {
		if smp.Overloaded() {
			t.Fatalf("still overloaded at %ds: %+v", smp.T, smp)
		}
	}
}

// TestRun_MatchesHandReplay compares the simulator's replica curve on a short trace with the
// HPA's algorithm replayed by hand: ⌈n × cpu/target⌉ outside a 10% tolerance, the highest
// recommendation of the last five minutes on the way down, at most max(+4, ×2) per 15 s on the
// way up, within min..max.
func TestRun_MatchesHandReplay(t *testing.T) {
	t.Parallel()
	// 40 minutes: up from 2 000 to 12 000 req/s over 20, then back down.
	tr := Trace{Name: "hand", RPS: make([]float64, 2400)}
	for s := range tr.RPS {
		f := float64(s) / 1200
		if f > 1 {
			f = 2 - f
		}
		tr.RPS[s] = 2000 + 10000*f
	}
	s := autoscale.Settings{Min: 1, Max: 100, Interval: 15 * time.Second, Tolerance: 0.1, CPUInitializationPeriod: 5 * time.Minute,
		Targets: []autoscale.Target{{Metric: config.MetricCPUUtilization, Value: 50}},
		ScaleUp: autoscale.HPAScaleUp, ScaleDown: autoscale.HPAScaleDown}
	m := Model{Capacity: 500, Startup: 0, Initial: 8}
	r, err := Run(context.Background(), tr, s, m)
	if err != nil {
		t.Fatal(err)
	}

	type rec struct{ t, n int }
	n, worst := 8, 0
	var recs []rec
	for end := 15; end <= len(tr.RPS); end += 15 {
		avg := 0.0
		for s := end - 15; s < end; s++ {
			avg += tr.RPS[s]
		}
		avg /= 15
		cpu := math.Min(100, avg/(float64(n)*500)*100)
		want := n
		if math.Abs(cpu/50-1) > 0.1 {
			want = int(math.Ceil(float64(n) * cpu / 50))
		}
		recs = append(recs, rec{end, want})
		if want < n {
			for _, r := range recs {
				if end-r.t < 300 {
					want = max(want, r.n)
				}
			}
			want = min(want, n)
		}
		if want > n {
			want = min(want, max(n+4, 2*n))
		}
		want = min(max(want, 1), 100)
		n = want
		// The simulator's count just after the same evaluation.
		got := 0
		if end < len(r.Samples) {
			got = r.Samples[end].Instances
		} else {
			got = r.Samples[len(r.Samples)-1].Instances
			if len(r.Events) > 0 && r.Events[len(r.Events)-1].T == end {
				got = r.Events[len(r.Events)-1].To
			}
		}
		worst = max(worst, abs(got-n))
		if abs(got-n) > 1 {
			t.Errorf("at %ds the simulator runs %d instances, the hand replay %d", end, got, n)
		}
	}
	t.Logf("largest difference from the hand replay: %d", worst)
	if r.Summary.ScaleUps == 0 || r.Summary.ScaleDowns == 0 {
		t.Errorf("the trace should make the fleet grow and shrink: %+v", r.Summary)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestRun_BadModel(t *testing.T) {
	t.Parallel()
	tr, _ := Pattern("ramp", 1000, 0)
	s := production()
	for _, m := range []Model{{Capacity: 0}, {Capacity: -5}, {Capacity: 100, Startup: 2 * time.Hour}} {
		if _, err := Run(context.Background(), tr, s, m); err == nil {
			t.Errorf("%+v: no error", m)
		}
	}
}

func TestP95(t *testing.T) {
	t.Parallel()
	// One server, 50 ms, 10 req/s (ρ = 0.5): P(wait) = 0.5, wait p95 = ln(10)/10 s.
	if got, want := p95(1, 0.05, 10), 0.05*math.Log(20)+math.Log(10)/10; math.Abs(got-want) > 1e-9 {
		t.Errorf("M/M/1 p95 = %g, want %g", got, want)
	}
	if !math.IsInf(p95(2, 0.1, 20), 1) {
		t.Error("a saturated queue has no p95")
	}
	// The approximation above 500 servers joins the exact value smoothly.
	exact, approx := erlangC(500, 480), erlangC(501, 480*501/500.0)
	if math.Abs(exact-approx) > 0.05 {
		t.Errorf("Erlang C exact %g vs Halfin–Whitt %g", exact, approx)
	}
}

func BenchmarkRun_Diurnal24h(b *testing.B) {
	tr, _ := Pattern("diurnal", 100_000, 0)
	for b.Loop() {
		if _, err := Run(context.Background(), tr, production(), Model{Capacity: 500, Startup: 30 * time.Second, Initial: 30}); err != nil {
			b.Fatal(err)
		}
	}
}
