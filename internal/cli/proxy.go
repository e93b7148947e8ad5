package cli

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
	_ "github.com/shoal-sh/shoal/discovery/backends" // every scaling.service_discovery.method
	"github.com/shoal-sh/shoal/proxy"
)

func (a *app) proxyCommand() *cobra.Command {
	var f configFlags
	var listen, metricsListen string
	var debug bool
	var pprofAddr string
	cmd := &cobra.Command{
		Use:   "proxy [-f FILE] [--env NAME] [--listen ADDR]",
		Short: "Run shoal's load-balancing proxy in front of the configured instances",
		Long: `Run shoal's load-balancing reverse proxy on its own, over the configured service discovery
(static, dns, consul, kubernetes or etcd; a registry that cannot be reached at start leaves the
proxy with no instances and a warning until it answers, and during an outage the last good set
stays in use): requests go to healthy instances by scaling.load_balancer.algorithm, with active and passive health
checks, a circuit breaker per instance, retries within a budget, and a graceful drain on SIGTERM
(scaling.instances.shutdown.drain_timeout). Prometheus metrics are served on --metrics-listen
(default admin.listen) at /metrics; set METRICS_TOKEN to require it as a bearer token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.load(&f)
			if err != nil {
				return err
			}
			if listen == "" {
				listen = net.JoinHostPort(c.Server.Host, strconv.Itoa(c.Server.Port))
			}
			if metricsListen == "" {
				metricsListen = c.Admin.Listen
			}
			log := newLogger(a.stderr, debug)
			if pprofAddr != "" {
				stopProfiling, err := servePprof(pprofAddr, log)
				if err != nil {
					return err
				}
				defer stopProfiling()
			}
			provider, err := discoveryProvider(c, log)
			if err != nil {
				return err
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			opts := proxy.FromConfig(c)
			opts.Logger, opts.Registerer = log, reg
			so := proxy.ServerFromConfig(c)
			stopTracing, err := proxyTracing(cmd.Context(), c, &opts, log)
			if err != nil {
				return err
			}
			defer stopTracing()
			p, err := proxy.New(opts)
			if err != nil {
				return err
			}
			defer p.Close()

			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			go p.Watch(ctx, provider)
			go logDiscovery(ctx, provider, log)

			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("cannot listen on %s: %w; pick another with --listen or server.port", listen, err)
			}
			mln, err := net.Listen("tcp", metricsListen)
			if err != nil {
				ln.Close()
				return fmt.Errorf("cannot listen for metrics on %s: %w; pick another with --metrics-listen or admin.listen", metricsListen, err)
			}
			token, _ := a.getenv("METRICS_TOKEN")
			mux := metricsMux(reg, token, p)
			mux.HandleFunc("/discovery", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(provider.Status())
			})
			msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			go msrv.Serve(mln)
			defer msrv.Close()

			log.Info("proxy listening", "addr", ln.Addr().String(), "algorithm", c.Scaling.LoadBalancer.Algorithm,
				"discovery", provider.Status().Source, "metrics", "http://"+mln.Addr().String()+"/metrics")
			err = p.Serve(ctx, ln, so)
			if err != nil {
				return err
			}
			log.Info("proxy stopped; every in-flight request finished")
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "", "address to serve on (default server.host:server.port)")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "address for /metrics and /healthz (default admin.listen)")
	cmd.Flags().BoolVar(&debug, "debug", false, "log debug messages")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve Go's profiler (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060")
	return cmd
}

// servePprof serves net/http/pprof on a loopback address, for profiling a running proxy.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usagef("--pprof %q is not host:port", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, usagef("--pprof must listen on a loopback address (it exposes the process's internals), not %q", host)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for pprof on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("profiler listening", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { srv.Close() }, nil
}

// metricsMux serves /metrics (behind METRICS_TOKEN when set) and /healthz.
func metricsMux(reg *prometheus.Registry, token string, p *proxy.Proxy) *http.ServeMux {
	mux := http.NewServeMux()
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
				http.Error(w, "metrics need the bearer token set in METRICS_TOKEN", http.StatusUnauthorized)
				return
			}
		}
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if p.Panicking() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "no healthy instance")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// discoveryProvider returns the instance source the configuration selects,
// tracked for the status of /discovery.
func discoveryProvider(c *config.Config, log *slog.Logger) (*discovery.Tracker, error) {
	sd := c.Scaling.ServiceDiscovery
	if sd.Method == config.DiscoveryStatic && len(sd.Static.Instances) == 0 {
		return nil, errors.New("static discovery lists no instances; add scaling.service_discovery.static.instances (url and weight), or run `shoal up` to start instances")
	}
	return discovery.NewProvider(c, discovery.BackendOptions{Logger: log})
}

// logDiscovery logs where the instances come from once they first arrive,
// and when the source recovers after an error (proxy.Watch logs the errors).
func logDiscovery(ctx context.Context, t *discovery.Tracker, log *slog.Logger) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last discovery.SourceStatus
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st := t.Status()
		switch {
		case st.Synced && !last.Synced:
			log.Info("service discovery synced", "source", st.Source, "instances", st.Instances)
		case last.Error != "" && st.Error == "":
			log.Info("service discovery recovered", "source", st.Source, "instances", st.Instances)
		case !st.Synced && st.Error != "" && last.Error == "":
			log.Warn("service discovery cannot read the registry at start; serving no instances until it answers",
				"source", st.Source, "err", st.Error)
		}
		last = st
	}
}
