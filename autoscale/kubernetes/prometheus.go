package kubernetes

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/telemetry"
)

// Metrics reads the metrics of a Deployment's pods. Methods are called once per evaluation.
type Metrics interface {
	// PerPod returns a utilisation metric (cpu_utilization_percentage,
	// memory_utilization_percentage) in percent by pod name, averaged over window; a pod
	// without samples is left out.
	PerPod(ctx context.Context, metric string, window time.Duration) (map[string]float64, error)
	// Fleet returns a fleet-wide metric over window: response_time_p95 in milliseconds,
	// active_connections and request_queue_depth summed over the pods, job_queue_depth summed
	// over the queues; ok is false when there are no samples.
	Fleet(ctx context.Context, metric string, window time.Duration) (v float64, ok bool, err error)
}

// Prometheus reads the metrics shoal's telemetry exports (telemetry.ScalingMetrics) from a
// Prometheus server that scrapes the pods, as the ServiceMonitor of `shoal generate kubernetes`
// has it do: series labelled with namespace, job (the Service) and pod.
type Prometheus struct {
	API       promv1.API
	Namespace string
	Job       string
}

var _ Metrics = (*Prometheus)(nil)

// NewPrometheus returns a reader of the Prometheus server at address for the pods of job
// (the Service's name) in namespace.
func NewPrometheus(address, namespace, job string) (*Prometheus, error) {
	c, err := api.NewClient(api.Config{Address: address})
	if err != nil {
		return nil, fmt.Errorf("the Prometheus address %q: %w; set deploy.prometheus or pass --prometheus", address, err)
	}
	return &Prometheus{API: promv1.NewAPI(c), Namespace: namespace, Job: job}, nil
}

func (p *Prometheus) selector() string {
	return fmt.Sprintf(`{namespace=%q,job=%q}`, p.Namespace, p.Job)
}

// rangeOf is the PromQL range for window: whole seconds, at least one minute so that it holds
// several scrapes.
func rangeOf(window time.Duration) string {
	return fmt.Sprintf("%ds", int(max(window, time.Minute)/time.Second))
}

// Query returns the PromQL that PerPod or Fleet sends for metric.
func (p *Prometheus) Query(metric string, window time.Duration) (string, error) {
	if metric == config.MetricJobQueueDepth {
		// Every process of package jobs reports the whole backlog of each queue (it reads it
		// from the database), so the pods' series are one value per queue, not parts of it.
		return fmt.Sprintf("sum(max by (queue) (avg_over_time(%s%s[%s])))", config.MetricJobQueueDepth, p.selector(), rangeOf(window)), nil
	}
	sm, ok := telemetry.LookupScaling(metric)
	if !ok {
		return "", fmt.Errorf("%s is not a scaling metric", metric)
	}
	sel, w := p.selector(), rangeOf(window)
	switch metric {
	case config.MetricCPUUtilization, config.MetricMemoryUtilization:
		return fmt.Sprintf("100 * avg by (pod) (avg_over_time(%s%s[%s]))", sm.Name, sel, w), nil
	case config.MetricResponseTimeP95:
		return fmt.Sprintf("1000 * histogram_quantile(0.95, sum by (le) (rate(%s_bucket%s[%s])))", telemetry.MetricRequestDuration, sel, w), nil
	case config.MetricActiveConnections, config.MetricRequestQueueDepth:
		return fmt.Sprintf("sum(avg_over_time(%s%s[%s]))", sm.Name, sel, w), nil
	}
	return "", fmt.Errorf("%s has no Prometheus query", metric)
}

func (p *Prometheus) vector(ctx context.Context, query string) (model.Vector, error) {
	v, _, _, err := p.API.Query(ctx, query, time.Now())
	if err != nil {
		return nil, fmt.Errorf("querying Prometheus (%s): %w", query, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("querying Prometheus (%s): got a %s, want a vector", query, v.Type())
	}
	return vec, nil
}

// PerPod implements Metrics.
func (p *Prometheus) PerPod(ctx context.Context, metric string, window time.Duration) (map[string]float64, error) {
	q, err := p.Query(metric, window)
	if err != nil {
		return nil, err
	}
	vec, err := p.vector(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(vec))
	for _, s := range vec {
		v := float64(s.Value)
		if pod := string(s.Metric["pod"]); pod != "" && !math.IsNaN(v) && !math.IsInf(v, 0) {
			out[pod] = v
		}
	}
	return out, nil
}

// Fleet implements Metrics.
func (p *Prometheus) Fleet(ctx context.Context, metric string, window time.Duration) (float64, bool, error) {
	q, err := p.Query(metric, window)
	if err != nil {
		return 0, false, err
	}
	vec, err := p.vector(ctx, q)
	if err != nil || len(vec) == 0 {
		return 0, false, err
	}
	v := float64(vec[0].Value)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, nil
	}
	return v, true, nil
}
