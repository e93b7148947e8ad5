package dns

import (
	"context"
	"fmt"
	"net"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/shoal-sh/shoal/discovery"
)

// MetaHostname is the [discovery.Instance.Meta] key of the host name an
// instance's address was resolved from, without the trailing dot.
const MetaHostname = "hostname"

// systemResolvConf is where the system's resolver configuration is read.
const systemResolvConf = "/etc/resolv.conf"

// fallbackServer is queried when no name server is configured, as the
// system resolver does.
const fallbackServer = "127.0.0.1:53"

// Provider resolves a service's instances from DNS; see the package
// documentation. It is safe for concurrent use.
type Provider struct {
	opts     Options
	servers  []string // host:port, tried in order
	names    []string // fully qualified names to try in order
	exchange func(ctx context.Context, m *miekg.Msg, server string) (*miekg.Msg, error)
}

var _ discovery.Provider = (*Provider)(nil)

// New returns a Provider for opts, or the problems of opts. When
// opts.Resolver is empty it reads /etc/resolv.conf.
func New(opts Options) (*Provider, error) {
	return newProvider(opts, systemResolvConf)
}

// newProvider is New reading the resolver configuration from resolvConf.
func newProvider(opts Options, resolvConf string) (*Provider, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	p := &Provider{opts: opts, exchange: exchange}
	if opts.Resolver != "" {
		p.servers = []string{opts.Resolver}
		p.names = []string{miekg.Fqdn(opts.Name)}
		return p, nil
	}
	conf, err := miekg.ClientConfigFromFile(resolvConf)
	if err != nil {
		// No resolver configuration: the system resolver's defaults.
		conf = &miekg.ClientConfig{Port: "53", Ndots: 1}
	}
	for _, s := range conf.Servers {
		p.servers = append(p.servers, net.JoinHostPort(s, conf.Port))
	}
	if len(p.servers) == 0 {
		p.servers = []string{fallbackServer}
	}
	p.names = conf.NameList(opts.Name)
	return p, nil
}

// Watch implements [discovery.Provider]. Each call resolves the name at once
// and then every Options.RefreshInterval in a goroutine of its own, until ctx
// is done; a resolution in progress is abandoned then. A failed resolution is
// delivered as an event with Err (a [*QueryError] or, for several servers,
// errors joining them) and the next one is tried after the usual interval.
func (p *Provider) Watch(ctx context.Context) <-chan discovery.Event {
	f, ch := discovery.NewFeed()
	go p.poll(ctx, f)
	return ch
}

// poll resolves every refresh interval until ctx is done, then closes f.
func (p *Provider) poll(ctx context.Context, f *discovery.Feed) {
	defer f.Close()
	var timer *time.Timer
	for {
		instances, ttl, err := p.resolve(ctx)
		if ctx.Err() != nil {
			return
		}
		f.Send(discovery.Event{Instances: instances, Err: err})
		wait := p.opts.RefreshInterval
		if err == nil && ttl >= 0 {
			// The records are good for their TTL: resolve again when the
			// first runs out, if that is sooner (not more often than every
			// MinRefresh, against records with a TTL of 0).
			wait = min(wait, max(ttl, p.opts.MinRefresh))
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// Resolve resolves the name once and returns the instances sorted by ID, or
// why it could not. It gives up after Options.Timeout or when ctx is done.
func (p *Provider) Resolve(ctx context.Context) ([]discovery.Instance, error) {
	instances, _, err := p.resolve(ctx)
	return instances, err
}

// resolve is Resolve, also returning the smallest TTL of the records the
// instances came from (-1 when there were none).
func (p *Provider) resolve(ctx context.Context) (_ []discovery.Instance, ttl time.Duration, _ error) {
	ttl = -1
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	r := resolution{p: p, ctx: ctx}
	for _, name := range p.names {
		var (
			instances []discovery.Instance
			found     bool
			err       error
		)
		if p.opts.RecordType == RecordSRV {
			instances, found, err = r.srv(name)
		} else {
			instances, found, err = r.hosts(name)
		}
		if err != nil {
			if ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
				return nil, ttl, fmt.Errorf("dns: resolving %s: %w", name, ctx.Err())
			}
			return nil, ttl, err
		}
		if found {
			if r.hasTTL {
				ttl = time.Duration(r.ttl) * time.Second
			}
			return sortInstances(instances), ttl, nil
		}
	}
	return nil, ttl, nil
}
