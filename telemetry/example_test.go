package telemetry_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/shoal-sh/shoal/telemetry"
)

// A service wraps its handler with the middleware and serves /metrics behind METRICS_TOKEN.
func ExampleMetrics() {
	m, err := telemetry.New(telemetry.Options{Token: "s3cret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hi") })
	srv := &http.Server{Handler: m.Middleware(mux), ConnState: m.ConnState}
	_ = srv // srv.ListenAndServe()

	rec := httptest.NewRecorder()
	srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	fmt.Println(rec.Code)
	// Output: 401
}

// The fleet records its metrics and answers "the last hour, 60 points".
func ExampleHistory() {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h := telemetry.NewHistory(nil, func() time.Time { return now })
	for i := range 3600 {
		h.Record("instance_count", now.Add(time.Duration(i-3600)*time.Second), float64(2+i/1800))
	}
	pts := h.Query("instance_count", time.Hour, 60)
	fmt.Println(len(pts), pts[0].Value, pts[59].Value)
	// Output: 60 2 3
}

// Thresholds of shoal.yml convert to Prometheus units.
func ExampleScalingMetric_ToPrometheus() {
	for _, seed := range []string{"cpu_utilization_percentage", "response_time_p95", "active_connections"} {
		m, _ := telemetry.LookupScaling(seed)
		fmt.Println(seed, "→", m.Name, m.ToPrometheus(map[string]float64{
			"cpu_utilization_percentage": 70, "response_time_p95": 2000, "active_connections": 1000}[seed]))
	}
	// Output:
	// cpu_utilization_percentage → shoal_cpu_utilization_ratio 0.7
	// response_time_p95 → shoal_response_time_p95_seconds 2
	// active_connections → shoal_active_connections 1000
}
