package deploy

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// helmChart writes a fixture's chart to a temporary directory and returns its path.
func writeChart(t *testing.T, fx fixture) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, generate(t, fx, Helm).Files)
	return filepath.Join(dir, load(t, fx).Name)
}

// runHelm runs helm and returns its standard output.
func runHelm(t *testing.T, helm string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helm, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// documents splits a multi-document YAML stream, dropping empty documents.
func documents(stream []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), stream...), []byte("\n---")) {
		var v any
		if yaml.Unmarshal(d, &v) == nil && v != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// canonical decodes a YAML document into sorted JSON, keyed by kind and name.
func canonical(t *testing.T, doc []byte) (key string, data string) {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	meta, _ := obj["metadata"].(map[string]any)
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return obj["kind"].(string) + "/" + meta["name"].(string), string(b)
}

// TestHelm_LintAndTemplate lints each chart strictly and renders it with its default values:
// the objects must be the kubernetes target's, field for field.
func TestHelm_LintAndTemplate(t *testing.T) {
	t.Parallel()
	helm := tool(t, "helm", "go install helm.sh/helm/v3/cmd/helm@v3.22.0", goBins()...)
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			chart := writeChart(t, fx)
			ns := load(t, fx).Scaling.ServiceDiscovery.Namespace
			runHelm(t, helm, "lint", "--strict", "--namespace", ns, chart)
			rendered := runHelm(t, helm, "template", "release", chart, "--namespace", ns)

			want := map[string]string{}
			for _, f := range generate(t, fx, Kubernetes).Files {
				k, v := canonical(t, f.Data)
				want[k] = v
			}
			got := map[string]string{}
			for _, doc := range documents(rendered) {
				k, v := canonical(t, doc)
				got[k] = v
			}
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range want {
					if !yield(k) {
						return
					}
				}
			}) {
				if got[k] != want[k] {
					t.Errorf("helm template renders %s differently from the kubernetes target:\nhelm:       %s\nkubernetes: %s", k, got[k], want[k])
				}
			}
			if len(got) != len(want) {
				t.Errorf("helm template renders %d objects, the kubernetes target %d", len(got), len(want))
			}
		})
	}
}

// TestHelm_Values checks that values.yaml changes what an operator changes: the image, the
// replica count, resources, the environment, and the autoscaler.
func TestHelm_Values(t *testing.T) {
	t.Parallel()
	helm := tool(t, "helm", "go install helm.sh/helm/v3/cmd/helm@v3.22.0", goBins()...)
	chart := writeChart(t, fixtures[3])
	rendered := runHelm(t, helm, "template", "release", chart, "--namespace", "elsewhere",
		"--set", "image.repository=registry.example/orders", "--set", "image.tag=2.0.0",
		"--set", "replicaCount=7", "--set", "resources.limits.memory=2Gi",
		"--set", "env.EXTRA=on", "--set", "autoscaling.enabled=false")
	var dep *appsv1.Deployment
	for _, doc := range documents(rendered) {
		if k, _ := canonical(t, doc); strings.HasPrefix(k, "HorizontalPodAutoscaler/") {
			t.Error("autoscaling.enabled=false still renders the HPA")
		} else if strings.HasPrefix(k, "Deployment/") {
			dep = &appsv1.Deployment{}
			if err := yaml.UnmarshalStrict(doc, dep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dep == nil {
		t.Fatalf("no Deployment in\n%s", rendered)
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Image != "registry.example/orders:2.0.0" || *dep.Spec.Replicas != 7 || dep.Namespace != "elsewhere" {
		t.Errorf("image %s, replicas %d, namespace %s", ctr.Image, *dep.Spec.Replicas, dep.Namespace)
	}
	if q := ctr.Resources.Limits.Memory(); q.Cmp(resource.MustParse("2Gi")) != 0 {
		t.Errorf("memory limit %s", q)
	}
	var extra, logLevel bool
	for _, e := range ctr.Env {
		extra = extra || e.Name == "EXTRA" && e.Value == "on"
		logLevel = logLevel || e.Name == "LOG_LEVEL" && e.Value == "debug"
	}
	if !extra || !logLevel {
		t.Errorf("env %v lacks EXTRA=on or the default LOG_LEVEL=debug", ctr.Env)
	}
}
