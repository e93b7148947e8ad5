package telemetry

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shoal-sh/shoal/config"
)

// HTTP metric names of Metrics.Middleware.
const (
	MetricRequests        = "shoal_http_requests_total"
	MetricRequestDuration = "shoal_http_request_duration_seconds"
	MetricInFlight        = "shoal_http_requests_in_flight"
)

// DefaultBuckets are the latency histogram's upper bounds, in seconds; the proxy uses the same.
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Options configure Metrics.
type Options struct {
	// Registry receives every metric. Defaults to a new registry with the process and Go
	// runtime collectors (process_cpu_seconds_total, process_resident_memory_bytes, go_*).
	Registry *prometheus.Registry
	// Scaling lists the seed names of the scaling metrics to export
	// (observability.scaling_metrics.metrics). Defaults to all of them; an empty non-nil list
	// exports none.
	Scaling []string
	// Sources override how scaling metrics are measured.
	Sources Sources
	// Token, when set, must come as "Authorization: Bearer <token>" to Handler. FromConfig
	// takes it from METRICS_TOKEN. Defaults to none: /metrics is open.
	Token string
	// Window over which response_time_p95 is computed. Defaults to 1m.
	Window time.Duration
	// Buckets of the latency histogram, in seconds. Defaults to DefaultBuckets.
	Buckets []float64
	// Skip, when it returns true, leaves a request out of the HTTP metrics (probes, scrapes).
	// FromConfig skips the health endpoints and /metrics. Defaults to measuring everything.
	Skip func(*http.Request) bool
	// Now is the clock of request durations and the window. Defaults to time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Scaling == nil {
		o.Scaling = append([]string(nil), config.Metrics...)
	}
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if len(o.Buckets) == 0 {
		o.Buckets = DefaultBuckets
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Metrics is a service's Prometheus instrumentation: the HTTP middleware, connection counting,
// process metrics, the seed's scaling metrics and the /metrics handler.
type Metrics struct {
	reg      *prometheus.Registry
	opts     Options
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	inFlight prometheus.Gauge
	window   *Window

	inFlightN atomic.Int64
	conns     atomic.Int64
}

// New registers the metrics with opts.Registry (or a new registry) and returns them.
func New(opts Options) (*Metrics, error) {
	opts.setDefaults()
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	}
	m := &Metrics{
		reg:  reg,
		opts: opts,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRequests,
			Help: "HTTP requests answered, by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricRequestDuration,
			Help:    "Time from receiving a request to the end of its handler.",
			Buckets: opts.Buckets,
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricInFlight,
			Help: "HTTP requests being handled.",
		}),
		window: NewWindow(opts.Window, opts.Buckets, opts.Now),
	}
	src := opts.Sources
	if src.Instances == nil {
		src.Instances = func() float64 { return 1 }
	}
	if src.CPUUtilization == nil {
		src.CPUUtilization = newCPUSampler().utilization
	}
	if src.MemoryUtilization == nil {
		src.MemoryUtilization = memoryUtilization
	}
	if src.ActiveConnections == nil {
		src.ActiveConnections = func() float64 { return float64(m.conns.Load()) }
	}
	if src.RequestQueueDepth == nil {
		src.RequestQueueDepth = func() float64 { return float64(m.inFlightN.Load()) }
	}
	if src.ResponseTimeP95 == nil {
		src.ResponseTimeP95 = func() float64 { return m.window.Quantile(0.95) }
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, newScalingCollector(opts.Scaling, src)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// FromConfig returns the Metrics of the service cfg describes: the scaling metrics of
// observability.scaling_metrics (none when it is disabled), the token of METRICS_TOKEN, and
// the health endpoints and /metrics left out of the HTTP metrics.
func FromConfig(cfg *config.Config) (*Metrics, error) {
	opts := Options{Token: os.Getenv("METRICS_TOKEN"), Scaling: []string{}}
	if sm := cfg.Observability.ScalingMetrics; sm.Enabled {
		opts.Scaling = append(opts.Scaling, sm.Metrics...)
	}
	skip := map[string]bool{"/metrics": true, "/live": true, "/ready": true}
	for _, p := range []string{cfg.Health.Endpoint, cfg.Scaling.Instances.Startup.ReadinessProbe, cfg.Scaling.Instances.Startup.LivenessProbe} {
		if p != "" {
			skip[p], skip[p+"/live"], skip[p+"/ready"] = true, true, true
		}
	}
	opts.Skip = func(r *http.Request) bool { return skip[r.URL.Path] }
	return New(opts)
}

// Registry returns the registry the metrics are in, for the service to add its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Window returns the sliding latency window behind response_time_p95.
func (m *Metrics) Window() *Window { return m.window }

// Middleware measures every request next handles: shoal_http_requests_total{method,code},
// shoal_http_request_duration_seconds, shoal_http_requests_in_flight, and the p95 window. The
// ResponseWriter keeps the interfaces of the original (Flusher, Hijacker, ReaderFrom, Pusher).
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.opts.Skip != nil && m.opts.Skip(r) {
			next.ServeHTTP(w, r)
			return
		}
		m.inFlight.Inc()
		m.inFlightN.Add(1)
		start := m.opts.Now()
		code := http.StatusOK
		wrote := false
		w = httpsnoop.Wrap(w, httpsnoop.Hooks{
			WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
				return func(c int) {
					if !wrote && c >= 200 { // 1xx informational answers are not the status
						code, wrote = c, true
					}
					next(c)
				}
			},
		})
		defer func() {
			d := m.opts.Now().Sub(start).Seconds()
			m.inFlight.Dec()
			m.inFlightN.Add(-1)
			m.duration.Observe(d)
			m.window.Observe(d)
			m.requests.WithLabelValues(methodLabel(r.Method), strconv.Itoa(code)).Inc()
		}()
		next.ServeHTTP(w, r)
	})
}

// methodLabel keeps the method label's values few: the standard methods, else OTHER.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// ConnState counts open client connections for the active_connections metric; set it as the
// http.Server's ConnState (calling any previous hook from a wrapper of your own).
func (m *Metrics) ConnState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		m.conns.Add(1)
	case http.StateHijacked, http.StateClosed: // a hijacked connection gets no StateClosed
		m.conns.Add(-1)
	}
}

// Handler serves the registry in the Prometheus exposition format, behind BearerAuth when a
// token is set.
func (m *Metrics) Handler() http.Handler {
	h := promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	return BearerAuth(m.opts.Token, h)
}

// ErrUnauthorized is the answer BearerAuth gives a request without the right token.
var ErrUnauthorized = errors.New("unauthorized: send the metrics token as \"Authorization: Bearer <token>\"")

// BearerAuth lets a request through to next only with "Authorization: Bearer <token>"; others
// get 401 with a WWW-Authenticate header. The comparison takes the same time whatever the
// guess (hashes of both sides are compared in constant time, so not even the length leaks).
// An empty token lets every request through.
func BearerAuth(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		scheme, got, ok := strings.Cut(auth, " ")
		gotSum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if subtle.ConstantTimeCompare(gotSum[:], want[:]) != 1 || !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, ErrUnauthorized.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
