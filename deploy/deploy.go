package deploy

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/telemetry"
)

// Targets shoal generates for.
const (
	Kubernetes = "kubernetes"
	Helm       = "helm"
	KEDA       = "keda"
	Istio      = "istio"
	Compose    = "compose"
	Nginx      = "nginx"
	Grafana    = "grafana"
	Alerts     = "alerts"
)

// Targets lists every target, in the order `shoal generate all` writes them.
var Targets = []string{Kubernetes, Helm, KEDA, Istio, Compose, Nginx, Grafana, Alerts}

// ErrUnknownTarget is returned by Generate for a target that is not one of Targets.
var ErrUnknownTarget = errors.New("unknown target")

// DefaultPrometheus is the Prometheus KEDA queries when neither deploy.prometheus nor
// Options.Prometheus says otherwise.
const DefaultPrometheus = "http://prometheus.monitoring:9090"

// Options change what Generate writes beyond the configuration.
type Options struct {
	// Image of the service's container; overrides deploy.image. Defaults to deploy.image, then
	// name:version.
	Image string
	// Prometheus is the server KEDA queries; overrides deploy.prometheus.
	Prometheus string
}

// File is one generated file.
type File struct {
	// Path of the file relative to the target's output directory, with forward slashes, e.g.
	// "deployment.yaml" or "scalable-app/templates/service.yaml".
	Path string
	// Data is the file's content.
	Data []byte
}

// Warning is something the configuration asks for that a target cannot express exactly. A
// warning is never dropped: what the target does instead is in its message.
type Warning struct {
	// Target is the target that cannot express the setting.
	Target string
	// Path is the dotted configuration path of the setting, e.g. "scaling.load_balancer.algorithm".
	Path string
	// Message says what the target does instead and how to get closer.
	Message string
}

// String formats w as "target: path: message".
func (w Warning) String() string {
	if w.Path == "" {
		return w.Target + ": " + w.Message
	}
	return w.Target + ": " + w.Path + ": " + w.Message
}

// Output is what Generate produced for one target.
type Output struct {
	// Target generated.
	Target string
	// Files in a fixed order; the same configuration and options give byte-identical files.
	Files []File
	// Warnings about settings the target cannot express, in a fixed order.
	Warnings []Warning
	// Notes are steps the operator must take that no file can, such as creating the Secret.
	Notes []string
}

// Generate renders target for the configuration c (loaded with config.Load, so defaulted and
// validated, for the environment it is to run in). It returns ErrUnknownTarget, wrapped, for a
// target that is not one of Targets, and an error for a configuration the target cannot be
// built from at all; what it can only approximate is reported in Output.Warnings.
func Generate(c *config.Config, target string, opts Options) (*Output, error) {
	if !slices.Contains(Targets, target) {
		return nil, fmt.Errorf("%w %q; use one of %s", ErrUnknownTarget, target, strings.Join(Targets, ", "))
	}
	s, err := newSpec(c, target, opts)
	if err != nil {
		return nil, err
	}
	var files []File
	switch target {
	case Kubernetes:
		files, err = s.kubernetesFiles()
	case Helm:
		files, err = s.helmFiles()
	case KEDA:
		files, err = s.kedaFiles()
	case Istio:
		files, err = s.istioFiles()
	case Compose:
		files, err = s.composeFiles()
	case Nginx:
		files, err = s.nginxFiles()
	case Grafana:
		var b []byte
		b, err = telemetry.GrafanaDashboard(c)
		files = []File{{Path: c.Name + "-dashboard.json", Data: b}}
	case Alerts:
		var b []byte
		b, err = telemetry.AlertRules(c)
		files = []File{{Path: c.Name + "-alerts.yml", Data: append([]byte(s.header("# ")), b...)}}
	}
	if err != nil {
		return nil, fmt.Errorf("generating %s: %w", target, err)
	}
	for _, f := range files {
		if f.Path != path.Clean(f.Path) || path.IsAbs(f.Path) || strings.HasPrefix(f.Path, "..") {
			return nil, fmt.Errorf("generating %s: file path %q escapes the output directory", target, f.Path)
		}
	}
	// Some objects are built more than once (the Helm chart takes values from the same
	// objects it templates): say each thing once.
	var warnings []Warning
	for _, w := range s.warnings {
		if !slices.Contains(warnings, w) {
			warnings = append(warnings, w)
		}
	}
	return &Output{Target: target, Files: files, Warnings: warnings, Notes: s.notes}, nil
}
