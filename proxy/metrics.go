package proxy

import (
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus metrics. Per-instance state (health, breaker, in-flight,
// ejection) is read at scrape time from the upstreams, so requests pay only for the counters.
type metrics struct {
	p     *Proxy
	stats statsCounters

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	retries        *prometheus.CounterVec
	ejections      *prometheus.CounterVec
	truncated      *prometheus.CounterVec
	stalls         *prometheus.CounterVec
	hedges         *prometheus.CounterVec
	breakerChanges *prometheus.CounterVec
	healthChanges  *prometheus.CounterVec
	connections    prometheus.Gauge
	instances      *prometheus.GaugeVec
	panicMode      prometheus.Gauge

	inFlightDesc, healthyDesc, breakerDesc, ejectedDesc *prometheus.Desc
}

func newMetrics(reg prometheus.Registerer, p *Proxy) (*metrics, error) {
	m := &metrics{
		p: p,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_proxy_requests_total",
			Help: "Requests answered by the proxy, by instance (empty when the proxy answered itself), status class and method.",
		}, []string{"instance", "code", "method"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_proxy_request_duration_seconds",
			Help:    "Time from receiving a request to the end of the handler, by instance.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"instance"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_proxy_retries_total",
			Help: "Retries on another instance, by reason; reason budget_exhausted counts retries the budget refused.",
		}, []string{"reason"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_proxy_ejections_total",
			Help: "Passive-health ejections (max_failures within failure_timeout), by instance.",
		}, []string{"instance"}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_proxy_truncated_answers_total",
			Help: "Answers an instance cut short after a valid head (its body ended early), by instance; each counts as a passive-health failure.",
		}, []string{"instance"}),
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_proxy_stall_ejections_total",
			Help: "Instances taken out of rotation because requests waited on them far longer than the fleet's p99 with none answered, by instance.",
		}, []string{"instance"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_proxy_hedged_requests_total",
			Help: "Idempotent requests sent to a second instance after waiting the stall wait without an answer, by outcome (hedge_won, primary_won, both_failed, not_sent).",
		}, []string{"outcome"}),
		breakerChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_proxy_breaker_transitions_total",
			Help: "Circuit-breaker state changes, by instance and new state.",
		}, []string{"instance", "state"}),
		healthChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_proxy_health_transitions_total",
			Help: "Active health-check transitions, by instance and new state.",
		}, []string{"instance", "state"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_proxy_active_connections",
			Help: "Client connections open to the proxy.",
		}),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_proxy_instances",
			Help: "Instances known to the proxy: registered (not draining) and eligible (healthy, not ejected).",
		}, []string{"state"}),
		panicMode: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_proxy_panic_mode",
			Help: "1 when no instance is healthy and the proxy serves from all of them.",
		}),
		inFlightDesc: prometheus.NewDesc("shoal_proxy_instance_in_flight_requests", "Requests in flight to an instance.", []string{"instance"}, nil),
		healthyDesc:  prometheus.NewDesc("shoal_proxy_instance_healthy", "1 when an instance passes its active health checks.", []string{"instance"}, nil),
		breakerDesc:  prometheus.NewDesc("shoal_proxy_instance_breaker_state", "Circuit-breaker state of an instance: 0 closed, 1 half-open, 2 open, -1 disabled.", []string{"instance"}, nil),
		ejectedDesc:  prometheus.NewDesc("shoal_proxy_instance_ejected", "1 while passive health has ejected an instance.", []string{"instance"}, nil),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.retries, m.ejections, m.truncated, m.stalls, m.hedges, m.breakerChanges,
		m.healthChanges, m.connections, m.instances, m.panicMode, m} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector for the per-instance state.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.inFlightDesc
	ch <- m.healthyDesc
	ch <- m.breakerDesc
	ch <- m.ejectedDesc
}

// Collect implements prometheus.Collector for the per-instance state.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, s := range m.p.Status() {
		ch <- prometheus.MustNewConstMetric(m.inFlightDesc, prometheus.GaugeValue, float64(s.InFlight), s.ID)
		ch <- prometheus.MustNewConstMetric(m.healthyDesc, prometheus.GaugeValue, b2f(s.Healthy), s.ID)
		ch <- prometheus.MustNewConstMetric(m.ejectedDesc, prometheus.GaugeValue, b2f(s.Ejected), s.ID)
		ch <- prometheus.MustNewConstMetric(m.breakerDesc, prometheus.GaugeValue, breakerValue(s.Breaker), s.ID)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func breakerValue(s string) float64 {
	switch s {
	case "closed":
		return 0
	case "half-open":
		return 1
	case "open":
		return 2
	}
	return -1
}

var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(code int) string {
	if i := code/100 - 1; i >= 0 && i < len(statusClasses) {
		return statusClasses[i]
	}
	return strconv.Itoa(code)
}

// method keeps the label set small: unknown methods are "OTHER".
func method(m string) string { return methodLabels[methodIndex(m)] }

// methodLabels are the values of the method label; methodIndex maps a method onto them.
var methodLabels = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace, "OTHER"}

func methodIndex(m string) int {
	for i, l := range methodLabels[:len(methodLabels)-1] {
		if m == l {
			return i
		}
	}
	return len(methodLabels) - 1
}

// instanceMetrics caches an instance's metric children, so that a request answered by it pays
// no label hashing or lookup (the raw lane's hot path).
type instanceMetrics struct {
	duration atomic.Pointer[observerBox]
	requests [len(statusClasses)][len(methodLabels)]atomic.Pointer[counterBox]
}

type observerBox struct{ prometheus.Observer }
type counterBox struct{ prometheus.Counter }

// observeInstance is observe for an answer from u.
func (m *metrics) observeInstance(u *upstream, meth string, status int, d time.Duration) {
	ci := status/100 - 1
	if ci < 0 || ci >= len(statusClasses) {
		m.observe(meth, status, u.id, d)
		return
	}
	mi := methodIndex(meth)
	slot := &u.metrics.requests[ci][mi]
	c := slot.Load()
	if c == nil {
		c = &counterBox{m.requests.WithLabelValues(u.id, statusClasses[ci], methodLabels[mi])}
		slot.Store(c) // a race stores the same child twice: harmless
	}
	c.Inc()
	o := u.metrics.duration.Load()
	if o == nil {
		o = &observerBox{m.duration.WithLabelValues(u.id)}
		u.metrics.duration.Store(o)
	}
	o.Observe(d.Seconds())
	m.stats.observe(status, d)
}

func (m *metrics) observe(meth string, status int, instance string, d time.Duration) {
	m.requests.WithLabelValues(instance, statusClass(status), method(meth)).Inc()
	m.duration.WithLabelValues(instance).Observe(d.Seconds())
	m.stats.observe(status, d)
}

// LatencyBounds are the upper bounds, in seconds, of the buckets of Stats.Latency.
var LatencyBounds = []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30, 60}

// Stats are cumulative counters of the requests the proxy answered, cheap to read often
// (the fleet samples them every second for its metric history and autoscaling).
type Stats struct {
	Requests uint64
	Errors   uint64 // 5xx answers, the proxy's own included
	// Latency counts requests by bucket of LatencyBounds; the last bucket is +Inf.
	Latency [16]uint64
}

type statsCounters struct {
	requests, errors atomic.Uint64
	latency          [16]atomic.Uint64
}

func (s *statsCounters) observe(status int, d time.Duration) {
	s.requests.Add(1)
	if status >= 500 {
		s.errors.Add(1)
	}
	sec := d.Seconds()
	i := sort.SearchFloat64s(LatencyBounds, sec)
	s.latency[i].Add(1)
}

// Stats returns the proxy's cumulative request counters.
func (p *Proxy) Stats() Stats {
	c := &p.metrics.stats
	st := Stats{Requests: c.requests.Load(), Errors: c.errors.Load()}
	for i := range c.latency {
		st.Latency[i] = c.latency[i].Load()
	}
	return st
}

// Quantile estimates the q-quantile (0..1) in seconds of the requests counted in the
// difference between two Stats, interpolating linearly inside a bucket; 0 when there are none.
func Quantile(q float64, from, to Stats) float64 {
	var counts [16]uint64
	var total uint64
	for i := range counts {
		counts[i] = to.Latency[i] - from.Latency[i]
		total += counts[i]
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			lo := 0.0
			if i > 0 {
				lo = LatencyBounds[i-1]
			}
			if i >= len(LatencyBounds) {
				return LatencyBounds[len(LatencyBounds)-1]
			}
			hi := LatencyBounds[i]
			return lo + (hi-lo)*(rank-seen)/float64(c)
		}
		seen += float64(c)
	}
	return LatencyBounds[len(LatencyBounds)-1]
}

func (m *metrics) setPool(eligible, all int, panicking bool) {
	m.instances.WithLabelValues("eligible").Set(float64(eligible))
	m.instances.WithLabelValues("registered").Set(float64(all))
	m.panicMode.Set(b2f(panicking))
}
