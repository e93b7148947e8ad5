// Package autoscale decides when a fleet should grow or shrink, from the seed's threshold
// rules (observability.auto_scaling.metrics) and the instances' cooldowns.
//
// Every Interval the caller hands Evaluate the current value of each metric (averaged over the
// last interval, so one spike does not scale the fleet). A scale_up rule fires when its metric
// is above its threshold, a scale_down rule when it is below. Scale-up wins over scale-down in
// the same evaluation: when one signal says "too busy" and another "idle", adding capacity is
// the safe mistake. A rule that fired waits its own cooldown before firing again, and the fleet
// waits scale_up_cooldown after any scale-up before the next one and scale_down_cooldown after
// any scale at all before a scale-down (the HPA's stabilisation window idea: never shrink
// right after growing). Targets stay within min_instances..max_instances.
package autoscale

import (
	"fmt"
	"sync"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// Decision is the outcome of one evaluation that found a rule crossing its threshold.
type Decision struct {
	Time   time.Time `json:"time"`
	Rule   int       `json:"rule"` // index in observability.auto_scaling.metrics
	Metric string    `json:"metric"`
	Value  float64   `json:"value"`
	Action string    `json:"action"` // scale_up or scale_down
	From   int       `json:"from"`
	To     int       `json:"to"`
	// Skipped, when not empty, says why the decision was not applied (cooldown, bound).
	Skipped string `json:"skipped,omitempty"`
}

// Reason describes the decision for events and logs.
func (d Decision) Reason() string {
	cmp := ">"
	if d.Action == config.ScaleDown {
		cmp = "<"
	}
	return fmt.Sprintf("%s %.4g %s threshold (rule %d)", d.Metric, d.Value, cmp, d.Rule)
}

// Autoscaler evaluates the rules. Safe for concurrent use.
type Autoscaler struct {
	rules             []config.ScalingRule
	min, max          int
	upCooldown        time.Duration
	downCooldown      time.Duration
	mu                sync.Mutex
	ruleFired         map[int]time.Time
	lastUp, lastScale time.Time
}

// New returns an Autoscaler for the configuration's rules and bounds.
func New(c *config.Config) *Autoscaler {
	in := c.Scaling.Instances
	return &Autoscaler{
		rules: c.Observability.AutoScaling.Metrics, min: in.MinInstances, max: in.MaxInstances,
		upCooldown: in.ScaleUpCooldown.D(), downCooldown: in.ScaleDownCooldown.D(),
		ruleFired: map[int]time.Time{},
	}
}

// Observed records a scale the autoscaler did not decide (a manual scale-up, say), so the
// cooldowns count from it too.
func (a *Autoscaler) Observed(now time.Time, from, to int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.noteLocked(now, from, to)
}

func (a *Autoscaler) noteLocked(now time.Time, from, to int) {
	if to > from {
		a.lastUp = now
	}
	if to != from {
		a.lastScale = now
	}
}

// Evaluate returns the decision for the current values (by seed metric name) of a fleet of
// current instances, or nil when no rule crosses its threshold. A decision with Skipped set
// must not be applied; one without is recorded as applied, so call Evaluate only when the
// caller will act on it. Metrics missing from values are not evaluated.
func (a *Autoscaler) Evaluate(now time.Time, values map[string]float64, current int) *Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	var up, down *Decision
	for i, r := range a.rules {
		v, ok := values[r.Metric]
		if !ok {
			continue
		}
		switch {
		case r.Action == config.ScaleUp && v > r.Threshold && up == nil:
			up = &Decision{Time: now, Rule: i, Metric: r.Metric, Value: v, Action: r.Action, From: current,
				To: min(current+r.Step, a.max)}
		case r.Action == config.ScaleDown && v < r.Threshold && down == nil:
			down = &Decision{Time: now, Rule: i, Metric: r.Metric, Value: v, Action: r.Action, From: current,
				To: max(current-r.Step, a.min)}
		}
	}
	d := up
	if d == nil {
		d = down
	}
	if d == nil {
		return nil
	}
	rule := a.rules[d.Rule]
	switch {
	case d.To == d.From && d.Action == config.ScaleUp:
		d.Skipped = fmt.Sprintf("already at max_instances (%d)", a.max)
	case d.To == d.From:
		d.Skipped = fmt.Sprintf("already at min_instances (%d)", a.min)
	case now.Sub(a.ruleFired[d.Rule]) < rule.Cooldown.D():
		d.Skipped = fmt.Sprintf("rule %d is cooling down until %s", d.Rule, a.ruleFired[d.Rule].Add(rule.Cooldown.D()).Format(time.TimeOnly))
	case d.Action == config.ScaleUp && now.Sub(a.lastUp) < a.upCooldown:
		d.Skipped = fmt.Sprintf("scale_up_cooldown until %s", a.lastUp.Add(a.upCooldown).Format(time.TimeOnly))
	case d.Action == config.ScaleDown && now.Sub(a.lastScale) < a.downCooldown:
		d.Skipped = fmt.Sprintf("scale_down_cooldown until %s", a.lastScale.Add(a.downCooldown).Format(time.TimeOnly))
	}
	if d.Skipped == "" {
		a.ruleFired[d.Rule] = now
		a.noteLocked(now, d.From, d.To)
	}
	return d
}
