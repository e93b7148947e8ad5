package autoscale

import (
	"time"

	"github.com/shoal-sh/shoal/config"
)

// Input is what one evaluation sees: the instances the target runs and the metrics averaged
// over the last interval.
type Input struct {
	// Time of the evaluation.
	Time time.Time
	// Current is the number of instances the target is asked to run (the fleet's desired count,
	// a Deployment's spec.replicas), whatever state they are in.
	Current int
	// Instances are the instances counted in Current, with their own samples.
	Instances []Instance
	// Values are the fleet-wide metrics by seed name: response_time_p95 in milliseconds,
	// active_connections and request_queue_depth as totals over the fleet. A metric without a
	// sample is left out.
	Values map[string]float64
}

// Instance is one instance and its samples, averaged over the interval.
type Instance struct {
	ID string
	// Ready is true when the instance is in rotation now.
	Ready bool
	// Started is when its process started; ReadySince when it last became ready (zero: it has
	// never been ready since it started).
	Started, ReadySince time.Time
	// CPU and Memory are utilisation percentages of what the instance may use; HasCPU and
	// HasMemory are false when there is no sample (a missing metric).
	CPU, Memory       float64
	HasCPU, HasMemory bool
}

// Ready returns the number of ready instances.
func (in Input) Ready() int {
	n := 0
	for _, i := range in.Instances {
		if i.Ready {
			n++
		}
	}
	return n
}

// sample is one instance's value of a Utilization metric as the HPA groups it.
type sample struct {
	value   float64
	missing bool // counted, but without a sample
	ignored bool // not counted: starting, or (CPU) still initialising
}

// utilizationSamples groups the instances for a Utilization metric as the HPA's groupPods does:
// an instance that has never been ready since it started is ignored (a Pending pod); for CPU,
// within CPUInitializationPeriod of its start an instance is ignored unless it is ready and
// has been for a whole interval (so the average does not include start-up work), and after it
// an instance is ignored only when it is not ready and never was. An instance without a sample
// is missing.
func (s *Settings) utilizationSamples(in Input, metric string) []sample {
	out := make([]sample, 0, len(in.Instances))
	for _, i := range in.Instances {
		v, has := i.Memory, i.HasMemory
		if metric == config.MetricCPUUtilization {
			v, has = i.CPU, i.HasCPU
		}
		neverReady := !i.Ready && i.ReadySince.IsZero()
		ignored := neverReady
		if metric == config.MetricCPUUtilization && !ignored && !i.Started.IsZero() &&
			in.Time.Sub(i.Started) < s.CPUInitializationPeriod {
			ignored = !i.Ready || in.Time.Sub(i.ReadySince) < s.Interval
		}
		switch {
		case ignored:
			out = append(out, sample{ignored: true})
		case !has:
			out = append(out, sample{missing: true})
		default:
			out = append(out, sample{value: v})
		}
	}
	return out
}
