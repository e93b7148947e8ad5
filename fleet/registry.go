package fleet

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/shoal-sh/shoal/discovery"
)

// remote is the fleet's side of Options.Registrar: the registrations in
// progress (retried in the background until the registry has them) by
// instance id.
type remote struct {
	mu      sync.Mutex
	pending map[string]context.CancelFunc
}

// registryInstance is how instance id on port is registered: at
// Options.AdvertiseHost (default 127.0.0.1).
func (f *Fleet) registryInstance(id string, port int) discovery.Instance {
	host := f.opts.AdvertiseHost
	if host == "" {
		host = "127.0.0.1"
	}
	return discovery.Instance{ID: id, URL: &url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(port))},
		Weight: 1, Meta: map[string]string{"instance": id}}
}

// registerRemote registers a ready instance with the configured registrar,
// retrying with backoff in the background until the registry has it or the
// instance leaves: a registry outage never holds an instance back from the
// local proxy.
func (f *Fleet) registerRemote(id string, port int) {
	r := f.opts.Registrar
	if r == nil {
		return
	}
	in := f.registryInstance(id, port)
	ctx, cancel := context.WithCancel(context.Background())
	f.remote.mu.Lock()
	if f.remote.pending == nil {
		f.remote.pending = map[string]context.CancelFunc{}
	}
	if old := f.remote.pending[id]; old != nil {
		old()
	}
	f.remote.pending[id] = cancel
	f.remote.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		backoff := 100 * time.Millisecond
		for attempt := 1; ctx.Err() == nil; attempt++ {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.Register(rctx, in)
			rcancel()
			if err == nil {
				f.log.Info("instance registered", "instance", id, "registry", f.opts.Registry, "url", in.URL.String())
				return
			}
			var invalid *discovery.InvalidInstanceError
			if errors.As(err, &invalid) {
				f.log.Error("the registry cannot hold the instance; it is served by this proxy only", "instance", id, "err", err)
				return
			}
			if ctx.Err() != nil {
				return
			}
			f.log.Warn("cannot register the instance yet; retrying", "instance", id, "registry", f.opts.Registry,
				"err", err, "attempt", attempt, "retry_in", backoff.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
		}
	}()
}

// drainRemote marks the instance draining in the registry: proxies watching
// it send it no new requests.
func (f *Fleet) drainRemote(id string) {
	r := f.opts.Registrar
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Drain(ctx, id); err != nil && !errors.Is(err, discovery.ErrNotRegistered) {
		f.log.Warn("cannot mark the instance draining in the registry", "instance", id, "err", err)
	}
}

// deregisterRemote stops registering the instance and removes it from the
// registry.
func (f *Fleet) deregisterRemote(id string) {
	r := f.opts.Registrar
	if r == nil {
		return
	}
	f.remote.mu.Lock()
	if cancel := f.remote.pending[id]; cancel != nil {
		cancel()
		delete(f.remote.pending, id)
	}
	f.remote.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Deregister(ctx, id); err != nil {
		f.log.Warn("cannot deregister the instance; the registry drops it when its lease or TTL runs out", "instance", id, "err", err)
		return
	}
	f.log.Info("instance deregistered", "instance", id, "registry", f.opts.Registry)
}

// waitDrainTimeout waits what is left of drain_timeout since begin, so that
// proxies watching the registry (whose in-flight requests this fleet cannot
// see) finish theirs before the instance is deregistered and stopped.
func (f *Fleet) waitDrainTimeout(begin time.Time) {
	if f.opts.Registrar == nil {
		return
	}
	if rest := f.cfg.Scaling.Instances.Shutdown.DrainTimeout.D() - time.Since(begin); rest > 0 {
		time.Sleep(rest)
	}
}
