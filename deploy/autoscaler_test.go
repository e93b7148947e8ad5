package deploy

import (
	"slices"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/config"
)

func files(out *Output) []string {
	var ps []string
	for _, f := range out.Files {
		ps = append(ps, f.Path)
	}
	return ps
}

// TestChoose checks that the kubernetes target writes one autoscaler: KEDA when a rule needs
// it, an HPA otherwise, or what deploy.autoscaler says; and says which.
func TestChoose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src, want, why string
	}{
		{"rules on latency need KEDA", `
name: svc
observability:
  auto_scaling:
    enabled: true
    metrics: [{metric: response_time_p95, threshold: 500, action: scale_up}]
`, AutoscalerKEDA, "response_time_p95, which an HPA cannot express"},
		{"CPU rules alone are an HPA", `
name: svc
observability:
  auto_scaling:
    enabled: true
    metrics: [{metric: cpu_utilization_percentage, threshold: 70, action: scale_up}]
`, AutoscalerHPA, "no auto_scaling rule needs more than CPU and memory"},
		{"disabled rules are an HPA", `
name: svc
observability:
  auto_scaling:
    enabled: false
    metrics: [{metric: active_connections, threshold: 5, action: scale_up}]
`, AutoscalerHPA, "no auto_scaling rule"},
		{"configured hpa wins", `
name: svc
deploy: {autoscaler: hpa}
observability:
  auto_scaling:
    enabled: true
    metrics: [{metric: active_connections, threshold: 5, action: scale_up}]
`, AutoscalerHPA, "deploy.autoscaler is hpa"},
		{"configured keda wins", "name: svc\ndeploy: {autoscaler: keda}\n", AutoscalerKEDA, "deploy.autoscaler is keda"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tc.src), "shoal.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
			if err != nil {
				t.Fatal(err)
			}
			kind, why := Choose(c)
			if kind != tc.want || !strings.Contains(why, tc.why) {
				t.Errorf("Choose = %s, %q; want %s, …%s…", kind, why, tc.want, tc.why)
			}
			out, err := Generate(c, Kubernetes, Options{Image: "svc:1.0"})
			if err != nil {
				t.Fatal(err)
			}
			hpa, so := slices.Contains(files(out), "hpa.yaml"), slices.Contains(files(out), "scaledobject.yaml")
			if hpa == so || hpa != (tc.want == AutoscalerHPA) {
				t.Errorf("kubernetes writes %v; want only the %s", files(out), tc.want)
			}
			if !slices.ContainsFunc(out.Notes, func(n string) bool { return strings.HasPrefix(n, "autoscaler: ") && strings.Contains(n, tc.why) }) {
				t.Errorf("no note says which autoscaler and why: %q", out.Notes)
			}
		})
	}
}

// TestLiveness_HealthIsWarned checks that a liveness probe on the aggregated health endpoint
// is warned about, and /live is not.
func TestLiveness_HealthIsWarned(t *testing.T) {
	t.Parallel()
	for probe, warned := range map[string]bool{"/health": true, "/live": false} {
		src := "name: svc\nscaling: {instances: {startup: {liveness_probe: " + probe + "}}}\n"
		c, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
		if err != nil {
			t.Fatal(err)
		}
		out, err := Generate(c, Kubernetes, Options{Image: "svc:1.0"})
		if err != nil {
			t.Fatal(err)
		}
		got := slices.ContainsFunc(out.Warnings, func(w Warning) bool {
			return w.Path == "scaling.instances.startup.liveness_probe" && strings.Contains(w.Message, "point liveness at /live")
		})
		if got != warned {
			t.Errorf("liveness_probe %s: warned %v, want %v (%v)", probe, got, warned, out.Warnings)
		}
	}
}

// TestKEDA_JobQueueDepth: a rule on the jobs backlog makes the kubernetes target write a KEDA
// ScaledObject whose trigger reads job_queue_depth as the largest value per queue (every pod
// reports the whole shared backlog), summed over the queues, with the threshold per instance.
func TestKEDA_JobQueueDepth(t *testing.T) {
	t.Parallel()
	src := `
name: worker
jobs: {enabled: true}
observability:
  auto_scaling:
    enabled: true
    metrics: [{metric: job_queue_depth, threshold: 50, action: scale_up}]
`
	c, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	if kind, why := Choose(c); kind != AutoscalerKEDA || !strings.Contains(why, "job_queue_depth") {
		t.Fatalf("Choose = %s, %q; want keda because of job_queue_depth", kind, why)
	}
	out, err := Generate(c, Kubernetes, Options{Image: "worker:1.0"})
	if err != nil {
		t.Fatal(err)
	}
	var so string
	for _, f := range out.Files {
		if f.Path == "scaledobject.yaml" {
			so = string(f.Data)
		}
	}
	for _, want := range []string{`sum(max by (queue) (job_queue_depth{namespace="default",job="worker"}))`, `threshold: "50"`, "metricType: AverageValue"} {
		if !strings.Contains(so, want) {
			t.Errorf("scaledobject.yaml lacks %s:\n%s", want, so)
		}
	}
	for _, w := range out.Warnings {
		if strings.Contains(w.Message, "job_queue_depth") || strings.Contains(w.Message, "no Prometheus query") {
			t.Errorf("unexpected warning: %s: %s", w.Path, w.Message)
		}
	}
}
