package fleet

import (
	"context"
	"time"

	"github.com/prometheus/procfs"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/proxy"
)

// The series the fleet records, in the order Metrics returns them.
var seriesMeta = []struct{ name, unit string }{
	{"instance_count", "instances"},
	{"ready_instances", "instances"},
	{"request_rate", "req/s"},
	{"error_rate", "req/s"},
	{"response_time_p95", "ms"},
	{"active_connections", "requests"},
	{"cpu_utilization_percentage", "%"},
	{"memory_utilization_percentage", "%"},
	{"memory_mib", "MiB"},
}

// sampler records the fleet's metrics into History every SampleInterval.
type sampler struct {
	f        *Fleet
	last     proxy.Stats
	lastAt   time.Time
	cpu      map[int]*groupCPU // process group → its CPU at the last sample
	procfsFS procfs.FS
	fsErr    error
}

func newSampler(f *Fleet) *sampler {
	fs, err := procfs.NewDefaultFS()
	return &sampler{f: f, cpu: map[int]*groupCPU{}, procfsFS: fs, fsErr: err}
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.f.opts.SampleInterval)
	defer t.Stop()
	s.last, s.lastAt = s.f.proxy.Stats(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.sample(now)
		}
	}
}

func (s *sampler) sample(now time.Time) {
	f := s.f
	st := f.Status(context.Background())
	stats := f.proxy.Stats()
	dt := now.Sub(s.lastAt).Seconds()
	if dt <= 0 {
		return
	}
	rec := func(name string, v float64) { f.opts.History.Record(name, now, v) }

	active, ready := 0, 0
	var inflight int64
	var cpuSum, memSum float64
	cpuN := 0
	// Each instance is its process group, wrapper and children included (proctree.go).
	pgids := map[int]bool{}
	for _, in := range st.Instances {
		switch in.State {
		case admin.StateFailed, admin.StateStopped:
			continue
		}
		active++
		inflight += in.InFlight
		if in.State == admin.StateReady {
			ready++
		}
		if in.PGID > 0 {
			pgids[in.PGID] = true
		}
	}
	var groups map[int][]groupProc
	if s.fsErr == nil && len(pgids) > 0 {
		groups, _ = processGroups(s.procfsFS, pgids)
	}
	perGroup := map[int]instanceSample{} // for the autoscaler (autoscale.go)
	for pgid := range pgids {
		procs := groups[pgid]
		if len(procs) == 0 {
			continue
		}
		g := s.cpu[pgid]
		if g == nil {
			g = &groupCPU{}
			s.cpu[pgid] = g
		}
		smp := instanceSample{hasRSS: true}
		if used, ok := g.delta(procs); ok {
			cpuSum += used / dt * 100
			cpuN++
			smp.cpu, smp.hasCPU = used/dt*100, true
		}
		for _, p := range procs {
			memSum += float64(p.rss) / (1 << 20)
			smp.rss += float64(p.rss)
		}
		perGroup[pgid] = smp
	}
	f.recordInstanceSamples(now, st.Instances, perGroup)
	for pgid := range s.cpu {
		if !pgids[pgid] {
			delete(s.cpu, pgid)
		}
	}
	rec("instance_count", float64(active))
	rec("ready_instances", float64(ready))
	rec("request_rate", float64(stats.Requests-s.last.Requests)/dt)
	rec("error_rate", float64(stats.Errors-s.last.Errors)/dt)
	rec("response_time_p95", proxy.Quantile(0.95, s.last, stats)*1000)
	rec("active_connections", float64(inflight))
	if cpuN > 0 {
		rec("cpu_utilization_percentage", cpuSum/float64(cpuN))
	}
	rec("memory_mib", memSum)
	if active > 0 && s.fsErr == nil {
		if mi, err := s.procfsFS.Meminfo(); err == nil && mi.MemTotal != nil && *mi.MemTotal > 0 {
			// Average resident memory per instance against the machine's memory (kB).
			rec("memory_utilization_percentage", memSum*1024/float64(active)/float64(*mi.MemTotal)*100)
		}
	}
	s.last, s.lastAt = stats, now
}
