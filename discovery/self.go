package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// HealthReporter is what [RegisterSelf] asks for the instance's health:
// *health.Registry of shoal's health package implements it. If it also has a
// SetDraining(bool) method (the health Registry has), RegisterSelf calls
// SetDraining(true) when the instance starts to leave, so that its readiness
// endpoint fails too.
type HealthReporter interface {
	Ready() (ok bool, why string)
}

// SelfOption configures [RegisterSelf].
type SelfOption interface{ apply(*selfOptions) }

type selfOptions struct {
	id, host  string
	port      int
	scheme    string
	weight    int
	meta      map[string]string
	health    HealthReporter
	registrar Registrar
	logger    *slog.Logger
	signals   bool
}

type selfOptionFunc func(*selfOptions)

func (f selfOptionFunc) apply(o *selfOptions) { f(o) }

// WithID sets the instance's ID. Defaults to $SHOAL_INSTANCE_ID, else
// <service_name>-<host name>-<pid>.
func WithID(id string) SelfOption { return selfOptionFunc(func(o *selfOptions) { o.id = id }) }

// WithAddress sets the host and port registered. Defaults to
// service_discovery.advertise_address (else [LocalIP]) and $PORT (else
// service_discovery.port).
func WithAddress(host string, port int) SelfOption {
	return selfOptionFunc(func(o *selfOptions) { o.host, o.port = host, port })
}

// WithScheme sets the scheme of the registered URL, "http" or "https".
// Defaults to "http".
func WithScheme(scheme string) SelfOption {
	return selfOptionFunc(func(o *selfOptions) { o.scheme = scheme })
}

// WithWeight sets the instance's weight for weighted_round_robin. Defaults to 1.
func WithWeight(w int) SelfOption { return selfOptionFunc(func(o *selfOptions) { o.weight = w }) }

// WithMeta adds labels to the registration, e.g. "version": "v2".
func WithMeta(meta map[string]string) SelfOption {
	return selfOptionFunc(func(o *selfOptions) { o.meta = maps.Clone(meta) })
}

// WithHealth reports h's verdict to the registry every
// service_discovery.health_check.interval (and at once when it changes
// between two checks).
func WithHealth(h HealthReporter) SelfOption {
	return selfOptionFunc(func(o *selfOptions) { o.health = h })
}

// WithRegistrar registers with r instead of the configured method's
// registrar. RegisterSelf then closes r when it is done.
func WithRegistrar(r Registrar) SelfOption {
	return selfOptionFunc(func(o *selfOptions) { o.registrar = r })
}

// WithLogger sets where RegisterSelf logs. Defaults to slog.Default().
func WithLogger(l *slog.Logger) SelfOption {
	return selfOptionFunc(func(o *selfOptions) { o.logger = l })
}

// WithoutSignals stops RegisterSelf from leaving on SIGTERM and SIGINT;
// the caller then calls [Self.Leave] or cancels the context itself.
func WithoutSignals() SelfOption { return selfOptionFunc(func(o *selfOptions) { o.signals = false }) }

// Self is this process's registration, made by [RegisterSelf].
type Self struct {
	in       Instance
	reg      Registrar
	log      *slog.Logger
	health   HealthReporter
	interval time.Duration
	drain    time.Duration

	registered chan struct{} // closed once the registry has the instance
	regOnce    sync.Once
	leaving    chan struct{} // closed when Leave begins
	leaveOnce  sync.Once
	done       chan struct{} // closed when Leave has finished
	leaveErr   error
	stopSig    func()
	stopRun    context.CancelFunc
	wg         sync.WaitGroup
}

// RegisterSelf registers the calling service in the registry of
// scaling.service_discovery (the seed's register_instance): under the
// configured service name, at this machine's address ([LocalIP], or
// advertise_address) and port ($PORT, or service_discovery.port), healthy.
// The backend of the method must be linked in (import
// discovery/backends, or the backend's own package).
//
// Then, in the background, it keeps the registration alive (the backend
// renews its lease or TTL and registers again should the registry lose it),
// reports the health of [WithHealth] every health_check.interval, and — when
// ctx is done or the process gets SIGTERM or SIGINT (unless
// [WithoutSignals]) — leaves gracefully as the seed's deregister_instance
// does: it marks the instance draining, waits
// scaling.instances.shutdown.drain_timeout so that proxies stop sending new
// requests and in-flight ones finish, then deregisters. [Self.Done] is closed
// after that: shut the server down then.
//
// A registry that cannot be reached does not fail RegisterSelf: it logs a
// warning and keeps trying with backoff until it succeeds or the instance
// leaves, so that a registry outage never stops a service from starting.
// RegisterSelf fails for a configuration it cannot act on: a method without
// a registry (static, kubernetes: there the pod's readiness is its
// registration), a backend not linked in, or no usable address.
func RegisterSelf(ctx context.Context, cfg *config.Config, opts ...SelfOption) (*Self, error) {
	o := selfOptions{scheme: "http", weight: 1, signals: true, logger: slog.Default()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	sd := cfg.Scaling.ServiceDiscovery
	if o.id == "" {
		o.id = os.Getenv("SHOAL_INSTANCE_ID")
	}
	if o.id == "" {
		host, _ := os.Hostname()
		o.id = fmt.Sprintf("%s-%s-%d", sd.ServiceName, host, os.Getpid())
	}
	if o.host == "" {
		o.host = sd.AdvertiseAddress
	}
	if o.host == "" {
		ip, err := LocalIP()
		if err != nil {
			return nil, err
		}
		o.host = ip.String()
	}
	if o.port == 0 {
		if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil && p > 0 && p < 65536 {
			o.port = p
		} else {
			o.port = sd.Port
		}
	}
	in := Instance{
		ID:     o.id,
		URL:    &url.URL{Scheme: o.scheme, Host: net.JoinHostPort(o.host, strconv.Itoa(o.port))},
		Weight: max(o.weight, 1),
		Meta:   o.meta,
	}
	if err := CheckInstance(in); err != nil {
		return nil, err
	}
	reg := o.registrar
	if reg == nil {
		var err error
		if reg, err = NewRegistrar(cfg, BackendOptions{Logger: o.logger}); err != nil {
			return nil, err
		}
	}
	s := &Self{
		in: in, reg: reg, log: o.logger.With("instance", in.ID), health: o.health,
		interval:   cfg.Scaling.ServiceDiscovery.HealthCheck.Interval.D(),
		drain:      cfg.Scaling.Instances.Shutdown.DrainTimeout.D(),
		registered: make(chan struct{}), leaving: make(chan struct{}), done: make(chan struct{}),
	}
	if s.interval <= 0 {
		s.interval = 30 * time.Second
	}
	stopCtx := ctx
	if o.signals {
		var stop context.CancelFunc
		stopCtx, stop = signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
		s.stopSig = stop
	}
	runCtx, stopRun := context.WithCancel(stopCtx)
	s.stopRun = stopRun
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(runCtx)
	}()
	go func() {
		select {
		case <-stopCtx.Done():
			s.Leave(context.Background())
		case <-s.leaving:
		}
	}()
	return s, nil
}

// Instance returns what was registered.
func (s *Self) Instance() Instance { return s.in }

// Registered is closed once the registry has accepted the instance.
func (s *Self) Registered() <-chan struct{} { return s.registered }

// Done is closed once the instance has left: drained, waited and
// deregistered (or failed to, see [Self.Leave]).
func (s *Self) Done() <-chan struct{} { return s.done }

// run registers, retrying with backoff, then reports health until Leave.
func (s *Self) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.reg.Register(rctx, s.in)
		cancel()
		if err == nil {
			s.regOnce.Do(func() { close(s.registered) })
			s.log.Info("service instance registered", "url", s.in.URL.String())
			break
		}
		var invalid *InvalidInstanceError
		if errors.As(err, &invalid) {
			s.log.Error("cannot register the instance", "err", err)
			return
		}
		s.log.Warn("cannot register the instance yet; retrying", "err", err, "attempt", attempt, "retry_in", backoff.String())
		if !s.sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	if s.health == nil {
		return
	}
	healthy := true
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		ok, why := s.health.Ready()
		if ok != healthy {
			hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := s.reg.SetHealth(hctx, s.in.ID, ok)
			cancel()
			if err != nil {
				s.log.Warn("failed to update health status", "err", err)
			} else {
				healthy = ok
				s.log.Info("health reported", "healthy", ok, "why", why)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.leaving:
			return
		case <-t.C:
		}
	}
}

// sleep waits d, or returns false when the instance leaves first.
func (s *Self) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.leaving:
		return false
	}
}

// Leave deregisters gracefully: it marks the instance draining (and its
// health reporter, see [HealthReporter]), waits drain_timeout, deregisters
// and closes the registrar. It is called for you when RegisterSelf's context
// is done or a signal arrives; calling it again waits for the first call
// and returns its result. ctx bounds the calls to the registry, not the wait.
func (s *Self) Leave(ctx context.Context) error {
	first := false
	s.leaveOnce.Do(func() {
		first = true
		close(s.leaving)
	})
	if !first {
		<-s.done
		return s.leaveErr
	}
	defer close(s.done)
	if s.stopSig != nil {
		defer s.stopSig()
	}
	s.stopRun()
	s.wg.Wait() // registration attempts and health reports have stopped
	if d, ok := s.health.(interface{ SetDraining(bool) }); ok {
		d.SetDraining(true)
	}
	var errs []error
	select {
	case <-s.registered:
		s.log.Info("starting graceful service deregistration")
		if err := s.call(ctx, func(ctx context.Context) error { return s.reg.Drain(ctx, s.in.ID) }); err != nil {
			errs = append(errs, fmt.Errorf("marking draining: %w", err))
		}
		s.log.Info("draining connections", "drain_timeout", s.drain.String())
		time.Sleep(s.drain)
		if err := s.call(ctx, func(ctx context.Context) error { return s.reg.Deregister(ctx, s.in.ID) }); err != nil {
			errs = append(errs, fmt.Errorf("deregistering: %w", err))
		} else {
			s.log.Info("service instance deregistered successfully")
		}
	default: // not registered (yet): take back an attempt that may have reached the registry
		if err := s.call(ctx, func(ctx context.Context) error { return s.reg.Deregister(ctx, s.in.ID) }); err != nil {
			errs = append(errs, fmt.Errorf("deregistering: %w", err))
		}
	}
	if err := s.reg.Close(); err != nil {
		errs = append(errs, err)
	}
	s.leaveErr = errors.Join(errs...)
	if s.leaveErr != nil {
		s.log.Warn("graceful deregistration incomplete; the registry drops the instance when its lease or TTL runs out", "err", s.leaveErr)
	}
	return s.leaveErr
}

// call runs one registry call bounded by 10 seconds within ctx.
func (s *Self) call(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return f(ctx)
}
