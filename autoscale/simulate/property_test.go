package simulate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
)

// randomCase draws settings, a model and a trace: bounds, interval, windows, rate policies,
// targets and rules of every kind the configuration allows, and traffic that climbs, falls,
// jumps and sits still, so the properties below are checked far beyond the hand-written cases.
func randomCase(r *rand.Rand) (autoscale.Settings, Model, Trace) {
	pick := func(ds ...time.Duration) time.Duration { return ds[r.IntN(len(ds))] }
	minN := 1 + r.IntN(4)
	s := autoscale.Settings{
		Min: minN, Max: minN + r.IntN(60),
		Interval:                pick(time.Second, 5*time.Second, 15*time.Second, 30*time.Second),
		Tolerance:               []float64{0, 0.05, 0.1, 0.3}[r.IntN(4)],
		CPUInitializationPeriod: pick(0, time.Minute, 5*time.Minute),
		Targets:                 []autoscale.Target{{Metric: config.MetricCPUUtilization, Value: float64(30 + r.IntN(60))}},
	}
	if r.IntN(2) == 0 {
		s.Targets = append(s.Targets, autoscale.Target{Metric: config.MetricMemoryUtilization, Value: 80})
	}
	if r.IntN(3) == 0 {
		s.Targets = append(s.Targets, autoscale.Target{Metric: config.MetricActiveConnections, Value: float64(5 + r.IntN(50))})
	}
	behavior := func(window time.Duration) autoscale.Behavior {
		b := autoscale.Behavior{Window: window, Select: []string{config.SelectMax, config.SelectMin}[r.IntN(2)]}
		for range 1 + r.IntN(2) {
			b.Policies = append(b.Policies, autoscale.RatePolicy{Percent: r.IntN(2) == 0, Value: 1 + r.IntN(100),
				Period: pick(5*time.Second, 15*time.Second, time.Minute)})
		}
		return b
	}
	s.ScaleUp = behavior(pick(0, 0, 30*time.Second, 2*time.Minute))
	s.ScaleDown = behavior(pick(0, 30*time.Second, 2*time.Minute, 5*time.Minute))
	if r.IntN(3) == 0 {
		s.ScaleUp, s.ScaleDown = autoscale.HPAScaleUp, autoscale.HPAScaleDown
	}
	for range r.IntN(3) {
		rule := autoscale.Rule{Cooldown: pick(0, 30*time.Second, 2*time.Minute), Step: 1 + r.IntN(5)}
		switch r.IntN(3) {
		case 0:
			rule.Metric, rule.Action, rule.Threshold = config.MetricCPUUtilization, config.ScaleUp, float64(50+r.IntN(45))
		case 1:
			rule.Metric, rule.Action, rule.Threshold = config.MetricCPUUtilization, config.ScaleDown, float64(5+r.IntN(30))
		default:
			rule.Metric, rule.Action, rule.Threshold = config.MetricResponseTimeP95, config.ScaleUp, float64(100+r.IntN(1000))
		}
		s.Rules = append(s.Rules, rule)
	}
	m := Model{Capacity: float64(50 + r.IntN(1000)), Startup: pick(0, 5*time.Second, 20*time.Second, time.Minute),
		ServiceTime: pick(10*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond)}
	m.Initial = s.Min + r.IntN(s.Max-s.Min+1)

	// 20 to 40 minutes of segments: ramps, jumps and plateaus up to 1.5 × what max_instances serve.
	top := float64(s.Max) * m.Capacity * 1.5
	tr := Trace{Name: "random"}
	rate := r.Float64() * top / 2
	for len(tr.RPS) < 1200+r.IntN(1200) {
		next, n := r.Float64()*top, 10+r.IntN(600)
		jump := r.IntN(4) == 0
		for i := range n {
			v := next
			if !jump {
				v = rate + (next-rate)*float64(i+1)/float64(n)
			}
			tr.RPS = append(tr.RPS, v)
		}
		rate = next
	}
	return s, m, tr
}

// TestRun_Properties replays random settings and traffic and checks what must hold whatever
// they are: the bounds; no change of direction within the window of the new direction; no
// threshold rule sooner than its cooldown; no change beyond the rate policies; instances
// started by a scale-up serve nothing before their start-up delay has passed (cold starts);
// and every request is served, dropped or still queued at the end.
func TestRun_Properties(t *testing.T) {
	t.Parallel()
	cases := 25
	if testing.Short() {
		cases = 10
	}
	var events, rules, limited, overloaded int
	for i := range cases {
		r := rand.New(rand.NewPCG(uint64(i), 17))
		s, m, tr := randomCase(r)
		res, err := Run(context.Background(), tr, s, m)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if fail := checkProperties(res, s, m, tr); fail != "" {
			t.Errorf("case %d (%d s, %d events; settings %+v; model %+v): %s", i, len(tr.RPS), len(res.Events), s, m, fail)
		}
		events += len(res.Events)
		overloaded += res.Summary.OverloadedSeconds
		for _, e := range res.Events {
			if strings.HasPrefix(e.Winner, "rule ") {
				rules++
			}
			if e.Limit == autoscale.LimitRate || e.Limit == autoscale.LimitStabilized {
				limited++
			}
		}
	}
	// The cases must exercise what they check.
	t.Logf("%d cases: %d scale events, %d by rules, %d held by a window or a rate policy, %d overloaded seconds", cases, events, rules, limited, overloaded)
	if rules == 0 || limited == 0 || overloaded == 0 {
		t.Errorf("the random cases never exercised a rule, a limit or an overload")
	}
}

func checkProperties(res *Result, s autoscale.Settings, m Model, tr Trace) string {
	// Bounds, and capacity only from ready instances.
	for _, smp := range res.Samples {
		if smp.Instances < s.Min || smp.Instances > s.Max {
			return fmt.Sprintf("at %ds %d instances, outside %d..%d", smp.T, smp.Instances, s.Min, s.Max)
		}
		if smp.Ready > smp.Instances {
			return fmt.Sprintf("at %ds %d ready of %d", smp.T, smp.Ready, smp.Instances)
		}
		if smp.Served > float64(smp.Ready)*m.Capacity*(1+1e-9)+1e-9 {
			return fmt.Sprintf("at %ds %.1f served by %d ready instances of %.0f req/s", smp.T, smp.Served, smp.Ready, m.Capacity)
		}
	}

	// Cold starts: replay the events on a fleet of start times (a scale-down removes the newest,
	// as documented) and count as ready only those past their start-up delay.
	startup := int(m.Startup / time.Second)
	readyAt := make([]int, m.Initial)
	for i := range readyAt {
		readyAt[i] = math.MinInt32
	}
	ev := 0
	for _, smp := range res.Samples {
		for ev < len(res.Events) && res.Events[ev].T <= smp.T {
			e := res.Events[ev]
			if e.From != len(readyAt) {
				return fmt.Sprintf("event at %ds from %d, but the fleet had %d", e.T, e.From, len(readyAt))
			}
			for len(readyAt) < e.To {
				readyAt = append(readyAt, e.T+startup)
			}
			readyAt = readyAt[:e.To]
			ev++
		}
		ready := 0
		for _, at := range readyAt {
			if smp.T >= at {
				ready++
			}
		}
		if smp.Instances != len(readyAt) || smp.Ready != ready {
			return fmt.Sprintf("at %ds %d instances with %d ready; replaying the events with a start-up of %s gives %d with %d ready",
				smp.T, smp.Instances, smp.Ready, m.Startup, len(readyAt), ready)
		}
	}

	// Windows, cooldowns and rate policies, from the events.
	lastUp, lastDown := math.MinInt32, math.MinInt32
	ruleFired := map[string]int{}
	for i, e := range res.Events {
		switch e.Change {
		case autoscale.ChangeUp:
			if e.T-lastDown < int(s.ScaleUp.Window/time.Second) {
				return fmt.Sprintf("scale-up at %ds only %ds after a scale-down (scale-up window %s)", e.T, e.T-lastDown, s.ScaleUp.Window)
			}
			lastUp = e.T
		case autoscale.ChangeDown:
			if e.T-lastUp < int(s.ScaleDown.Window/time.Second) {
				return fmt.Sprintf("scale-down at %ds only %ds after a scale-up (scale-down window %s)", e.T, e.T-lastUp, s.ScaleDown.Window)
			}
			lastDown = e.T
		}
		for _, rule := range s.Rules {
			if e.Winner != "rule "+rule.String() {
				continue
			}
			if last, ok := ruleFired[e.Winner]; ok && e.T-last < int(rule.Cooldown/time.Second) {
				return fmt.Sprintf("%s fired at %ds only %ds after it last did (cooldown %s)", e.Winner, e.T, e.T-last, rule.Cooldown)
			}
			ruleFired[e.Winner] = e.T
		}
		if msg := checkRate(res.Events[:i], e, s); msg != "" {
			return msg
		}
	}

	// Every request is accounted for.
	var total, served, dropped float64
	for i, smp := range res.Samples {
		total += tr.RPS[i]
		served += smp.Served
		dropped += smp.Dropped
	}
	left := res.Samples[len(res.Samples)-1].Queued
	if math.Abs(total-served-dropped-left) > 1e-6*math.Max(total, 1) {
		return fmt.Sprintf("%.0f requests arrived, %.0f served + %.0f dropped + %.0f queued", total, served, dropped, left)
	}
	return ""
}

// checkRate checks e against the rate policies of its direction, given the events before it:
// each policy allows a change counted from the count at the start of its period, "max" the
// most generous of them, "min" the strictest.
func checkRate(before []Event, e Event, s autoscale.Settings) string {
	b := s.ScaleDown
	if e.Change == autoscale.ChangeUp {
		b = s.ScaleUp
	}
	allowed := -1
	if b.Select == config.SelectMin {
		allowed = math.MaxInt32
	}
	for _, p := range b.Policies {
		changed := 0
		for _, x := range before {
			if x.Change == e.Change && time.Duration(e.T-x.T)*time.Second < p.Period {
				changed += abs(x.To - x.From)
			}
		}
		var start, limit int
		if e.Change == autoscale.ChangeUp {
			start = e.From - changed
			limit = start + p.Value
			if p.Percent {
				limit = int(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
			}
			limit -= e.From // how many may be added now
		} else {
			start = e.From + changed
			limit = start - p.Value
			if p.Percent {
				limit = int(float64(start) * (1 - float64(p.Value)/100))
			}
			limit = e.From - limit // how many may be removed now
		}
		if b.Select == config.SelectMin {
			allowed = min(allowed, limit)
		} else {
			allowed = max(allowed, limit)
		}
	}
	if got := abs(e.To - e.From); got > allowed {
		return fmt.Sprintf("%s from %d to %d at %ds: the %s policies %+v allow a change of %d", e.Change, e.From, e.To, e.T, b.Select, b.Policies, allowed)
	}
	return ""
}

// TestRun_StartupWorkIsNotLoad ramps the traffic up fivefold over twenty minutes: the instances
// the autoscaler starts burn all their CPU on start-up work for a minute, and the autoscaler must
// not take that for load (the HPA's readiness rules), or it would keep adding instances beyond
// what the traffic needs. (A sudden step is no test of this: the backlog the ready instances
// then drain is real work, and the fleet rightly overshoots while it lasts.)
func TestRun_StartupWorkIsNotLoad(t *testing.T) {
	t.Parallel()
	tr := Trace{Name: "ramp", RPS: make([]float64, 3600)}
	for i := range tr.RPS {
		tr.RPS[i] = 1000 + 4000*min(max(float64(i-600)/1200, 0), 1)
	}
	s := autoscale.Settings{Min: 2, Max: 400, Interval: 15 * time.Second, Tolerance: 0.1, CPUInitializationPeriod: 5 * time.Minute,
		Targets: []autoscale.Target{{Metric: config.MetricCPUUtilization, Value: 50}},
		ScaleUp: autoscale.HPAScaleUp, ScaleDown: autoscale.HPAScaleDown}
	m := Model{Capacity: 100, Startup: time.Minute, Initial: 20}
	r, err := Run(context.Background(), tr, s, m)
	if err != nil {
		t.Fatal(err)
	}
	need := 5000 / (100 * 0.5) // 100 instances at the 50% target
	t.Logf("%+v", r.Summary)
	if got := r.Summary.MaxInstances; float64(got) > need*1.15 {
		t.Errorf("the fleet grew to %d instances; %.0f serve the traffic at the target: start-up CPU was taken for load", got, need)
	}
	if last := r.Samples[len(r.Samples)-1]; float64(last.Ready) < need*0.9 {
		t.Errorf("the fleet ended at %d ready instances, want about %.0f", last.Ready, need)
	}
}
