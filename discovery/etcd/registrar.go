package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-sh/shoal/discovery"
)

// Registrar registers instances as keys on one lease that it keeps alive;
// see the package documentation. It is safe for concurrent use.
type Registrar struct {
	opts Options
	c    *clientv3.Client

	mu      sync.Mutex
	lease   clientv3.LeaseID // 0: none granted yet, or lost
	ka      <-chan *clientv3.LeaseKeepAliveResponse
	keeping bool // the keeper goroutine runs
	regs    map[string]*registration
	closed  bool

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// registration is one registered instance and what was reported about it.
type registration struct {
	in       discovery.Instance
	healthy  bool
	draining bool
}

var _ discovery.Registrar = (*Registrar)(nil)

// NewRegistrar returns a Registrar for opts. It does not connect: the first
// Register does.
func NewRegistrar(opts Options) (*Registrar, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	c, err := newClient(opts)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Registrar{opts: opts, c: c, regs: map[string]*registration{}, ctx: ctx, cancel: cancel}, nil
}

// Register implements [discovery.Registrar]: it puts the instance's key on
// the registrar's lease, granting the lease (and starting its keep-alive)
// first if there is none.
func (r *Registrar) Register(ctx context.Context, in discovery.Instance) error {
	if err := discovery.CheckInstance(in); err != nil {
		return err
	}
	if strings.Contains(in.ID, "/") {
		return &discovery.InvalidInstanceError{ID: in.ID, Reason: "etcd keys are prefix/service/id, so an ID must not contain /"}
	}
	in.Weight = max(in.Weight, 1)
	in.Draining = false
	reg := &registration{in: in, healthy: true}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("etcd: registrar closed")
	}
	if err := r.putLocked(ctx, reg); err != nil {
		return err
	}
	r.regs[in.ID] = reg
	return nil
}

// SetHealth implements [discovery.Registrar]: the key's value records the
// health, and providers skip unhealthy instances.
func (r *Registrar) SetHealth(ctx context.Context, id string, healthy bool) error {
	return r.update(ctx, id, func(reg *registration) { reg.healthy = healthy })
}

// Drain implements [discovery.Registrar]: the key's value records it.
func (r *Registrar) Drain(ctx context.Context, id string) error {
	return r.update(ctx, id, func(reg *registration) { reg.draining = true })
}

func (r *Registrar) update(ctx context.Context, id string, change func(*registration)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.regs[id]
	if !ok {
		return discovery.ErrNotRegistered
	}
	reg := *old
	change(&reg)
	if reg.healthy == old.healthy && reg.draining == old.draining {
		return nil
	}
	if err := r.putLocked(ctx, &reg); err != nil {
		return err
	}
	*old = reg
	return nil
}

// Deregister implements [discovery.Registrar]: it deletes the key.
func (r *Registrar) Deregister(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.regs[id]; !ok || strings.Contains(id, "/") {
		return nil
	}
	if _, err := r.c.Delete(ctx, r.opts.dir()+id); err != nil {
		return r.wrap("deregistering "+id, err)
	}
	delete(r.regs, id)
	return nil
}

// Close implements [discovery.Registrar]: it stops the keep-alive and
// closes the client. The lease is left to expire, taking the keys still on it.
func (r *Registrar) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return r.c.Close()
}

// putLocked writes reg's key on the lease, granting one if needed, and once
// more on a new lease when etcd no longer knows the current one.
func (r *Registrar) putLocked(ctx context.Context, reg *registration) error {
	for attempt := 0; ; attempt++ {
		if r.lease == 0 {
			if err := r.grantLocked(ctx); err != nil {
				return err
			}
		}
		_, err := r.c.Put(ctx, r.opts.dir()+reg.in.ID, string(encode(reg.in, reg.healthy, reg.draining)), clientv3.WithLease(r.lease))
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			r.lease = 0 // expired while we were away: take a new one
			continue
		}
		if err != nil {
			return r.wrap("registering "+reg.in.ID, err)
		}
		return nil
	}
}

// grantLocked grants a lease, asks for its keep-alive, and starts the
// keeper the first time.
func (r *Registrar) grantLocked(ctx context.Context) error {
	ttl := int64((r.opts.LeaseTTL + time.Second - 1) / time.Second)
	g, err := r.c.Grant(ctx, ttl)
	if err != nil {
		return r.wrap("granting a lease", err)
	}
	ka, err := r.c.KeepAlive(r.ctx, g.ID)
	if err != nil {
		return r.wrap("keeping the lease alive", err)
	}
	r.lease, r.ka = g.ID, ka
	if !r.keeping {
		r.keeping = true
		r.wg.Add(1)
		go r.keeper()
	}
	return nil
}

// keeper drains the keep-alive responses of the current lease. When their
// channel closes before Close — no renewal got through for a whole TTL (etcd
// is down or unreachable), or etcd let the lease expire — it renews the same
// lease as soon as etcd answers, retrying at least every quarter TTL: etcd
// keeps a lease through its own restart and gives it a fresh TTL (plus an
// election timeout) once it has a leader again, so the instance's key never
// leaves the registry and no watcher sees it go. Only a lease etcd no longer
// knows is replaced: a new one is granted and every registered key put on it.
func (r *Registrar) keeper() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		lease, ka := r.lease, r.ka
		r.mu.Unlock()
		for range ka {
		}
		if r.ctx.Err() != nil {
			return
		}
		r.opts.Logger.Warn("etcd: no lease renewal got through for a whole TTL; renewing it as soon as etcd answers", "lease", int64(lease))
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, r.retryMax()) {
			r.mu.Lock()
			if r.closed {
				r.mu.Unlock()
				return
			}
			renewed, err := r.recoverLocked(lease)
			n := len(r.regs)
			r.mu.Unlock()
			if err == nil {
				if renewed {
					r.opts.Logger.Info("etcd: lease renewed; the instances stayed registered", "lease", int64(lease), "instances", n)
				} else {
					r.opts.Logger.Warn("etcd: the lease had expired; instances registered again on a new one", "instances", n)
				}
				break
			}
			r.opts.Logger.Warn("etcd: cannot renew the lease yet; retrying", "err", err, "retry_in", backoff.String())
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
	}
}

// retryMax bounds the keeper's backoff: a quarter of the lease TTL (at most
// 5s), so that a renewal is tried several times within the grace etcd gives
// a lease after coming back.
func (r *Registrar) retryMax() time.Duration {
	return min(max(r.opts.LeaseTTL/4, 100*time.Millisecond), 5*time.Second)
}

// recoverLocked renews lease, whose keep-alive channel closed, and resumes
// keeping it alive; renewed is true then. When etcd no longer knows it, or a
// Register replaced it meanwhile, it puts every registered key on a current
// lease instead.
func (r *Registrar) recoverLocked(lease clientv3.LeaseID) (renewed bool, err error) {
	if r.lease == lease && lease != 0 {
		ctx, cancel := context.WithTimeout(r.ctx, r.opts.DialTimeout)
		_, err := r.c.KeepAliveOnce(ctx, lease)
		cancel()
		switch {
		case err == nil:
			ka, err := r.c.KeepAlive(r.ctx, lease)
			if err != nil {
				return false, r.wrap("keeping the lease alive", err)
			}
			r.ka = ka
			return true, nil
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			r.lease = 0 // expired: take a new one
		default:
			return false, r.wrap("renewing the lease", err)
		}
	}
	return false, r.restoreLocked()
}

// restoreLocked grants a lease if there is none and puts every registered
// key on the current lease.
func (r *Registrar) restoreLocked() error {
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.DialTimeout)
	defer cancel()
	if r.lease == 0 {
		if err := r.grantLocked(ctx); err != nil {
			return err
		}
	}
	for _, reg := range r.regs {
		if err := r.putLocked(ctx, reg); err != nil {
			return err
		}
	}
	return nil
}

func (r *Registrar) wrap(what string, err error) error {
	return fmt.Errorf("etcd %v: %s: %w", r.opts.Endpoints, what, err)
}
