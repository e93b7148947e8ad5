package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoal-sh/shoal/deploy"
)

// generateCommand is `shoal generate TARGET`.
func (a *app) generateCommand() *cobra.Command {
	var f configFlags
	var outDir, image, prometheus string
	var force bool
	targets := strings.Join(deploy.Targets, "|")
	cmd := &cobra.Command{
		Use:   "generate " + targets + "|all [-f FILE] [--env NAME] [-o DIR] [--image IMAGE]",
		Short: "Generate Kubernetes, Helm, KEDA, Istio, docker-compose, nginx, Grafana and alerting files from the configuration",
		Long: `Generate what runs the service elsewhere, from the same configuration, for the environment
selected with --env (or SHOAL_ENV):

  kubernetes  Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget, ServiceMonitor
              (when scaling metrics are on) and, for kubernetes discovery, a ServiceAccount
              allowed to read EndpointSlices
  helm        a chart whose default values render the kubernetes objects
  keda        a ScaledObject: CPU and memory targets plus Prometheus triggers for the
              auto_scaling rules an HPA cannot express (use it instead of the HPA)
  istio       VirtualService (retries, timeout, canary weights) and DestinationRule
              (load balancing, outlier detection, subsets)
  compose     docker-compose.yml and nginx.conf: the development stack
  nginx       nginx.conf in front of the instances
  grafana     a Grafana dashboard of the service's scaling metrics
  alerts      Prometheus alerting rules from the configuration's thresholds
  all         every target, each in DIR/<target>

Secrets are never written: every ${VAR} of the configuration becomes a reference to the
Secret (deploy.secret_name) or to the environment. What a target cannot express exactly is
printed as a warning. Files are written into -o DIR (default deploy/<target>, or deploy for
all); files from an earlier run that are no longer generated are removed, and a file shoal did
not write is never overwritten unless --force.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("name one target: %s, or all", strings.Join(deploy.Targets, ", "))
			}
			which := []string{args[0]}
			if args[0] == "all" {
				which = deploy.Targets
			} else if !slices.Contains(deploy.Targets, args[0]) {
				return usagef("%q is not a target; use one of %s, or all", args[0], strings.Join(deploy.Targets, ", "))
			}
			if strings.ContainsAny(image, " \t\n") {
				return usagef("--image %q contains whitespace; pass an image reference such as ghcr.io/acme/api:1.4.2", image)
			}
			c, err := a.load(&f)
			if err != nil {
				return err
			}
			dir := outDir
			if dir == "" {
				dir = "deploy"
				if args[0] != "all" {
					dir = filepath.Join(dir, args[0])
				}
			}
			// Generate everything before writing anything, so a failure leaves no half-written set.
			type batch struct {
				dir string
				out *deploy.Output
			}
			var batches []batch
			for _, t := range which {
				out, err := deploy.Generate(c, t, deploy.Options{Image: image, Prometheus: prometheus})
				if err != nil {
					return err
				}
				d := dir
				if args[0] == "all" {
					d = filepath.Join(dir, t)
				}
				batches = append(batches, batch{d, out})
			}
			if !force {
				for _, b := range batches {
					for _, file := range b.out.Files {
						p := filepath.Join(b.dir, filepath.FromSlash(file.Path))
						if ok, err := overwritable(p); err != nil {
							return err
						} else if !ok {
							return fmt.Errorf("%s exists and was not written by shoal generate; move it away or pass --force to overwrite it", p)
						}
					}
				}
			}
			for _, b := range batches {
				for _, w := range b.out.Warnings {
					fmt.Fprintf(a.stderr, "shoal: warning: %s\n", w)
				}
				if err := a.writeOutput(b.dir, b.out); err != nil {
					return err
				}
			}
			for _, b := range batches {
				for _, n := range b.out.Notes {
					fmt.Fprintf(a.stdout, "%s: %s\n", b.out.Target, n)
				}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&outDir, "output", "o", "", "directory to write into (default: deploy/<target>, or deploy for all)")
	cmd.Flags().StringVar(&image, "image", "", "container image (default: deploy.image, else name:version)")
	cmd.Flags().StringVar(&prometheus, "prometheus", "", "Prometheus server KEDA queries (default: deploy.prometheus, else "+deploy.DefaultPrometheus+")")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite files that shoal did not write")
	return cmd
}

// overwritable reports whether the file at p may be written: it does not exist, or shoal
// generate wrote it.
func overwritable(p string) (bool, error) {
	fh, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err == nil && fi.IsDir() {
		return false, fmt.Errorf("%s is a directory; pick another -o", p)
	}
	line, err := bufio.NewReader(fh).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	_, ok := deploy.GeneratedBy([]byte(line))
	return ok, nil
}

// writeOutput writes a target's files under dir, prints each path, and removes the files an
// earlier run of the same target wrote beside them that this run no longer generates.
func (a *app) writeOutput(dir string, out *deploy.Output) error {
	written := map[string]bool{}
	dirs := map[string]bool{}
	for _, file := range out.Files {
		p := filepath.Join(dir, filepath.FromSlash(file.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		if err := os.WriteFile(p, file.Data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		written[p], dirs[filepath.Dir(p)] = true, true
		fmt.Fprintf(a.stdout, "wrote %s\n", p)
	}
	for _, d := range slices.Sorted(func(yield func(string) bool) {
		for d := range dirs {
			if !yield(d) {
				return
			}
		}
	}) {
		entries, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			if written[p] || !e.Type().IsRegular() {
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			if t, ok := deploy.GeneratedBy(data); ok && t == out.Target {
				if err := os.Remove(p); err != nil {
					return fmt.Errorf("removing %s, which is no longer generated: %w", p, err)
				}
				fmt.Fprintf(a.stdout, "removed %s (no longer generated)\n", p)
			}
		}
	}
	return nil
}
