package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/shoal-sh/shoal/discovery"
)

// errCompacted ends a watch whose next revision etcd has compacted away: the
// set is read again in full.
var errCompacted = errors.New("etcd: watch revision compacted")

// Provider watches a service's instances in etcd; see the package
// documentation. It is safe for concurrent use.
type Provider struct {
	opts Options
}

var _ discovery.Provider = (*Provider)(nil)

// New returns a Provider for opts, or the problems of opts. It does not
// connect: each Watch does.
func New(opts Options) (*Provider, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	return &Provider{opts: opts}, nil
}

// newClient connects to etcd without waiting for a connection.
func newClient(o Options) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   o.endpoints(),
		DialTimeout: o.DialTimeout,
		Username:    o.Username,
		Password:    o.Password,
		Logger:      zap.NewNop(), // failures reach the provider's events and our own log
		// Notice a registry that went away within seconds, not after TCP's timeouts.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		// Reconnect within a second of etcd coming back. gRPC's default backoff
		// grows to two minutes: after a 10s outage the next attempt could be
		// seconds away, longer than the grace etcd gives the leases of
		// registered instances when it restarts (their TTL plus an election
		// timeout), so their keys would expire before the registrar's renewal
		// got through — and every watcher would see the instances vanish.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: o.DialTimeout,
		})},
	})
}

// Watch implements [discovery.Provider]. Each call opens its own client,
// reads the service's keys and follows them with an etcd watch from the
// revision read, until ctx is done. A watch that loses its place (the
// revision compacted) reads the keys again. While etcd does not answer
// (a probe every ProbeInterval), the watch sends an error event and keeps
// probing with backoff; once etcd answers again it reads the keys in full,
// so no change made meanwhile is missed.
func (p *Provider) Watch(ctx context.Context) <-chan discovery.Event {
	f, ch := discovery.NewFeed()
	go p.run(ctx, f)
	return ch
}

func (p *Provider) run(ctx context.Context, f *discovery.Feed) {
	defer f.Close()
	c, err := newClient(p.opts)
	if err != nil {
		f.Send(discovery.Event{Err: fmt.Errorf("etcd: %w", err)})
		return
	}
	defer c.Close()
	w := watch{p: p, c: c, f: f, skipped: map[string]int64{}}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		rev, err := w.read(ctx)
		if err == nil {
			backoff = 100 * time.Millisecond
			err = w.follow(ctx, rev)
			if errors.Is(err, errCompacted) {
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		f.Send(discovery.Event{Err: err})
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, p.opts.ProbeInterval)
	}
}

// watch is the state of one Watch call.
type watch struct {
	p       *Provider
	c       *clientv3.Client
	f       *discovery.Feed
	set     map[string]discovery.Instance // healthy instances by key
	skipped map[string]int64              // malformed keys, by the revision warned about
}

// read reads every key of the service, sends the set and returns the
// revision it was read at.
func (w *watch) read(ctx context.Context) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, w.p.opts.ProbeInterval+w.p.opts.DialTimeout)
	defer cancel()
	resp, err := w.c.Get(rctx, w.p.opts.dir(), clientv3.WithPrefix())
	if err != nil {
		return 0, w.wrap(err)
	}
	w.set = make(map[string]discovery.Instance, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		w.put(kv)
	}
	w.send()
	return resp.Header.Revision, nil
}

// follow applies the watch events after rev until ctx is done or the watch
// fails; errCompacted when etcd no longer has rev+1.
func (w *watch) follow(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// Watch blocks until the watch stream is up, which during an outage is
	// never: start it aside, and probe meanwhile.
	started := make(chan clientv3.WatchChan, 1)
	go func() { started <- w.c.Watch(wctx, w.p.opts.dir(), clientv3.WithPrefix(), clientv3.WithRev(rev+1)) }()
	var events clientv3.WatchChan // nil until started
	probe := time.NewTicker(w.p.opts.ProbeInterval)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case events = <-started:
		case resp, ok := <-events:
			if !ok {
				return w.wrap(errors.New("watch closed"))
			}
			if resp.CompactRevision != 0 {
				return errCompacted
			}
			if err := resp.Err(); err != nil {
				return w.wrap(err)
			}
			for _, ev := range resp.Events {
				if ev.Type == mvccpb.DELETE {
					delete(w.set, string(ev.Kv.Key))
					delete(w.skipped, string(ev.Kv.Key))
				} else {
					w.put(ev.Kv)
				}
			}
			if len(resp.Events) > 0 {
				w.send()
			}
		case <-probe.C:
			// As long as a dial may take: a slow answer from a busy etcd is not an outage.
			pctx, pcancel := context.WithTimeout(ctx, w.p.opts.DialTimeout)
			_, err := w.c.Get(pctx, w.p.opts.dir(), clientv3.WithPrefix(), clientv3.WithCountOnly())
			pcancel()
			if err != nil {
				return w.wrap(err)
			}
		}
	}
}

// put records one key, skipping it with a warning when it is malformed and
// dropping it when the instance is unhealthy.
func (w *watch) put(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	in, healthy, err := decode(w.p.opts.dir(), key, kv.Value)
	if err != nil {
		delete(w.set, key)
		if w.skipped[key] != kv.ModRevision {
			w.skipped[key] = kv.ModRevision
			w.p.opts.Logger.Warn("etcd discovery: skipping a malformed instance key", "err", err)
		}
		return
	}
	delete(w.skipped, key)
	if !healthy {
		delete(w.set, key)
		return
	}
	w.set[key] = in
}

func (w *watch) send() {
	set := make([]discovery.Instance, 0, len(w.set))
	for _, in := range w.set {
		set = append(set, in)
	}
	w.f.Send(discovery.Event{Instances: set})
}

// wrap names etcd and the endpoints in an error.
func (w *watch) wrap(err error) error {
	return fmt.Errorf("etcd %v: watching %s: %w", w.p.opts.Endpoints, w.p.opts.dir(), err)
}
