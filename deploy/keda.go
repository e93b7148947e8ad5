package deploy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/deploy/crd"
)

// Metric names shoal exports, which KEDA's Prometheus queries read.
const (
	// MetricActiveConnections is a gauge of the connections an instance is serving.
	MetricActiveConnections = "shoal_active_connections"
	// MetricRequestQueueDepth is a gauge of the requests an instance has accepted and not yet
	// started.
	MetricRequestQueueDepth = "shoal_request_queue_depth"
	// MetricRequestDuration is the histogram of request durations in seconds; its p95 is the
	// seed's response_time_p95.
	MetricRequestDuration = "shoal_http_request_duration_seconds"
	// MetricJobQueueDepth is the jobs package's gauge of jobs available to run now, by queue.
	// Every process using the jobs package reports the whole backlog of the shared store.
	MetricJobQueueDepth = "job_queue_depth"
)

// kedaFiles is the keda target: one ScaledObject.
func (s *spec) kedaFiles() ([]File, error) {
	if !s.c.Scaling.Enabled {
		s.warn("scaling.enabled", "is false, so there is nothing to autoscale and no ScaledObject is generated")
		return nil, nil
	}
	obj := s.scaledObject()
	comment := "# Replaces hpa.yaml of the kubernetes target: KEDA creates the HPA itself, and two\n" +
		"# autoscalers for one Deployment fight. Apply one or the other.\n"
	if kind, why := Choose(s.c); kind == AutoscalerKEDA {
		s.notes = append(s.notes, "the kubernetes target already writes this ScaledObject (its scaledobject.yaml) instead of an HPA: "+why)
	} else {
		s.warn("deploy.autoscaler", "the kubernetes and helm targets write an HPA for this configuration (%s); apply this ScaledObject instead of their hpa.yaml, never beside it, or set deploy.autoscaler: keda", why)
	}
	tree, err := toTree(obj)
	if err != nil {
		return nil, err
	}
	f, err := s.treeFile("scaledobject.yaml", tree, comment)
	if err != nil {
		return nil, err
	}
	return []File{f}, nil
}

// scaledObject expresses every autoscaling input as KEDA triggers: CPU and memory targets as
// the HPA has them, and one Prometheus trigger per auto_scaling rule an HPA cannot express.
//
// The queries (label selectors as the Prometheus Operator sets them for a ServiceMonitor):
//
//	response_time_p95:   histogram_quantile(0.95, sum by (le) (rate(shoal_http_request_duration_seconds_bucket{namespace="NS",job="SERVICE"}[W])))
//	                     metricType Value, threshold in seconds (the rule's milliseconds / 1000)
//	active_connections:  sum(shoal_active_connections{namespace="NS",job="SERVICE"})
//	                     metricType AverageValue: the threshold is per instance
//	request_queue_depth: sum(shoal_request_queue_depth{namespace="NS",job="SERVICE"})
//	                     metricType AverageValue: the threshold is per instance
//	job_queue_depth:     sum(max by (queue) (job_queue_depth{namespace="NS",job="SERVICE"}))
//	                     every pod reports the whole shared backlog, so the pods' values are
//	                     not added up: the largest per queue, summed over the queues;
//	                     metricType AverageValue: the threshold is jobs per instance
//
// W, the rate window, is four evaluation intervals and at least one minute, so a window always
// holds several scrapes.
func (s *spec) scaledObject() *crd.ScaledObject {
	c := s.c
	in := c.Scaling.Instances
	as := c.Observability.AutoScaling
	utilisation := func(kind string, percent int) crd.ScaleTrigger {
		return crd.ScaleTrigger{Type: kind, MetricType: autoscalingv2.UtilizationMetricType,
			Metadata: map[string]string{"value": strconv.Itoa(percent)}}
	}
	triggers := []crd.ScaleTrigger{
		utilisation("cpu", in.TargetCPUUtilization),
		utilisation("memory", in.TargetMemoryUtilization),
	}
	window := max(4*as.Interval.D(), time.Minute)
	sel := fmt.Sprintf(`{namespace=%q,job=%q}`, s.namespace, s.service)
	exported := c.Observability.ScalingMetrics
	names := map[string]int{}
	if !as.Enabled && len(as.Metrics) > 0 {
		s.warn("observability.auto_scaling.enabled", "is false, so the rules below it are not turned into triggers; only CPU and memory targets scale")
	}
	for i, r := range as.Metrics {
		if !as.Enabled {
			break
		}
		p := fmt.Sprintf("observability.auto_scaling.metrics[%d]", i)
		switch r.Metric {
		case config.MetricCPUUtilization, config.MetricMemoryUtilization:
			target, field := in.TargetCPUUtilization, "target_cpu_utilization"
			if r.Metric == config.MetricMemoryUtilization {
				target, field = in.TargetMemoryUtilization, "target_memory_utilization"
			}
			switch {
			case r.Action == config.ScaleDown:
				s.warn(p, "an HPA scales down by itself when %s stays below the target (%d%%, scaling.instances.%s); the threshold %g is not used", r.Metric, target, field, r.Threshold)
			case r.Threshold != float64(target):
				s.warn(p, "the %s trigger uses scaling.instances.%s (%d%%), not this rule's threshold %g", r.Metric, field, target, r.Threshold)
			}
			continue
		case config.MetricInstanceCount:
			s.warn(p, "scaling on the instance count itself has no meaning for an HPA; the rule is left out — use min_instances and max_instances")
			continue
		}
		if r.Action == config.ScaleDown {
			s.warn(p, "an HPA scales down by itself when %s falls below the scale-up threshold; a separate scale_down threshold (%g) is not expressible and is left out", r.Metric, r.Threshold)
			continue
		}
		switch {
		case r.Metric == config.MetricJobQueueDepth:
			// The jobs package exports it, not the scaling metrics.
			if !c.Jobs.Enabled {
				s.warn(p, "job_queue_depth is exported by the service's job workers, and jobs.enabled is false, so the trigger's query finds nothing")
			}
		case !exported.Enabled || !slices.Contains(exported.Metrics, r.Metric):
			s.warn(p, "%s is not among observability.scaling_metrics.metrics (or they are disabled), so the trigger's query finds nothing", r.Metric)
		}
		if r.Cooldown != in.ScaleUpCooldown {
			s.warn(p+".cooldown", "KEDA's HPA has one scale-up stabilisation window for every trigger: scaling.instances.scale_up_cooldown (%s), not this rule's %s", in.ScaleUpCooldown, r.Cooldown)
		}
		if r.Step != 1 {
			s.warn(p+".step", "an HPA computes how many replicas to add from the metric's ratio to its target; a fixed step of %d is not expressible", r.Step)
		}
		var query, threshold string
		metricType := autoscalingv2.AverageValueMetricType
		switch r.Metric {
		case config.MetricResponseTimeP95:
			query = fmt.Sprintf("histogram_quantile(0.95, sum by (le) (rate(%s_bucket%s[%s])))", MetricRequestDuration, sel, promDuration(window))
			threshold = strconv.FormatFloat(r.Threshold/1000, 'f', -1, 64)
			// A latency is not divided among replicas.
			metricType = autoscalingv2.ValueMetricType
		case config.MetricActiveConnections:
			query = fmt.Sprintf("sum(%s%s)", MetricActiveConnections, sel)
			threshold = strconv.FormatFloat(r.Threshold, 'f', -1, 64)
		case config.MetricRequestQueueDepth:
			query = fmt.Sprintf("sum(%s%s)", MetricRequestQueueDepth, sel)
			threshold = strconv.FormatFloat(r.Threshold, 'f', -1, 64)
		case config.MetricJobQueueDepth:
			query = fmt.Sprintf("sum(max by (queue) (%s%s))", MetricJobQueueDepth, sel)
			threshold = strconv.FormatFloat(r.Threshold, 'f', -1, 64)
		default:
			s.warn(p, "%s has no Prometheus query; the rule is left out", r.Metric)
			continue
		}
		name := strings.ReplaceAll(r.Metric, "_", "-")
		if n := names[name]; n > 0 {
			names[name] = n + 1
			name = fmt.Sprintf("%s-%d", name, n+1)
		} else {
			names[name] = 1
		}
		triggers = append(triggers, crd.ScaleTrigger{Type: "prometheus", Name: name, MetricType: metricType,
			Metadata: map[string]string{"serverAddress": s.prometheus, "query": query, "threshold": threshold}})
	}
	return &crd.ScaledObject{
		TypeMeta:   metav1.TypeMeta{APIVersion: crd.KEDAAPIVersion, Kind: "ScaledObject"},
		ObjectMeta: s.meta(s.workload),
		Spec: crd.ScaledObjectSpec{
			ScaleTargetRef:  crd.ScaleTarget{APIVersion: "apps/v1", Kind: "Deployment", Name: s.workload},
			PollingInterval: ptr(as.Interval.Seconds()),
			MinReplicaCount: ptr(int32(in.MinInstances)),
			MaxReplicaCount: ptr(int32(in.MaxInstances)),
			Advanced:        &crd.AdvancedConfig{HorizontalPodAutoscalerConfig: &crd.HorizontalPodAutoscalerConfig{Behavior: s.behavior()}},
			Triggers:        triggers,
		},
	}
}

// promDuration formats d in Prometheus' duration syntax: whole seconds, minutes or hours.
func promDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", (d+time.Second-1)/time.Second)
	}
}
