// Package autoscale decides how many instances a service should run: the seed's threshold
// rules (observability.auto_scaling.metrics) and proportional control to the utilisation
// targets of scaling.instances, with the Kubernetes HPA's algorithm, combined by taking the
// largest recommendation — as the HPA does across metrics.
//
// Each evaluation (Decide) takes an Input — the instances and their metrics averaged over the
// interval — and:
//
//  1. brings an instance count outside min_instances..max_instances back inside at once;
//  2. asks every target for a count: ⌈ready × value/target⌉ with the HPA's tolerance, its rules
//     for instances that are starting (ignored, or counted idle on a scale-up) and instances
//     without a sample (counted full on a scale-down, idle on a scale-up), and without scaling
//     down while any target has no sample at all;
//  3. stabilises the largest target recommendation over the window of its direction
//     (scale_up_cooldown: the lowest of the window; scale_down_cooldown: the highest);
//  4. asks every rule: a rule whose metric crosses its threshold recommends its step, unless it
//     fired less than its own cooldown ago, or it would reverse a change made less than the
//     window of its direction ago;
//  5. takes the largest recommendation, limits it by the rate policies of its direction
//     (instances or percent per period; the HPA's defaults by default) and by the bounds.
//
// Every evaluation is kept in a Log, including the ones that changed nothing. A scale the
// autoscaler did not make (Observed, or a count that changed under it) is remembered as a
// recommendation, so the autoscaler does not undo it within the window of the opposite direction.
//
// Time is whatever Input.Time says: the package reads no clock, so tests and the simulator run
// it on their own.
package autoscale

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// Autoscaler holds the state of the policies between evaluations: recent recommendations,
// recent scale events and when each rule fired. Safe for concurrent use.
type Autoscaler struct {
	s   Settings
	log *Log

	mu                 sync.Mutex
	recs               []timedRec
	upEvents, downEvts []scaleEvent
	ruleFired          map[int]time.Time
	lastUp, lastDown   time.Time // the latest change in each direction, by anyone
	lastDesired        int       // what the target was last asked to run; 0 before the first evaluation
	pendingRule        int       // the rule whose step the pending decision applies, or -1
}

// Option configures New.
type Option func(*Autoscaler)

// WithLog keeps the decisions in l instead of a new Log of DefaultLogSize.
func WithLog(l *Log) Option { return func(a *Autoscaler) { a.log = l } }

// New returns an Autoscaler deciding by s.
func New(s Settings, opts ...Option) *Autoscaler {
	a := &Autoscaler{s: s, ruleFired: map[int]time.Time{}, pendingRule: -1}
	for _, o := range opts {
		o(a)
	}
	if a.log == nil {
		a.log = NewLog(0)
	}
	return a
}

// Settings returns the settings the autoscaler decides by.
func (a *Autoscaler) Settings() Settings { return a.s }

// Log returns the decision log.
func (a *Autoscaler) Log() *Log { return a.log }

// Observed records a scale the autoscaler did not make (a manual scale-up, say): it counts as a
// change of its direction and as a recommendation, so the autoscaler neither reverses it within
// the window of the opposite direction nor lets a rule do so.
func (a *Autoscaler) Observed(now time.Time, from, to int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.observedLocked(now, from, to)
}

func (a *Autoscaler) observedLocked(now time.Time, from, to int) {
	switch {
	case to > from:
		a.lastUp = now
	case to < from:
		a.lastDown = now
	default:
		return
	}
	a.remember(now, to)
	a.lastDesired = to
}

// candidate is a recommendation that takes part in the final max.
type candidate struct {
	policy   int // index into Decision.Policies
	replicas int // after stabilisation, for targets
	raw      int
	rule     int // index into Settings.Rules, or -1
}

// Decide evaluates in and logs the decision. When the decision changes the count, the caller
// scales the target to d.Desired and reports the outcome with Done; until then the decision is
// logged as not applied.
func (a *Autoscaler) Decide(in Input) Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	now, cur := in.Time, in.Current
	d := Decision{Time: now, Current: cur, Desired: cur, Change: ChangeNone, Ready: in.Ready()}
	a.pendingRule = -1
	var external string
	if a.lastDesired > 0 && cur != a.lastDesired {
		external = fmt.Sprintf("the count changed from %d to %d outside the autoscaler, which holds it for the stabilisation window; ", a.lastDesired, cur)
		a.observedLocked(now, a.lastDesired, cur)
	}
	a.lastDesired = cur
	d.Metrics = a.s.metricValues(in)
	defer func() { a.log.Add(d) }()

	s := &a.s
	switch {
	case cur <= 0:
		d.Reason = "no change: the target runs no instances, so there is nothing to measure"
		return d
	case cur > s.Max:
		d.Desired, d.Limit = s.Max, LimitMax
		d.Policies = []Recommendation{{Policy: "bounds", Kind: KindBounds, Replicas: s.Max, Note: fmt.Sprintf("%d is above max_instances", cur)}}
		d.Reason = fmt.Sprintf("scale down from %d to %d: the count is above max_instances", cur, s.Max)
		d.Change = ChangeDown
		return d
	case cur < s.Min:
		d.Desired, d.Limit = s.Min, LimitMin
		d.Policies = []Recommendation{{Policy: "bounds", Kind: KindBounds, Replicas: s.Min, Note: fmt.Sprintf("%d is below min_instances", cur)}}
		d.Reason = fmt.Sprintf("scale up from %d to %d: the count is below min_instances", cur, s.Min)
		d.Change = ChangeUp
		return d
	}

	var cands []candidate
	// Proportional control: the largest target recommendation, stabilised.
	best, bestPolicy, invalid, valid := 0, -1, 0, 0
	for _, t := range s.Targets {
		r := Recommendation{Policy: fmt.Sprintf("target %s %s%s", t.Metric, num(t.Value), unit(t.Metric)), Kind: KindTarget, Source: t.Source, Metric: t.Metric}
		p, err := s.targetProposal(in, t)
		if err != nil {
			invalid++
			r.Note = "no recommendation: " + err.Error()
			d.Policies = append(d.Policies, r)
			continue
		}
		valid++
		r.Replicas, r.Note = p.replicas, fmt.Sprintf("%s%s → %d: %s", num(p.usage), unit(t.Metric), p.replicas, p.note)
		d.Policies = append(d.Policies, r)
		if p.replicas > best {
			best, bestPolicy = p.replicas, len(d.Policies)-1
		}
	}
	if valid > 0 {
		raw := best
		if invalid > 0 && best < cur {
			// The HPA's rule: a metric that cannot be read may be the one that needs the
			// capacity, so the readable ones may grow the fleet but not shrink it.
			best = cur
			d.Policies[bestPolicy].Note += fmt.Sprintf("; held at %d: %d %s no samples, so no scale-down", cur, invalid, plural(invalid, "target has", "targets have"))
			raw = cur
		}
		st := a.stabilize(now, cur, raw)
		cands = append(cands, candidate{policy: bestPolicy, replicas: st, raw: raw, rule: -1})
	}

	// Threshold rules.
	for i, rule := range s.Rules {
		r := Recommendation{Policy: fmt.Sprintf("rule %s", rule), Kind: KindRule, Source: rule.Source, Metric: rule.Metric}
		v, ok := s.fleetValue(in, rule.Metric)
		up := rule.Action == config.ScaleUp
		switch {
		case !ok:
			r.Note = "no recommendation: " + in.noSamples(rule.Metric).Error()
		case up && v <= rule.Threshold, !up && v >= rule.Threshold:
			r.Note = fmt.Sprintf("not crossed: %s%s", num(v), unit(rule.Metric))
		case now.Sub(a.ruleFired[i]) < rule.Cooldown && !a.ruleFired[i].IsZero():
			r.Note = fmt.Sprintf("crossed (%s%s) but cooling down until %s", num(v), unit(rule.Metric), a.ruleFired[i].Add(rule.Cooldown).Format(time.TimeOnly))
		case up && !a.lastDown.IsZero() && now.Sub(a.lastDown) < s.ScaleUp.Window:
			r.Note = fmt.Sprintf("crossed (%s%s) but the fleet shrank at %s, within scale_up_cooldown", num(v), unit(rule.Metric), a.lastDown.Format(time.TimeOnly))
		case !up && !a.lastUp.IsZero() && now.Sub(a.lastUp) < s.ScaleDown.Window:
			r.Note = fmt.Sprintf("crossed (%s%s) but the fleet grew at %s, within scale_down_cooldown", num(v), unit(rule.Metric), a.lastUp.Format(time.TimeOnly))
		default:
			r.Replicas = cur + rule.Step
			if !up {
				r.Replicas = max(cur-rule.Step, 1)
			}
			r.Note = fmt.Sprintf("crossed: %s%s → %d", num(v), unit(rule.Metric), r.Replicas)
			d.Policies = append(d.Policies, r)
			cands = append(cands, candidate{policy: len(d.Policies) - 1, replicas: r.Replicas, raw: r.Replicas, rule: i})
			continue
		}
		d.Policies = append(d.Policies, r)
	}

	if len(cands) == 0 {
		d.Reason = external + "no change: no policy has samples to recommend from"
		return d
	}
	win := cands[0]
	for _, c := range cands[1:] {
		if c.replicas > win.replicas {
			win = c
		}
	}
	wp := d.Policies[win.policy]
	d.Winner, d.Recommended = wp.Policy, win.raw
	desired := win.replicas
	var held []string
	if win.replicas != win.raw {
		d.Limit = LimitStabilized
		if win.raw > cur {
			held = append(held, fmt.Sprintf("the scale-up window (scale_up_cooldown %s) holds it to %d, the lowest recent recommendation", s.ScaleUp.Window, desired))
		} else {
			held = append(held, fmt.Sprintf("the scale-down window (scale_down_cooldown %s) holds it to %d, the highest recent recommendation", s.ScaleDown.Window, desired))
		}
	}
	switch {
	case desired > cur:
		a.upEvents = prune(now, a.upEvents, s.ScaleUp)
		limit := max(scaleUpLimit(now, cur, a.upEvents, s.ScaleUp), cur)
		switch {
		case s.ScaleUp.Select == config.SelectDisabled:
			desired, d.Limit = cur, LimitDisabled
			held = append(held, "scale_up.select_policy is disabled")
		case desired > limit && limit < s.Max:
			desired, d.Limit = limit, LimitRate
			held = append(held, fmt.Sprintf("the scale-up policies allow %d now", limit))
		case desired > s.Max:
			desired, d.Limit = s.Max, LimitMax
			held = append(held, fmt.Sprintf("max_instances is %d", s.Max))
		}
	case desired < cur:
		a.downEvts = prune(now, a.downEvts, s.ScaleDown)
		limit := min(scaleDownLimit(now, cur, a.downEvts, s.ScaleDown), cur)
		switch {
		case s.ScaleDown.Select == config.SelectDisabled:
			desired, d.Limit = cur, LimitDisabled
			held = append(held, "scale_down.select_policy is disabled")
		case desired < limit && limit > s.Min:
			desired, d.Limit = limit, LimitRate
			held = append(held, fmt.Sprintf("the scale-down policies allow %d now", limit))
		case desired < s.Min:
			desired, d.Limit = s.Min, LimitMin
			held = append(held, fmt.Sprintf("min_instances is %d", s.Min))
		}
	}
	d.Desired = desired
	switch {
	case desired > cur:
		d.Change = ChangeUp
		d.Reason = fmt.Sprintf("scale up from %d to %d: ", cur, desired)
	case desired < cur:
		d.Change = ChangeDown
		d.Reason = fmt.Sprintf("scale down from %d to %d: ", cur, desired)
	default:
		d.Reason = "no change: "
	}
	d.Reason = external + d.Reason + fmt.Sprintf("%s recommends %d (%s)", wp.Policy, win.raw, wp.Note)
	if n := len(cands); n > 1 {
		d.Reason += fmt.Sprintf(", the largest of %d recommendations", n)
	}
	if len(held) > 0 {
		d.Reason += "; " + strings.Join(held, "; ")
	}
	if d.Change != ChangeNone {
		a.pendingRule = win.rule
	}
	return d
}

// Done reports the outcome of scaling to d.Desired: err is nil when the target made the change.
// Only an applied change counts for the rate policies, the rules' cooldowns and the windows.
func (a *Autoscaler) Done(d Decision, err error) {
	if d.Change == ChangeNone {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	rule := a.pendingRule
	a.pendingRule = -1
	if err != nil {
		a.log.update(func(l *Decision) {
			if l.Time.Equal(d.Time) {
				l.Error = err.Error()
			}
		})
		return
	}
	a.log.update(func(l *Decision) {
		if l.Time.Equal(d.Time) {
			l.Applied = true
		}
	})
	if d.Desired > d.Current {
		a.upEvents = append(a.upEvents, scaleEvent{d.Time, d.Desired - d.Current})
		a.lastUp = d.Time
	} else {
		a.downEvts = append(a.downEvts, scaleEvent{d.Time, d.Current - d.Desired})
		a.lastDown = d.Time
	}
	if rule >= 0 {
		a.ruleFired[rule] = d.Time
		a.remember(d.Time, d.Desired)
	}
	a.lastDesired = d.Desired
}

// Step decides on in and, when the decision is a change, scales through scale and records the
// outcome. It returns the decision as logged.
func (a *Autoscaler) Step(ctx context.Context, in Input, scale func(ctx context.Context, to int, reason string) error) Decision {
	d := a.Decide(in)
	if d.Change == ChangeNone {
		return d
	}
	err := scale(ctx, d.Desired, "autoscale: "+d.Reason)
	a.Done(d, err)
	d.Applied, d.Error = err == nil, ""
	if err != nil {
		d.Error = err.Error()
	}
	return d
}

// targetProposal is what one target recommends for in.
func (s *Settings) targetProposal(in Input, t Target) (proposal, error) {
	switch KindOf(t.Metric) {
	case Utilization:
		return utilizationReplicas(in.Current, s.utilizationSamples(in, t.Metric), t.Value, s.Tolerance)
	case AverageValue:
		total, ok := in.Values[t.Metric]
		if !ok {
			return proposal{}, in.noSamples(t.Metric)
		}
		return averageValueReplicas(in.Current, total, t.Value, s.Tolerance), nil
	case Value:
		v, ok := in.Values[t.Metric]
		if !ok {
			return proposal{}, in.noSamples(t.Metric)
		}
		ready := in.Ready()
		if ready == 0 {
			return proposal{}, fmt.Errorf("no ready instance")
		}
		return valueReplicas(in.Current, ready, v, t.Value, s.Tolerance), nil
	}
	return proposal{}, fmt.Errorf("%s cannot be a target", t.Metric)
}

// noSamples says why a fleet-wide metric has no value in in.
func (in Input) noSamples(metric string) error {
	if why, ok := in.Unavailable[metric]; ok {
		return fmt.Errorf("%w: %s", errNoSamples, why)
	}
	return errNoSamples
}

// fleetValue is the value a rule compares with its threshold: the mean over the counted
// instances for a utilisation (start-up CPU left out, as for targets), the total per instance
// for connections and queue depth, the value itself for response_time_p95, the count for
// instance_count.
func (s *Settings) fleetValue(in Input, metric string) (float64, bool) {
	switch KindOf(metric) {
	case Utilization:
		var sum float64
		n := 0
		for _, sm := range s.utilizationSamples(in, metric) {
			if !sm.ignored && !sm.missing {
				sum += sm.value
				n++
			}
		}
		if n == 0 {
			return 0, false
		}
		return sum / float64(n), true
	case AverageValue:
		v, ok := in.Values[metric]
		return v / float64(max(in.Current, 1)), ok
	case Value:
		v, ok := in.Values[metric]
		return v, ok
	}
	if metric == config.MetricInstanceCount {
		return float64(in.Current), true
	}
	return 0, false
}

// metricValues lists the inputs of an evaluation for the log.
func (s *Settings) metricValues(in Input) []MetricValue {
	var out []MetricValue
	for _, m := range config.AutoscalingMetrics {
		v, ok := s.fleetValue(in, m)
		if !ok {
			continue
		}
		mv := MetricValue{Metric: m, Value: v, Unit: unit(m)}
		switch KindOf(m) {
		case Utilization:
			for _, sm := range s.utilizationSamples(in, m) {
				switch {
				case sm.ignored:
					mv.Ignored++
				case sm.missing:
					mv.Missing++
				default:
					mv.Instances++
				}
			}
		case AverageValue:
			mv.Instances = in.Current
		}
		out = append(out, mv)
	}
	return out
}
