package telemetry

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-sh/shoal/config"
)

// ScalingMetric is one of the seed's scaling metrics and the Prometheus metric it is exported as.
// The seed names carry the unit of their thresholds in shoal.yml (percent, milliseconds); the
// Prometheus names follow its conventions: a shoal_ prefix, base units (seconds, ratios 0-1).
type ScalingMetric struct {
	// Seed is the name in shoal.yml, e.g. "cpu_utilization_percentage".
	Seed string
	// Name is the Prometheus metric, e.g. "shoal_cpu_utilization_ratio".
	Name string
	// Help is the metric's HELP text.
	Help string
	// SeedUnit is the unit of the seed's thresholds: "%", "ms" or "" for a count.
	SeedUnit string
	// Factor converts a value in the seed's unit to the Prometheus unit: 0.01 for percent,
	// 0.001 for milliseconds, 1 for counts.
	Factor float64
	// Aggregate is how PromQL combines the metric over a fleet's instances: "sum" for the
	// instance count, "avg" for the per-instance quantities the thresholds are written for.
	Aggregate string
}

// ScalingMetrics lists the seed's scaling metrics in the seed's order.
var ScalingMetrics = []ScalingMetric{
	{Seed: config.MetricInstanceCount, Name: "shoal_instances", Aggregate: "sum", Factor: 1,
		Help: "Instances of the service: 1 from each instance itself (sum over a fleet), or the fleet size from shoal up."},
	{Seed: config.MetricCPUUtilization, Name: "shoal_cpu_utilization_ratio", SeedUnit: "%", Factor: 0.01, Aggregate: "avg",
		Help: "CPU used by the process over the CPU it may use (GOMAXPROCS), 0-1, over the time since the previous scrape."},
	{Seed: config.MetricMemoryUtilization, Name: "shoal_memory_utilization_ratio", SeedUnit: "%", Factor: 0.01, Aggregate: "avg",
		Help: "Resident memory of the process over its memory limit (cgroup limit, else the machine's memory), 0-1."},
	{Seed: config.MetricActiveConnections, Name: "shoal_active_connections", Factor: 1, Aggregate: "avg",
		Help: "Client connections open to the service."},
	{Seed: config.MetricRequestQueueDepth, Name: "shoal_request_queue_depth", Factor: 1, Aggregate: "avg",
		Help: "Requests accepted and not yet answered (in flight)."},
	{Seed: config.MetricResponseTimeP95, Name: "shoal_response_time_p95_seconds", SeedUnit: "ms", Factor: 0.001, Aggregate: "avg",
		Help: "95th percentile of request duration over a sliding window (1 minute by default), from the latency histogram's buckets."},
}

// ToPrometheus converts v from the seed's unit (a threshold of shoal.yml) to the Prometheus
// unit: 70 (%) → 0.7, 2000 (ms) → 2. The product is rounded to 12 significant digits so that
// 70 becomes 0.7, not 0.7000000000000001.
func (m ScalingMetric) ToPrometheus(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v*m.Factor, 'g', 12, 64), 64)
	return r
}

// LookupScaling returns the scaling metric whose seed name is seed.
func LookupScaling(seed string) (ScalingMetric, bool) {
	for _, m := range ScalingMetrics {
		if m.Seed == seed {
			return m, true
		}
	}
	return ScalingMetric{}, false
}

// Sources say how each scaling metric is measured. A nil source uses the default; a source that
// returns NaN leaves the metric out of that scrape.
type Sources struct {
	// Instances defaults to 1: this instance.
	Instances func() float64
	// CPUUtilization (0-1) defaults to the process's CPU time over GOMAXPROCS CPUs, between
	// scrapes (at least a second apart).
	CPUUtilization func() float64
	// MemoryUtilization (0-1) defaults to resident memory over the cgroup memory limit, or the
	// machine's memory when there is none (Linux; elsewhere not exported).
	MemoryUtilization func() float64
	// ActiveConnections defaults to the connections counted by Metrics.ConnState.
	ActiveConnections func() float64
	// RequestQueueDepth defaults to the requests in flight through Metrics.Middleware.
	RequestQueueDepth func() float64
	// ResponseTimeP95 (seconds) defaults to the 95th percentile of the Middleware's window.
	ResponseTimeP95 func() float64
}

// scalingCollector reads the sources at scrape time.
type scalingCollector struct {
	descs []*prometheus.Desc
	read  []func() float64
}

var _ prometheus.Collector = (*scalingCollector)(nil)

func newScalingCollector(enabled []string, src Sources) *scalingCollector {
	bySeed := map[string]func() float64{
		config.MetricInstanceCount:     src.Instances,
		config.MetricCPUUtilization:    src.CPUUtilization,
		config.MetricMemoryUtilization: src.MemoryUtilization,
		config.MetricActiveConnections: src.ActiveConnections,
		config.MetricRequestQueueDepth: src.RequestQueueDepth,
		config.MetricResponseTimeP95:   src.ResponseTimeP95,
	}
	c := &scalingCollector{}
	for _, m := range ScalingMetrics {
		on := false
		for _, e := range enabled {
			on = on || e == m.Seed
		}
		if !on || bySeed[m.Seed] == nil {
			continue
		}
		c.descs = append(c.descs, prometheus.NewDesc(m.Name, m.Help, nil, nil))
		c.read = append(c.read, bySeed[m.Seed])
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *scalingCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *scalingCollector) Collect(ch chan<- prometheus.Metric) {
	for i, d := range c.descs {
		v := c.read[i]()
		if math.IsNaN(v) {
			continue
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
}
