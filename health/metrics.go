package health

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of the Collector.
const (
	MetricCheckUp       = "shoal_health_check_up"
	MetricCheckDuration = "shoal_health_check_duration_seconds"
	MetricReady         = "shoal_health_ready"
)

// collector exports the cached results at scrape time.
type collector struct {
	r                *Registry
	up, dur, readyDs *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

// Collector returns a Prometheus collector of the registry's cached results:
// shoal_health_check_up{check,type,critical} (1 passing, 0 failing; absent while a check is
// disabled or has not run), shoal_health_check_duration_seconds{check} (the latest run) and
// shoal_health_ready (1 when Ready). Register it with the service's registry; scraping never
// runs a check.
func (r *Registry) Collector() prometheus.Collector {
	return &collector{
		r: r,
		up: prometheus.NewDesc(MetricCheckUp,
			"1 when the latest run of a health check passed, 0 when it failed; absent while disabled or not yet run.",
			[]string{"check", "type", "critical"}, nil),
		dur: prometheus.NewDesc(MetricCheckDuration,
			"Duration of the latest run of a health check.", []string{"check"}, nil),
		readyDs: prometheus.NewDesc(MetricReady,
			"1 when the service is ready for traffic (critical checks passed, not draining), else 0.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.dur
	ch <- c.readyDs
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, res := range c.r.Results() {
		if res.Status == Disabled || res.Status == Unknown {
			continue
		}
		up := 0.0
		if res.Status == Pass {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, res.Name, res.Type, strconv.FormatBool(res.Critical))
		ch <- prometheus.MustNewConstMetric(c.dur, prometheus.GaugeValue, res.Duration.Seconds(), res.Name)
	}
	ready, _ := c.r.Ready()
	v := 0.0
	if ready {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(c.readyDs, prometheus.GaugeValue, v)
}
