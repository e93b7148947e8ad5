package autoscale

import (
	"context"
	"fmt"
	"math"
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
	// Unavailable says why a fleet-wide metric is missing from Values, when its source could
	// not be read ("the jobs database is unreachable: …"); the decision log shows it.
	Unavailable map[string]string
}

// MetricSource supplies fleet-wide metrics that the target does not measure itself: the
// backlog of package jobs (job_queue_depth), a broker's queue, anything a rule may name.
// Values are by metric name, in the metric's unit (a total over the fleet for job_queue_depth;
// the target per instance divides it); a metric without a value is left out. A source is read
// once per evaluation, as KEDA polls its scalers, so it should answer from a cheap query or a
// cached gauge. An error leaves the source's metrics out of that evaluation: they recommend
// nothing and, as the HPA does for a metric it cannot read, keep the others from scaling down.
type MetricSource interface {
	// Metrics returns the current values by metric name.
	Metrics(ctx context.Context) (map[string]float64, error)
	// Names lists the metrics the source supplies, so that a failure is shown on each.
	Names() []string
}

// Gauge is a MetricSource of one metric read by a function, for example job_queue_depth from
// a jobs client:
//
//	autoscale.Gauge(config.MetricJobQueueDepth, func(ctx context.Context) (float64, error) {
//		n, err := jobsClient.Depth(ctx)
//		return float64(n), err
//	})
func Gauge(metric string, read func(ctx context.Context) (float64, error)) MetricSource {
	return gauge{metric, read}
}

type gauge struct {
	metric string
	read   func(ctx context.Context) (float64, error)
}

func (g gauge) Names() []string { return []string{g.metric} }

func (g gauge) Metrics(ctx context.Context) (map[string]float64, error) {
	v, err := g.read(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]float64{g.metric: v}, nil
}

// ReadSources adds what sources supply to in.Values, and for a source that fails, why to
// in.Unavailable for each of its metrics. A value that is not a finite number, or negative, is
// left out as unavailable: a broken source must not scale the fleet.
func ReadSources(ctx context.Context, in *Input, sources []MetricSource) {
	if len(sources) == 0 {
		return
	}
	if in.Values == nil {
		in.Values = map[string]float64{}
	}
	miss := func(metric, why string) {
		if in.Unavailable == nil {
			in.Unavailable = map[string]string{}
		}
		in.Unavailable[metric] = why
	}
	for _, src := range sources {
		vs, err := src.Metrics(ctx)
		if err != nil {
			for _, m := range src.Names() {
				miss(m, fmt.Sprintf("its source failed: %v", err))
			}
			continue
		}
		for m, v := range vs {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				miss(m, fmt.Sprintf("its source gave %g, which is not a count or a measure", v))
				continue
			}
			in.Values[m] = v
		}
	}
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
