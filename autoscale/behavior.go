package autoscale

import (
	"math"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// This file is the HPA's normalisation of a recommendation (normalizeDesiredReplicasWithBehaviors
// in Kubernetes' horizontal.go): stabilisation over the window of the direction, then the rate
// policies, then the bounds.

// timedRec is a recommendation kept for the stabilisation windows.
type timedRec struct {
	at       time.Time
	replicas int
}

// scaleEvent is a change the autoscaler made, kept for the rate policies.
type scaleEvent struct {
	at     time.Time
	change int // instances added or removed, positive
}

// stabilize records rec and returns the lowest recommendation of the scale-up window when rec
// would grow the fleet, the highest of the scale-down window when it would shrink it (the HPA's
// stabilizeRecommendationWithBehaviors). Recommendations older than both windows are dropped.
func (a *Autoscaler) stabilize(now time.Time, current, rec int) int {
	up, down := a.s.ScaleUp.Window, a.s.ScaleDown.Window
	out := rec
	keep := a.recs[:0]
	for _, r := range a.recs {
		age := now.Sub(r.at)
		if age > max(up, down) {
			continue
		}
		keep = append(keep, r)
		switch {
		case rec >= current && age < up:
			out = min(out, r.replicas)
		case rec < current && age < down:
			out = max(out, r.replicas)
		}
	}
	a.recs = append(keep, timedRec{now, rec})
	// Unlike the HPA, the window never turns a recommendation round: an older, lower
	// recommendation in the scale-up window (say, from before a rule or a person added an
	// instance) holds a scale-up back but does not shrink the fleet, and the reverse.
	if rec >= current {
		return max(out, current)
	}
	return min(out, current)
}

// remember adds a count to the stabilisation history without stabilising anything: a manual
// scale, or a rule's step once applied, so that proportional control does not undo it before
// the window of the opposite direction has passed.
func (a *Autoscaler) remember(now time.Time, replicas int) {
	a.recs = append(a.recs, timedRec{now, replicas})
}

// changedWithin sums the changes of events newer than period.
func changedWithin(now time.Time, period time.Duration, events []scaleEvent) int {
	n := 0
	for _, e := range events {
		if now.Sub(e.at) < period {
			n += e.change
		}
	}
	return n
}

// scaleUpLimit is the most instances the scale-up policies allow now (the HPA's
// calculateScaleUpLimitWithScalingRules): each policy allows a change counted from the
// instances at the start of its period; "max" takes the most generous policy, "min" the
// strictest.
func scaleUpLimit(now time.Time, current int, events []scaleEvent, b Behavior) int {
	if b.Select == config.SelectDisabled {
		return current
	}
	result := 0
	if b.Select == config.SelectMin {
		result = math.MaxInt32
	}
	for _, p := range b.Policies {
		start := current - changedWithin(now, p.Period, events)
		var proposed int
		if p.Percent {
			// Rounded up, or a small fleet could never grow by a percentage.
			proposed = int(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		} else {
			proposed = start + p.Value
		}
		if b.Select == config.SelectMin {
			result = min(result, proposed)
		} else {
			result = max(result, proposed)
		}
	}
	return result
}

// scaleDownLimit is the fewest instances the scale-down policies allow now (the HPA's
// calculateScaleDownLimitWithBehaviors); a percentage is truncated, as the HPA does.
func scaleDownLimit(now time.Time, current int, events []scaleEvent, b Behavior) int {
	if b.Select == config.SelectDisabled {
		return current
	}
	result := math.MaxInt32
	if b.Select == config.SelectMin {
		result = 0
	}
	for _, p := range b.Policies {
		start := current + changedWithin(now, p.Period, events)
		var proposed int
		if p.Percent {
			proposed = int(float64(start) * (1 - float64(p.Value)/100))
		} else {
			proposed = start - p.Value
		}
		if b.Select == config.SelectMin {
			result = max(result, proposed)
		} else {
			result = min(result, proposed)
		}
	}
	return result
}

// longestPeriod is the longest policy period of b, how long its events matter.
func longestPeriod(b Behavior) time.Duration {
	var d time.Duration
	for _, p := range b.Policies {
		d = max(d, p.Period)
	}
	return d
}

// prune drops events older than the longest period.
func prune(now time.Time, events []scaleEvent, b Behavior) []scaleEvent {
	keep := events[:0]
	for _, e := range events {
		if now.Sub(e.at) < longestPeriod(b) {
			keep = append(keep, e)
		}
	}
	return keep
}
