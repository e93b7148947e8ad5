package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/autoscale/kubernetes"
	"github.com/shoal-sh/shoal/autoscale/simulate"
	"github.com/shoal-sh/shoal/config"
)

// This file holds the autoscaler's commands: `shoal scaling decisions`, `shoal scaling
// simulate` and `shoal autoscale`, and the autoscaling part of `shoal scaling status`.

func (a *app) scalingDecisionsCommand(f *scalingFlags) *cobra.Command {
	var since string
	var limit int
	var verbose bool
	cmd := &cobra.Command{
		Use:   "decisions [--since 1h] [--limit N] [-v]",
		Short: "Show the autoscaler's decisions: every evaluation, including those that changed nothing",
		Long: `Show the autoscaler's decision log from the admin API: for each evaluation the instance count
before and after, the policy whose recommendation won and why, oldest first. -v adds the metric
values and what every policy recommended; -o json gives everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := f.json()
			if err != nil {
				return err
			}
			d, err := config.ParseDuration(since)
			if err != nil {
				return usagef("--since: %s", err)
			}
			if d <= 0 {
				return usagef("--since must be above zero, e.g. --since 1h")
			}
			if limit < 0 || limit > admin.MaxDecisions {
				return usagef("--limit must be from 0 (all) to %d, not %d", admin.MaxDecisions, limit)
			}
			c, err := a.adminClient(f)
			if err != nil {
				return err
			}
			rep, err := c.Decisions(cmd.Context(), d.D(), limit)
			if err != nil {
				return adminError(err)
			}
			if asJSON {
				return a.printJSON(rep)
			}
			printDecisions(a.stdout, rep, since, verbose)
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "1h", "how far back to look, e.g. 15m, 6h, 1d")
	cmd.Flags().IntVar(&limit, "limit", 0, "show at most the newest N decisions (0: all)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the metric values and every policy's recommendation")
	return cmd
}

// printDecisions writes the decision log as a table.
func printDecisions(out io.Writer, rep admin.DecisionsReport, since string, verbose bool) {
	fmt.Fprintf(out, "autoscaling %s\n", orDash(rep.Reason))
	if len(rep.Decisions) == 0 {
		fmt.Fprintf(out, "no decisions in the last %s\n", since)
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "\nTIME\tINSTANCES\tBY\tWHY")
	for _, d := range rep.Decisions {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", d.Time.Local().Format("2006-01-02 15:04:05"), change(d), orDash(shortPolicy(d.Winner)), decisionWhy(d))
		if !verbose {
			continue
		}
		var ms []string
		for _, m := range d.Metrics {
			s := fmt.Sprintf("%s %s%s", m.Metric, num(m.Value), m.Unit)
			if m.Ignored > 0 || m.Missing > 0 {
				s += fmt.Sprintf(" (%d counted, %d starting, %d silent)", m.Instances, m.Ignored, m.Missing)
			}
			ms = append(ms, s)
		}
		if len(ms) > 0 {
			fmt.Fprintf(w, "\t\tmetrics\t%s\n", strings.Join(ms, "; "))
		}
		for _, p := range d.Policies {
			rec := "-"
			if p.Replicas > 0 {
				rec = fmt.Sprint(p.Replicas)
			}
			fmt.Fprintf(w, "\t\t%s\t%s: %s\n", rec, p.Policy, p.Note)
		}
	}
}

// change describes a decision's count: "3 → 5", "= 3", or "!" when it failed.
func change(d autoscale.Decision) string {
	switch {
	case d.Change == autoscale.ChangeNone && d.Current == 0:
		return "-"
	case d.Change == autoscale.ChangeNone:
		return fmt.Sprintf("= %d", d.Current)
	case d.Error != "":
		return fmt.Sprintf("%d → %d failed", d.Current, d.Desired)
	case !d.Applied:
		return fmt.Sprintf("%d → %d …", d.Current, d.Desired)
	}
	return fmt.Sprintf("%d → %d", d.Current, d.Desired)
}

// decisionWhy is the decision's reason without the restatement of its change.
func decisionWhy(d autoscale.Decision) string {
	why := d.Reason
	if i := strings.Index(why, ": "); i > 0 && (strings.HasPrefix(why, "scale ") || strings.HasPrefix(why, "no change")) {
		why = why[i+2:]
	}
	if d.Error != "" && !strings.Contains(why, d.Error) {
		why += " (error: " + d.Error + ")"
	}
	return why
}

// shortPolicy drops the "target "/"rule " prefix of a policy name for narrow tables.
func shortPolicy(p string) string {
	p = strings.TrimPrefix(p, "target ")
	return strings.Replace(p, "_utilization_percentage", "", 1)
}

// printAutoscaling writes the autoscaling line of `shoal scaling status`: on or off, and why.
func printAutoscaling(w io.Writer, st admin.Status) {
	if st.AutoscalingReason != "" {
		fmt.Fprintf(w, "autoscaling\t%s\n", st.AutoscalingReason)
	}
}

// printRecentDecisions writes the autoscaler's latest decisions at the end of the status.
func printRecentDecisions(w io.Writer, st admin.Status) {
	if len(st.Decisions) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "DECISION TIME\tINSTANCES\tBY\tWHY")
	for _, d := range st.Decisions {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", d.Time.Local().Format("2006-01-02 15:04:05"), change(d), orDash(shortPolicy(d.Winner)), oneLineN(decisionWhy(d), 90))
	}
	fmt.Fprintln(w, "(shoal scaling decisions shows them all, with -v every policy)")
}

// oneLineN keeps s on one line of at most n runes.
func oneLineN(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func (a *app) scalingSimulateCommand(f *scalingFlags) *cobra.Command {
	var trace, pattern, startup, serviceTime, duration, timeout string
	var peak, capacity, memory float64
	var initial int
	cmd := &cobra.Command{
		Use:   "simulate -f shoal.yml (--trace load.csv | --pattern diurnal|spike|ramp --peak N) [--capacity RPS] [--startup 20s] [-o report.html|plot.svg|json]",
		Short: "Replay traffic through a model of the fleet and the real autoscaler, to size min/max, targets and cooldowns",
		Long: `Replay a traffic trace through a model of the fleet and shoal's own autoscaler, on a simulated
clock: each instance serves up to --capacity requests per second at 100% CPU and becomes ready
--startup after it starts; CPU is load over capacity; latency comes from an M/M/c queue of
--service-time requests; what waits longer than --timeout is dropped. The autoscaler decides
every observability.auto_scaling.interval from the configuration (-f, --env) exactly as under
shoal up. A day at one-second resolution takes a couple of seconds.

The trace is a CSV file of timestamp,requests_per_second rows (seconds from the start, a
duration such as 1h30m, or RFC 3339 times), or a built-in --pattern with its --peak.

-o table (the default) prints a summary and a table over time; -o json prints everything with a
point per evaluation; -o FILE.svg draws the chart; -o FILE.html writes a self-contained report
with the chart, the settings and every scale event.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.load(&f.configFlags)
			if err != nil {
				return err
			}
			tr, err := simulationTrace(trace, pattern, peak, duration, cmd.Flags().Changed("peak"))
			if err != nil {
				return err
			}
			m := simulate.Model{Capacity: capacity, Memory: memory, Initial: initial}
			for _, d := range []struct {
				flag, v string
				to      *time.Duration
				def     time.Duration
			}{
				{"--startup", startup, &m.Startup, c.Scaling.Instances.Startup.InitialDelay.D()},
				{"--service-time", serviceTime, &m.ServiceTime, 50 * time.Millisecond},
				{"--timeout", timeout, &m.Timeout, 5 * time.Second},
			} {
				*d.to = d.def
				if d.v != "" {
					v, err := config.ParseDuration(d.v)
					if err != nil {
						return usagef("%s: %s", d.flag, err)
					}
					*d.to = v.D()
				}
			}
			s := autoscale.SettingsFrom(c)
			if m.Initial == 0 {
				m.Initial = initialInstances(tr, s, capacity)
			}
			out, err := simulationOutput(f.output)
			if err != nil {
				return err
			}
			res, err := simulate.Run(cmd.Context(), tr, s, m)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return err
				}
				return usagef("%s", err)
			}
			return a.writeSimulation(res, out)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&trace, "trace", "", "CSV file of timestamp,requests_per_second rows")
	fl.StringVar(&pattern, "pattern", "", "built-in traffic instead of a trace: "+strings.Join(simulate.Patterns, ", "))
	fl.Float64Var(&peak, "peak", 0, "the pattern's peak, in requests per second (with --pattern)")
	fl.StringVar(&duration, "duration", "", "stretch the pattern to this long (default: a day for diurnal, 2h otherwise)")
	fl.Float64Var(&capacity, "capacity", 100, "requests per second one instance serves at 100% CPU")
	fl.StringVar(&startup, "startup", "", "time from an instance's start to ready (default: scaling.instances.startup.initial_delay)")
	fl.StringVar(&serviceTime, "service-time", "", "mean time of one request on an idle instance (default 50ms)")
	fl.StringVar(&timeout, "timeout", "", "how long a request waits for an instance before it is dropped (default 5s)")
	fl.Float64Var(&memory, "memory", 30, "memory utilisation of each instance, in percent")
	fl.IntVar(&initial, "initial", 0, "instances at the start (default: what the first second's traffic needs at the CPU target, within the bounds)")
	cmd.MarkFlagsMutuallyExclusive("trace", "pattern")
	return cmd
}

// simulationTrace reads --trace or builds --pattern.
func simulationTrace(path, pattern string, peak float64, duration string, peakSet bool) (simulate.Trace, error) {
	switch {
	case path == "" && pattern == "":
		return simulate.Trace{}, usagef("simulate needs --trace FILE or --pattern %s with --peak N", strings.Join(simulate.Patterns, "|"))
	case path != "":
		if peakSet || duration != "" {
			return simulate.Trace{}, usagef("--peak and --duration shape a --pattern; a --trace file has its own")
		}
		f, err := os.Open(path)
		if err != nil {
			return simulate.Trace{}, fmt.Errorf("cannot read the trace: %w", err)
		}
		defer f.Close()
		tr, err := simulate.ParseCSV(f, path)
		if err != nil {
			return simulate.Trace{}, usagef("the trace is not valid:\n%s", err)
		}
		return tr, nil
	}
	if !peakSet {
		return simulate.Trace{}, usagef("--pattern %s needs --peak, the highest requests per second, e.g. --peak 100000", pattern)
	}
	var d time.Duration
	if duration != "" {
		v, err := config.ParseDuration(duration)
		if err != nil {
			return simulate.Trace{}, usagef("--duration: %s", err)
		}
		d = v.D()
	}
	tr, err := simulate.Pattern(pattern, peak, d)
	if err != nil {
		return simulate.Trace{}, usagef("%s", err)
	}
	return tr, nil
}

// initialInstances is what the trace's first second needs at the CPU target, within the bounds:
// a fleet that has been running, not one caught cold.
func initialInstances(tr simulate.Trace, s autoscale.Settings, capacity float64) int {
	target := 70.0
	for _, t := range s.Targets {
		if t.Metric == config.MetricCPUUtilization {
			target = t.Value
		}
	}
	n := s.Min
	if capacity > 0 && len(tr.RPS) > 0 {
		n = int(math.Ceil(tr.RPS[0] / (capacity * target / 100)))
	}
	return min(max(n, s.Min), s.Max)
}

// simulationOutput checks -o: table, json, or a file ending in .svg or .html.
func simulationOutput(o string) (string, error) {
	switch ext := strings.ToLower(filepath.Ext(o)); {
	case o == "" || o == "table" || o == "json":
		return o, nil
	case ext == ".svg" || ext == ".html" || ext == ".htm":
		return o, nil
	}
	return "", usagef("-o %q is not a simulate output; use -o table, -o json, -o FILE.svg or -o FILE.html", o)
}

func (a *app) writeSimulation(res *simulate.Result, out string) error {
	switch out {
	case "", "table":
		return res.WriteText(a.stdout)
	case "json":
		return res.WriteJSON(a.stdout)
	}
	fh, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("cannot write the report: %w", err)
	}
	if strings.EqualFold(filepath.Ext(out), ".svg") {
		err = res.WriteSVG(fh)
	} else {
		err = res.WriteHTML(fh)
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	s := res.Summary
	fmt.Fprintf(a.stderr, "wrote %s: %d to %d instances, %d ups and %d downs, %d s overloaded, %.3f%% of requests dropped\n",
		out, s.MinInstances, s.MaxInstances, s.ScaleUps, s.ScaleDowns, s.OverloadedSeconds, 100*s.Dropped/math.Max(s.Requests, 1))
	return nil
}

func (a *app) autoscaleCommand() *cobra.Command {
	var f configFlags
	var kubeconfig, kubeContext, namespace, name, prometheus, job string
	var once, dryRun bool
	var output string
	cmd := &cobra.Command{
		Use:   "autoscale -f shoal.yml [--kubeconfig FILE] [--namespace NS] [--deployment NAME] [--prometheus URL]",
		Short: "Autoscale a Kubernetes Deployment with shoal's autoscaler, the seed's rules included",
		Long: `Run shoal's autoscaler against a Deployment in a cluster, every observability.auto_scaling.interval:
pods' readiness and start times from the API server, their metrics from Prometheus (the queries
of shoal generate keda, over the series of the generated ServiceMonitor), and the change through
the Deployment's scale subresource. It is the autoscaler of shoal up, rules and all, for a
cluster; run it instead of the generated HPA or KEDA object, not beside one.

Each decision is printed, including those that change nothing (-o json: one JSON object a line).
--once evaluates once and exits; --dry-run decides without scaling.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usagef("-o %q is not a format; use -o table or -o json", output)
			}
			c, err := a.load(&f)
			if err != nil {
				return err
			}
			if on, why := autoscale.Enabled(c, config.AutoscaleTargetKubernetes); !on && !strings.HasPrefix(why, "off here") {
				return fmt.Errorf("autoscaling is %s; enable it to run shoal autoscale", why)
			}
			if c.Observability.AutoScaling.Target != config.AutoscaleTargetKubernetes {
				fmt.Fprintf(a.stderr, "shoal: note: observability.auto_scaling.target is %s; scaling the Deployment anyway, as asked\n", c.Observability.AutoScaling.Target)
			}
			sd := c.Scaling.ServiceDiscovery
			if namespace == "" {
				namespace = sd.Namespace
			}
			if name == "" {
				name = c.Name
			}
			if job == "" {
				job = sd.ServiceName
			}
			if prometheus == "" {
				prometheus = c.Deploy.Prometheus
			}
			cs, err := kubernetes.Client(kubeconfig, kubeContext)
			if err != nil {
				return err
			}
			prom, err := kubernetes.NewPrometheus(prometheus, namespace, job)
			if err != nil {
				return usagef("%s", err)
			}
			dep := &kubernetes.Deployment{Client: cs, Namespace: namespace, Name: name, Metrics: prom}
			var scaler autoscale.Scaler = dep
			if dryRun {
				scaler = dryRunScaler{}
			}
			return a.runAutoscale(cmd.Context(), autoscale.New(autoscale.SettingsFrom(c)), dep, scaler, c.Observability.AutoScaling.Interval.D(), once, output == "json")
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")
	fl.StringVar(&kubeContext, "context", "", "kubeconfig context (default: its current context)")
	fl.StringVar(&namespace, "namespace", "", "namespace of the Deployment (default: scaling.service_discovery.namespace)")
	fl.StringVar(&name, "deployment", "", "name of the Deployment (default: name)")
	fl.StringVar(&job, "job", "", "the Prometheus job label of the pods' series (default: scaling.service_discovery.service_name)")
	fl.StringVar(&prometheus, "prometheus", "", "Prometheus address (default: deploy.prometheus)")
	fl.BoolVar(&once, "once", false, "evaluate once and exit")
	fl.BoolVar(&dryRun, "dry-run", false, "decide without scaling the Deployment")
	fl.StringVarP(&output, "output", "o", "table", "output format: table or json (one decision a line)")
	return cmd
}

// dryRunScaler accepts every change without making it.
type dryRunScaler struct{}

func (dryRunScaler) Scale(context.Context, int, string) error { return nil }

// runAutoscale evaluates at once and then every interval until ctx is done (or once), printing
// each decision.
func (a *app) runAutoscale(ctx context.Context, as *autoscale.Autoscaler, src autoscale.Source, scaler autoscale.Scaler, every time.Duration, once, asJSON bool) error {
	print := func(d autoscale.Decision) {
		if asJSON {
			a.printCompactJSON(d)
			return
		}
		fmt.Fprintf(a.stdout, "%s  %-10s %s\n", d.Time.Local().Format("15:04:05"), change(d), d.Reason)
	}
	d := as.Evaluate(ctx, time.Now(), src, scaler)
	print(d)
	if once {
		if d.Error != "" {
			return errors.New(d.Error)
		}
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	as.Run(ctx, t.C, src, scaler, print)
	return nil
}

// printCompactJSON writes v as one line of JSON.
func (a *app) printCompactJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(a.stderr, "shoal: encoding a decision: %v\n", err)
		return
	}
	a.stdout.Write(append(b, '\n'))
}
