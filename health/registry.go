package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// Defaults for checks built in code without a timeout or interval.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultInterval = 10 * time.Second
)

// Registry runs a service's health checks in the background and answers from their latest
// results. Build it with New or FromConfig, Start it, and Close it on shutdown. Every method is
// safe for concurrent use.
type Registry struct {
	checks []*check
	byName map[string]*check
	clock  Clock
	closer []io.Closer // pools the Registry opened itself

	heartbeat, stale time.Duration
	lastBeat         atomic.Int64 // unix nanoseconds of the liveness heartbeat's last tick
	draining         atomic.Bool

	mu      sync.Mutex
	started bool
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// check is one configured check and its latest result.
type check struct {
	cfg config.Check
	fn  Func

	enabled  atomic.Bool
	running  atomic.Bool // a run has not returned yet
	passed   atomic.Bool // passed at least once since the Registry started
	result   atomic.Pointer[Result]
	mu       sync.Mutex    // orders storing a result with SetEnabled
	kick     chan struct{} // run now (re-enabled)
	lastPass time.Time     // guarded by the single run loop of the check
}

// FromConfig builds a Registry from cfg.Health.Checks, with database.url as the DSN of database
// checks that have none.
func FromConfig(cfg *config.Config, opts ...Opt) (*Registry, error) {
	opts = append([]Opt{WithDatabaseURL(cfg.Database.URL)}, opts...)
	return New(cfg.Health.Checks, opts...)
}

// New builds a Registry of checks. A check's zero Timeout or Interval means DefaultTimeout or
// DefaultInterval. Every check that cannot be built is reported, as a *ConfigError each, joined:
// an unknown custom handler, a URL no check speaks, a database driver not linked in.
// Nothing runs until Start.
func New(checks []config.Check, opts ...Opt) (*Registry, error) {
	o := options{clock: wallClock{}, heartbeat: time.Second, stale: 30 * time.Second}
	for _, opt := range opts {
		opt.apply(&o)
	}
	r := &Registry{byName: map[string]*check{}, clock: o.clock, heartbeat: o.heartbeat, stale: o.stale}
	var errs []error
	seen := map[string]bool{}
	for i, cc := range checks {
		if cc.Timeout <= 0 {
			cc.Timeout = config.Duration(DefaultTimeout)
		}
		if cc.Interval <= 0 {
			cc.Interval = config.Duration(DefaultInterval)
		}
		bad := func(err error) { errs = append(errs, &ConfigError{Index: i, Name: cc.Name, Err: err}) }
		if cc.Name == "" {
			bad(errors.New("a check needs a name"))
			continue
		}
		if seen[cc.Name] {
			bad(errors.New("another check has the same name; names must be unique"))
			continue
		}
		seen[cc.Name] = true
		fn, closer, err := r.build(cc, &o)
		if err != nil {
			bad(err)
			continue
		}
		if closer != nil {
			r.closer = append(r.closer, closer)
		}
		c := &check{cfg: cc, fn: fn, kick: make(chan struct{}, 1)}
		c.enabled.Store(true)
		c.result.Store(&Result{Name: cc.Name, Type: cc.Type, Critical: cc.Critical, Enabled: true, Status: Unknown})
		r.checks = append(r.checks, c)
		r.byName[cc.Name] = c
	}
	if len(errs) > 0 {
		r.closeResources()
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// build returns the function of one check.
func (r *Registry) build(cc config.Check, o *options) (Func, io.Closer, error) {
	switch cc.Type {
	case config.CheckDatabase:
		if db, ok := o.dbs[cc.Name]; ok {
			return pingDB(db), nil, nil
		}
		dsn := cc.URL
		if dsn == "" {
			dsn = o.databaseURL
		}
		if dsn == "" {
			return nil, nil, errors.New("no database to check: set its url or database.url, or pass the service's *sql.DB with health.WithDB")
		}
		dc, err := newDatabaseCheck(dsn, cc.Interval.D(), cc.Timeout.D())
		if err != nil {
			return nil, nil, err
		}
		return dc.run, dc, nil
	case config.CheckExternalService:
		if cc.URL == "" {
			return nil, nil, errors.New("an external_service check needs a url")
		}
		fn, err := externalCheck(cc.URL)
		return fn, nil, err
	case config.CheckHTTP:
		fn, err := httpCheck(cc.URL)
		return fn, nil, err
	case config.CheckTCP:
		fn, err := tcpCheck(cc.URL)
		return fn, nil, err
	case config.CheckCustom:
		if fn, ok := o.handlers[cc.Handler]; ok && fn != nil {
			return fn, nil, nil
		}
		if fn, ok := lookupHandler(cc.Handler); ok {
			return fn, nil, nil
		}
		return nil, nil, fmt.Errorf("%w: %q; register it with health.Register(%q, fn) or health.WithHandler before the registry is built",
			ErrUnknownHandler, cc.Handler, cc.Handler)
	}
	return nil, nil, fmt.Errorf("unknown check type %q; one of %s", cc.Type, strings.Join(config.CheckTypes, ", "))
}

// Start runs every check now and then every interval, in the background, until Close; it also
// starts the liveness heartbeat. Calling Start again does nothing.
func (r *Registry) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return
	}
	r.started = true
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.lastBeat.Store(r.clock.Now().UnixNano())
	// Tickers are made here rather than in the goroutines, so a test clock sees them at once.
	tick, stop := r.clock.NewTicker(r.heartbeat)
	r.wg.Add(1)
	go r.beat(tick, stop)
	for _, c := range r.checks {
		tick, stop := r.clock.NewTicker(c.cfg.Interval.D())
		r.wg.Add(1)
		go r.loop(c, tick, stop)
	}
}

// Close stops the checks, waits for their loops to end, and closes the connection pools the
// Registry opened. A check function that ignores its context may still be running when Close
// returns; its result is dropped.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return r.closeResources()
}

func (r *Registry) closeResources() error {
	var errs []error
	for _, c := range r.closer {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// beat ticks the liveness heartbeat.
func (r *Registry) beat(tick <-chan time.Time, stop func()) {
	defer r.wg.Done()
	defer stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick:
			r.lastBeat.Store(r.clock.Now().UnixNano())
		}
	}
}

// loop runs one check now and on every tick of its interval, and at once when it is re-enabled.
func (r *Registry) loop(c *check, tick <-chan time.Time, stop func()) {
	defer r.wg.Done()
	defer stop()
	for {
		r.runOnce(c)
		select {
		case <-r.ctx.Done():
			return
		case <-tick:
		case <-c.kick:
		}
	}
}

// runOnce runs c once, bounded by its timeout, and stores the result.
func (r *Registry) runOnce(c *check) {
	if !c.enabled.Load() {
		return
	}
	start := r.clock.Now()
	timeout := c.cfg.Timeout.D()
	var err error
	if !c.running.CompareAndSwap(false, true) {
		// The previous run ignored its timeout and is still going; starting another would
		// pile goroutines and connections onto a dependency that is already in trouble.
		err = errors.New("the previous run has not returned, long after its timeout")
	} else {
		ctx, cancel := context.WithTimeout(r.ctx, timeout)
		done := make(chan error, 1)
		go func() {
			defer c.running.Store(false)
			done <- call(ctx, c.fn)
		}()
		select {
		case err = <-done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		dl, _ := ctx.Deadline()
		timedOut := ctx.Err() != nil || !time.Now().Before(dl)
		cancel()
		if r.ctx.Err() != nil {
			return // closing: the result would be an artefact of the shutdown
		}
		switch {
		case err == context.DeadlineExceeded: // the bare error of ctx: nothing of the check's to keep
			err = fmt.Errorf("timed out after %s", timeout)
		case err != nil && (timedOut || errors.Is(err, context.DeadlineExceeded)):
			// Keep the check's own words (which host, which step) after the Registry's. A check
			// that sets I/O deadlines from ctx fails with "i/o timeout" at the same moment.
			err = fmt.Errorf("timed out after %s: %w", timeout, err)
		}
	}
	end := r.clock.Now()
	res := &Result{
		Name: c.cfg.Name, Type: c.cfg.Type, Critical: c.cfg.Critical, Enabled: true,
		Status: Pass, Duration: end.Sub(start), Time: end,
	}
	res.DurationSeconds = res.Duration.Seconds()
	if err != nil {
		res.Status, res.Error = Warn, err.Error()
		if c.cfg.Critical {
			res.Status = Fail
		}
	} else {
		c.lastPass = end
		c.passed.Store(true)
	}
	res.LastSuccess = c.lastPass
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enabled.Load() { // not disabled while it ran
		c.result.Store(res)
	}
}

// call runs fn, turning a panic into an error so one broken check cannot take the service down.
func call(ctx context.Context, fn Func) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	return fn(ctx)
}

// SetEnabled turns the check named name on or off at run time. A disabled check does not run,
// reports status "disabled" and does not count in the aggregate or for readiness; an enabled
// one runs at once. An unknown name returns an error wrapping ErrUnknownCheck.
func (r *Registry) SetEnabled(name string, enabled bool) error {
	c, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q; the checks are %s", ErrUnknownCheck, name, strings.Join(r.Names(), ", "))
	}
	c.mu.Lock()
	if c.enabled.Swap(enabled) == enabled {
		c.mu.Unlock()
		return nil
	}
	prev := c.result.Load()
	res := &Result{Name: c.cfg.Name, Type: c.cfg.Type, Critical: c.cfg.Critical, Enabled: enabled,
		Status: Disabled, LastSuccess: prev.LastSuccess}
	if enabled {
		res.Status = Unknown
	}
	c.result.Store(res)
	c.mu.Unlock()
	if enabled {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Names returns the names of the checks in configuration order.
func (r *Registry) Names() []string {
	names := make([]string, len(r.checks))
	for i, c := range r.checks {
		names[i] = c.cfg.Name
	}
	return names
}

// Results returns the latest result of every check, in configuration order.
func (r *Registry) Results() []Result {
	out := make([]Result, len(r.checks))
	for i, c := range r.checks {
		out[i] = *c.result.Load()
	}
	return out
}

// Report returns the aggregate `/health` serves, from the cached results.
func (r *Registry) Report() Report {
	rep := Report{Status: Pass, Draining: r.draining.Load(), Checks: r.Results(), Time: r.clock.Now()}
	for _, res := range rep.Checks {
		switch {
		case res.Status == Fail:
			rep.Status = Fail
		case res.Status == Warn && rep.Status == Pass:
			rep.Status = Warn
		}
	}
	return rep
}

// SetDraining marks the service as draining (true) or not: while draining `/ready` answers 503
// so load balancers stop sending new requests, and `/health` still reports the checks.
func (r *Registry) SetDraining(draining bool) { r.draining.Store(draining) }

// Ready reports whether the service should get traffic, and if not, why: every enabled
// critical check has passed at least once since Start and none fails now, and the service is
// not draining.
func (r *Registry) Ready() (bool, string) {
	if r.draining.Load() {
		return false, "draining"
	}
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if !started {
		return false, "health checks not started"
	}
	for _, c := range r.checks {
		if !c.cfg.Critical || !c.enabled.Load() {
			continue
		}
		if !c.passed.Load() {
			return false, fmt.Sprintf("check %s has not passed yet", c.cfg.Name)
		}
		if res := c.result.Load(); res.Status == Fail {
			return false, fmt.Sprintf("check %s fails: %s", c.cfg.Name, res.Error)
		}
	}
	return true, ""
}

// Live reports whether the process is not wedged: the heartbeat goroutine ticked within the
// staleness bound (30s unless WithLiveness says otherwise). Before Start it reports true.
func (r *Registry) Live() (bool, string) {
	last := r.lastBeat.Load()
	if last == 0 {
		return true, ""
	}
	if age := r.clock.Now().Sub(time.Unix(0, last)); age > r.stale {
		return false, fmt.Sprintf("heartbeat last ticked %s ago", age.Round(time.Millisecond))
	}
	return true, ""
}
