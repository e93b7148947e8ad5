package deploy

import (
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/shoal-sh/shoal/config"
)

// spec is what every target is built from: the configuration with its names, labels, ports,
// image and secrets worked out once, and the warnings and notes collected while generating.
type spec struct {
	c      *config.Config
	target string
	// env is the selected environment, "" for the base configuration.
	env string
	// name is the service's name (name:).
	name string
	// workload names the Deployment and what scales or protects it (HPA, PDB, ScaledObject):
	// name, or name-<subset> when deploy.canary splits traffic between versions.
	workload string
	// service names the Kubernetes Service: scaling.service_discovery.service_name.
	service   string
	namespace string
	image     string
	// imageDefaulted is set when neither deploy.image nor --image named the image.
	imageDefaulted bool
	// port is where each instance listens (scaling.service_discovery.port); servicePort is
	// where the Service listens (server.port).
	port, servicePort int32
	// metricsPort is the port metrics are scraped on when it is not port, else 0.
	metricsPort int32
	metricsPath string
	// version is the version label of the pods, "" when it is not a label value: the image's
	// tag when it has one (and no canary pins version:), else version:.
	version string
	// appVersion is that version even when it is not a label value (Helm's appVersion).
	appVersion string
	// selector selects the pods of the workload; labels go on every object and pod.
	selector, labels map[string]string
	secretName       string
	prometheus       string
	secrets          []secretVar
	appEnv           []appEnvVar
	warnings         []Warning
	notes            []string
}

// secretVar is an environment variable the configuration reads with ${NAME}: the container
// gets it from the Secret, never from the generated files.
type secretVar struct {
	Name string
	// Optional is set when every use has a default (${NAME:-x}) or sits where the configuration
	// does not look (the consul block under kubernetes discovery), so the pod starts without it.
	Optional bool
	// Paths are the configuration paths that use it, sorted.
	Paths []string
}

// appEnvVar is one app.env entry, in key order.
type appEnvVar struct {
	Key string
	// Value as loaded (variables already expanded): written only for a literal, non-secret entry.
	Value string
	// Template is the value as written when it used ${VAR}, else "".
	Template string
	// Secret is set for a literal value whose key looks like a secret: it is read from the
	// Secret under Key instead of being written.
	Secret bool
}

// Literal reports whether the entry's value may be written into a file as is.
func (e appEnvVar) Literal() bool { return e.Template == "" && !e.Secret }

// labelValue is Kubernetes' syntax for a label value.
var labelValue = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)

// fixedEnv are the variables every instance gets from shoal; app.env and ${VAR} names that
// collide with them are not written twice.
var fixedEnv = map[string]bool{"SHOAL_ENV": true, "ENVIRONMENT": true, "PORT": true,
	"SHOAL_INSTANCE_ID": true, "K8S_NAMESPACE": true, "K8S_POD_NAME": true}

// newSpec works out what every target shares, for one target.
func newSpec(c *config.Config, target string, opts Options) (*spec, error) {
	sd := c.Scaling.ServiceDiscovery
	s := &spec{
		c:           c,
		target:      target,
		env:         c.Meta.Env,
		name:        c.Name,
		workload:    c.Name,
		service:     sd.ServiceName,
		namespace:   sd.Namespace,
		port:        int32(sd.Port),
		servicePort: int32(c.Server.Port),
		metricsPath: "/metrics",
		secretName:  c.Deploy.SecretName,
		prometheus:  firstOf(opts.Prometheus, c.Deploy.Prometheus, DefaultPrometheus),
	}
	if c.Name == "" {
		return nil, fmt.Errorf("the configuration has no name; set name: to the service's name")
	}
	if s.secretName == "" {
		s.secretName = c.Name + "-secrets"
	}
	s.image = firstOf(opts.Image, c.Deploy.Image)
	if s.image == "" {
		s.image, s.imageDefaulted = c.Name+":"+c.Version, true
	}
	if strings.ContainsAny(s.image, " \t\n") {
		return nil, fmt.Errorf("image %q contains whitespace; pass an image reference such as ghcr.io/acme/api:1.4.2", s.image)
	}

	// The version that runs is the image's tag when it has one: `--image app:1.0` labels the
	// pods 1.0 even though version: is left at its default. A canary keeps version:, since its
	// subsets select pods by that label.
	appVersion := c.Version
	if _, tag := splitImage(s.image); tag != "" && tag != "latest" && len(c.Deploy.Canary) == 0 {
		appVersion = tag
	}
	if labelValue.MatchString(appVersion) && len(appVersion) <= 63 {
		s.version = appVersion
	} else if target != Compose && target != Nginx {
		s.warn("version", "%q is not a Kubernetes label value, so pods get no version label; use letters, digits, '-', '_' and '.' only", appVersion)
	}
	s.appVersion = appVersion
	// The selector is Kubernetes' recommended pair, as `helm create` has it: the name and the
	// instance (the Helm release; the service's name outside Helm).
	s.selector = map[string]string{"app.kubernetes.io/name": c.Name, "app.kubernetes.io/instance": c.Name}
	if len(c.Deploy.Canary) > 0 {
		// One Deployment per version: each needs its own name and a selector that tells its
		// pods from the other version's, while the Service spans both.
		i := slices.IndexFunc(c.Deploy.Canary, func(cs config.CanarySubset) bool { return cs.Version == s.version })
		if i < 0 && (target == Kubernetes || target == Helm || target == KEDA) {
			var vs []string
			for _, cs := range c.Deploy.Canary {
				vs = append(vs, cs.Version)
			}
			return nil, fmt.Errorf("version %q is not the version of any deploy.canary subset (%s); set version: to the one this Deployment runs", c.Version, strings.Join(vs, ", "))
		}
		if i >= 0 {
			s.workload = c.Name + "-" + c.Deploy.Canary[i].Name
			s.selector["version"] = s.version
		}
	}
	s.labels = map[string]string{
		"app":                          c.Name,
		"app.kubernetes.io/name":       c.Name,
		"app.kubernetes.io/instance":   c.Name,
		"app.kubernetes.io/managed-by": "shoal",
	}
	if s.version != "" {
		s.labels["version"] = s.version
		s.labels["app.kubernetes.io/version"] = s.version
	}
	maps.Copy(s.labels, c.Deploy.Labels)

	ann := sd.Kubernetes.Annotations
	if p := ann["prometheus.io/path"]; p != "" {
		s.metricsPath = p
	}
	if p, ok := ann["prometheus.io/port"]; ok {
		n, err := strconv.Atoi(p)
		switch {
		case err != nil || n < 1 || n > 65535:
			s.warn("scaling.service_discovery.kubernetes.annotations.prometheus.io/port", "%q is not a port; metrics are scraped on the service port %d", p, s.port)
		case int32(n) != s.port:
			s.metricsPort = int32(n)
		}
	}

	s.secrets = secretVars(c)
	for _, k := range slices.Sorted(maps.Keys(c.App.Env)) {
		if fixedEnv[k] {
			if s.usesEnv() {
				s.warn("app.env."+k, "is set by shoal for every instance; the value in app.env is not used")
			}
			continue
		}
		e := appEnvVar{Key: k, Value: c.App.Env[k], Template: c.Meta.Templates["app.env."+k]}
		if e.Template == "" && config.IsSecretName(k) && e.Value != "" {
			e.Secret = true
			if s.usesEnv() {
				s.warn("app.env."+k, "looks like a secret and is written literally in the configuration; it is read from the environment or Secret %q instead of being copied into files — write it as ${%s}", s.secretName, k)
			}
		}
		s.appEnv = append(s.appEnv, e)
	}
	return s, nil
}

// usesEnv reports whether the target writes the instances' environment.
func (s *spec) usesEnv() bool {
	return s.target == Kubernetes || s.target == Helm || s.target == Compose
}

// warn records that the target cannot express the setting at path exactly.
func (s *spec) warn(path, format string, args ...any) {
	s.warnings = append(s.warnings, Warning{Target: s.target, Path: path, Message: fmt.Sprintf(format, args...)})
}

// header is the comment opening every generated file, with prefix starting each line.
func (s *spec) header(prefix string) string {
	env := "the base configuration"
	if s.env != "" {
		env = "environment " + s.env
	}
	return fmt.Sprintf("%sGenerated by `shoal generate %s` from %s (%s).\n%sDo not edit: change the configuration and generate again.\n",
		prefix, s.target, filepath.Base(s.c.Meta.File), env, prefix)
}

// generatedMarker starts the first line of every file Generate writes, after the comment sign.
const generatedMarker = "Generated by `shoal generate "

// GeneratedBy reports whether data is a file Generate wrote — its first line is the header
// every generated file opens with — and for which target. The CLI overwrites or removes such
// files, and refuses to touch others.
func GeneratedBy(data []byte) (target string, ok bool) {
	first, rest, _ := strings.Cut(string(data), "\n")
	if first == "{" {
		// JSON has no comments: a Grafana dashboard says it in its description, near the top.
		for i := 0; i < 8 && rest != ""; i++ {
			first, rest, _ = strings.Cut(rest, "\n")
			if strings.Contains(first, generatedMarker) {
				break
			}
		}
	}
	_, after, ok := strings.Cut(first, generatedMarker)
	if !ok {
		return "", false
	}
	target, _, ok = strings.Cut(after, "`")
	if !ok || !slices.Contains(Targets, target) {
		return "", false
	}
	return target, true
}

// secretKeys returns the keys the Secret must hold: every ${VAR} and every literal secret of
// app.env, sorted.
func (s *spec) secretKeys() (required, optional []string) {
	for _, v := range s.secrets {
		if v.Optional {
			optional = append(optional, v.Name)
		} else {
			required = append(required, v.Name)
		}
	}
	for _, e := range s.appEnv {
		if e.Secret {
			required = append(required, e.Key)
		}
	}
	slices.Sort(required)
	return required, optional
}

// secretNote tells the operator to create the Secret, which shoal never writes.
func (s *spec) secretNote() {
	required, optional := s.secretKeys()
	if len(required)+len(optional) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "create Secret %s in namespace %s (shoal never writes secret values):\n  kubectl -n %s create secret generic %s", s.secretName, s.namespace, s.namespace, s.secretName)
	for _, k := range required {
		fmt.Fprintf(&b, " --from-literal=%s=...", k)
	}
	for _, k := range optional {
		fmt.Fprintf(&b, " --from-literal=%s=...", k)
	}
	if len(optional) > 0 {
		fmt.Fprintf(&b, "\n  optional keys (the configuration has a default or does not use them): %s", strings.Join(optional, ", "))
	}
	s.notes = append(s.notes, b.String())
}

// secretVars finds every ${VAR} the configuration used, from the raw values kept in
// Meta.Templates, and every override variable (config.Overrides) the loader applied.
func secretVars(c *config.Config) []secretVar {
	byName := map[string]*secretVar{}
	for _, p := range slices.Sorted(maps.Keys(c.Meta.Templates)) {
		for _, ref := range references(c.Meta.Templates[p]) {
			if fixedEnv[ref.name] {
				continue
			}
			optional := ref.hasDefault || config.Inactive(c, p)
			v, ok := byName[ref.name]
			if !ok {
				v = &secretVar{Name: ref.name, Optional: true}
				byName[ref.name] = v
			}
			v.Optional = v.Optional && optional
			if !slices.Contains(v.Paths, p) {
				v.Paths = append(v.Paths, p)
			}
		}
	}
	// A value the loader took from one of the seed's override variables (DATABASE_URL ...) is
	// not in the file either: the instances need the same variable.
	for _, o := range config.Overrides {
		if c.Meta.Position(o.Path).File != "environment variable "+o.Var || fixedEnv[o.Var] {
			continue
		}
		if v, ok := byName[o.Var]; ok {
			v.Optional = false
			if !slices.Contains(v.Paths, o.Path) {
				v.Paths = append(v.Paths, o.Path)
				slices.Sort(v.Paths)
			}
			continue
		}
		byName[o.Var] = &secretVar{Name: o.Var, Paths: []string{o.Path}}
	}
	brokerSecret(c, byName)
	out := make([]secretVar, 0, len(byName))
	for _, n := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, *byName[n])
	}
	return out
}

// reference is one ${NAME...} in a template.
type reference struct {
	name       string
	hasDefault bool
	// whole is set when the reference is the entire template.
	whole bool
}

// references returns the variable references of a template, as config's interpolation reads them.
func references(t string) []reference {
	var refs []reference
	for _, r := range config.References(t) {
		if r.Valid {
			refs = append(refs, reference{name: r.Name, hasDefault: r.HasDefault(), whole: r.Start == 0 && r.End == len(t)})
		}
	}
	return refs
}

// terminationGrace is how long Kubernetes (and compose) give a pod to stop: the preStop drain,
// then graceful_timeout after SIGTERM — and no less than force_timeout, which is when shoal
// itself would kill the instance.
func (s *spec) terminationGrace() int64 {
	sh := s.c.Scaling.Instances.Shutdown
	grace := int64(sh.DrainTimeout.Seconds()) + int64(sh.GracefulTimeout.Seconds())
	if f := int64(sh.ForceTimeout.Seconds()); f > grace {
		return f
	}
	return grace
}

// firstOf returns the first non-empty value.
func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// secondsString formats a duration the way Istio (protobuf JSON) and Go both parse: whole or
// fractional seconds with an "s" suffix, e.g. "60s" or "0.025s".
func secondsString(d config.Duration) string {
	return strconv.FormatFloat(d.D().Seconds(), 'f', -1, 64) + "s"
}

// literalSecrets warns about secrets written into the configuration itself rather than as
// ${VAR}: fields tagged secret:"true" with a value, and URLs (secret:"url") carrying a password.
// No generated file copies them, but an image that ships the configuration ships them too.
func (s *spec) literalSecrets() {
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || key == "-" || key == "environments" {
				continue
			}
			p := key
			if path != "" {
				p = path + "." + key
			}
			fv := v.Field(i)
			var values []string
			var paths []string
			switch {
			case fv.Kind() == reflect.Struct:
				walk(fv, p)
				continue
			case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
				for j := 0; j < fv.Len(); j++ {
					walk(fv.Index(j), fmt.Sprintf("%s[%d]", p, j))
				}
				continue
			case fv.Kind() == reflect.String:
				values, paths = []string{fv.String()}, []string{p}
			case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
				for j := 0; j < fv.Len(); j++ {
					values = append(values, fv.Index(j).String())
					paths = append(paths, fmt.Sprintf("%s[%d]", p, j))
				}
			}
			tag := f.Tag.Get("secret")
			for j, val := range values {
				if val == "" || tag == "" || s.c.Meta.Templates[paths[j]] != "" || config.Inactive(s.c, paths[j]) ||
					strings.HasPrefix(s.c.Meta.Position(paths[j]).File, "environment variable ") {
					continue
				}
				if tag == "url" {
					u, err := url.Parse(val)
					if err != nil || u.User == nil {
						continue
					}
					if _, has := u.User.Password(); !has {
						continue
					}
				}
				s.warn(paths[j], "holds a secret written in the configuration itself; no generated file copies it, but an image that ships the configuration ships the secret — write it as ${VAR} so it comes from the Secret or the environment")
			}
		}
	}
	walk(reflect.ValueOf(s.c).Elem(), "")
}
