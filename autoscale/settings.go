package autoscale

import (
	"fmt"
	"strings"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// Kind says how a metric turns into a replica count, after the HPA's metric source types.
type Kind int

// Metric kinds.
const (
	// Utilization is a per-instance percentage of what the instance may use (CPU, memory):
	// the HPA's Resource metric with a Utilization target. Readiness and missing samples follow
	// the HPA's rules.
	Utilization Kind = iota + 1
	// AverageValue is a fleet-wide total whose target is per instance (active_connections,
	// request_queue_depth, job_queue_depth): the HPA's External metric with an AverageValue
	// target.
	AverageValue
	// Value is a fleet-wide value compared with the target as is (response_time_p95): the
	// HPA's Object metric with a Value target.
	Value
)

// KindOf returns the kind of a seed metric, or 0 for instance_count and unknown names.
func KindOf(metric string) Kind {
	switch metric {
	case config.MetricCPUUtilization, config.MetricMemoryUtilization:
		return Utilization
	case config.MetricActiveConnections, config.MetricRequestQueueDepth, config.MetricJobQueueDepth:
		return AverageValue
	case config.MetricResponseTimeP95:
		return Value
	}
	return 0
}

// unit is how a metric's values are written in a decision.
func unit(metric string) string {
	switch {
	case strings.HasSuffix(metric, "_percentage"):
		return "%"
	case metric == config.MetricResponseTimeP95:
		return "ms"
	}
	return ""
}

// Target is one proportional policy: steer Metric to Value (in the metric's unit, per instance
// for AverageValue metrics).
type Target struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	// Source names the configuration field the target comes from.
	Source string `json:"source"`
}

// Rule is one of the seed's threshold rules.
type Rule struct {
	Metric    string        `json:"metric"`
	Threshold float64       `json:"threshold"`
	Action    string        `json:"action"` // config.ScaleUp or config.ScaleDown
	Cooldown  time.Duration `json:"cooldown"`
	Step      int           `json:"step"`
	// Source names the configuration field, e.g. "observability.auto_scaling.metrics[2]".
	Source string `json:"source"`
}

// String describes the rule as "response_time_p95 > 2000ms (rule 2)".
func (r Rule) String() string {
	cmp := ">"
	if r.Action == config.ScaleDown {
		cmp = "<"
	}
	return fmt.Sprintf("%s %s %s%s", r.Metric, cmp, num(r.Threshold), unit(r.Metric))
}

// RatePolicy allows a change of Value instances (Pods) or Value percent (Percent) of the
// instances at the start of any Period.
type RatePolicy struct {
	Percent bool          `json:"percent"`
	Value   int           `json:"value"`
	Period  time.Duration `json:"period"`
}

// Behavior is how one direction of change is stabilised and limited (the HPA's
// HPAScalingRules).
type Behavior struct {
	// Window is the stabilisation window: a scale-up goes to the lowest recommendation of the
	// window, a scale-down to the highest.
	Window time.Duration `json:"window"`
	// Select is config.SelectMax, SelectMin or SelectDisabled.
	Select   string       `json:"select"`
	Policies []RatePolicy `json:"policies"`
}

// Settings are everything the autoscaler decides by. SettingsFrom reads them from a
// configuration; tests and the simulator may build them directly.
type Settings struct {
	Min, Max int
	// Interval between evaluations; the inputs are averages over it.
	Interval time.Duration
	// Tolerance of proportional control (the HPA's 0.1).
	Tolerance float64
	// CPUInitializationPeriod after an instance's start during which its CPU counts only once
	// it has been ready a whole Interval (the HPA's 5 minutes).
	CPUInitializationPeriod time.Duration
	Targets                 []Target
	Rules                   []Rule
	ScaleUp, ScaleDown      Behavior
}

// HPAScaleUp and HPAScaleDown are the HPA's default behaviours (autoscaling/v2): grow by 4
// instances or 100% per 15 s, whichever is more, with no window; shrink by up to 100% per 15 s
// after a 5 minute window.
var (
	HPAScaleUp = Behavior{Window: 0, Select: config.SelectMax, Policies: []RatePolicy{
		{Value: 4, Period: 15 * time.Second}, {Percent: true, Value: 100, Period: 15 * time.Second}}}
	HPAScaleDown = Behavior{Window: 5 * time.Minute, Select: config.SelectMax, Policies: []RatePolicy{
		{Percent: true, Value: 100, Period: 15 * time.Second}}}
)

// SettingsFrom maps a configuration onto Settings:
//
//	scaling.instances.min_instances, max_instances   → Min, Max (minReplicas, maxReplicas)
//	scaling.instances.target_cpu_utilization         → Target cpu_utilization_percentage (Resource cpu, Utilization)
//	scaling.instances.target_memory_utilization      → Target memory_utilization_percentage (Resource memory, Utilization)
//	scaling.instances.scale_up_cooldown              → ScaleUp.Window (behavior.scaleUp.stabilizationWindowSeconds)
//	scaling.instances.scale_down_cooldown            → ScaleDown.Window (behavior.scaleDown.stabilizationWindowSeconds)
//	observability.auto_scaling.scale_up/scale_down   → ScaleUp/ScaleDown.Select and Policies (behavior.*.selectPolicy, policies)
//	observability.auto_scaling.tolerance             → Tolerance (--horizontal-pod-autoscaler-tolerance)
//	observability.auto_scaling.cpu_initialization_period → CPUInitializationPeriod (--horizontal-pod-autoscaler-cpu-initialization-period)
//	observability.auto_scaling.interval              → Interval (--horizontal-pod-autoscaler-sync-period)
//	observability.auto_scaling.metrics[i] with an action → Rules (no HPA equivalent: KEDA triggers at best)
//	observability.auto_scaling.metrics[i].target     → Target on the rule's metric (Pods/External/Object metric)
func SettingsFrom(c *config.Config) Settings {
	in := c.Scaling.Instances
	as := c.Observability.AutoScaling
	s := Settings{
		Min: in.MinInstances, Max: in.MaxInstances,
		Interval: as.Interval.D(), Tolerance: as.Tolerance, CPUInitializationPeriod: as.CPUInitializationPeriod.D(),
		Targets: []Target{
			{Metric: config.MetricCPUUtilization, Value: float64(in.TargetCPUUtilization), Source: "scaling.instances.target_cpu_utilization"},
			{Metric: config.MetricMemoryUtilization, Value: float64(in.TargetMemoryUtilization), Source: "scaling.instances.target_memory_utilization"},
		},
		ScaleUp:   behaviorFrom(as.ScaleUp, in.ScaleUpCooldown.D()),
		ScaleDown: behaviorFrom(as.ScaleDown, in.ScaleDownCooldown.D()),
	}
	for i, r := range as.Metrics {
		src := fmt.Sprintf("observability.auto_scaling.metrics[%d]", i)
		if r.Target > 0 && KindOf(r.Metric) != 0 {
			s.Targets = append(s.Targets, Target{Metric: r.Metric, Value: r.Target, Source: src + ".target"})
		}
		if r.Action != "" {
			s.Rules = append(s.Rules, Rule{Metric: r.Metric, Threshold: r.Threshold, Action: r.Action,
				Cooldown: r.Cooldown.D(), Step: max(r.Step, 1), Source: src})
		}
	}
	return s
}

// Uses lists the metrics the targets and rules read, each once, in the order they are named.
func (s Settings) Uses() []string {
	var out []string
	add := func(m string) {
		for _, o := range out {
			if o == m {
				return
			}
		}
		out = append(out, m)
	}
	for _, t := range s.Targets {
		add(t.Metric)
	}
	for _, r := range s.Rules {
		add(r.Metric)
	}
	return out
}

func behaviorFrom(b config.ScalingBehavior, window time.Duration) Behavior {
	out := Behavior{Window: window, Select: b.SelectPolicy}
	for _, p := range b.Policies {
		out.Policies = append(out.Policies, RatePolicy{Percent: p.Type == config.PolicyPercent, Value: p.Value, Period: p.Period.D()})
	}
	return out
}

// Enabled reports whether shoal autoscales with this configuration on target, and why (or why
// not), in one sentence for `shoal scaling status`.
func Enabled(c *config.Config, target string) (bool, string) {
	as := c.Observability.AutoScaling
	switch {
	case !c.Scaling.Enabled:
		return false, "off: scaling.enabled is false"
	case !as.Enabled:
		return false, "off: observability.auto_scaling.enabled is false"
	case as.Target != target && as.Target == config.AutoscaleTargetKubernetes:
		return false, "off here: observability.auto_scaling.target is kubernetes, so `shoal autoscale` scales the Deployment"
	case as.Target != target:
		return false, "off here: observability.auto_scaling.target is " + as.Target
	}
	s := SettingsFrom(c)
	var targets []string
	for _, t := range s.Targets {
		targets = append(targets, fmt.Sprintf("%s %s%s", short(t.Metric), num(t.Value), unit(t.Metric)))
	}
	return true, fmt.Sprintf("on: every %s, %d–%d instances, targets %s, %d threshold %s",
		as.Interval, s.Min, s.Max, strings.Join(targets, ", "), len(s.Rules), plural(len(s.Rules), "rule", "rules"))
}

// short abbreviates a seed metric name for one-line summaries.
func short(metric string) string {
	switch metric {
	case config.MetricCPUUtilization:
		return "cpu"
	case config.MetricMemoryUtilization:
		return "memory"
	}
	return metric
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
