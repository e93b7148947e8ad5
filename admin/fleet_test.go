package admin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// memFleet is a small in-memory Fleet for the admin API's own tests. The real fleet, with
// processes behind a proxy, is exercised by the `shoal up` tests of package fleet.
type memFleet struct {
	mu         sync.Mutex
	min, max   int
	desired    int
	next       int
	checks     []CheckStatus
	events     []Event
	scales     int    // calls of Scale
	lastReason string // of the last Scale
	restarts   int
	restartErr error
	scaleErr   error
	since      time.Duration // of the last Metrics
	points     int
}

var _ Fleet = (*memFleet)(nil)

func newMemFleet() *memFleet {
	return &memFleet{min: 1, max: 5, desired: 3, next: 4, checks: []CheckStatus{
		{Name: "database", Type: "database", Critical: true, Enabled: true, Status: "pass"},
		{Name: "cache", Type: "redis", Enabled: true, Status: "pass"},
	}}
}

func (f *memFleet) Status(context.Context) Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := Status{Service: "demo", Desired: f.desired, Min: f.min, Max: f.max, Ready: f.desired,
		ProxyURL: "http://127.0.0.1:3000", Algorithm: "round_robin",
		Checks: append([]CheckStatus(nil), f.checks...), Events: append([]Event(nil), f.events...)}
	for i := 1; i <= f.desired; i++ {
		st.Instances = append(st.Instances, InstanceStatus{ID: fmt.Sprintf("demo-%d", i), PID: 1000 + i, Port: 4000 + i,
			State: StateReady, Health: "healthy", Breaker: "closed", Uptime: "1m0s"})
	}
	return st
}

func (f *memFleet) Scale(ctx context.Context, target int, reason string) (ScaleResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scales++
	f.lastReason = reason
	if f.scaleErr != nil {
		return ScaleResult{}, f.scaleErr
	}
	if target < f.min || target > f.max {
		return ScaleResult{}, &OutOfRangeError{Target: target, Min: f.min, Max: f.max}
	}
	res := ScaleResult{From: f.desired, To: target}
	for i := f.desired + 1; i <= target; i++ {
		res.Started = append(res.Started, fmt.Sprintf("demo-%d", i))
		if p := ProgressFrom(ctx); p != nil {
			p(Progress{Instance: fmt.Sprintf("demo-%d", i), State: StateStarting, Message: "started"})
			p(Progress{Instance: fmt.Sprintf("demo-%d", i), State: StateReady, Message: "ready"})
		}
	}
	for i := f.desired; i > target; i-- {
		res.Stopped = append(res.Stopped, fmt.Sprintf("demo-%d", i))
	}
	f.events = append([]Event{{Kind: "scale", From: f.desired, To: target, Reason: reason}}, f.events...)
	f.desired = target
	return res, nil
}

func (f *memFleet) Restart(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarts++
	if p := ProgressFrom(ctx); p != nil {
		p(Progress{Instance: "demo-9", State: StateStarting, Message: "waiting for /ready: GET /ready answered 404"})
	}
	return f.restartErr
}

func (f *memFleet) SetHealthCheck(_ context.Context, name string, enabled bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.checks {
		if f.checks[i].Name == name {
			f.checks[i].Enabled = enabled
			f.checks[i].Status = "pass"
			if !enabled {
				f.checks[i].Status = "disabled"
			}
			return nil
		}
	}
	return ErrUnknownCheck
}

func (f *memFleet) Metrics(_ context.Context, since time.Duration, points int) MetricsReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.since, f.points = since, points
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	s := Series{Metric: "request_rate", Unit: "req/s"}
	for i := range min(points, 5) {
		s.Points = append(s.Points, Point{Time: t0.Add(time.Duration(i) * time.Minute), Value: float64(i * 10)})
	}
	return MetricsReport{Since: since, Series: []Series{s}}
}

var errBoom = errors.New("boom")
