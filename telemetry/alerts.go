package telemetry

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shoal-sh/shoal/config"
)

// The generated rules and dashboard select the service's series by job="<name>": scrape the
// service's instances under a job named after it (the generated Kubernetes ServiceMonitor and
// compose Prometheus configuration do).

// Metrics of the health package's collector (health.MetricCheckUp, health.MetricReady), named
// here so that importing telemetry does not link the health checks' clients.
const (
	healthCheckUp = "shoal_health_check_up"
	healthReady   = "shoal_health_ready"
)

func jobSelector(cfg *config.Config, extra ...string) string {
	return "{" + strings.Join(append([]string{`job="` + cfg.Name + `"`}, extra...), ",") + "}"
}

// p95Expr is the fleet's 95th-percentile latency from the histogram, over window.
func p95Expr(cfg *config.Config, q, window string) string {
	return fmt.Sprintf("histogram_quantile(%s, sum by (le) (rate(%s_bucket%s[%s])))", q, MetricRequestDuration, jobSelector(cfg), window)
}

// scalingExpr is the fleet-wide value of a scaling metric, in Prometheus units: the sum of
// instance counts, the average over instances of the rest, and p95 from the histogram.
func scalingExpr(cfg *config.Config, m ScalingMetric, window string) string {
	if m.Seed == config.MetricResponseTimeP95 {
		return p95Expr(cfg, "0.95", window)
	}
	return fmt.Sprintf("%s(%s%s)", m.Aggregate, m.Name, jobSelector(cfg))
}

// exported reports whether the service exports the scaling metric seed.
func exported(cfg *config.Config, seed string) bool {
	if seed == config.MetricResponseTimeP95 {
		return true // computed from the latency histogram, which is always exported
	}
	sm := cfg.Observability.ScalingMetrics
	if !sm.Enabled {
		return false
	}
	for _, m := range sm.Metrics {
		if m == seed {
			return true
		}
	}
	return false
}

// camel names a seed metric in an alert name: "cpu_utilization_percentage" → "CPUUtilization".
var camel = map[string]string{
	config.MetricInstanceCount:     "InstanceCount",
	config.MetricCPUUtilization:    "CPUUtilization",
	config.MetricMemoryUtilization: "MemoryUtilization",
	config.MetricActiveConnections: "ActiveConnections",
	config.MetricRequestQueueDepth: "RequestQueueDepth",
	config.MetricResponseTimeP95:   "ResponseTimeP95",
}

// promDuration writes d as a Prometheus duration ("90s", "5m", "1h"), rounded up to a second.
func promDuration(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	switch {
	case s == 0:
		return "0s"
	case s%3600 == 0:
		return strconv.FormatInt(s/3600, 10) + "h"
	case s%60 == 0:
		return strconv.FormatInt(s/60, 10) + "m"
	}
	return strconv.FormatInt(s, 10) + "s"
}

// threshold formats a threshold converted to Prometheus units, without float noise.
func threshold(m ScalingMetric, v float64) string {
	return strconv.FormatFloat(m.ToPrometheus(v), 'g', -1, 64)
}

// seedValue formats a threshold as shoal.yml writes it, with its unit.
func seedValue(m ScalingMetric, v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	switch m.SeedUnit {
	case "%":
		return s + "%"
	case "ms":
		return s + "ms"
	}
	return s
}

type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// AlertRules returns Prometheus alerting rules (the YAML of a rule file, `promtool check
// rules`-clean) for the service cfg describes, from its thresholds:
//
//   - each scale_up rule of observability.auto_scaling: its metric still past the threshold
//     after the rule's cooldown, i.e. scaling is not keeping up (or is capped);
//   - the fleet at max_instances for 15 minutes, and below min_instances for 5;
//   - CPU and memory above target_cpu_utilization and target_memory_utilization for 15 minutes;
//   - a critical health check failing on an instance (critical), a non-critical one (warning),
//     and an instance not ready;
//   - more than 5% of requests answered with 5xx for 5 minutes.
//
// Rules on a scaling metric are left out when the service does not export it. Every rule has
// a severity label (critical or warning) and summary and description annotations.
func AlertRules(cfg *config.Config) ([]byte, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("generating alert rules: the configuration has no name")
	}
	var rules []rule
	add := func(r rule) {
		r.Labels = map[string]string{"severity": r.Labels["severity"], "service": cfg.Name}
		rules = append(rules, r)
	}
	sev := func(s string) map[string]string { return map[string]string{"severity": s} }
	in := cfg.Scaling.Instances
	instances, _ := LookupScaling(config.MetricInstanceCount)

	// Scale-up rules that do not take effect.
	seen := map[string]int{}
	for _, r := range cfg.Observability.AutoScaling.Metrics {
		m, ok := LookupScaling(r.Metric)
		if r.Action != config.ScaleUp || !ok || !exported(cfg, r.Metric) {
			continue
		}
		name := "Shoal" + camel[r.Metric] + "AboveScaleUpThreshold"
		if seen[name]++; seen[name] > 1 {
			name += strconv.Itoa(seen[name])
		}
		forDur := r.Cooldown.D()
		if forDur < time.Minute {
			forDur = time.Minute
		}
		add(rule{
			Alert:  name,
			Expr:   fmt.Sprintf("%s > %s", scalingExpr(cfg, m, "5m"), threshold(m, r.Threshold)),
			For:    promDuration(forDur),
			Labels: sev("warning"),
			Annotations: map[string]string{
				"summary": fmt.Sprintf("%s: %s has stayed above its scale-up threshold of %s", cfg.Name, r.Metric, seedValue(m, r.Threshold)),
				"description": fmt.Sprintf("The scale_up rule on %s (threshold %s, cooldown %s) should have added instances by now; "+
					"the fleet may be at max_instances (%d) or the autoscaler disabled. Current value: {{ $value }} (%s).",
					r.Metric, seedValue(m, r.Threshold), r.Cooldown, in.MaxInstances, unitOf(m)),
			},
		})
	}

	if exported(cfg, config.MetricInstanceCount) {
		add(rule{
			Alert:  "ShoalAtMaxInstances",
			Expr:   fmt.Sprintf("%s >= %d", scalingExpr(cfg, instances, ""), in.MaxInstances),
			For:    "15m",
			Labels: sev("warning"),
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("%s has run at max_instances (%d) for 15 minutes", cfg.Name, in.MaxInstances),
				"description": "The autoscaler cannot add instances; raise scaling.instances.max_instances or find what drives the load.",
			},
		})
		add(rule{
			Alert: "ShoalBelowMinInstances",
			// "or vector(0)": no instance reporting at all is the worst case, not no data.
			Expr:   fmt.Sprintf("(%s or vector(0)) < %d", scalingExpr(cfg, instances, ""), in.MinInstances),
			For:    "5m",
			Labels: sev("critical"),
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("%s runs fewer than min_instances (%d)", cfg.Name, in.MinInstances),
				"description": "Only {{ $value }} instances report; instances are crashing or failing to start.",
			},
		})
	}

	for _, t := range []struct {
		seed, alert string
		target      int
	}{
		{config.MetricCPUUtilization, "ShoalCPUAboveTarget", in.TargetCPUUtilization},
		{config.MetricMemoryUtilization, "ShoalMemoryAboveTarget", in.TargetMemoryUtilization},
	} {
		m, _ := LookupScaling(t.seed)
		if t.target <= 0 || !exported(cfg, t.seed) {
			continue
		}
		add(rule{
			Alert:  t.alert,
			Expr:   fmt.Sprintf("%s > %s", scalingExpr(cfg, m, ""), threshold(m, float64(t.target))),
			For:    "15m",
			Labels: sev("warning"),
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("%s: average %s above its target of %d%% for 15 minutes", cfg.Name, t.seed, t.target),
				"description": "Average over instances: {{ $value | humanizePercentage }}. The fleet runs hotter than scaling.instances targets.",
			},
		})
	}

	var critical, nonCritical bool
	var longest time.Duration
	for _, c := range cfg.Health.Checks {
		critical = critical || c.Critical
		nonCritical = nonCritical || !c.Critical
		longest = max(longest, c.Interval.D())
	}
	checkFor := promDuration(max(time.Minute, 3*longest))
	if critical {
		add(rule{
			Alert:  "ShoalHealthCheckFailing",
			Expr:   fmt.Sprintf("%s%s == 0", healthCheckUp, jobSelector(cfg, `critical="true"`)),
			For:    checkFor,
			Labels: sev("critical"),
			Annotations: map[string]string{
				"summary":     cfg.Name + ": critical health check {{ $labels.check }} fails on {{ $labels.instance }}",
				"description": "The instance answers 503 on " + cfg.Health.Endpoint + " and is out of rotation; see the check's error there.",
			},
		})
	}
	if nonCritical {
		add(rule{
			Alert:  "ShoalHealthCheckDegraded",
			Expr:   fmt.Sprintf("%s%s == 0", healthCheckUp, jobSelector(cfg, `critical="false"`)),
			For:    promDuration(max(5*time.Minute, 3*longest)),
			Labels: sev("warning"),
			Annotations: map[string]string{
				"summary":     cfg.Name + ": non-critical health check {{ $labels.check }} fails on {{ $labels.instance }}",
				"description": "The service still serves, degraded; see the check's error on " + cfg.Health.Endpoint + ".",
			},
		})
	}
	if cfg.Health.Enabled {
		add(rule{
			Alert:  "ShoalInstanceNotReady",
			Expr:   fmt.Sprintf("%s%s == 0", healthReady, jobSelector(cfg)),
			For:    promDuration(max(5*time.Minute, 2*in.Startup.InitialDelay.D())),
			Labels: sev("warning"),
			Annotations: map[string]string{
				"summary":     cfg.Name + ": {{ $labels.instance }} has not been ready for traffic",
				"description": "A critical check has not passed, or the instance is stuck draining.",
			},
		})
	}

	add(rule{
		Alert: "ShoalHighErrorRate",
		Expr: fmt.Sprintf("sum(rate(%s%s[5m])) / sum(rate(%s%s[5m])) > 0.05",
			MetricRequests, jobSelector(cfg, `code=~"5.."`), MetricRequests, jobSelector(cfg)),
		For:    "5m",
		Labels: sev("critical"),
		Annotations: map[string]string{
			"summary":     cfg.Name + ": more than 5% of requests fail with 5xx",
			"description": "{{ $value | humanizePercentage }} of requests answered 5xx over the last 5 minutes.",
		},
	})

	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Prometheus alerting rules for %s, generated by `shoal generate alerts` from its thresholds.\n", cfg.Name)
	fmt.Fprintf(&buf, "# They select job=%q: scrape the service's instances under that job name.\n", cfg.Name)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(ruleFile{Groups: []ruleGroup{{Name: "shoal-" + cfg.Name, Rules: rules}}}); err != nil {
		return nil, fmt.Errorf("generating alert rules: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("generating alert rules: %w", err)
	}
	return buf.Bytes(), nil
}

// unitOf names the Prometheus unit of m for people.
func unitOf(m ScalingMetric) string {
	switch m.SeedUnit {
	case "%":
		return "ratio 0-1"
	case "ms":
		return "seconds"
	}
	return "count"
}
