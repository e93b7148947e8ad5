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

	"github.com/shoal-sh/shoal/config"
)

// The Helm chart is the kubernetes target's objects with the knobs an operator turns taken
// from values.yaml: the image, the replica count, resources, app.env's plain values and the
// autoscaler's bounds and targets, with the release's namespace. It is made by rendering the
// same typed objects with a placeholder token where a template expression goes, then putting
// the expressions in; so with the default values.yaml, `helm template -n NAMESPACE` gives the
// kubernetes target's objects, which a test checks.

// helmValues is values.yaml: the knobs of `helm create`'s chart, with defaults that render
// the kubernetes target's objects.
type helmValues struct {
	NameOverride     string                        `json:"nameOverride"`
	FullnameOverride string                        `json:"fullnameOverride"`
	Image            helmImage                     `json:"image"`
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets"`
	ReplicaCount     int                           `json:"replicaCount"`
	Environment      string                        `json:"environment"`
	PodAnnotations   map[string]string             `json:"podAnnotations"`
	Service          helmService                   `json:"service"`
	Resources        corev1.ResourceRequirements   `json:"resources"`
	Env              map[string]string             `json:"env"`
	NodeSelector     map[string]string             `json:"nodeSelector"`
	Tolerations      []corev1.Toleration           `json:"tolerations"`
	Affinity         map[string]any                `json:"affinity"`
	Autoscaling      helmAutoscaling               `json:"autoscaling"`
	ServiceMonitor   *helmToggle                   `json:"serviceMonitor,omitempty"`
}

// helmImage is an image reference split as Helm charts usually take it.
type helmImage struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	PullPolicy string `json:"pullPolicy"`
}

// helmService is the Service's type and port.
type helmService struct {
	Type string `json:"type"`
	Port int32  `json:"port"`
}

// helmAutoscaling configures the autoscaler: the HorizontalPodAutoscaler, or the KEDA
// ScaledObject when Choose picks KEDA.
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
	"affinity":         "Pod affinity and anti-affinity (the pods already spread over nodes and zones).",
	"autoscaling":      "The autoscaler (scaling.instances; deploy.autoscaler says which): replica bounds and utilisation targets in percent of the requests.",
	"env":              "Plain environment variables of the container (app.env). Secrets come from the Secret, never from here; a literal $ is written $$.",
	"environment":      "The environment overlay the instances load (SHOAL_ENV); empty for the base configuration.",
	"fullnameOverride": "Names every object instead of RELEASE-CHART (or RELEASE when it holds the chart's name).",
	"image":            "The container image (deploy.image or --image); the tag is also the pods' version label.",
	"imagePullSecrets": "Secrets to pull the image with, e.g. [{name: regcred}].",
	"nameOverride":     "Replaces the chart's name in object names and the app.kubernetes.io/name label.",
	"nodeSelector":     "Node labels the pods must run on.",
	"podAnnotations":   "Annotations of the pods (scaling.service_discovery.kubernetes.annotations).",
	"replicaCount":     "Replicas of the Deployment (scaling.instances.min_instances); the autoscaler takes over from there.",
	"resources":        "Requests and limits of the container (deploy.resources).",
	"service":          "The Service's type (scaling.service_discovery.kubernetes.service_type) and port (server.port).",
	"serviceMonitor":   "The Prometheus Operator ServiceMonitor (observability.scaling_metrics.enabled).",
	"tolerations":      "Taints the pods tolerate.",
}

var semver = regexp.MustCompile(`^v?((0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)$`)

// helmTemplater collects the placeholder tokens of one template file and what replaces them.
type helmTemplater struct {
	n int
	// inline tokens are replaced by an expression in place.
	inline map[string]string
	// block tokens stand as the value of a key, replaced by a YAML block the expression renders.
	block map[string]string
	// optional tokens stand as the value of a key, replaced by the key and the YAML of expr
	// when expr is not empty, else by nothing.
	optional map[string]string
	// list tokens stand as a list item, replaced by lines of template.
	list map[string][]string
}

// newTemplater returns an empty templater.
func newTemplater() *helmTemplater {
	return &helmTemplater{inline: map[string]string{}, block: map[string]string{}, optional: map[string]string{}, list: map[string][]string{}}
}

// token returns a new placeholder: letters and digits, so YAML writes it unquoted.
func (h *helmTemplater) token() string { h.n++; return fmt.Sprintf("SHOALHELMTOKEN%04d", h.n) }

// Inline returns a token replaced by expr where it stands.
func (h *helmTemplater) Inline(expr string) string { t := h.token(); h.inline[t] = expr; return t }

// Block returns a token that, as the value of a key, is replaced by the YAML expr renders.
func (h *helmTemplater) Block(expr string) string { t := h.token(); h.block[t] = expr; return t }

// Optional returns a token that, as the value of a key, is replaced by the key and the YAML of
// expr, or left out with its key when expr is empty.
func (h *helmTemplater) Optional(expr string) string { t := h.token(); h.optional[t] = expr; return t }

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
			if expr, ok := h.optional[val]; ok && item == "" {
				pad := strings.Repeat(" ", indent)
				fmt.Fprintf(&b, "%s{{- with %s }}\n%s%s:\n%s{{- toYaml . | nindent %d }}\n%s{{- end }}\n",
					pad, expr, pad, key, strings.Repeat(" ", indent+2), indent+2, pad)
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
//
// The chart follows `helm create`'s conventions: objects are named after the release
// (RELEASE-CHART, or RELEASE when it holds the chart's name; nameOverride and
// fullnameOverride as usual), so two releases in one namespace do not collide; pods are
// selected by app.kubernetes.io/name and app.kubernetes.io/instance; every object carries
// helm.sh/chart and app.kubernetes.io/managed-by: {{ .Release.Service }}; the version labels
// follow image.tag. Installed as a release named after the service, with the default values,
// it renders the kubernetes target's objects but for those two Helm labels.
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
		obj := tree.(map[string]any)
		s.helmNames(obj, h, inc)
		var wrap string
		switch kf.path {
		case "deployment.yaml":
			spec := obj["spec"].(map[string]any)
			spec["replicas"] = h.Inline("{{ .Values.replicaCount }}")
			tmpl := spec["template"].(map[string]any)
			tmpl["metadata"].(map[string]any)["annotations"] = h.Optional(".Values.podAnnotations")
			podSpec := tmpl["spec"].(map[string]any)
			for key, value := range map[string]string{"imagePullSecrets": ".Values.imagePullSecrets",
				"nodeSelector": ".Values.nodeSelector", "tolerations": ".Values.tolerations", "affinity": ".Values.affinity"} {
				podSpec[key] = h.Optional(value)
			}
			ctr := podSpec["containers"].([]any)[0].(map[string]any)
			ctr["image"] = h.Inline(fmt.Sprintf("{{ %s | quote }}", inc("image")))
			ctr["imagePullPolicy"] = h.Inline("{{ .Values.image.pullPolicy }}")
			ctr["resources"] = h.Block("toYaml .Values.resources")
			_, literal := s.kubeEnv()
			var env []any
			env = append(env, h.List(
				"{{- with .Values.environment }}",
				"- name: SHOAL_ENV",
				"  value: {{ . | quote }}",
				"- name: ENVIRONMENT",
				"  value: {{ . | quote }}",
				"{{- end }}"))
			all := ctr["env"].([]any)
			for _, e := range all[:len(all)-len(literal)] {
				if n := e.(map[string]any)["name"]; n == "SHOAL_ENV" || n == "ENVIRONMENT" {
					continue // from .Values.environment, so one chart serves every environment
				}
				env = append(env, e)
			}
			ctr["env"] = append(env, h.List(
				"{{- range $name, $value := .Values.env }}",
				"- name: {{ $name | quote }}",
				"  value: {{ $value | quote }}",
				"{{- end }}"))
		case "service.yaml":
			spec := obj["spec"].(map[string]any)
			spec["type"] = h.Inline("{{ .Values.service.type }}")
			spec["ports"].([]any)[0].(map[string]any)["port"] = h.Inline("{{ .Values.service.port }}")
		case "hpa.yaml":
			spec := obj["spec"].(map[string]any)
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
		case "scaledobject.yaml":
			spec := obj["spec"].(map[string]any)
			spec["minReplicaCount"] = h.Inline("{{ .Values.autoscaling.minReplicas }}")
			spec["maxReplicaCount"] = h.Inline("{{ .Values.autoscaling.maxReplicas }}")
			for _, t := range spec["triggers"].([]any) {
				tr := t.(map[string]any)
				key := map[any]string{"cpu": "targetCPUUtilizationPercentage", "memory": "targetMemoryUtilizationPercentage"}[tr["type"]]
				if key != "" {
					tr["metadata"].(map[string]any)["value"] = h.Inline("{{ .Values.autoscaling." + key + " | quote }}")
				}
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
	tree, err := toTree(helmChart{APIVersion: "v2", Name: chart, Type: "application", Version: version, AppVersion: s.appVersion,
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
	fmt.Fprintf(&notes, "%s is installed as {{ include %q . }} in namespace {{ .Release.Namespace }}.\n", chart, chart+".fullname")
	for _, n := range s.notes {
		notes.WriteString("\nBefore it can start, " + n + "\n")
	}
	if len(s.notes) > 0 {
		notes.WriteString("(with -n {{ .Release.Namespace }} if you installed into another namespace)\n")
	}
	s.autoscalerNote()
	if len(s.notes) > 0 && strings.HasPrefix(s.notes[len(s.notes)-1], "autoscaler: ") {
		notes.WriteString("\nThe " + s.notes[len(s.notes)-1] + "\n")
	}
	if s.c.Scaling.ServiceDiscovery.Method == config.DiscoveryKubernetes {
		// The instances find each other through the Service named service_name.
		fmt.Fprintf(&notes, "{{- if ne (include %q .) %q }}\n\nThe instances discover each other through the Service %s (scaling.service_discovery.service_name),\n"+
			"but this release names it {{ include %q . }}: install the release as %s, or pass --set fullnameOverride=%s.\n{{- end }}\n",
			chart+".fullname", s.service, s.service, chart+".fullname", s.service, s.service)
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
			if m, ok := child.(map[string]any); ok && (k == "labels" || k == "matchLabels" || k == "selector") {
				switch {
				case equalLabels(m, s.labels):
					v[k] = h.Block(inc("labels"))
					continue
				case equalLabels(m, shared):
					v[k] = h.Block(inc("commonLabels"))
					continue
				case equalLabels(m, s.serviceSelector()):
					v[k] = h.Block(inc("selectorLabels"))
					continue
				case equalLabels(m, s.selector):
					v[k] = h.Block(inc("podSelectorLabels"))
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

// helmNames names an object, and the objects it refers to, after the release: the service's
// name becomes the chart's fullname, and a name that starts with it (name-v1, name-discovery)
// the fullname with the same suffix.
func (s *spec) helmNames(obj map[string]any, h *helmTemplater, inc func(string) string) {
	rename := func(m map[string]any, key string) {
		v, ok := m[key].(string)
		if !ok {
			return
		}
		full := "{{ " + inc("fullname") + " }}"
		switch {
		case v == s.name || v == s.service:
			m[key] = h.Inline(full)
		case strings.HasPrefix(v, s.name+"-"):
			m[key] = h.Inline(full + strings.TrimPrefix(v, s.name))
		}
	}
	child := func(m map[string]any, key string) map[string]any { c, _ := m[key].(map[string]any); return c }
	if m := child(obj, "metadata"); m != nil {
		rename(m, "name")
	}
	spec := child(obj, "spec")
	if ref := child(spec, "scaleTargetRef"); ref != nil {
		rename(ref, "name")
	}
	if pod := child(child(spec, "template"), "spec"); pod != nil {
		rename(pod, "serviceAccountName")
	}
	if ref := child(obj, "roleRef"); ref != nil {
		rename(ref, "name")
	}
	if subjects, ok := obj["subjects"].([]any); ok {
		for _, sub := range subjects {
			if m, ok := sub.(map[string]any); ok {
				rename(m, "name")
			}
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

// helmHelpers is _helpers.tpl: `helm create`'s name, fullname and chart helpers, the labels,
// and the image reference.
func (s *spec) helmHelpers(chart string, shared map[string]string) ([]byte, error) {
	var b bytes.Buffer
	def := func(name, doc, body string) {
		fmt.Fprintf(&b, "\n{{/* %s */}}\n{{- define %q -}}\n%s\n{{- end }}\n", doc, chart+"."+name, strings.TrimSuffix(body, "\n"))
	}
	inc := func(name string) string { return fmt.Sprintf("{{ include %q . }}", chart+"."+name) }
	b.WriteString(strings.ReplaceAll(s.header("{{/* "), "\n", " */}}\n"))
	def("name", "The chart's name, or nameOverride; at most 63 characters.",
		`{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}`)
	def("fullname", "What every object is named: fullnameOverride, else RELEASE-NAME, or RELEASE when it holds NAME.",
		`{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}`)
	def("chart", "The chart's name and version, for the helm.sh/chart label.",
		`{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}`)
	version := `{{- .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}`
	if len(s.c.Deploy.Canary) == 0 {
		version = `{{- $tag := .Values.image.tag }}
{{- if or (not $tag) (eq $tag "latest") }}{{ $tag = .Chart.AppVersion }}{{ end }}
{{- $tag | trunc 63 | trimSuffix "-" | quote }}`
	}
	def("version", "The pods' version label: image.tag, else the chart's appVersion (a canary keeps its version).", version)
	def("selectorLabels", "Labels the Service selects the pods by; a Deployment cannot change its selector once deployed.",
		"app.kubernetes.io/name: "+inc("name")+"\napp.kubernetes.io/instance: {{ .Release.Name }}")
	if len(s.selector) != len(s.serviceSelector()) {
		extra, err := marshalTree(withoutKeys(s.selector, s.serviceSelector()))
		if err != nil {
			return nil, err
		}
		def("podSelectorLabels", "Labels the workload selects its pods by: those of the Service and this version's.",
			inc("selectorLabels")+"\n"+string(extra))
	}
	common, err := marshalTree(withoutKeys(shared, s.serviceSelector(), map[string]string{"app": "", "app.kubernetes.io/managed-by": ""}))
	if err != nil {
		return nil, err
	}
	commonBody := inc("selectorLabels") + "\napp: " + inc("name") + "\napp.kubernetes.io/managed-by: {{ .Release.Service }}\nhelm.sh/chart: " + inc("chart")
	if string(common) != "{}\n" {
		commonBody += "\n" + string(common)
	}
	def("commonLabels", "Labels of the objects every version shares (Service, ServiceMonitor, RBAC).", commonBody)
	labelsBody := inc("commonLabels")
	if s.version != "" {
		labelsBody += "\napp.kubernetes.io/version: " + inc("version")
		if len(s.c.Deploy.Canary) > 0 {
			labelsBody += "\nversion: " + s.version
		} else {
			labelsBody += "\nversion: " + inc("version")
		}
	}
	def("labels", "Labels of the workload's objects and pods.", labelsBody)
	def("image", "The container image: repository, then :tag when a tag is set.",
		"{{ .Values.image.repository }}{{ with .Values.image.tag }}:{{ . }}{{ end }}")
	return b.Bytes(), nil
}

// withoutKeys returns labels without the keys of the others.
func withoutKeys(labels map[string]string, others ...map[string]string) map[string]string {
	out := maps.Clone(labels)
	for _, o := range others {
		for k := range o {
			delete(out, k)
		}
	}
	return out
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
	svc := objs.Service.Spec
	v := helmValues{
		Image:            helmImage{Repository: repo, Tag: tag, PullPolicy: string(pullPolicy(s.image))},
		ImagePullSecrets: []corev1.LocalObjectReference{},
		ReplicaCount:     in.MinInstances,
		Environment:      s.env,
		PodAnnotations:   maps.Clone(s.c.Scaling.ServiceDiscovery.Kubernetes.Annotations),
		Service:          helmService{Type: string(svc.Type), Port: svc.Ports[0].Port},
		Resources:        objs.Deployment.Spec.Template.Spec.Containers[0].Resources,
		Env:              env,
		NodeSelector:     map[string]string{},
		Tolerations:      []corev1.Toleration{},
		Affinity:         map[string]any{},
		Autoscaling: helmAutoscaling{Enabled: s.c.Scaling.Enabled, MinReplicas: in.MinInstances, MaxReplicas: in.MaxInstances,
			TargetCPUUtilizationPercentage: in.TargetCPUUtilization, TargetMemoryUtilizationPercentage: in.TargetMemoryUtilization},
	}
	if v.PodAnnotations == nil {
		v.PodAnnotations = map[string]string{}
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
