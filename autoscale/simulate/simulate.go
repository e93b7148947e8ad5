// Package simulate replays a traffic trace through a model of a fleet and the real autoscaler
// (package autoscale) on a simulated clock: per-instance capacity, start-up delay, CPU as load
// over capacity, queueing latency from an M/M/c approximation, a queue that drops what waits
// too long. It shows how min/max, targets, rules and cooldowns would behave under traffic no
// machine here can make — a day at 100 000 requests per second takes a couple of seconds.
//
// Each simulated second the model serves the trace's rate with the ready instances; every
// evaluation interval the autoscaler decides from the per-instance averages of that interval,
// exactly as under `shoal up`, and the model starts instances (ready after Startup) or removes
// the newest ones.
package simulate

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
)

// Sample is the fleet during one simulated second.
type Sample struct {
	T         int     `json:"t"`         // seconds from the start
	RPS       float64 `json:"rps"`       // arriving
	Served    float64 `json:"served"`    // answered
	Dropped   float64 `json:"dropped"`   // timed out in the queue
	Queued    float64 `json:"queued"`    // waiting at the end of the second
	Instances int     `json:"instances"` // running, ready or not
	Ready     int     `json:"ready"`
	CPU       float64 `json:"cpu"` // percent, per ready instance
	P95       float64 `json:"p95"` // milliseconds; 0 when nothing was served
}

// Overloaded reports whether requests waited beyond the service's own queueing this second.
func (s Sample) Overloaded() bool { return s.Queued > 0 || s.Dropped > 0 }

// Event is a scale the autoscaler made.
type Event struct {
	T      int    `json:"t"`
	From   int    `json:"from"`
	To     int    `json:"to"`
	Change string `json:"change"`
	Winner string `json:"winner"`
	Limit  string `json:"limit,omitempty"`
	Reason string `json:"reason"`
}

// Summary sums a run up.
type Summary struct {
	Duration          time.Duration `json:"duration"`
	Requests          float64       `json:"requests"`
	Dropped           float64       `json:"dropped"`
	Slow              float64       `json:"slow"` // served while the fleet was overloaded
	OverloadedSeconds int           `json:"overloaded_seconds"`
	PeakRPS           float64       `json:"peak_rps"`
	MinInstances      int           `json:"min_instances"`
	MaxInstances      int           `json:"max_instances"`
	InstanceHours     float64       `json:"instance_hours"`
	MeanCPU           float64       `json:"mean_cpu"` // over ready instances, weighted by time
	MaxP95            float64       `json:"max_p95_ms"`
	ScaleUps          int           `json:"scale_ups"`
	ScaleDowns        int           `json:"scale_downs"`
	Evaluations       int           `json:"evaluations"`
	AtMax             int           `json:"seconds_at_max_instances"`
}

// Result is a run: every second, every scale, and the summary.
type Result struct {
	Trace    string             `json:"trace"`
	Model    Model              `json:"model"`
	Settings autoscale.Settings `json:"settings"`
	Summary  Summary            `json:"summary"`
	Events   []Event            `json:"events"`
	Samples  []Sample           `json:"-"`
	// Decisions holds every decision that changed the count, in full.
	Decisions []autoscale.Decision `json:"decisions"`
}

// instance of the model.
type instance struct {
	id      int
	started int // second it started
	readyAt int
	cpuSum  float64
	cpuN    int
}

// epoch is the simulated clock's start, a fixed time so runs are reproducible.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Run replays trace through the model m and an autoscaler deciding by s. The context ends a run
// early (its result so far is returned with ctx's error).
func Run(ctx context.Context, trace Trace, s autoscale.Settings, m Model) (*Result, error) {
	m.setDefaults()
	if m.Initial <= 0 {
		m.Initial = s.Min
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	if s.Interval < time.Second {
		return nil, fmt.Errorf("the evaluation interval must be at least 1s to simulate, not %s", s.Interval)
	}
	if len(trace.RPS) == 0 {
		return nil, ErrEmptyTrace
	}
	res := &Result{Trace: trace.Name, Model: m, Settings: s, Samples: make([]Sample, 0, len(trace.RPS))}
	a := autoscale.New(s, autoscale.WithLog(autoscale.NewLog(1)))
	every := int(s.Interval / time.Second)
	servers := m.servers()
	st := m.ServiceTime.Seconds()

	var fleet []*instance
	seq := 0
	add := func(at int, ready bool) {
		seq++
		in := &instance{id: seq, started: at, readyAt: at + int(m.Startup/time.Second)}
		if ready {
			in.started, in.readyAt = at-3600, at-3600
		}
		fleet = append(fleet, in)
	}
	for range m.Initial {
		add(0, true)
	}
	var queue, p95Sum, connSum float64
	var p95N int
	var cpuTime, readyTime float64
	sum := &res.Summary
	sum.MinInstances = math.MaxInt
	for t, lambda := range trace.RPS {
		if t%3600 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		ready := 0
		for _, in := range fleet {
			if t >= in.readyAt {
				ready++
			}
		}
		capacity := float64(ready) * m.Capacity
		smp := Sample{T: t, RPS: lambda, Instances: len(fleet), Ready: ready}
		demand := queue + lambda
		smp.Served = min(demand, capacity)
		queue = demand - smp.Served
		// What waits longer than the timeout is dropped: the queue holds at most timeout's worth
		// of capacity.
		if limit := capacity * m.Timeout.Seconds(); queue > limit {
			smp.Dropped = queue - limit
			queue = limit
		}
		smp.Queued = queue
		rho := 0.0
		if capacity > 0 {
			rho = smp.Served / capacity
		}
		smp.CPU = 100 * rho
		switch {
		case smp.Served == 0:
		case queue > 0:
			// Overloaded: the queue adds its drain time to the service's own percentile.
			smp.P95 = 1000 * (st*math.Log(20) + queue/capacity)
		default:
			smp.P95 = 1000 * p95(ready*servers, st, lambda)
		}
		if smp.P95 > 0 && !math.IsInf(smp.P95, 0) {
			p95Sum += smp.P95
			p95N++
			sum.MaxP95 = max(sum.MaxP95, smp.P95)
		}
		// Little's law: requests in the service at once, over the fleet.
		connSum += smp.Served*st + queue
		for _, in := range fleet {
			if t >= in.readyAt {
				in.cpuSum += smp.CPU
			} else {
				in.cpuSum += 100 // start-up work
			}
			in.cpuN++
		}
		res.Samples = append(res.Samples, smp)
		sum.Requests += lambda
		sum.Dropped += smp.Dropped
		if smp.Overloaded() {
			sum.OverloadedSeconds++
			sum.Slow += smp.Served
		}
		sum.PeakRPS = max(sum.PeakRPS, lambda)
		sum.MinInstances = min(sum.MinInstances, len(fleet))
		sum.MaxInstances = max(sum.MaxInstances, len(fleet))
		sum.InstanceHours += float64(len(fleet)) / 3600
		cpuTime += smp.CPU * float64(ready)
		readyTime += float64(ready)
		if len(fleet) >= s.Max {
			sum.AtMax++
		}

		if (t+1)%every != 0 {
			continue
		}
		// The evaluation at the end of this interval.
		now := epoch.Add(time.Duration(t+1) * time.Second)
		in := autoscale.Input{Time: now, Current: len(fleet), Values: map[string]float64{}}
		for _, fi := range fleet {
			ai := autoscale.Instance{ID: fmt.Sprint(fi.id), Ready: t+1 >= fi.readyAt,
				Started: epoch.Add(time.Duration(fi.started) * time.Second), Memory: m.Memory, HasMemory: true}
			if ai.Ready {
				ai.ReadySince = epoch.Add(time.Duration(fi.readyAt) * time.Second)
			}
			if fi.cpuN > 0 {
				ai.CPU, ai.HasCPU = fi.cpuSum/float64(fi.cpuN), true
			}
			fi.cpuSum, fi.cpuN = 0, 0
			in.Instances = append(in.Instances, ai)
		}
		if p95N > 0 {
			in.Values[config.MetricResponseTimeP95] = p95Sum / float64(p95N)
		}
		in.Values[config.MetricActiveConnections] = connSum / float64(every)
		in.Values[config.MetricRequestQueueDepth] = queue
		p95Sum, p95N, connSum = 0, 0, 0
		d := a.Decide(in)
		sum.Evaluations++
		if d.Change == autoscale.ChangeNone {
			continue
		}
		a.Done(d, nil)
		switch {
		case d.Desired > len(fleet):
			sum.ScaleUps++
			for len(fleet) < d.Desired {
				add(t+1, false)
			}
		default:
			sum.ScaleDowns++
			// The newest go first: those still starting, then the youngest ready ones.
			fleet = fleet[:d.Desired]
		}
		res.Events = append(res.Events, Event{T: t + 1, From: d.Current, To: d.Desired, Change: d.Change, Winner: d.Winner, Limit: d.Limit, Reason: d.Reason})
		res.Decisions = append(res.Decisions, d)
	}
	sum.Duration = trace.Duration()
	if readyTime > 0 {
		sum.MeanCPU = cpuTime / readyTime
	}
	if sum.MinInstances == math.MaxInt {
		sum.MinInstances = 0
	}
	return res, nil
}
