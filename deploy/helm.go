package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The Helm chart is the kubernetes target's objects with the knobs an operator turns taken
// from values.yaml: the image, the replica count, resources, app.env's plain values and the
// autoscaler's bounds and targets, with the release's namespace. It is made by rendering the
// same typed objects with a placeholder token where a template expression goes, then putting
// the expressions in; so with the default values.yaml, `helm template -n NAMESPACE` gives the
// kubernetes target's objects, which a test checks.

// helmValues is values.yaml.
type helmValues struct {
	Image          helmImage                   `json:"image"`
	ReplicaCount   int                         `json:"replicaCount"`
	Resources      corev1.ResourceRequirements `json:"resources"`
	Env            map[string]string           `json:"env"`
	Autoscaling    helmAutoscaling             `json:"autoscaling"`
	ServiceMonitor *helmToggle                 `json:"serviceMonitor,omitempty"`
}

// helmImage is an image reference split as Helm charts usually take it.
type helmImage struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
}

// helmAutoscaling configures the HorizontalPodAutoscaler.
type helmAutoscaling struct {
	Enabled                           bool `json:"enabled"`
	MinReplicas                       int  `json:"minReplicas"`
	MaxReplicas                       int  `json:"maxReplicas"`
	TargetCPUUtilizationPercentage    int  `json:"targetCPUUtilizationPercentage"`
	TargetMemoryUtilizationPercentage int  `json:"targetMemoryUtilizationPercentage"`
}

// helmToggle turns an optional object on or off.
type helmToggle struct {
	Enabled bool `json:"enabled"`
}

// helmChart is Chart.yaml.
type helmChart struct {
	APIVersion  string `json:"apiVersion"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        string `json:"type"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion"`
}

// valuesComments document the keys of values.yaml.
var valuesComments = map[string]string{
	"autoscaling":    "The HorizontalPodAutoscaler (scaling.instances): replica bounds and utilisation targets in percent of the requests.",
	"env":            "Plain environment variables of the container (app.env). Secrets come from the Secret, never from here; a literal $ is written $$.",
	"image":          "The container image (deploy.image or --image).",
	"replicaCount":   "Replicas of the Deployment (scaling.instances.min_instances); the autoscaler takes over from there.",
	"resources":      "Requests and limits of the container (deploy.resources).",
	"serviceMonitor": "The Prometheus Operator ServiceMonitor (observability.scaling_metrics.enabled).",
}

var semver = regexp.MustCompile(`^v?((0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)$`)

// helmTemplater collects the placeholder tokens of one template file and what replaces them.
type helmTemplater struct {
	n int
	// inline tokens are replaced by an expression in place.
	inline map[string]string
	// block tokens stand as the value of a key, replaced by a YAML block the expression renders.
	block map[string]string
	// list tokens stand as a list item, replaced by lines of template.
	list map[string][]string
}

// newTemplater returns an empty templater.
func newTemplater() *helmTemplater {
	return &helmTemplater{inline: map[string]string{}, block: map[string]string{}, list: map[string][]string{}}
}

// token returns a new placeholder: letters and digits, so YAML writes it unquoted.
func (h *helmTemplater) token() string { h.n++; return fmt.Sprintf("SHOALHELMTOKEN%04d", h.n) }

// Inline returns a token replaced by expr where it stands.
func (h *helmTemplater) Inline(expr string) string { t := h.token(); h.inline[t] = expr; return t }

// Block returns a token that, as the value of a key, is replaced by the YAML expr renders.
func (h *helmTemplater) Block(expr string) string { t := h.token(); h.block[t] = expr; return t }

// List returns a token that, as a list item, is replaced by lines.
func (h *helmTemplater) List(lines ...string) string { t := h.token(); h.list[t] = lines; return t }

// render puts the template expressions in place of the tokens of text.
func (h *helmTemplater) render(text []byte) ([]byte, error) {
	var b bytes.Buffer
	for _, line := range strings.SplitAfter(string(text), "\n") {
		body := strings.TrimRight(line, "\n")
		trimmed := strings.TrimLeft(body, " ")
		indent := len(body) - len(trimmed)
		item := ""
		if rest, ok := strings.CutPrefix(trimmed, "- "); ok {
			if lines, ok := h.list[rest]; ok {
				for _, l := range lines {
					b.WriteString(strings.Repeat(" ", indent) + l + "\n")
				}
				continue
			}
			item, trimmed, indent = "- ", rest, indent+2
		}
		if key, val, ok := strings.Cut(trimmed, ": "); ok {
			if expr, ok := h.block[val]; ok {
				pad := strings.Repeat(" ", indent-len(item))
				fmt.Fprintf(&b, "%s%s%s:\n%s{{- %s | nindent %d }}\n", pad, item, key, strings.Repeat(" ", indent+2), expr, indent+2)
				continue
			}
		}
		for t, expr := range h.inline {
			line = strings.ReplaceAll(line, t, expr)
		}
		b.WriteString(line)
	}
	out := b.Bytes()
	if bytes.Contains(out, []byte("SHOALHELMTOKEN")) {
		return nil, fmt.Errorf("a placeholder was left in a Helm template:\n%s", out)
	}
	return out, nil
}

// helmFiles is the helm target: Chart.yaml, values.yaml, _helpers.tpl, NOTES.txt and one
// template per object of the kubernetes target.
func (s *spec) helmFiles() ([]File, error) {
	objs, err := s.kubeObjects()
	if err != nil {
		return nil, err
	}
	s.secretNote()
	chart := s.name
	dir := chart + "/"
	inc := func(name string) string { return fmt.Sprintf("include %q .", chart+"."+name) }
	shared := s.sharedMeta("").Labels

	var files []File
	for _, kf := range objs.files() {
		h := newTemplater()
		tree, err := toTree(kf.obj)
		if err != nil {
			return nil, err
		}
		s.helmize(tree, "", h, inc, shared)
		var wrap string
		switch kf.path {
		case "deployment.yaml":
			dep := tree.(map[string]any)
			spec := dep["spec"].(map[string]any)
			spec["replicas"] = h.Inline("{{ .Values.replicaCount }}")
			podSpec := spec["template"].(map[string]any)["spec"].(map[string]any)
			ctr := podSpec["containers"].([]any)[0].(map[string]any)
			ctr["image"] = h.Inline(fmt.Sprintf("{{ %s | quote }}", inc("image")))
			ctr["resources"] = h.Block("toYaml .Values.resources")
			_, literal := s.kubeEnv()
			env := ctr["env"].([]any)
			ctr["env"] = append(env[:len(env)-len(literal)], h.List(
				"{{- range $name, $value := .Values.env }}",
				"- name: {{ $name | quote }}",
				"  value: {{ $value | quote }}",
				"{{- end }}"))
		case "hpa.yaml":
			spec := tree.(map[string]any)["spec"].(map[string]any)
			spec["minReplicas"] = h.Inline("{{ .Values.autoscaling.minReplicas }}")
			spec["maxReplicas"] = h.Inline("{{ .Values.autoscaling.maxReplicas }}")
			for _, m := range spec["metrics"].([]any) {
				res := m.(map[string]any)["resource"].(map[string]any)
				target := res["target"].(map[string]any)
				key := "targetCPUUtilizationPercentage"
				if res["name"] == "memory" {
					key = "targetMemoryUtilizationPercentage"
				}
				target["averageUtilization"] = h.Inline("{{ .Values.autoscaling." + key + " }}")
			}
			wrap = ".Values.autoscaling.enabled"
		case "servicemonitor.yaml":
			wrap = ".Values.serviceMonitor.enabled"
		}
		body, err := marshalTree(tree)
		if err != nil {
			return nil, err
		}
		if body, err = h.render(body); err != nil {
			return nil, err
		}
		var b bytes.Buffer
		b.WriteString(s.header("# "))
		if wrap != "" {
			fmt.Fprintf(&b, "{{- if %s }}\n", wrap)
		}
		b.Write(body)
		if wrap != "" {
			b.WriteString("{{- end }}\n")
		}
		files = append(files, File{Path: dir + "templates/" + kf.path, Data: b.Bytes()})
	}

	helpers, err := s.helmHelpers(chart, shared)
	if err != nil {
		return nil, err
	}
	values, err := s.helmValues(objs)
	if err != nil {
		return nil, err
	}
	version := "0.1.0"
	if m := semver.FindStringSubmatch(s.c.Version); m != nil {
		version = m[1]
	}
	tree, err := toTree(helmChart{APIVersion: "v2", Name: chart, Type: "application", Version: version, AppVersion: s.c.Version,
		Description: fmt.Sprintf("%s, generated by shoal from %s", chart, filepath.Base(s.c.Meta.File))})
	if err != nil {
		return nil, err
	}
	chartFile, err := s.treeFile(dir+"Chart.yaml", tree, "")
	if err != nil {
		return nil, err
	}
	var notes bytes.Buffer
	notes.WriteString(strings.TrimSuffix(s.header(""), "\n") + "\n\n")
	fmt.Fprintf(&notes, "%s is installed in namespace {{ .Release.Namespace }}.\n", chart)
	for _, n := range s.notes {
		notes.WriteString("\nBefore it can start, " + n + "\n")
	}
	if len(s.notes) > 0 {
		notes.WriteString("(with -n {{ .Release.Namespace }} if you installed into another namespace)\n")
	}
	files = append([]File{chartFile, {Path: dir + "values.yaml", Data: values},
		{Path: dir + "templates/_helpers.tpl", Data: helpers}, {Path: dir + "templates/NOTES.txt", Data: notes.Bytes()}}, files...)
	return files, nil
}

// helmize replaces, throughout an object's tree, the labels, selectors and namespace with
// helpers and the release's namespace.
func (s *spec) helmize(tree any, key string, h *helmTemplater, inc func(string) string, shared map[string]string) {
	switch v := tree.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			child := v[k]
			if m, ok := child.(map[string]any); ok && (k == "labels" || k == "matchLabels") {
				switch {
				case equalLabels(m, s.labels):
					v[k] = h.Block(inc("labels"))
					continue
				case equalLabels(m, shared):
					v[k] = h.Block(inc("commonLabels"))
					continue
				case equalLabels(m, s.selector):
					v[k] = h.Block(inc("selectorLabels"))
					continue
				}
			}
			if str, ok := child.(string); ok && k == "namespace" && str == s.namespace {
				v[k] = h.Inline("{{ .Release.Namespace }}")
				continue
			}
			s.helmize(child, k, h, inc, shared)
		}
	case []any:
		for i, e := range v {
			if str, ok := e.(string); ok && key == "matchNames" && str == s.namespace {
				v[i] = h.Inline("{{ .Release.Namespace }}")
				continue
			}
			s.helmize(e, key, h, inc, shared)
		}
	}
}

// equalLabels reports whether a decoded label map equals labels.
func equalLabels(m map[string]any, labels map[string]string) bool {
	if len(m) != len(labels) {
		return false
	}
	for k, v := range labels {
		if m[k] != v {
			return false
		}
	}
	return true
}

// helmHelpers is _helpers.tpl: the labels and the image reference.
func (s *spec) helmHelpers(chart string, shared map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(strings.ReplaceAll(s.header("{{/* "), "\n", " */}}\n"))
	for _, def := range []struct {
		name, doc string
		labels    map[string]string
	}{
		{"selectorLabels", "Labels the workload selects its pods by; they cannot change once deployed.", s.selector},
		{"commonLabels", "Labels of the objects every version shares (Service, ServiceMonitor, RBAC).", shared},
		{"labels", "Labels of the workload's objects and pods.", s.labels},
	} {
		y, err := marshalTree(def.labels)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "\n{{/* %s */}}\n{{- define %q -}}\n%s{{- end }}\n", def.doc, chart+"."+def.name, y)
	}
	fmt.Fprintf(&b, "\n{{/* The container image: repository, then :tag when a tag is set. */}}\n{{- define %q -}}\n", chart+".image")
	b.WriteString("{{ .Values.image.repository }}{{ with .Values.image.tag }}:{{ . }}{{ end }}\n{{- end }}\n")
	return b.Bytes(), nil
}

// helmValues is values.yaml, whose defaults reproduce the kubernetes target.
func (s *spec) helmValues(objs *kubeObjects) ([]byte, error) {
	in := s.c.Scaling.Instances
	repo, tag := splitImage(s.image)
	_, literal := s.kubeEnv()
	env := map[string]string{}
	for _, e := range literal {
		env[e.Name] = e.Value
	}
	v := helmValues{
		Image:        helmImage{Repository: repo, Tag: tag},
		ReplicaCount: in.MinInstances,
		Resources:    objs.Deployment.Spec.Template.Spec.Containers[0].Resources,
		Env:          env,
		Autoscaling: helmAutoscaling{Enabled: s.c.Scaling.Enabled, MinReplicas: in.MinInstances, MaxReplicas: in.MaxInstances,
			TargetCPUUtilizationPercentage: in.TargetCPUUtilization, TargetMemoryUtilizationPercentage: in.TargetMemoryUtilization},
	}
	if objs.ServiceMonitor != nil {
		v.ServiceMonitor = &helmToggle{Enabled: true}
	}
	tree, err := toTree(v)
	if err != nil {
		return nil, err
	}
	body, err := marshalTree(tree)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(s.header("# "))
	for _, line := range strings.SplitAfter(string(body), "\n") {
		if key, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") && valuesComments[key] != "" {
			b.WriteString("\n# " + valuesComments[key] + "\n")
		}
		b.WriteString(line)
	}
	return b.Bytes(), nil
}

// splitImage splits an image reference into repository and tag; a digest stays in the
// repository, as the chart's image helper joins them with ':' only when the tag is set.
func splitImage(image string) (repo, tag string) {
	if strings.Contains(image, "@") {
		return image, ""
	}
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[:i], image[i+1:]
	}
	return image, ""
}
