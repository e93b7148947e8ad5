package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/shoal-sh/shoal/deploy"
)

// objectTargets are the targets whose files are Kubernetes objects, which -o prints to
// stdout as one stream (yaml) or one List (json), for `shoal generate kubernetes | kubectl
// apply -f -`. The others are files of their own formats (a chart, compose, nginx.conf …).
var objectTargets = []string{deploy.Kubernetes, deploy.KEDA, deploy.Istio}

// Output formats of `shoal generate -o`.
var generateFormats = []string{"yaml", "json"}

// generateCommand is `shoal generate TARGET`.
func (a *app) generateCommand() *cobra.Command {
	var f configFlags
	var format, outDir, image, prometheus string
	var force bool
	targets := strings.Join(deploy.Targets, "|")
	cmd := &cobra.Command{
		Use:   "generate " + targets + "|all [-f FILE] [--env NAME] [-o yaml|json | --dir DIR] [--image IMAGE]",
		Short: "Generate Kubernetes, Helm, KEDA, Istio, docker-compose, nginx, Grafana and alerting files from the configuration",
		Long: `Generate what runs the service elsewhere, from the same configuration, for the environment
selected with --env (or SHOAL_ENV):

  kubernetes  Deployment, Service, one autoscaler (an HPA, or a KEDA ScaledObject when the
              auto_scaling rules need one; deploy.autoscaler decides), PodDisruptionBudget,
              ServiceMonitor (when scaling metrics are on) and, for kubernetes discovery, a
              ServiceAccount allowed to read EndpointSlices
  helm        a chart (helm create's conventions) whose default values render those objects
  keda        the KEDA ScaledObject alone: CPU and memory targets plus Prometheus triggers for
              the auto_scaling rules an HPA cannot express
  istio       VirtualService (retries, timeout, canary weights) and DestinationRule
              (load balancing, outlier detection, subsets)
  compose     docker-compose.yml and nginx.conf: the development stack
  nginx       nginx.conf in front of the instances
  grafana     a Grafana dashboard of the service's scaling metrics
  alerts      Prometheus alerting rules from the configuration's thresholds
  all         every target but keda (the kubernetes and helm targets hold the one
              autoscaler), each in DIR/<target>

Where the output goes, as kubectl does it:
  -o yaml, -o json   print the objects of kubernetes, keda or istio to stdout, e.g.
                     shoal generate kubernetes -o yaml | kubectl apply -f -
  --dir DIR          write the files into DIR (default deploy/<target>, or deploy for all)
  neither            files into deploy/<target> on a terminal; printed as yaml when stdout is
                     a pipe (for kubernetes, keda and istio), so
                     shoal generate kubernetes | kubectl apply -f -   works

Secrets are never written: every ${VAR} of the configuration becomes a reference to the
Secret (deploy.secret_name) or to the environment. What a target cannot express exactly is
printed as a warning. When writing files, files from an earlier run that are no longer
generated are removed, and a file shoal did not write is never overwritten unless --force.`,
		Args: cobra.ArbitraryArgs,
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return append(slices.Clone(deploy.Targets), "all"), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("name one target: %s, or all", strings.Join(deploy.Targets, ", "))
			}
			which := []string{args[0]}
			if args[0] == "all" {
				which = slices.DeleteFunc(slices.Clone(deploy.Targets), func(t string) bool { return t == deploy.KEDA })
			} else if !slices.Contains(deploy.Targets, args[0]) {
				return usagef("%q is not a target%s; use one of %s, or all", args[0],
					didYouMean(args[0], append(slices.Clone(deploy.Targets), "all")), strings.Join(deploy.Targets, ", "))
			}
			if strings.ContainsAny(image, " \t\n") {
				return usagef("--image %q contains whitespace; pass an image reference such as ghcr.io/acme/api:1.4.2", image)
			}
			// -o is a format, as everywhere else; a directory there is what -o meant before
			// --dir existed, and still works.
			if format != "" && !slices.Contains(generateFormats, format) {
				if outDir != "" {
					return usagef("-o %q is not a format; use -o yaml or -o json, or --dir DIR alone to write files", format)
				}
				fmt.Fprintf(a.stderr, "shoal: -o now takes a format (yaml or json), as in kubectl; writing files into %s as -o DIR used to — say --dir %s from now on\n", format, format)
				outDir, format = format, ""
			}
			if format != "" && outDir != "" {
				return usagef("-o %s prints to stdout and --dir %s writes files; pass one of them", format, outDir)
			}
			toStdout := format != ""
			if format == "" && outDir == "" && args[0] != "all" && slices.Contains(objectTargets, args[0]) && !isTerminal(a.stdout) {
				toStdout, format = true, "yaml"
			}
			if toStdout && !slices.Contains(objectTargets, args[0]) {
				return usagef("%s writes files, not objects to print; use --dir DIR (-o yaml|json prints the objects of %s)", args[0], strings.Join(objectTargets, ", "))
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
			if toStdout {
				out := batches[0].out
				for _, w := range out.Warnings {
					fmt.Fprintf(a.stderr, "shoal: warning: %s\n", w)
				}
				for _, n := range out.Notes {
					fmt.Fprintf(a.stderr, "shoal: %s: %s\n", out.Target, n)
				}
				return a.printObjects(out, format)
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
			if args[0] == "all" {
				// The kubernetes and helm targets hold the one autoscaler; a ScaledObject an
				// earlier `generate all` wrote beside them would fight their HPA.
				if err := a.removeGenerated(filepath.Join(dir, deploy.KEDA), deploy.KEDA); err != nil {
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
	cmd.Flags().StringVarP(&format, "output", "o", "", "print the objects to stdout as yaml or json (kubernetes, keda, istio)")
	cmd.Flags().StringVar(&outDir, "dir", "", "directory to write the files into (default: deploy/<target>, or deploy for all)")
	cmd.Flags().StringVar(&image, "image", "", "container image (default: deploy.image, else name:version)")
	cmd.Flags().StringVar(&prometheus, "prometheus", "", "Prometheus server KEDA queries (default: deploy.prometheus, else "+deploy.DefaultPrometheus+")")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite files that shoal did not write")
	cmd.RegisterFlagCompletionFunc("output", fixedCompletion(generateFormats...))
	cmd.RegisterFlagCompletionFunc("dir", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveFilterDirs
	})
	return cmd
}

// printObjects writes a target's objects to stdout: yaml documents separated by ---, or json —
// the object itself when there is one, else a v1 List, as kubectl prints them.
func (a *app) printObjects(out *deploy.Output, format string) error {
	if format == "yaml" {
		for i, file := range out.Files {
			if i > 0 {
				fmt.Fprintln(a.stdout, "---")
			}
			if _, err := a.stdout.Write(file.Data); err != nil {
				return err
			}
		}
		return nil
	}
	var items []json.RawMessage
	for _, file := range out.Files {
		j, err := yaml.YAMLToJSON(file.Data)
		if err != nil {
			return fmt.Errorf("converting %s to JSON: %w", file.Path, err)
		}
		items = append(items, j)
	}
	var v any = struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}{"v1", "List", items}
	if len(items) == 1 {
		v = items[0]
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// removeGenerated removes the files an earlier run wrote for target in dir.
func (a *app) removeGenerated(dir, target string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // nothing there
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if t, ok := deploy.GeneratedBy(data); ok && t == target {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("removing %s, which is no longer generated: %w", p, err)
			}
			fmt.Fprintf(a.stdout, "removed %s (all writes the one autoscaler with the kubernetes target)\n", p)
		}
	}
	return nil
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
		return false, fmt.Errorf("%s is a directory; pick another --dir", p)
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
