package autoscale

import (
	"errors"
	"fmt"
	"math"
)

// This file is the HPA's replica calculation (pkg/controller/podautoscaler/replica_calculator.go
// in Kubernetes), rewritten for shoal's inputs: percentages per instance instead of
// millicores against requests, and fleet totals instead of the metrics APIs.

// proposal is what one metric recommends.
type proposal struct {
	replicas int
	// usage is the metric's value as compared with the target: the mean over the counted
	// instances for Utilization, the total per instance for AverageValue, the value for Value.
	usage float64
	// counted, missing and ignored instances (Utilization only).
	counted, missing, ignored int
	note                      string
}

// errNoSamples is returned when a metric has no sample at all; such a metric makes no
// recommendation, and keeps the others from scaling down.
var errNoSamples = errors.New("no samples")

// withinTolerance reports whether ratio is close enough to 1 to leave the count alone.
func withinTolerance(ratio, tolerance float64) bool { return math.Abs(1-ratio) <= tolerance }

// ceilReplicas is ⌈x⌉ as a count, at least 1 (shoal does not scale to zero), bounded so a huge
// ratio cannot overflow.
func ceilReplicas(x float64) int {
	if x >= math.MaxInt32 {
		return math.MaxInt32
	}
	return max(int(math.Ceil(x)), 1)
}

// utilizationReplicas is GetResourceReplicas: desired = ⌈ratio × counted⌉ with ratio = mean /
// target, left at current within the tolerance. With missing or (on a scale-up) ignored
// instances the ratio is computed again with missing ones at 100% on a scale-down and 0% on a
// scale-up, and ignored ones at 0%; if that brings the ratio within the tolerance or turns the
// direction round, the count stays.
func utilizationReplicas(current int, samples []sample, target, tolerance float64) (proposal, error) {
	var sum float64
	var p proposal
	for _, s := range samples {
		switch {
		case s.ignored:
			p.ignored++
		case s.missing:
			p.missing++
		default:
			sum += s.value
			p.counted++
		}
	}
	if p.counted == 0 {
		return p, errNoSamples
	}
	p.usage = sum / float64(p.counted)
	ratio := p.usage / target
	rebalanceIgnored := p.ignored > 0 && ratio > 1
	if !rebalanceIgnored && p.missing == 0 {
		if withinTolerance(ratio, tolerance) {
			p.replicas, p.note = current, fmt.Sprintf("within the tolerance (ratio %.2f)", ratio)
			return p, nil
		}
		p.replicas = ceilReplicas(ratio * float64(p.counted))
		p.note = fmt.Sprintf("⌈%d × %.3g/%s⌉", p.counted, p.usage, num(target))
		return p, nil
	}
	n := p.counted
	switch {
	case p.missing > 0 && ratio < 1:
		sum += 100 * float64(p.missing) // a scale-down assumes the silent instances are full
		n += p.missing
	case p.missing > 0 && ratio > 1:
		n += p.missing // a scale-up assumes they are idle
	}
	if rebalanceIgnored {
		n += p.ignored // counted as idle: a scale-up does not rely on instances still starting
	}
	newRatio := sum / float64(n) / target
	if withinTolerance(newRatio, tolerance) || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		p.replicas = current
		p.note = fmt.Sprintf("no change: with %d missing and %d starting instances the ratio is %.2f", p.missing, p.ignored, newRatio)
		return p, nil
	}
	p.replicas = ceilReplicas(newRatio * float64(n))
	if (newRatio < 1 && p.replicas > current) || (newRatio > 1 && p.replicas < current) {
		p.replicas = current
		p.note = "no change: counting missing and starting instances would turn the direction round"
		return p, nil
	}
	p.note = fmt.Sprintf("⌈%d × %.2f⌉ counting %d missing and %d starting instances", n, newRatio, p.missing, p.ignored)
	return p, nil
}

// averageValueReplicas is GetExternalPerPodMetricReplicas: a total whose target is per instance;
// desired = ⌈total / target⌉ unless total / (target × current) is within the tolerance.
func averageValueReplicas(current int, total, target, tolerance float64) proposal {
	p := proposal{replicas: current, usage: total / float64(max(current, 1))}
	ratio := total / (target * float64(max(current, 1)))
	if withinTolerance(ratio, tolerance) {
		p.note = fmt.Sprintf("within the tolerance (ratio %.2f)", ratio)
		return p
	}
	p.replicas = ceilReplicas(total / target)
	p.note = fmt.Sprintf("⌈%s total / %s per instance⌉", num(total), num(target))
	return p
}

// valueReplicas is GetObjectMetricReplicas: a fleet-wide value; desired = ⌈ratio × ready⌉ with
// ratio = value / target, unless the ratio is within the tolerance.
func valueReplicas(current, ready int, value, target, tolerance float64) proposal {
	p := proposal{replicas: current, usage: value}
	ratio := value / target
	if withinTolerance(ratio, tolerance) {
		p.note = fmt.Sprintf("within the tolerance (ratio %.2f)", ratio)
		return p
	}
	p.replicas = ceilReplicas(ratio * float64(ready))
	p.note = fmt.Sprintf("⌈%d ready × %.2f⌉", ready, ratio)
	return p
}

// num formats a metric value or threshold compactly: 70, 0.5, 2000, 12.3.
func num(v float64) string {
	switch a := math.Abs(v); {
	case v == math.Trunc(v) && a < 1e15:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}
