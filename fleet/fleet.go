// Package fleet is shoal's local supervisor: it runs the instances of a service on this
// machine, registers the ready ones with shoal's proxy, restarts crashed ones with backoff,
// scales within the configured bounds, drains before it stops, and rolls restarts.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/proxy"
)

// Options configure a Fleet.
type Options struct {
	// Command runs one instance (already built); Dir is its working directory.
	Command []string
	Dir     string
	// Env is extra environment (KEY=value) for every instance, on top of shoal's own.
	Env []string
	// StateDir keeps the instances' logs.
	StateDir string
	// Proxy is the proxy the fleet drains instances through; Instances is the set it watches.
	Proxy     *proxy.Proxy
	Instances *discovery.Set
	// ProxyURL is where clients reach the service, for the status.
	ProxyURL string
	// Logger receives lifecycle messages. Output receives each instance's output lines,
	// prefixed with the instance id; nil discards them (they are still in the log files).
	Logger *slog.Logger
	Output io.Writer
	// Checks enables and disables health checks by name for the admin API; nil means the
	// configuration has none that the fleet runs.
	Checks HealthChecks
	// History records and serves the fleet's metrics; nil keeps none.
	History History

	// RestartBackoff is the first wait before restarting a crashed instance; it doubles up to
	// MaxRestartBackoff. Defaults to 500ms and 30s.
	RestartBackoff, MaxRestartBackoff time.Duration
	// MaxCrashes in a row (without a healthy run in between) mark an instance failed.
	// Defaults to 5.
	MaxCrashes int
	// ReadinessPoll is how often a starting instance's readiness probe is tried. Defaults to 100ms.
	ReadinessPoll time.Duration
	// LivenessInterval is how often a ready instance's liveness probe runs. Defaults to
	// scaling.service_discovery.health_check.interval.
	LivenessInterval time.Duration
	// SampleInterval is how often metrics are sampled into History. Defaults to 1s.
	SampleInterval time.Duration
	// Autoscale lets the fleet scale itself (package autoscale) every auto_scaling.interval,
	// from its instances' samples and History averaged over that interval, when the
	// configuration enables autoscaling with target fleet. It needs History.
	Autoscale bool
	// MetricSources supply the fleet-wide metrics the fleet does not measure itself, read at
	// each evaluation: job_queue_depth from package jobs, for instance
	// (autoscale.Gauge(config.MetricJobQueueDepth, ...)).
	MetricSources []autoscale.MetricSource
	// Registrar, when set, also registers every ready instance in the registry of
	// scaling.service_discovery (etcd, consul, dns), at AdvertiseHost (default 127.0.0.1), and
	// takes it out on scale-down or shutdown: drain, wait drain_timeout, deregister. Registry
	// describes it for logs. The fleet does not close it.
	Registrar     discovery.Registrar
	AdvertiseHost string
	Registry      string
	// Discovery is the tracked source the proxy watches, for the status; nil for none.
	Discovery *discovery.Tracker
}

// HealthChecks is the health-check registry the admin API toggles.
type HealthChecks interface {
	SetEnabled(name string, enabled bool) error
	Status() []admin.CheckStatus
}

// History stores the fleet's metrics over time.
type History interface {
	Record(metric string, t time.Time, v float64)
	Query(metric string, since time.Duration, points int) []admin.Point
}

// Fleet runs the instances of one service. Its methods are safe for concurrent use and
// implement admin.Fleet.
type Fleet struct {
	cfg    *config.Config
	opts   Options
	log    *slog.Logger
	proxy  *proxy.Proxy
	set    *discovery.Set
	client *http.Client

	op sync.Mutex // serializes Scale, Restart and Stop

	mu        sync.Mutex
	instances []*instance // in start order
	seq       int
	desired   int
	events    []admin.Event
	started   time.Time
	running   bool // Start has succeeded: the admin API is there to restart instances
	stopped   bool
	outMu     sync.Mutex

	sampler    *sampler
	autoscaler *autoscale.Autoscaler // nil when the fleet does not autoscale
	inputs     *autoscaleInputs      // per-instance samples for the autoscaler
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	remote     remote // registrations with Options.Registrar
}

var _ admin.Fleet = (*Fleet)(nil)

// New returns a Fleet for cfg; Start runs it.
func New(cfg *config.Config, opts Options) (*Fleet, error) {
	if len(opts.Command) == 0 {
		return nil, errors.New("no command to run: set app.command in the configuration")
	}
	if opts.Proxy == nil || opts.Instances == nil {
		return nil, errors.New("fleet: Proxy and Instances are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RestartBackoff <= 0 {
		opts.RestartBackoff = 500 * time.Millisecond
	}
	if opts.MaxRestartBackoff <= 0 {
		opts.MaxRestartBackoff = 30 * time.Second
	}
	if opts.MaxCrashes <= 0 {
		opts.MaxCrashes = 5
	}
	if opts.ReadinessPoll <= 0 {
		opts.ReadinessPoll = 100 * time.Millisecond
	}
	if opts.LivenessInterval <= 0 {
		opts.LivenessInterval = cfg.Scaling.ServiceDiscovery.HealthCheck.Interval.D()
	}
	if opts.SampleInterval <= 0 {
		opts.SampleInterval = time.Second
	}
	timeout := cfg.Scaling.ServiceDiscovery.HealthCheck.Timeout.D()
	f := &Fleet{
		cfg: cfg, opts: opts, log: opts.Logger, proxy: opts.Proxy, set: opts.Instances,
		client: &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}},
	}
	return f, nil
}

// Start runs min_instances instances and returns once they are all ready, or with the
// error of the first that could not become ready.
func (f *Fleet) Start(ctx context.Context) error {
	f.mu.Lock()
	f.started = time.Now()
	f.mu.Unlock()
	sctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	if f.opts.History != nil {
		f.sampler = newSampler(f)
		f.inputs = newAutoscaleInputs(f.sampler.memTotal())
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.sampler.run(sctx)
		}()
		if on, _ := f.autoscaleState(); on {
			f.autoscaler = autoscale.New(autoscale.SettingsFrom(f.cfg))
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.runAutoscaler(sctx)
			}()
		}
	}
	n := f.cfg.Scaling.Instances.MinInstances
	_, err := f.Scale(ctx, n, "start")
	f.mu.Lock()
	f.running = err == nil
	f.mu.Unlock()
	return err
}

// Stop drains and stops every instance, newest first, in parallel.
func (f *Fleet) Stop(ctx context.Context) error {
	f.op.Lock()
	defer f.op.Unlock()
	f.mu.Lock()
	f.stopped = true
	victims := append([]*instance(nil), f.instances...)
	f.mu.Unlock()
	f.stopInstances(victims)
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
	return nil
}

// Kill sends SIGKILL to every instance's process group at once, without draining: for a user
// who does not want to wait for a Stop in progress (a second Ctrl-C). Stop still returns
// normally afterwards.
func (f *Fleet) Kill() {
	f.mu.Lock()
	ins := append([]*instance(nil), f.instances...)
	f.mu.Unlock()
	for _, in := range ins {
		in.signal(syscall.SIGKILL)
	}
}

// Scale brings the fleet to target instances; see admin.Fleet.
func (f *Fleet) Scale(ctx context.Context, target int, reason string) (admin.ScaleResult, error) {
	in := f.cfg.Scaling.Instances
	if target < in.MinInstances || target > in.MaxInstances {
		return admin.ScaleResult{}, &admin.OutOfRangeError{Target: target, Min: in.MinInstances, Max: in.MaxInstances}
	}
	f.op.Lock()
	defer f.op.Unlock()
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return admin.ScaleResult{}, errors.New("the fleet is shutting down")
	}
	active := f.activeLocked()
	from, wasDesired := len(active), f.desired
	f.desired = target
	f.mu.Unlock()
	res := admin.ScaleResult{From: from, To: target}
	if f.autoscaler != nil && !isAutoscale(reason) && reason != "start" {
		// A manual scale: the autoscaler holds it for the stabilisation window.
		f.autoscaler.Observed(time.Now(), wasDesired, target)
	}
	switch {
	case target > from:
		var news []*instance
		for i := from; i < target; i++ {
			news = append(news, f.spawnWatched(admin.ProgressFrom(ctx), false))
		}
		defer watchDone(news)
		for _, n := range news {
			res.Started = append(res.Started, n.id)
		}
		kind := "scale_up"
		switch {
		case reason == "start":
			kind = "start"
		case isAutoscale(reason):
			kind = "autoscale_up"
		}
		f.event(kind, reason, from, target)
		if err := f.waitReady(ctx, news); err != nil {
			return res, err
		}
	case target < from:
		// Remove the newest instances, by drain.
		victims := active[target:]
		for _, v := range victims {
			res.Stopped = append(res.Stopped, v.id)
		}
		kind := "scale_down"
		if isAutoscale(reason) {
			kind = "autoscale_down"
		}
		f.event(kind, reason, from, target)
		watch(victims, admin.ProgressFrom(ctx))
		f.stopInstances(victims)
	}
	return res, nil
}

// Restart replaces every instance one at a time: the new one is ready before the old one
// drains, so the fleet never has fewer ready instances than before. Failed instances are
// replaced first (fix the service, then restart). A replacement that does not become ready on
// its first start ends the restart with its reason; when the restart ends early (that, or ctx
// is done), the replacement is stopped and forgotten, and the old instance keeps serving.
func (f *Fleet) Restart(ctx context.Context) error {
	f.op.Lock()
	defer f.op.Unlock()
	f.mu.Lock()
	old := f.activeLocked()
	var failed []*instance
	for _, in := range f.instances {
		if in.snapshot().State == admin.StateFailed {
			failed = append(failed, in)
		}
	}
	f.mu.Unlock()
	progress := admin.ProgressFrom(ctx)
	f.event("restart", fmt.Sprintf("rolling restart of %d instances", len(old)+len(failed)), len(old), len(old)+len(failed))
	for _, o := range append(failed, old...) {
		n := f.spawnWatched(progress, true)
		err := f.waitReady(ctx, []*instance{n})
		if err != nil {
			f.stopInstances([]*instance{n})
			watchDone([]*instance{n})
			if ctx.Err() != nil {
				return fmt.Errorf("rolling restart stopped before the replacement for %s was ready (%w); it was stopped, %s keeps serving", o.id, ctx.Err(), o.id)
			}
			return fmt.Errorf("rolling restart stopped: the replacement for %s did not become ready: %w", o.id, err)
		}
		watchDone([]*instance{n})
		watch([]*instance{o}, progress)
		f.stopInstances([]*instance{o})
	}
	return nil
}

// activeLocked returns the instances that count towards the fleet's size, oldest first:
// everything not stopping, stopped or failed.
func (f *Fleet) activeLocked() []*instance {
	var out []*instance
	for _, in := range f.instances {
		select {
		case <-in.stop:
			continue
		default:
		}
		in.mu.Lock()
		st := in.state
		in.mu.Unlock()
		if st == admin.StateFailed || st == admin.StateStopped {
			continue
		}
		out = append(out, in)
	}
	return out
}

func (f *Fleet) spawn() *instance { return f.spawnWatched(nil, false) }

// spawnWatched starts an instance whose steps go to progress (see instance.strict).
func (f *Fleet) spawnWatched(progress admin.ProgressFunc, strict bool) *instance {
	f.mu.Lock()
	f.seq++
	in := &instance{f: f, id: f.cfg.Name + "-" + strconv.Itoa(f.seq), seq: f.seq, state: admin.StateStarting,
		progress: progress, strict: strict,
		stop: make(chan struct{}), done: make(chan struct{}), ready: make(chan struct{})}
	f.instances = append(f.instances, in)
	f.mu.Unlock()
	go in.run()
	return in
}

func (f *Fleet) waitReady(ctx context.Context, ins []*instance) error {
	var errs []error
	for _, in := range ins {
		select {
		case <-in.ready:
			if in.readyErr != nil {
				errs = append(errs, fmt.Errorf("%s: %w", in.id, in.readyErr))
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// stopInstances drains and stops instances in parallel and forgets them.
func (f *Fleet) stopInstances(victims []*instance) {
	for _, v := range victims {
		v.requestStop()
	}
	for _, v := range victims {
		<-v.done
	}
	f.mu.Lock()
	keep := f.instances[:0]
	for _, in := range f.instances {
		gone := false
		for _, v := range victims {
			gone = gone || in == v
		}
		if !gone {
			keep = append(keep, in)
		}
	}
	f.instances = keep
	f.mu.Unlock()
}

// register adds a ready instance to the set the proxy watches and waits (briefly) until the
// proxy routes to it, so that "ready" in the status means "getting traffic".
func (f *Fleet) register(in *instance, port int) {
	f.set.Add(discovery.Instance{ID: in.id, URL: &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port)},
		Weight: 1, Meta: map[string]string{"instance": in.id}})
	f.registerRemote(in.id, port)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		for _, u := range f.proxy.Status() {
			if u.ID == in.id && !u.Draining {
				return
			}
		}
	}
	f.log.Warn("the proxy has not picked up the instance yet", "instance", in.id)
}

// deregister takes an instance that died out of the set and the registry at once.
func (f *Fleet) deregister(in *instance) {
	f.set.Remove(in.id)
	f.deregisterRemote(in.id)
}

// awaitDeregistered waits (briefly) until the proxy has applied the removal of id from the
// set: it shows the instance draining, or no longer at all.
func (f *Fleet) awaitDeregistered(id string) {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		seen := false
		for _, u := range f.proxy.Status() {
			if u.ID == id {
				seen = !u.Draining
			}
		}
		if !seen {
			return
		}
	}
	f.log.Warn("the proxy has not seen the instance leave yet; draining it anyway", "instance", id)
}

// configPath is the absolute path of the configuration, passed to instances as SHOAL_CONFIG
// so a service can build its health checks and metrics from the same file.
func (f *Fleet) configPath() string {
	if f.cfg.Meta.File == "" {
		return ""
	}
	abs, err := filepath.Abs(f.cfg.Meta.File)
	if err != nil {
		return ""
	}
	if _, err := os.Stat(abs); err != nil {
		return "" // parsed from memory, not read from a file
	}
	return abs
}

func (f *Fleet) event(kind, reason string, from, to int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, admin.Event{Time: time.Now(), Kind: kind, From: from, To: to, Reason: reason})
	if len(f.events) > 100 {
		f.events = f.events[len(f.events)-100:]
	}
}

func (f *Fleet) instanceOutput(id, line string) {
	if f.opts.Output == nil {
		return
	}
	f.outMu.Lock()
	fmt.Fprintf(f.opts.Output, "%s | %s\n", id, line)
	f.outMu.Unlock()
}

// Status reports the fleet; see admin.Fleet.
func (f *Fleet) Status(ctx context.Context) admin.Status {
	ups := map[string]proxy.UpstreamStatus{}
	for _, u := range f.proxy.Status() {
		ups[u.ID] = u
	}
	f.mu.Lock()
	s := admin.Status{
		Service: f.cfg.Name, Environment: f.cfg.Meta.Env, Desired: f.desired,
		Min: f.cfg.Scaling.Instances.MinInstances, Max: f.cfg.Scaling.Instances.MaxInstances,
		Algorithm: f.cfg.Scaling.LoadBalancer.Algorithm,
		ProxyURL:  f.opts.ProxyURL,
		Started:   f.started,
		Registry:  f.opts.Registry,
	}
	if f.opts.Discovery != nil {
		d := f.opts.Discovery.Status()
		s.Discovery = &d
	}
	ins := append([]*instance(nil), f.instances...)
	for i := len(f.events) - 1; i >= 0 && len(s.Events) < 20; i-- {
		s.Events = append(s.Events, f.events[i])
	}
	f.mu.Unlock()
	for _, in := range ins {
		st := in.snapshot()
		if u, ok := ups[in.id]; ok {
			st.InFlight, st.Breaker = u.InFlight, u.Breaker
			switch {
			case u.Stalled:
				st.Health = "stalled" // stopped answering: out of rotation until it answers again
				st.LastErr = u.LastErr
			case u.Ejected:
				st.Health = "ejected"
				if u.LastErr != "" {
					st.LastErr = u.LastErr // why the proxy took it out: failures, answers cut short
				}
			case u.Healthy:
				st.Health = "healthy"
			default:
				st.Health = "unhealthy"
			}
		}
		if st.State == admin.StateReady {
			s.Ready++
		}
		s.Instances = append(s.Instances, st)
	}
	if f.opts.Checks != nil {
		s.Checks = f.opts.Checks.Status()
	}
	s.Autoscaling, s.AutoscalingReason = f.autoscaleState()
	if f.autoscaler != nil {
		last := f.autoscaler.Log().Since(time.Time{}, admin.StatusDecisions)
		for i := len(last) - 1; i >= 0; i-- {
			s.Decisions = append(s.Decisions, last[i])
		}
	}
	return s
}

// SetHealthCheck enables or disables a health check; see admin.Fleet.
func (f *Fleet) SetHealthCheck(ctx context.Context, name string, enabled bool) error {
	if f.opts.Checks == nil {
		return admin.ErrUnknownCheck
	}
	return f.opts.Checks.SetEnabled(name, enabled)
}

// Metrics returns the sampled history; see admin.Fleet.
func (f *Fleet) Metrics(ctx context.Context, since time.Duration, points int) admin.MetricsReport {
	r := admin.MetricsReport{Since: since}
	if f.opts.History == nil {
		return r
	}
	for _, m := range seriesMeta {
		r.Series = append(r.Series, admin.Series{Metric: m.name, Unit: m.unit, Points: f.opts.History.Query(m.name, since, points)})
	}
	return r
}
