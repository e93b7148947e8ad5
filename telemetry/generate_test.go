package telemetry

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/shoal-sh/shoal/config"
)

// Regenerate the golden files with: go test ./telemetry -run 'TestAlertRules|TestGrafanaDashboard' -update

// configs are the configurations the generators are tested on: the seed's rustform.yml and a
// minimal one with every default.
func configs(t *testing.T) map[string]*config.Config {
	t.Helper()
	noEnv := config.Options{LookupEnv: func(string) (string, bool) { return "", false }, NoDotEnv: true}
	seed, err := config.Load("../testdata/rustform.yml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	minimal, err := config.Parse([]byte("name: tiny\n"), "shoal.yml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*config.Config{"seed": seed, "minimal": minimal}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Fatalf("%s is stale; regenerate it with -update if the change is intended. Got:\n%s", path, got)
	}
}

// promtoolCheckRules runs `promtool check rules` on a rule file.
func promtoolCheckRules(t *testing.T, tool string, rules []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n--- rules:\n%s", err, out, rules)
	}
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	for name, cfg := range configs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := AlertRules(cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "alerts-"+name+".yml", got)
			promtoolCheckRules(t, promtool(t), got)
		})
	}
}

func TestAlertRules_Thresholds(t *testing.T) {
	t.Parallel()
	cfg := configs(t)["seed"]
	got, err := AlertRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(got, &f); err != nil {
		t.Fatal(err)
	}
	byName := map[string]rule{}
	for _, r := range f.Groups[0].Rules {
		byName[r.Alert] = r
	}
	// The seed: cpu > 70% scale_up (cooldown 300s), p95 > 2000 ms (180s), connections > 1000 (120s).
	for alert, want := range map[string][2]string{
		"ShoalCPUUtilizationAboveScaleUpThreshold":    {`avg(shoal_cpu_utilization_ratio{job="scalable-app"}) > 0.7`, "5m"},
		"ShoalResponseTimeP95AboveScaleUpThreshold":   {`histogram_quantile(0.95, sum by (le) (rate(shoal_http_request_duration_seconds_bucket{job="scalable-app"}[5m]))) > 2`, "3m"},
		"ShoalActiveConnectionsAboveScaleUpThreshold": {`avg(shoal_active_connections{job="scalable-app"}) > 1000`, "2m"},
		"ShoalAtMaxInstances":                         {`sum(shoal_instances{job="scalable-app"}) >= ` + fmt.Sprint(cfg.Scaling.Instances.MaxInstances), "15m"},
		"ShoalHealthCheckFailing":                     {`shoal_health_check_up{job="scalable-app",critical="true"} == 0`, ""},
		"ShoalHealthCheckDegraded":                    {`shoal_health_check_up{job="scalable-app",critical="false"} == 0`, ""},
	} {
		r, ok := byName[alert]
		if !ok {
			t.Errorf("no %s alert", alert)
			continue
		}
		if r.Expr != want[0] || (want[1] != "" && r.For != want[1]) {
			t.Errorf("%s: expr %q for %q, want %q for %q", alert, r.Expr, r.For, want[0], want[1])
		}
		if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
			t.Errorf("%s lacks severity or summary", alert)
		}
	}
	for name := range byName {
		if strings.Contains(name, "ScaleDown") {
			t.Errorf("scale_down rules make no alert, got %s", name)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	for name, cfg := range configs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := GrafanaDashboard(cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "grafana-"+name+".json", got)

			var d dashboard
			if err := json.Unmarshal(got, &d); err != nil {
				t.Fatal(err)
			}
			if d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) < 10 {
				t.Fatalf("dashboard = %+v", d)
			}
			// Every query must be valid PromQL: check them as recording rules with promtool,
			// the dashboard variables replaced by values.
			var rules []map[string]string
			ids := map[int]bool{}
			for _, p := range d.Panels {
				if ids[p.ID] {
					t.Errorf("panel id %d twice", p.ID)
				}
				ids[p.ID] = true
				for _, tg := range p.Targets {
					expr := strings.NewReplacer("$__rate_interval", "5m", "$job", cfg.Name).Replace(tg.Expr)
					rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:panel%d:%s", p.ID, tg.RefID), "expr": expr})
				}
			}
			file, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
			if err != nil {
				t.Fatal(err)
			}
			promtoolCheckRules(t, promtool(t), file)
		})
	}
}

func TestGrafanaDashboard_Thresholds(t *testing.T) {
	t.Parallel()
	cfg := configs(t)["seed"]
	got, err := GrafanaDashboard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(got, &d); err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Panels {
		if p.Title != "CPU utilization" {
			continue
		}
		steps := p.FieldConfig["defaults"].(map[string]any)["thresholds"].(map[string]any)["steps"].([]any)
		var values []float64
		for _, s := range steps[1:] {
			values = append(values, s.(map[string]any)["value"].(float64))
		}
		// scale_up at 70%, scale_down at 20%, target 70%.
		want := []float64{0.7, 0.2, float64(cfg.Scaling.Instances.TargetCPUUtilization) / 100}
		if fmt.Sprint(values) != fmt.Sprint(want) {
			t.Fatalf("CPU thresholds %v, want %v", values, want)
		}
		return
	}
	t.Fatal("no CPU utilization panel")
}

func TestGenerators_NeedAName(t *testing.T) {
	t.Parallel()
	if _, err := AlertRules(&config.Config{}); err == nil {
		t.Error("AlertRules without a name")
	}
	if _, err := GrafanaDashboard(&config.Config{}); err == nil {
		t.Error("GrafanaDashboard without a name")
	}
}
