package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/shoal-sh/shoal/discovery"
)

// Registrar registers instances as services of the Consul agent at
// Options.Address, each with the configured check; see the package
// documentation. It is safe for concurrent use.
type Registrar struct {
	opts Options
	c    *api.Client

	mu     sync.Mutex
	regs   map[string]*registration
	closed bool

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type registration struct {
	in       discovery.Instance
	healthy  bool
	draining bool
}

var _ discovery.Registrar = (*Registrar)(nil)

// NewRegistrar returns a Registrar for opts. It does not connect: the first
// Register does. A background loop renews TTL checks every third of
// CheckTTL and registers an instance again when the agent has lost it (an
// agent restarted without its data).
func NewRegistrar(opts Options) (*Registrar, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	c, err := opts.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registrar{opts: opts, c: c, regs: map[string]*registration{}, ctx: ctx, cancel: cancel}
	r.wg.Add(1)
	go r.keeper()
	return r, nil
}

// checkID is the ID of the check registered with the instance.
func checkID(id string) string { return "service:" + id }

// Register implements [discovery.Registrar]: it registers the instance with
// the agent, healthy and not draining.
func (r *Registrar) Register(ctx context.Context, in discovery.Instance) error {
	if err := discovery.CheckInstance(in); err != nil {
		return err
	}
	if strings.ContainsAny(in.ID, "/?#") {
		return &discovery.InvalidInstanceError{ID: in.ID, Reason: "Consul service IDs are URL path segments, so an ID must not contain / ? #"}
	}
	for k := range in.Meta {
		if k == metaDraining || k == metaScheme {
			return &discovery.InvalidInstanceError{ID: in.ID, Reason: fmt.Sprintf("Meta key %q is shoal's own; use another name", k)}
		}
		if !validMetaKey(k) {
			return &discovery.InvalidInstanceError{ID: in.ID, Reason: fmt.Sprintf("Meta key %q: Consul allows only letters, digits, - and _, at most 128 characters", k)}
		}
	}
	in.Weight = max(in.Weight, 1)
	reg := &registration{in: in, healthy: true}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("consul: registrar closed")
	}
	if err := r.registerLocked(ctx, reg); err != nil {
		return err
	}
	r.regs[in.ID] = reg
	return nil
}

func validMetaKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// registerLocked sends reg's service definition, with its check in the state
// reg says, and maintenance mode for an unhealthy instance with an HTTP check.
func (r *Registrar) registerLocked(ctx context.Context, reg *registration) error {
	in := reg.in
	host, portStr, err := net.SplitHostPort(in.URL.Host)
	if err != nil {
		port := "80"
		if in.URL.Scheme == "https" {
			port = "443"
		}
		host, portStr = in.URL.Host, port
	}
	port, _ := strconv.Atoi(portStr)
	meta := maps.Clone(in.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	if in.URL.Scheme == "https" {
		meta[metaScheme] = "https"
	}
	if reg.draining {
		meta[metaDraining] = "true"
	}
	status := api.HealthPassing
	if !reg.healthy && r.opts.Check == CheckTTL {
		status = api.HealthCritical
	}
	check := &api.AgentServiceCheck{
		CheckID:                        checkID(in.ID),
		Name:                           "shoal " + r.opts.Check + " check",
		Status:                         status,
		DeregisterCriticalServiceAfter: r.opts.DeregisterCriticalAfter.String(),
	}
	if r.opts.Check == CheckTTL {
		check.TTL = r.opts.CheckTTL.String()
	} else {
		check.HTTP = in.URL.Scheme + "://" + in.URL.Host + r.opts.HealthPath
		check.Interval = r.opts.CheckInterval.String()
		check.Timeout = r.opts.CheckTimeout.String()
	}
	svc := &api.AgentServiceRegistration{
		ID: in.ID, Name: r.opts.Service, Address: host, Port: port, Meta: meta,
		Weights: &api.AgentWeights{Passing: in.Weight, Warning: 1},
		Check:   check,
	}
	q := r.writeOpts(ctx)
	if err := r.c.Agent().ServiceRegisterOpts(svc, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)); err != nil {
		return r.wrap("registering "+in.ID, err)
	}
	if r.opts.Check == CheckHTTP {
		var err error
		if reg.healthy {
			err = r.c.Agent().DisableServiceMaintenanceOpts(in.ID, q)
		} else {
			err = r.c.Agent().EnableServiceMaintenanceOpts(in.ID, "reported unhealthy by the instance", q)
		}
		if err != nil {
			return r.wrap("setting the health of "+in.ID, err)
		}
	}
	return nil
}

func (r *Registrar) writeOpts(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{}).WithContext(ctx)
}

// SetHealth implements [discovery.Registrar]: a TTL check's status, or
// maintenance mode (the agent's way of taking a service out of the passing
// set by hand) with an HTTP check.
func (r *Registrar) SetHealth(ctx context.Context, id string, healthy bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.regs[id]
	if !ok {
		return discovery.ErrNotRegistered
	}
	if reg.healthy == healthy {
		return nil
	}
	var err error
	switch {
	case r.opts.Check == CheckTTL:
		err = r.updateTTLLocked(ctx, id, healthy)
	case healthy:
		err = r.c.Agent().DisableServiceMaintenanceOpts(id, r.writeOpts(ctx))
	default:
		err = r.c.Agent().EnableServiceMaintenanceOpts(id, "reported unhealthy by the instance", r.writeOpts(ctx))
	}
	if err != nil {
		return r.wrap("setting the health of "+id, err)
	}
	reg.healthy = healthy
	return nil
}

func (r *Registrar) updateTTLLocked(ctx context.Context, id string, healthy bool) error {
	status, output := api.HealthPassing, "healthy (reported by shoal)"
	if !healthy {
		status, output = api.HealthCritical, "unhealthy (reported by shoal)"
	}
	return r.c.Agent().UpdateTTLOpts(checkID(id), output, status, r.writeOpts(ctx))
}

// Drain implements [discovery.Registrar]: the registration is made again
// with shoal's draining Meta key, which providers turn into Draining.
func (r *Registrar) Drain(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.regs[id]
	if !ok {
		return discovery.ErrNotRegistered
	}
	if reg.draining {
		return nil
	}
	next := *reg
	next.draining = true
	if err := r.registerLocked(ctx, &next); err != nil {
		return err
	}
	*reg = next
	return nil
}

// Deregister implements [discovery.Registrar]: it removes the service (and
// its check) from the agent.
func (r *Registrar) Deregister(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.regs[id]; !ok {
		return nil
	}
	if err := r.c.Agent().ServiceDeregisterOpts(id, r.writeOpts(ctx)); err != nil && !notFound(err) {
		return r.wrap("deregistering "+id, err)
	}
	delete(r.regs, id)
	return nil
}

// Close implements [discovery.Registrar]: it stops renewing TTL checks. The
// services stay registered: with a TTL check they turn critical when the TTL
// runs out, and Consul removes them DeregisterCriticalAfter later; with an
// HTTP check, when the agent's probes fail that long.
func (r *Registrar) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// keeper renews TTL checks and checks that the agent still has every
// instance, registering again those it lost.
func (r *Registrar) keeper() {
	defer r.wg.Done()
	every := r.opts.CheckTTL / 3
	if r.opts.Check == CheckHTTP {
		every = min(r.opts.CheckInterval, 10*time.Second)
	}
	t := time.NewTicker(max(every, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		for id, reg := range r.regs {
			if r.closed {
				break
			}
			ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
			var err error
			if r.opts.Check == CheckTTL {
				err = r.updateTTLLocked(ctx, id, reg.healthy)
			} else {
				_, _, err = r.c.Agent().Service(id, r.writeOpts(ctx))
			}
			if err != nil && lost(err) {
				r.opts.Logger.Warn("consul: the agent lost the instance; registering it again", "instance", id)
				err = r.registerLocked(ctx, reg)
			}
			cancel()
			if err != nil && r.ctx.Err() == nil {
				r.opts.Logger.Warn("consul: cannot renew the instance's registration yet; retrying", "instance", id, "err", err)
			}
		}
		r.mu.Unlock()
	}
}

// notFound reports a 404 from the agent.
func notFound(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// lost reports an answer saying the agent does not know the service or its
// check (Consul answers 404, older agents 500 "does not have associated TTL").
func lost(err error) bool {
	if notFound(err) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "does not have associated TTL") || strings.Contains(s, "Unknown check") ||
		strings.Contains(s, "Unknown service")
}

func (r *Registrar) wrap(what string, err error) error {
	return fmt.Errorf("consul %s: %s: %w", r.opts.Address, what, err)
}
