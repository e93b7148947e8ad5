package telemetry

import (
	"bytes"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-sh/shoal/config"
)

// manualClock is a clock a handler moves forward to simulate its latency.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// latencyHandler takes as long as its "ms" query parameter says, on the clock.
func latencyHandler(clock *manualClock) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.ParseFloat(r.URL.Query().Get("ms"), 64)
		clock.Advance(time.Duration(ms * float64(time.Millisecond)))
		if code, _ := strconv.Atoi(r.URL.Query().Get("code")); code != 0 {
			w.WriteHeader(code)
		}
	})
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestMetrics_Middleware(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	m, err := New(Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Middleware(latencyHandler(clock))
	serve(h, http.MethodGet, "/?ms=10")
	serve(h, http.MethodGet, "/?ms=20&code=503")
	serve(h, http.MethodPost, "/?code=201")
	serve(h, "BREW", "/")
	early := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusEarlyHints) // not the status of the request
		w.WriteHeader(http.StatusAccepted)
	})
	serve(m.Middleware(early), http.MethodGet, "/")

	for labels, want := range map[[2]string]float64{
		{"GET", "200"}: 1, {"GET", "503"}: 1, {"POST", "201"}: 1, {"OTHER", "200"}: 1, {"GET", "202"}: 1,
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(labels[0], labels[1])); got != want {
			t.Errorf("requests%v = %v, want %v", labels, got, want)
		}
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight after the requests = %v", got)
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("duration series = %d", n)
	}
}

// trueQuantile is the q-quantile of sorted values, by the nearest-rank method.
func trueQuantile(sorted []float64, q float64) float64 {
	return sorted[int(math.Ceil(q*float64(len(sorted))))-1]
}

// bucketOf returns the bounds of the histogram bucket holding v.
func bucketOf(v float64) (lo, hi float64) {
	for _, b := range DefaultBuckets {
		if v <= b {
			return lo, b
		}
		lo = b
	}
	return lo, math.Inf(1)
}

func TestMetrics_P95MatchesDistribution(t *testing.T) {
	t.Parallel()
	for name, gen := range map[string]func(i int) float64{
		// 1..1000 ms, evenly: p95 = 950 ms.
		"uniform": func(i int) float64 { return float64(i%1000 + 1) },
		// 90% fast, 10% slow: p95 is a slow one, 300 ms.
		"bimodal": func(i int) float64 {
			if i%10 == 0 {
				return 300
			}
			return 8
		},
		// A long tail: ms = 1000·u³ for u evenly in (0,1], p95 ≈ 857 ms.
		"tail": func(i int) float64 { u := float64(i%1000+1) / 1000; return 1000 * u * u * u },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := newManualClock()
			// The requests take up to ~17 minutes of fake time, one after the other; the window
			// holds them all.
			m, err := New(Options{Now: clock.Now, Window: 2 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			h := m.Middleware(latencyHandler(clock))
			var values []float64
			for i := range 2000 {
				ms := gen(i)
				values = append(values, ms/1000)
				serve(h, http.MethodGet, "/?ms="+strconv.FormatFloat(ms, 'f', -1, 64))
			}
			sort.Float64s(values)
			want := trueQuantile(values, 0.95)
			lo, hi := bucketOf(want)
			got := gauge(t, m.Registry(), "shoal_response_time_p95_seconds")
			if got < lo || got > hi {
				t.Fatalf("p95 = %v, true p95 %v; want it within the bucket [%v, %v]", got, want, lo, hi)
			}
		})
	}
}

func TestWindow_Slides(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	w := NewWindow(time.Minute, nil, clock.Now)
	if q := w.Quantile(0.95); !math.IsNaN(q) {
		t.Fatalf("empty window p95 = %v, want NaN", q)
	}
	for range 100 {
		w.Observe(2) // slow, in (1, 2.5]
	}
	clock.Advance(30 * time.Second)
	for range 100 {
		w.Observe(0.004) // fast, in (0.0025, 0.005]
	}
	if q := w.Quantile(0.95); q <= 1 {
		t.Fatalf("p95 with the slow requests in the window = %v", q)
	}
	clock.Advance(45 * time.Second) // the slow ones are 75s old now, the fast ones 45s
	if q := w.Quantile(0.95); q < 0.0025 || q > 0.005 {
		t.Fatalf("p95 after the slow requests left the window = %v", q)
	}
	clock.Advance(time.Minute)
	if q := w.Quantile(0.95); !math.IsNaN(q) {
		t.Fatalf("p95 of an expired window = %v, want NaN", q)
	}
	w.Observe(100) // past the last bucket: reported as the highest finite bound
	if q := w.Quantile(0.5); q != 30 {
		t.Fatalf("p50 in the +Inf bucket = %v, want 30", q)
	}
}

// gauge gathers reg and returns the value of the unlabelled gauge name.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}

func names(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		out[mf.GetName()] = true
	}
	return out
}

func TestMetrics_ScalingMetrics(t *testing.T) {
	t.Parallel()
	m, err := New(Options{Sources: Sources{Instances: func() float64 { return 4 }, ActiveConnections: func() float64 { return math.NaN() }}})
	if err != nil {
		t.Fatal(err)
	}
	serve(m.Middleware(http.NotFoundHandler()), http.MethodGet, "/")
	got := names(t, m.Registry())
	for _, want := range []string{"shoal_instances", "shoal_cpu_utilization_ratio", "shoal_memory_utilization_ratio",
		"shoal_request_queue_depth", "shoal_response_time_p95_seconds", "process_cpu_seconds_total", "go_goroutines"} {
		if !got[want] {
			t.Errorf("%s is not exported", want)
		}
	}
	if got["shoal_active_connections"] {
		t.Error("a source answering NaN was exported")
	}
	if v := gauge(t, m.Registry(), "shoal_instances"); v != 4 {
		t.Errorf("shoal_instances = %v, want the source's 4", v)
	}
	if v := gauge(t, m.Registry(), "shoal_memory_utilization_ratio"); v <= 0 || v > 1 {
		t.Errorf("memory utilization = %v, want a ratio", v)
	}
}

func TestFromConfig(t *testing.T) {
	t.Setenv("METRICS_TOKEN", "s3cret")
	cfg := &config.Config{}
	cfg.Health.Endpoint = "/health"
	cfg.Observability.ScalingMetrics.Enabled = true
	cfg.Observability.ScalingMetrics.Metrics = []string{config.MetricInstanceCount}
	m, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := m.Middleware(http.NotFoundHandler())
	serve(h, http.MethodGet, "/health")
	serve(h, http.MethodGet, "/health/live")
	serve(h, http.MethodGet, "/orders")
	if got := testutil.ToFloat64(m.requests.WithLabelValues("GET", "404")); got != 1 {
		t.Errorf("requests = %v, want 1: probes are not counted", got)
	}
	got := names(t, m.Registry())
	if !got["shoal_instances"] || got["shoal_cpu_utilization_ratio"] {
		t.Errorf("exported %v, want only the configured scaling metrics", got)
	}
	if rec := serve(m.Handler(), http.MethodGet, "/metrics"); rec.Code != http.StatusUnauthorized {
		t.Errorf("METRICS_TOKEN not required: %d", rec.Code)
	}

	cfg.Observability.ScalingMetrics.Enabled = false
	m, err = FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, m.Registry()); got["shoal_instances"] {
		t.Error("scaling metrics exported while observability.scaling_metrics.enabled is false")
	}
}

func TestMetrics_Token(t *testing.T) {
	t.Parallel()
	m, err := New(Options{Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"missing", "", http.StatusUnauthorized},
		{"wrong", "Bearer nope", http.StatusUnauthorized},
		{"prefix of the right one", "Bearer s3cre", http.StatusUnauthorized},
		{"right token, wrong scheme", "Basic s3cret", http.StatusUnauthorized},
		{"right", "Bearer s3cret", http.StatusOK},
		{"right, scheme in lower case", "bearer s3cret", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusUnauthorized {
				if resp.Header.Get("WWW-Authenticate") == "" || bytes.Contains(body, []byte("shoal_")) {
					t.Errorf("401 without WWW-Authenticate, or with metrics: %q", body)
				}
			} else if !bytes.Contains(body, []byte("shoal_http_requests_in_flight")) {
				t.Errorf("no metrics in %q", body)
			}
		})
	}
	if open := BearerAuth("", http.NotFoundHandler()); serve(open, http.MethodGet, "/").Code != http.StatusNotFound {
		t.Error("an empty token does not let requests through")
	}
}

func TestMetrics_ConnState(t *testing.T) {
	t.Parallel()
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(m.Middleware(http.NotFoundHandler()))
	srv.Config.ConnState = m.ConnState
	srv.Start()
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 1)
	c.Read(buf) // the answer started: the server has seen the connection
	if v := gauge(t, m.Registry(), "shoal_active_connections"); v != 1 {
		t.Errorf("active connections with one open = %v", v)
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for gauge(t, m.Registry(), "shoal_active_connections") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the closed connection is still counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMetrics_PromtoolCheckMetrics lints a real scrape of /metrics with promtool.
func TestMetrics_PromtoolCheckMetrics(t *testing.T) {
	t.Parallel()
	tool := promtool(t)
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusInternalServerError)
		}
	})))
	defer app.Close()
	for _, p := range []string{"/", "/", "/fail"} {
		resp, err := app.Client().Get(app.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	metrics := httptest.NewServer(m.Handler())
	defer metrics.Close()
	resp, err := metrics.Client().Get(metrics.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"shoal_http_requests_total", "shoal_http_request_duration_seconds_bucket", "shoal_instances",
		"shoal_response_time_p95_seconds", "process_resident_memory_bytes"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
