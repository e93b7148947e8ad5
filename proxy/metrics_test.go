package proxy

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics_NamesAndValues(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	h := startProxy(t, noHealth(Options{Registerer: reg}), a, b)
	for i := 0; i < 4; i++ {
		get(t, h.url+"/")
	}
	// The proxy counts a request once its response is flushed, which may be just after the
	// client has read it; wait for the last count to land rather than race it.
	waitFor(t, "all four requests counted", func() bool {
		n, err := testutil.GatherAndCount(reg, "shoal_proxy_requests_total")
		if err != nil || n != 2 {
			return false
		}
		return testutil.ToFloat64(h.p.metrics.requests.WithLabelValues("a", "2xx", "GET"))+
			testutil.ToFloat64(h.p.metrics.requests.WithLabelValues("b", "2xx", "GET")) == 4
	})
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP shoal_proxy_requests_total Requests answered by the proxy, by instance (empty when the proxy answered itself), status class and method.
# TYPE shoal_proxy_requests_total counter
shoal_proxy_requests_total{code="2xx",instance="a",method="GET"} 2
shoal_proxy_requests_total{code="2xx",instance="b",method="GET"} 2
# HELP shoal_proxy_instance_healthy 1 when an instance passes its active health checks.
# TYPE shoal_proxy_instance_healthy gauge
shoal_proxy_instance_healthy{instance="a"} 1
shoal_proxy_instance_healthy{instance="b"} 1
# HELP shoal_proxy_instance_breaker_state Circuit-breaker state of an instance: 0 closed, 1 half-open, 2 open, -1 disabled.
# TYPE shoal_proxy_instance_breaker_state gauge
shoal_proxy_instance_breaker_state{instance="a"} -1
shoal_proxy_instance_breaker_state{instance="b"} -1
# HELP shoal_proxy_instances Instances known to the proxy: registered (not draining) and eligible (healthy, not ejected).
# TYPE shoal_proxy_instances gauge
shoal_proxy_instances{state="eligible"} 2
shoal_proxy_instances{state="registered"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shoal_proxy_requests_total",
		"shoal_proxy_instance_healthy", "shoal_proxy_instance_breaker_state", "shoal_proxy_instances"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "shoal_proxy_request_duration_seconds"); n != 2 {
		t.Errorf("latency histogram series = %d, want one per instance", n)
	}
}
