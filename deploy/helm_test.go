package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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

// helmLabels are the labels only a Helm release carries: the chart's, and managed-by Helm
// where the kubernetes target says shoal. fromHelm takes them out of a rendered object (as
// canonical JSON), so it compares with the kubernetes target's.
func fromHelm(t *testing.T, data string) string {
	t.Helper()
	var obj any
	if err := json.Unmarshal([]byte(data), &obj); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			if key == "labels" {
				if v["helm.sh/chart"] == nil || v["app.kubernetes.io/managed-by"] != "Helm" {
					t.Errorf("labels %v lack helm.sh/chart or app.kubernetes.io/managed-by: Helm", v)
				}
				delete(v, "helm.sh/chart")
				v["app.kubernetes.io/managed-by"] = "shoal"
			}
			for k, c := range v {
				walk(c, k)
			}
		case []any:
			for _, c := range v {
				walk(c, key)
			}
		}
	}
	walk(obj, "")
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// renderChart renders a chart as a release and returns its objects by kind/name.
func renderChart(t *testing.T, helm, chart, release, ns string, set ...string) map[string]string {
	t.Helper()
	args := []string{"template", release, chart, "--namespace", ns}
	for _, kv := range set {
		args = append(args, "--set", kv)
	}
	got := map[string]string{}
	for _, doc := range documents(runHelm(t, helm, args...)) {
		k, v := canonical(t, doc)
		if _, dup := got[k]; dup {
			t.Errorf("the chart renders %s twice", k)
		}
		got[k] = v
	}
	return got
}

// TestHelm_LintAndTemplate lints each chart strictly and renders it as a release named after
// the service, with its default values: the objects must be the kubernetes target's, field
// for field, but for the labels only Helm sets.
func TestHelm_LintAndTemplate(t *testing.T) {
	t.Parallel()
	helm := tool(t, "helm", "go install helm.sh/helm/v3/cmd/helm@v3.22.0", goBins()...)
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			chart := writeChart(t, fx)
			c := load(t, fx)
			ns := c.Scaling.ServiceDiscovery.Namespace
			runHelm(t, helm, "lint", "--strict", "--namespace", ns, chart)
			got := renderChart(t, helm, chart, c.Name, ns)

			want := map[string]string{}
			for _, f := range generate(t, fx, Kubernetes).Files {
				k, v := canonical(t, f.Data)
				want[k] = v
			}
			for _, k := range slices.Sorted(maps.Keys(want)) {
				if g, ok := got[k]; !ok || fromHelm(t, g) != want[k] {
					t.Errorf("helm template renders %s differently from the kubernetes target:\nhelm:       %s\nkubernetes: %s", k, g, want[k])
				}
			}
			if len(got) != len(want) {
				t.Errorf("helm template renders %d objects, the kubernetes target %d", len(got), len(want))
			}
		})
	}
}

// TestHelm_TwoReleasesInOneNamespace installs the chart twice in one namespace, as helm create's
// charts can be: every object is named after its release, carries its release's instance label,
// and no selector of one release selects the pods of the other.
func TestHelm_TwoReleasesInOneNamespace(t *testing.T) {
	t.Parallel()
	helm := tool(t, "helm", "go install helm.sh/helm/v3/cmd/helm@v3.22.0", goBins()...)
	for _, fx := range []fixture{fixtures[2], fixtures[3]} {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			chart := writeChart(t, fx)
			name := load(t, fx).Name
			pods := map[string]labels.Set{}
			selectors := map[string][]labels.Selector{}
			names := map[string]string{}
			for _, release := range []string{"blue", "green"} {
				for k, v := range renderChart(t, helm, chart, release, "staging") {
					kind, objName, _ := strings.Cut(k, "/")
					if !strings.HasPrefix(objName, release+"-"+name) {
						t.Errorf("release %s names %s %s, not after the release", release, kind, objName)
					}
					if other, dup := names[k]; dup {
						t.Errorf("releases %s and %s both render %s", other, release, k)
					}
					names[k] = release
					var obj struct {
						Metadata struct {
							Labels map[string]string `json:"labels"`
						} `json:"metadata"`
						Spec struct {
							Selector json.RawMessage `json:"selector"`
							Template struct {
								Metadata struct {
									Labels map[string]string `json:"labels"`
								} `json:"metadata"`
							} `json:"template"`
						} `json:"spec"`
					}
					if err := json.Unmarshal([]byte(v), &obj); err != nil {
						t.Fatal(err)
					}
					if l := obj.Metadata.Labels; l["app.kubernetes.io/instance"] != release || l["app.kubernetes.io/managed-by"] != "Helm" ||
						!strings.HasPrefix(l["helm.sh/chart"], name+"-") {
						t.Errorf("%s of release %s has labels %v", k, release, l)
					}
					switch kind {
					case "Deployment":
						pods[release] = obj.Spec.Template.Metadata.Labels
						var sel metav1.LabelSelector
						if err := json.Unmarshal(obj.Spec.Selector, &sel); err != nil {
							t.Fatal(err)
						}
						s, err := metav1.LabelSelectorAsSelector(&sel)
						if err != nil {
							t.Fatal(err)
						}
						selectors[release] = append(selectors[release], s)
					case "Service":
						var sel map[string]string
						if err := json.Unmarshal(obj.Spec.Selector, &sel); err != nil {
							t.Fatal(err)
						}
						selectors[release] = append(selectors[release], labels.SelectorFromSet(sel))
					}
				}
			}
			for release, sels := range selectors {
				for other, podLabels := range pods {
					for _, s := range sels {
						if s.Matches(podLabels) != (release == other) {
							t.Errorf("selector %s of release %s on the pods of %s (%v): matches %v", s, release, other, podLabels, s.Matches(podLabels))
						}
					}
				}
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
		"--set", "env.EXTRA=on", "--set", "autoscaling.enabled=false", "--set", "environment=staging",
		"--set", "image.pullPolicy=Always", "--set", "imagePullSecrets[0].name=regcred",
		"--set", "nodeSelector.disktype=ssd", "--set", "tolerations[0].key=dedicated", "--set", "tolerations[0].operator=Exists",
		"--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone",
		"--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
		"--set", "podAnnotations.team=checkout", "--set", "service.type=NodePort", "--set", "service.port=80")
	var dep *appsv1.Deployment
	var svc *corev1.Service
	for _, doc := range documents(rendered) {
		if k, _ := canonical(t, doc); strings.HasPrefix(k, "HorizontalPodAutoscaler/") || strings.HasPrefix(k, "ScaledObject/") {
			t.Errorf("autoscaling.enabled=false still renders %s", k)
		} else if strings.HasPrefix(k, "Service/") {
			svc = &corev1.Service{}
			if err := yaml.UnmarshalStrict(doc, svc); err != nil {
				t.Fatal(err)
			}
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
	var envs []string
	for _, e := range ctr.Env {
		if e.Name == "SHOAL_ENV" || e.Name == "ENVIRONMENT" {
			envs = append(envs, e.Name+"="+e.Value)
		}
	}
	if fmt.Sprint(envs) != "[SHOAL_ENV=staging ENVIRONMENT=staging]" {
		t.Errorf("environment=staging gives %v", envs)
	}
	pod := dep.Spec.Template.Spec
	if ctr.ImagePullPolicy != corev1.PullAlways || len(pod.ImagePullSecrets) != 1 || pod.ImagePullSecrets[0].Name != "regcred" ||
		pod.NodeSelector["disktype"] != "ssd" || len(pod.Tolerations) != 1 || pod.Affinity == nil || pod.Affinity.NodeAffinity == nil ||
		dep.Spec.Template.Annotations["team"] != "checkout" {
		t.Errorf("pod scheduling values not applied: pullPolicy %s, secrets %v, nodeSelector %v, tolerations %v, affinity %v, annotations %v",
			ctr.ImagePullPolicy, pod.ImagePullSecrets, pod.NodeSelector, pod.Tolerations, pod.Affinity, dep.Spec.Template.Annotations)
	}
	if svc == nil || svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Ports[0].Port != 80 {
		t.Errorf("service.type and service.port not applied: %+v", svc)
	}
}

// TestHelm_VersionFromImageTag checks that the version labels follow the image that runs:
// --image app:1.0 labels the pods 1.0 and makes it the chart's appVersion, and
// --set image.tag=2.0 relabels them 2.0.
func TestHelm_VersionFromImageTag(t *testing.T) {
	t.Parallel()
	c := load(t, fixtures[0])
	out, err := Generate(c, Kubernetes, Options{Image: "example/app:1.0"})
	if err != nil {
		t.Fatal(err)
	}
	d := &decoded{}
	for _, f := range out.Files {
		if err := d.decodeStrict(f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if l := d.Deployments[0].Spec.Template.Labels; l["app.kubernetes.io/version"] != "1.0" || l["version"] != "1.0" {
		t.Errorf("--image example/app:1.0 labels the pods %v", l)
	}
	helmOut, err := Generate(c, Helm, Options{Image: "example/app:1.0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range helmOut.Files {
		if strings.HasSuffix(f.Path, "Chart.yaml") && !bytes.Contains(f.Data, []byte("appVersion: \"1.0\"")) {
			t.Errorf("Chart.yaml:\n%s", f.Data)
		}
	}
	helm := tool(t, "helm", "go install helm.sh/helm/v3/cmd/helm@v3.22.0", goBins()...)
	dir := t.TempDir()
	writeFiles(t, dir, helmOut.Files)
	for k, v := range renderChart(t, helm, filepath.Join(dir, c.Name), "rel", "default", "image.tag=2.0") {
		if strings.Contains(v, `"1.0"`) || (strings.HasPrefix(k, "Deployment/") && !strings.Contains(v, `"app.kubernetes.io/version":"2.0"`)) {
			t.Errorf("--set image.tag=2.0 renders %s as %s", k, v)
		}
	}
}
