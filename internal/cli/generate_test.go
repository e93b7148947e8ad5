package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/deploy"
)

func TestGenerate(t *testing.T) {
	t.Parallel()
	t.Run("writes a target's files into --dir and prints each", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		code, out, errs := run(t, nil, "generate", "kubernetes", "-f", seed, "--env", "production", "--dir", dir, "--image", "ghcr.io/acme/app:1.2.3")
		if code != ExitOK {
			t.Fatalf("code %d\n%s\n%s", code, out, errs)
		}
		for _, name := range []string{"deployment.yaml", "service.yaml", "scaledobject.yaml", "pdb.yaml", "servicemonitor.yaml", "serviceaccount.yaml", "role.yaml", "rolebinding.yaml"} {
			p := filepath.Join(dir, name)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s was not written: %v", name, err)
				continue
			}
			if !strings.Contains(out, "wrote "+p+"\n") {
				t.Errorf("stdout does not name %s:\n%s", p, out)
			}
			if by, ok := deploy.GeneratedBy(data); !ok || by != "kubernetes" {
				t.Errorf("%s lacks the generated-file header", name)
			}
		}
		dep, _ := os.ReadFile(filepath.Join(dir, "deployment.yaml"))
		if !strings.Contains(string(dep), "image: ghcr.io/acme/app:1.2.3\n") || !strings.Contains(string(dep), "replicas: 3\n") {
			t.Errorf("--image or --env not applied:\n%s", dep)
		}
		if !strings.Contains(out, "create secret generic scalable-app-secrets") {
			t.Errorf("stdout lacks the note on the Secret:\n%s", out)
		}
		// One autoscaler, and which one it is and why.
		if _, err := os.Stat(filepath.Join(dir, "hpa.yaml")); err == nil {
			t.Error("an HPA beside the ScaledObject")
		}
		if !strings.Contains(out, "kubernetes: autoscaler: a KEDA ScaledObject (scaledobject.yaml") || !strings.Contains(out, "response_time_p95") {
			t.Errorf("stdout does not say which autoscaler:\n%s", out)
		}
	})
	t.Run("-o yaml and -o json print the objects", func(t *testing.T) {
		t.Parallel()
		code, out, errs := run(t, nil, "generate", "kubernetes", "-f", seed, "--env", "production", "-o", "yaml", "--image", "ghcr.io/acme/app:1.2.3")
		if code != ExitOK || strings.Count(out, "\n---\n") != 7 || !strings.Contains(out, "kind: Deployment\n") ||
			!strings.Contains(errs, "shoal: warning: kubernetes: ") || strings.Contains(out, "wrote ") {
			t.Fatalf("-o yaml: %d\n%s\n%s", code, out, errs)
		}
		code, out, errs = run(t, nil, "generate", "kubernetes", "-f", seed, "--env", "production", "-o", "json")
		var list struct {
			Kind  string           `json:"kind"`
			Items []map[string]any `json:"items"`
		}
		if code != ExitOK || json.Unmarshal([]byte(out), &list) != nil || list.Kind != "List" || len(list.Items) != 8 {
			t.Fatalf("-o json: %d\n%s\n%s", code, out, errs)
		}
		code, out, _ = run(t, nil, "generate", "keda", "-f", seed, "-o", "json")
		var one map[string]any
		if code != ExitOK || json.Unmarshal([]byte(out), &one) != nil || one["kind"] != "ScaledObject" {
			t.Fatalf("-o json of one object: %d\n%s", code, out)
		}
	})
	t.Run("a pipe gets yaml without -o", func(t *testing.T) {
		t.Parallel()
		// run's stdout is not a terminal, as in shoal generate kubernetes | kubectl apply -f -
		code, out, errs := run(t, nil, "generate", "kubernetes", "-f", seed)
		if code != ExitOK || !strings.Contains(out, "kind: Service\n") || strings.Contains(out, "wrote ") {
			t.Fatalf("%d\n%s\n%s", code, out, errs)
		}
	})
	t.Run("the old -o DIR still writes files, and says --dir", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		code, out, errs := run(t, nil, "generate", "nginx", "-f", seed, "-o", dir)
		if code != ExitOK || !strings.Contains(out, "wrote "+filepath.Join(dir, "nginx.conf")) ||
			!strings.Contains(errs, "-o now takes a format (yaml or json)") || !strings.Contains(errs, "--dir "+dir) {
			t.Fatalf("%d\n%s\n%s", code, out, errs)
		}
	})
	t.Run("all writes every target in its own directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		code, out, errs := run(t, map[string]string{"SHOAL_ENV": "staging"}, "generate", "all", "-f", seed, "--dir", dir)
		if code != ExitOK {
			t.Fatalf("code %d\n%s\n%s", code, out, errs)
		}
		for _, p := range []string{"kubernetes/deployment.yaml", "kubernetes/scaledobject.yaml", "helm/scalable-app/Chart.yaml",
			"helm/scalable-app/templates/deployment.yaml", "helm/scalable-app/templates/scaledobject.yaml",
			"istio/virtualservice.yaml", "istio/destinationrule.yaml",
			"compose/docker-compose.yml", "compose/nginx.conf", "nginx/nginx.conf"} {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
		// One autoscaler for the Deployment: no HPA, no second ScaledObject in keda/.
		for _, p := range []string{"kubernetes/hpa.yaml", "helm/scalable-app/templates/hpa.yaml", "keda"} {
			if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
				t.Errorf("%s was written beside the ScaledObject", p)
			}
		}
		if !strings.Contains(out, "kubernetes: autoscaler: a KEDA ScaledObject") {
			t.Errorf("stdout does not say which autoscaler:\n%s", out)
		}
		// Warnings go to stderr, one per line, naming the target and the setting.
		if !strings.Contains(errs, "shoal: warning: kubernetes: deploy.image: no image is set") ||
			!strings.Contains(errs, "shoal: warning: kubernetes: observability.auto_scaling.metrics[1]: ") {
			t.Errorf("stderr lacks the warnings:\n%s", errs)
		}
	})
	t.Run("all removes the ScaledObject an earlier all wrote beside an HPA", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		stale := filepath.Join(dir, "keda", "scaledobject.yaml")
		os.MkdirAll(filepath.Dir(stale), 0o755)
		os.WriteFile(stale, []byte("# Generated by `shoal generate keda` from x.yml (the base configuration).\nkind: ScaledObject\n"), 0o644)
		path := filepath.Join(t.TempDir(), "shoal.yml")
		os.WriteFile(path, []byte("name: svc\ndeploy: {image: svc:1.0}\n"), 0o644)
		code, out, errs := run(t, nil, "generate", "all", "-f", path, "--dir", dir)
		if code != ExitOK {
			t.Fatalf("%d %s %s", code, out, errs)
		}
		if _, err := os.Stat(stale); err == nil || !strings.Contains(out, "removed "+stale) {
			t.Errorf("the old ScaledObject stays beside the HPA:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(dir, "kubernetes", "hpa.yaml")); err != nil || !strings.Contains(out, "autoscaler: a HorizontalPodAutoscaler") {
			t.Errorf("no HPA, or not said: %v\n%s", err, out)
		}
	})
	t.Run("a file shoal did not write is kept unless --force", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		mine := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(mine, []byte("# my own\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errs := run(t, nil, "generate", "nginx", "-f", seed, "--dir", dir)
		if code != ExitFailure || !strings.Contains(errs, "was not written by shoal generate; move it away or pass --force") {
			t.Fatalf("code %d: %s", code, errs)
		}
		if b, _ := os.ReadFile(mine); string(b) != "# my own\n" {
			t.Fatal("the file was overwritten")
		}
		if code, _, errs := run(t, nil, "generate", "nginx", "-f", seed, "--dir", dir, "--force"); code != ExitOK {
			t.Fatalf("--force: code %d: %s", code, errs)
		}
		// A second run overwrites its own file without --force.
		if code, _, errs := run(t, nil, "generate", "nginx", "-f", seed, "--dir", dir); code != ExitOK {
			t.Fatalf("rerun: code %d: %s", code, errs)
		}
	})
	t.Run("files no longer generated by the target are removed, others kept", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		stale := filepath.Join(dir, "old.yaml")
		other := filepath.Join(dir, "docker-compose.yml")
		os.WriteFile(stale, []byte("# Generated by `shoal generate kubernetes` from x.yml (the base configuration).\nkind: Old\n"), 0o644)
		os.WriteFile(other, []byte("# Generated by `shoal generate compose` from x.yml (the base configuration).\n"), 0o644)
		code, out, errs := run(t, nil, "generate", "kubernetes", "-f", seed, "--dir", dir)
		if code != ExitOK {
			t.Fatalf("code %d: %s", code, errs)
		}
		if _, err := os.Stat(stale); err == nil || !strings.Contains(out, "removed "+stale) {
			t.Errorf("the stale file was not removed:\n%s", out)
		}
		if _, err := os.Stat(other); err != nil {
			t.Errorf("another target's file was removed: %v", err)
		}
	})
	t.Run("bad command lines exit 2", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{"generate"},
			{"generate", "terraform", "-f", seed},
			{"generate", "kubernetes", "helm", "-f", seed},
			{"generate", "kubernetes", "-f", seed, "--image", "a b"},
			{"generate", "kubernetes", "-f", seed, "--bogus"},
			{"generate", "helm", "-f", seed, "-o", "yaml"},
			{"generate", "kubernetes", "-f", seed, "-o", "yaml", "--dir", "x"},
		} {
			if code, out, errs := run(t, nil, args...); code != ExitInvalid || out != "" || !strings.HasPrefix(errs, "shoal: ") {
				t.Errorf("%v: code %d out %q err %q", args, code, out, errs)
			}
		}
	})
	t.Run("an invalid configuration exits 2 and writes nothing", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		code, _, errs := run(t, nil, "generate", "kubernetes", "-f", "../../testdata/invalid/thresholds_out_of_range.yml", "--dir", dir)
		if code != ExitInvalid || !strings.Contains(errs, "the configuration is invalid") {
			t.Fatalf("code %d: %s", code, errs)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("wrote %d files", len(entries))
		}
	})
}
