package fleet

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
)

// This file connects the fleet to package autoscale: the fleet is both the Source (its
// instances and the metrics it samples) and the Target (Scale) of the autoscaler.

// instanceSample is what the sampler measured of one instance in one sample.
type instanceSample struct {
	cpu    float64 // percent of one CPU
	hasCPU bool
	rss    float64 // bytes
	hasRSS bool
}

// autoscaleInputs accumulates each instance's samples between two evaluations, so the
// autoscaler sees per-instance averages over its interval (the telemetry history keeps only
// fleet-wide series), and follows when each instance became ready.
type autoscaleInputs struct {
	mu       sync.Mutex
	memTotal float64 // bytes of memory of the machine; 0 when unknown
	acc      map[string]*instanceAcc
}

type instanceAcc struct {
	cpuSum, rssSum float64
	cpuN, rssN     int
	ready          bool
	readySince     time.Time
}

func newAutoscaleInputs(memTotal float64) *autoscaleInputs {
	return &autoscaleInputs{memTotal: memTotal, acc: map[string]*instanceAcc{}}
}

// record adds one sample of every instance the sampler saw; instances not listed are gone.
func (a *autoscaleInputs) record(now time.Time, instances []admin.InstanceStatus, samples map[string]instanceSample) {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := make(map[string]bool, len(instances))
	for _, in := range instances {
		seen[in.ID] = true
		acc := a.acc[in.ID]
		if acc == nil {
			acc = &instanceAcc{}
			a.acc[in.ID] = acc
		}
		ready := in.State == admin.StateReady
		if ready && !acc.ready {
			acc.readySince = now
		}
		acc.ready = ready
		s, ok := samples[in.ID]
		if !ok {
			continue
		}
		if s.hasCPU {
			acc.cpuSum += s.cpu
			acc.cpuN++
		}
		if s.hasRSS {
			acc.rssSum += s.rss
			acc.rssN++
		}
	}
	for id := range a.acc {
		if !seen[id] {
			delete(a.acc, id)
		}
	}
}

// take returns the averages since the previous take for the instances of st and starts over.
func (a *autoscaleInputs) take(st admin.Status) []autoscale.Instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []autoscale.Instance
	for _, in := range st.Instances {
		switch in.State {
		case admin.StateDraining, admin.StateStopping, admin.StateStopped, admin.StateFailed:
			continue // not counted in the fleet's size
		}
		ai := autoscale.Instance{ID: in.ID, Ready: in.State == admin.StateReady, Started: in.Started}
		if acc := a.acc[in.ID]; acc != nil {
			ai.ReadySince = acc.readySince
			if acc.cpuN > 0 {
				ai.CPU, ai.HasCPU = acc.cpuSum/float64(acc.cpuN), true
			}
			if acc.rssN > 0 && a.memTotal > 0 {
				ai.Memory, ai.HasMemory = acc.rssSum/float64(acc.rssN)/a.memTotal*100, true
			}
			acc.cpuSum, acc.cpuN, acc.rssSum, acc.rssN = 0, 0, 0, 0
		}
		out = append(out, ai)
	}
	return out
}

// fleetSource is the fleet as the autoscaler's Source.
type fleetSource struct{ f *Fleet }

// Observe returns the fleet's instances with their averages since the previous evaluation and
// the fleet-wide metrics of the telemetry history averaged over window.
func (s fleetSource) Observe(ctx context.Context, now time.Time, window time.Duration) (autoscale.Input, error) {
	f := s.f
	st := f.Status(ctx)
	in := autoscale.Input{Time: now, Current: st.Desired, Instances: f.inputs.take(st), Values: map[string]float64{}}
	// An interval shorter than the sampler's would often find no sample in its window.
	window = max(window, f.opts.SampleInterval)
	for _, m := range []string{config.MetricResponseTimeP95, config.MetricActiveConnections} {
		if ps := f.opts.History.Query(m, window, 0); len(ps) > 0 {
			sum := 0.0
			for _, p := range ps {
				sum += p.Value
			}
			in.Values[m] = sum / float64(len(ps))
		}
	}
	autoscale.ReadSources(ctx, &in, f.opts.MetricSources)
	for _, m := range f.autoscaler.Settings().Uses() {
		_, have := in.Values[m]
		_, said := in.Unavailable[m]
		if have || said || m == config.MetricInstanceCount || autoscale.KindOf(m) == autoscale.Utilization {
			continue
		}
		if in.Unavailable == nil {
			in.Unavailable = map[string]string{}
		}
		switch m {
		case config.MetricRequestQueueDepth:
			in.Unavailable[m] = "shoal up does not measure request_queue_depth (its proxy does not queue); only the generated KEDA ScaledObject scales on it"
		case config.MetricResponseTimeP95, config.MetricActiveConnections:
			// Measured by the proxy; no sample yet.
		default:
			in.Unavailable[m] = "nothing supplies " + m + " to this fleet"
		}
	}
	return in, nil
}

// Scale makes the fleet the autoscaler's Target.
type fleetTarget struct{ f *Fleet }

func (t fleetTarget) Scale(ctx context.Context, to int, reason string) error {
	_, err := t.f.Scale(ctx, to, reason)
	return err
}

// runAutoscaler evaluates every observability.auto_scaling.interval until ctx is done.
func (f *Fleet) runAutoscaler(ctx context.Context) {
	t := time.NewTicker(f.cfg.Observability.AutoScaling.Interval.D())
	defer t.Stop()
	f.autoscaler.Run(ctx, t.C, fleetSource{f}, fleetTarget{f}, func(d autoscale.Decision) {
		switch {
		case d.Error != "":
			f.log.Warn("autoscaling failed", "from", d.Current, "to", d.Desired, "err", d.Error)
		case d.Change != autoscale.ChangeNone:
			f.log.Info("autoscaled", "from", d.Current, "to", d.Desired, "reason", d.Reason)
		default:
			f.log.Debug("autoscale: no change", "instances", d.Current, "reason", d.Reason)
		}
	})
}

// isAutoscale reports whether a Scale reason comes from the autoscaler.
func isAutoscale(reason string) bool { return strings.HasPrefix(reason, "autoscale") }

// Decisions returns the autoscaler's decisions of the last since, oldest first, at most limit
// (all when limit ≤ 0); none when the fleet does not autoscale. It implements admin.Autoscaled.
func (f *Fleet) Decisions(ctx context.Context, since time.Duration, limit int) admin.DecisionsReport {
	r := admin.DecisionsReport{Since: since, Decisions: []autoscale.Decision{}}
	r.Autoscaling, r.Reason = f.autoscaleState()
	if f.autoscaler != nil {
		r.Decisions = f.autoscaler.Log().Since(time.Now().Add(-since), limit)
	}
	return r
}

// autoscaleState says whether the fleet autoscales and why.
func (f *Fleet) autoscaleState() (bool, string) {
	on, why := autoscale.Enabled(f.cfg, config.AutoscaleTargetFleet)
	switch {
	case on && !f.opts.Autoscale:
		return false, "off: this fleet was started without autoscaling"
	case on && f.opts.History == nil:
		return false, "off: the fleet keeps no metric history to scale by"
	}
	return on, why
}

// memTotal returns the machine's memory in bytes, or 0 when procfs cannot say.
func (s *sampler) memTotal() float64 {
	if s.fsErr != nil {
		return 0
	}
	mi, err := s.procfsFS.Meminfo()
	if err != nil || mi.MemTotal == nil {
		return 0
	}
	return float64(*mi.MemTotal) * 1024
}

// recordInstanceSamples hands the samples the sampler took, by process group, to the
// autoscaler's inputs by instance.
func (f *Fleet) recordInstanceSamples(now time.Time, instances []admin.InstanceStatus, byGroup map[int]instanceSample) {
	if f.inputs == nil {
		return
	}
	byID := make(map[string]instanceSample, len(byGroup))
	for _, in := range instances {
		if s, ok := byGroup[in.PGID]; ok && in.PGID > 0 {
			byID[in.ID] = s
		}
	}
	f.inputs.record(now, instances, byID)
}
