package telemetry

import (
	"testing"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/health"
)

// The generators name the health package's metrics without importing it; keep them in step.
func TestHealthMetricNames(t *testing.T) {
	t.Parallel()
	if healthCheckUp != health.MetricCheckUp || healthReady != health.MetricReady {
		t.Fatal("telemetry's names of the health metrics differ from the health package's")
	}
}

// Every seed metric has a Prometheus name and an alert name.
func TestScalingMetrics_CoverTheSeed(t *testing.T) {
	t.Parallel()
	if len(ScalingMetrics) != len(config.Metrics) {
		t.Fatalf("%d scaling metrics, the seed has %d", len(ScalingMetrics), len(config.Metrics))
	}
	for i, seed := range config.Metrics {
		if ScalingMetrics[i].Seed != seed || camel[seed] == "" {
			t.Errorf("scaling metric %d: %+v, want seed %s with an alert name", i, ScalingMetrics[i], seed)
		}
	}
}
