package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/autoscale"
)

// autoscaledFleet is a fakeFleet with an autoscaler's decision log.
type autoscaledFleet struct {
	*fakeFleet
	decisions []autoscale.Decision
}

func (f *autoscaledFleet) Status(ctx context.Context) admin.Status {
	st := f.fakeFleet.Status(ctx)
	st.Autoscaling, st.AutoscalingReason = true, "on: every 30s, 1–6 instances, targets cpu 70%, memory 80%, 1 threshold rule"
	for i := len(f.decisions) - 1; i >= 0; i-- {
		st.Decisions = append(st.Decisions, f.decisions[i])
	}
	return st
}

func (f *autoscaledFleet) Decisions(_ context.Context, since time.Duration, limit int) admin.DecisionsReport {
	r := admin.DecisionsReport{Since: since, Autoscaling: true, Reason: "on: every 30s"}
	for _, d := range f.decisions {
		if time.Since(d.Time) <= since {
			r.Decisions = append(r.Decisions, d)
		}
	}
	if limit > 0 && len(r.Decisions) > limit {
		r.Decisions = r.Decisions[len(r.Decisions)-limit:]
	}
	return r
}

func startAutoscaledAdmin(t *testing.T) (url, token string) {
	t.Helper()
	key, err := admin.ParseKey(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f := &autoscaledFleet{fakeFleet: &fakeFleet{desired: 3}, decisions: []autoscale.Decision{
		{Time: now.Add(-2 * time.Hour), Current: 2, Desired: 2, Change: autoscale.ChangeNone, Reason: "no change: old"},
		{Time: now.Add(-2 * time.Minute), Current: 2, Desired: 3, Change: autoscale.ChangeUp, Applied: true,
			Winner: "target cpu_utilization_percentage 70%", Reason: "scale up from 2 to 3: target cpu_utilization_percentage 70% recommends 3 (91% → 3: ⌈2 × 91/70⌉)",
			Metrics:  []autoscale.MetricValue{{Metric: "cpu_utilization_percentage", Value: 91, Unit: "%", Instances: 2}},
			Policies: []autoscale.Recommendation{{Policy: "target cpu_utilization_percentage 70%", Kind: autoscale.KindTarget, Replicas: 3, Note: "91% → 3: ⌈2 × 91/70⌉"}}},
		{Time: now.Add(-time.Minute), Current: 3, Desired: 3, Change: autoscale.ChangeNone, Winner: "target cpu_utilization_percentage 70%",
			Reason: "no change: target cpu_utilization_percentage 70% recommends 3 (within the tolerance (ratio 0.97))"},
	}}
	srv := httptest.NewServer(admin.NewServer(f, admin.ServerOptions{Key: key}))
	t.Cleanup(srv.Close)
	tok, _, err := admin.IssueToken(key, admin.TokenOptions{Scopes: []string{admin.ScopeRead}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, tok
}

func TestScaling_Decisions(t *testing.T) {
	t.Parallel()
	url, tok := startAutoscaledAdmin(t)
	vars := map[string]string{"SHOAL_TOKEN": tok}
	code, out, errs := run(t, vars, "scaling", "--admin", url, "decisions")
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errs)
	}
	if strings.Contains(out, "old") || !strings.Contains(out, "2 → 3") || !strings.Contains(out, "= 3") || !strings.Contains(out, "within the tolerance") {
		t.Errorf("decisions of the last hour, no change included:\n%s", out)
	}
	code, out, _ = run(t, vars, "scaling", "--admin", url, "decisions", "--since", "3h", "-v")
	if code != ExitOK || !strings.Contains(out, "old") || !strings.Contains(out, "cpu_utilization_percentage 91%") || !strings.Contains(out, "⌈2 × 91/70⌉") {
		t.Errorf("-v --since 3h:\n%s", out)
	}
	code, out, _ = run(t, vars, "scaling", "--admin", url, "-o", "json", "decisions", "--limit", "1")
	var rep admin.DecisionsReport
	if code != ExitOK || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Decisions) != 1 || rep.Decisions[0].Change != autoscale.ChangeNone {
		t.Errorf("-o json --limit 1: code %d\n%s", code, out)
	}
	if code, _, errs := run(t, vars, "scaling", "--admin", url, "decisions", "--since", "0s"); code != ExitInvalid || !strings.Contains(errs, "--since must be above zero") {
		t.Errorf("--since 0s: code %d: %s", code, errs)
	}

	code, out, _ = run(t, vars, "scaling", "--admin", url, "status")
	if code != ExitOK || !strings.Contains(out, "autoscaling  on: every 30s") || !strings.Contains(out, "DECISION TIME") || strings.Index(out, "= 3") > strings.Index(out, "2 → 3") {
		t.Errorf("status shows whether autoscaling is on, why, and the latest decisions newest first:\n%s", out)
	}
}

func TestScaling_Simulate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, `name: sim
scaling:
  instances: {min_instances: 2, max_instances: 40, target_cpu_utilization: 60, scale_up_cooldown: 0s, scale_down_cooldown: 300s}
observability:
  auto_scaling:
    enabled: true
    interval: 15s
`)
	t.Run("a pattern, as a table", func(t *testing.T) {
		code, out, errs := run(t, nil, "scaling", "simulate", "-f", cfg, "--pattern", "ramp", "--peak", "10000", "--capacity", "500", "--startup", "20s")
		if code != ExitOK {
			t.Fatalf("code %d: %s", code, errs)
		}
		for _, want := range []string{"ramp pattern, 2h, peak 10k req/s", "500 req/s per instance, start-up 20s", "instance-hours", "FROM"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("a trace, to HTML and SVG files and JSON", func(t *testing.T) {
		trace := filepath.Join(dir, "load.csv")
		os.WriteFile(trace, []byte("timestamp,rps\n0,1000\n10m,8000\n20m,1000\n"), 0o644)
		html := filepath.Join(dir, "report.html")
		code, _, errs := run(t, nil, "scaling", "simulate", "-f", cfg, "--trace", trace, "--capacity", "500", "-o", html)
		if code != ExitOK || !strings.Contains(errs, "wrote "+html) {
			t.Fatalf("code %d: %s", code, errs)
		}
		if b, _ := os.ReadFile(html); !strings.Contains(string(b), "<svg") {
			t.Error("the report has no chart")
		}
		svg := filepath.Join(dir, "plot.svg")
		if code, _, errs := run(t, nil, "scaling", "simulate", "-f", cfg, "--trace", trace, "--capacity", "500", "-o", svg); code != ExitOK {
			t.Fatalf("svg: code %d: %s", code, errs)
		}
		code, out, _ := run(t, nil, "scaling", "simulate", "-f", cfg, "--trace", trace, "--capacity", "500", "-o", "json")
		var r struct {
			Summary struct {
				ScaleUps int `json:"scale_ups"`
			} `json:"summary"`
		}
		if code != ExitOK || json.Unmarshal([]byte(out), &r) != nil || r.Summary.ScaleUps == 0 {
			t.Errorf("json: code %d, %+v", code, r)
		}
	})
	t.Run("bad input says what is wrong", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.csv")
		os.WriteFile(bad, []byte("timestamp,rps\n0,100\n5,lots\n"), 0o644)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--trace", bad}, bad + ":3: \"lots\" is not a number of requests per second"},
			{nil, "simulate needs --trace FILE or --pattern"},
			{[]string{"--pattern", "diurnal"}, "needs --peak"},
			{[]string{"--pattern", "sine", "--peak", "5"}, `"sine" is not a pattern`},
			{[]string{"--pattern", "ramp", "--peak", "5", "--capacity", "0"}, "capacity of an instance must be above 0"},
			{[]string{"--pattern", "ramp", "--peak", "5", "-o", "out.png"}, `-o "out.png" is not a simulate output`},
			{[]string{"--pattern", "ramp", "--peak", "5", "--startup", "soon"}, "--startup: "},
		} {
			code, _, errs := run(t, nil, append([]string{"scaling", "simulate", "-f", cfg}, c.args...)...)
			if code != ExitInvalid || !strings.Contains(errs, c.want) {
				t.Errorf("%v: code %d, stderr %q; want it to say %q", c.args, code, errs, c.want)
			}
		}
	})
}

func TestAutoscale_RefusesWhenDisabled(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "name: off\nobservability:\n  auto_scaling:\n    enabled: false\n")
	code, _, errs := run(t, nil, "autoscale", "-f", cfg, "--once")
	if code != ExitFailure || !strings.Contains(errs, "observability.auto_scaling.enabled is false") {
		t.Errorf("code %d: %s", code, errs)
	}
	cfg = writeConfig(t, "name: on\nobservability:\n  auto_scaling:\n    enabled: true\n    target: kubernetes\n")
	code, _, errs = run(t, nil, "autoscale", "-f", cfg, "--once", "--kubeconfig", filepath.Join(t.TempDir(), "missing"))
	if code != ExitFailure || !strings.Contains(errs, "pass --kubeconfig") {
		t.Errorf("a missing kubeconfig: code %d: %s", code, errs)
	}
}

// stubSource reports two busy instances, for runAutoscale's printing.
type stubSource struct{}

func (stubSource) Observe(_ context.Context, now time.Time, _ time.Duration) (autoscale.Input, error) {
	old := now.Add(-time.Hour)
	busy := autoscale.Instance{Ready: true, Started: old, ReadySince: old, CPU: 140, HasCPU: true}
	return autoscale.Input{Time: now, Current: 2, Instances: []autoscale.Instance{busy, busy}}, nil
}

type stubScaler struct{ to int }

func (s *stubScaler) Scale(_ context.Context, to int, _ string) error { s.to = to; return nil }

func TestAutoscale_PrintsEachDecision(t *testing.T) {
	t.Parallel()
	s := autoscale.Settings{Min: 1, Max: 10, Interval: time.Second, Tolerance: 0.1,
		Targets: []autoscale.Target{{Metric: "cpu_utilization_percentage", Value: 70}}, ScaleUp: autoscale.HPAScaleUp, ScaleDown: autoscale.HPAScaleDown}
	for _, asJSON := range []bool{false, true} {
		var out strings.Builder
		a := &app{stdout: &out, stderr: &out}
		sc := &stubScaler{}
		if err := a.runAutoscale(context.Background(), autoscale.New(s), stubSource{}, sc, time.Second, true, asJSON); err != nil {
			t.Fatal(err)
		}
		if sc.to != 4 {
			t.Errorf("scaled to %d, want 4", sc.to)
		}
		if asJSON {
			var d autoscale.Decision
			if err := json.Unmarshal([]byte(out.String()), &d); err != nil || d.Desired != 4 || !d.Applied {
				t.Errorf("-o json: %v %q", err, out.String())
			}
		} else if !strings.Contains(out.String(), "2 → 4") || !strings.Contains(out.String(), "scale up from 2 to 4") {
			t.Errorf("table: %q", out.String())
		}
	}
}
