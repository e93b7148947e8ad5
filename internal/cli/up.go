package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/fleet"
	"github.com/shoal-sh/shoal/internal/dashboard"
	"github.com/shoal-sh/shoal/proxy"
)

func (a *app) upCommand() *cobra.Command {
	var f configFlags
	var debug, quiet bool
	cmd := &cobra.Command{
		Use:   "up [-f FILE] [--env NAME]",
		Short: "Run the service on this machine: instances behind shoal's proxy, supervised and scalable",
		Long: `Run the service described by shoal.yml on this machine: build app.command when it is a Go package,
start scaling.instances.min_instances instances, put shoal's load-balancing proxy in front of them on
server.port, restart crashed instances, and serve the admin API and dashboard on admin.listen for
` + "`shoal scaling …`" + `. Ctrl-C drains every instance and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.load(&f)
			if err != nil {
				return err
			}
			return a.up(cmd.Context(), c, debug, quiet)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&debug, "debug", false, "log debug messages")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "do not echo the instances' output (it is still kept in the state directory)")
	return cmd
}

func (a *app) up(ctx context.Context, c *config.Config, debug, quiet bool) error {
	log := newLogger(a.stderr, debug)
	stateDir := admin.StateDir(c)
	if err := os.MkdirAll(stateDir, 0o700); err != nil { // logs, the admin key, metric history: the user's only
		return fmt.Errorf("cannot create the state directory %s: %w", stateDir, err)
	}
	fmt.Fprintf(a.stderr, "shoal: preparing %s (%s)…\n", c.Name, describeCommand(c))
	began := time.Now()
	command, err := fleet.ResolveCommand(ctx, c, stateDir)
	if err != nil {
		return err
	}
	if command.Package != "" {
		fmt.Fprintf(a.stderr, "shoal: built %s in %s\n", command.Package, time.Since(began).Round(100*time.Millisecond))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	popts := proxy.FromConfig(c)
	popts.Logger, popts.Registerer = log, reg
	so := proxy.ServerFromConfig(c)
	stopTracing, err := proxyTracing(ctx, c, &popts, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	p, err := proxy.New(popts)
	if err != nil {
		return err
	}
	defer p.Close()

	// The proxy routes to the fleet's instances, plus any static ones the config lists, plus
	// those of the registry the fleet registers in (other hosts' instances).
	set := discovery.NewSet()
	provider, registrar, registry, err := upDiscovery(c, set, log)
	if err != nil {
		return err
	}
	if registrar != nil {
		defer registrar.Close() // after the fleet has deregistered its instances
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	go p.Watch(runCtx, provider)

	listen := net.JoinHostPort(c.Server.Host, strconv.Itoa(c.Server.Port))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w; is another `shoal up` running? Change server.port", listen, err)
	}
	aln, err := net.Listen("tcp", c.Admin.Listen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("cannot listen for the admin API on %s: %w; change admin.listen", c.Admin.Listen, err)
	}

	if c.Observability.AutoScaling.Enabled {
		for i, r := range c.Observability.AutoScaling.Metrics {
			if r.Metric == config.MetricRequestQueueDepth {
				log.Warn("shoal up does not measure request_queue_depth (the proxy does not queue); this rule never fires here, only in the generated KEDA ScaledObject",
					"rule", i)
			}
		}
	}
	history := newHistory(stateDir)
	autosaved := make(chan struct{})
	go func() {
		defer close(autosaved)
		history.autosave(runCtx, log)
	}()
	defer func() { stopRun(); <-autosaved }() // no write into the state directory after up returns
	checks, err := newChecks(ctx, c, log)
	if err != nil {
		ln.Close()
		aln.Close()
		return err
	}
	natsEnv, stopNATS, err := a.embeddedNATS(c, stateDir)
	if err != nil {
		ln.Close()
		aln.Close()
		return err
	}
	defer stopNATS() // after the instances have stopped
	jobSources, closeJobs, err := a.jobsMetricSources(ctx, c)
	if err != nil {
		ln.Close()
		aln.Close()
		return err
	}
	defer closeJobs()
	var out *prefixWriter
	if !quiet {
		out = &prefixWriter{w: a.stderr}
	}
	fl, err := fleet.New(c, fleet.Options{
		Command: command.Args, Dir: command.Dir, StateDir: stateDir, Proxy: p, Instances: set,
		Logger: log, Output: out.writer(), History: history, Checks: checks, ProxyURL: reachURL(ln.Addr().String()),
		Autoscale: c.Observability.AutoScaling.Enabled, Env: append(natsEnv, a.embeddedDatabase(c)...),
		Registrar: registrar, Registry: registry, AdvertiseHost: c.Scaling.ServiceDiscovery.AdvertiseAddress, Discovery: provider,
		MetricSources: jobSources,
	})
	if err != nil {
		ln.Close()
		aln.Close()
		return err
	}

	// The fleet's own scaling metrics on the admin /metrics, beside the proxy's.
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shoal_fleet_instances_desired",
			Help: "Instances the fleet is asked to run."}, func() float64 { return float64(fl.Status(context.Background()).Desired) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shoal_fleet_instances_ready",
			Help: "Instances ready and in the proxy's rotation."}, func() float64 { return float64(fl.Status(context.Background()).Ready) }),
	)
	proxyDone := make(chan error, 1)
	proxyCtx, stopProxy := context.WithCancel(context.Background())
	defer stopProxy()
	go func() {
		proxyDone <- p.Serve(proxyCtx, ln, so)
	}()

	key, err := admin.LoadKey(stateDir, a.getenv)
	if err != nil {
		return err
	}
	adminHandler := admin.NewServer(fl, admin.ServerOptions{
		Key: key, Logger: log, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Dashboard: dashboard.Handler(),
		Revocations: admin.NewRevocations(stateDir),
	})
	asrv := &http.Server{Handler: adminHandler, ReadHeaderTimeout: 10 * time.Second}
	go asrv.Serve(aln)
	defer asrv.Close()

	fmt.Fprintf(a.stderr, "shoal: starting %d instances of %s…\n", c.Scaling.Instances.MinInstances, c.Name)
	startErr := fl.Start(ctx)
	if startErr == nil && ctx.Err() == nil {
		st := fl.Status(ctx)
		fmt.Fprintf(a.stdout, "\n  %s is up: %s%s  (%d instances, %s)\n", c.Name, reachURL(ln.Addr().String()), everywhere(ln.Addr().String()),
			st.Ready, c.Scaling.LoadBalancer.Algorithm)
		fmt.Fprintf(a.stdout, "  admin API and dashboard: %s/%s  (token: shoal scaling generate-token --scopes scaling:read,scaling:write)\n",
			reachURL(aln.Addr().String()), everywhere(aln.Addr().String()))
		fmt.Fprintf(a.stdout, "  logs: %s   stop: Ctrl-C\n\n", filepath.Join(stateDir, "logs"))
		<-ctx.Done()
	}

	fmt.Fprintf(a.stderr, "shoal: stopping: draining %d instances (drain_timeout %s)…\n", len(fl.Status(context.Background()).Instances),
		c.Scaling.Instances.Shutdown.DrainTimeout)
	// A second Ctrl-C means "now": the instances are killed instead of drained.
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	stopped := make(chan struct{})
	go func() {
		select {
		case <-again:
			fmt.Fprintln(a.stderr, "shoal: interrupted again: killing the instances without draining")
			fl.Kill()
		case <-stopped:
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fl.Stop(context.Background())
	}()
	stopProxy()
	proxyErr := <-proxyDone
	wg.Wait()
	close(stopped)
	stopRun()
	<-autosaved // the last save of the metric history
	if startErr != nil && !errors.Is(startErr, context.Canceled) {
		return fmt.Errorf("the fleet did not start: %w; see the instance logs in %s", startErr, filepath.Join(stateDir, "logs"))
	}
	if proxyErr != nil {
		return proxyErr
	}
	fmt.Fprintln(a.stderr, "shoal: stopped; no instance left running")
	return nil
}

// reachURL is the http URL that reaches a listen address from this machine: a wildcard host
// (0.0.0.0, ::) becomes the loopback address, since http://[::]:3000 is not a URL to open.
func reachURL(addr string) string {
	u, err := dialURL(addr)
	if err != nil {
		return "http://" + addr
	}
	return u
}

// everywhere notes that a wildcard listen address is reachable from other machines too.
func everywhere(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
		return " (listening on every interface)"
	}
	return ""
}

func describeCommand(c *config.Config) string {
	if len(c.App.Command) == 0 {
		return "no app.command"
	}
	// As config print shows it: an argument from ${VAR} as the variable, URL passwords masked.
	return "app.command " + fmt.Sprintf("%q", []string(c.Redacted().App.Command))
}

// prefixWriter serializes the instances' output lines onto one writer.
type prefixWriter struct {
	mu sync.Mutex
	w  interface{ Write([]byte) (int, error) }
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w.Write(b)
}

func (p *prefixWriter) writer() interface{ Write([]byte) (int, error) } {
	if p == nil {
		return nil
	}
	return p
}
