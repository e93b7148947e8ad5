package consul

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/shoal-sh/shoal/discovery"
)

// Provider watches a service's passing instances with Consul blocking
// queries; see the package documentation. It is safe for concurrent use.
type Provider struct {
	opts Options
	c    *api.Client
}

var _ discovery.Provider = (*Provider)(nil)

// New returns a Provider for opts, or the problems of opts. It does not
// connect: each Watch queries the agent.
func New(opts Options) (*Provider, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	c, err := opts.client()
	if err != nil {
		return nil, err
	}
	return &Provider{opts: opts, c: c}, nil
}

// Watch implements [discovery.Provider]: each call runs its own loop of
// blocking queries on /v1/health/service/<service>?passing until ctx is done.
func (p *Provider) Watch(ctx context.Context) <-chan discovery.Event {
	f, ch := discovery.NewFeed()
	go func() {
		defer f.Close()
		p.run(ctx, f)
	}()
	return ch
}

func (p *Provider) run(ctx context.Context, f *discovery.Feed) {
	var index uint64
	skipped := map[string]string{} // entries warned about, by ID → why
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: p.opts.WaitTime}).WithContext(ctx)
		entries, meta, err := p.c.Health().Service(p.opts.Service, "", true, q)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.Send(discovery.Event{Err: fmt.Errorf("consul %s: watching service %q: %w", p.opts.Address, p.opts.Service, err)})
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, p.opts.RetryMax)
			continue
		}
		backoff = 100 * time.Millisecond
		f.Send(discovery.Event{Instances: p.instances(entries, skipped)})
		index = nextIndex(index, meta.LastIndex)
	}
}

// nextIndex is the index of the next blocking query after one that asked
// for prev and got last, as Consul's documentation of blocking queries says:
// an index that went backwards (the agent's raft state was restored, or a
// different server answered) resets to 0, so that the next query answers at
// once; and an index of 0 becomes 1, so that the next query blocks.
func nextIndex(prev, last uint64) uint64 {
	switch {
	case last < prev:
		return 0
	case last == 0:
		return 1
	}
	return last
}

// instances turns the entries into instances, skipping malformed ones with a
// warning (once per entry and reason).
func (p *Provider) instances(entries []*api.ServiceEntry, skipped map[string]string) []discovery.Instance {
	out := make([]discovery.Instance, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		in, err := instance(e)
		if err != nil {
			id := ""
			if e != nil && e.Service != nil {
				id = e.Service.ID
			}
			seen[id] = true
			if skipped[id] != err.Error() {
				skipped[id] = err.Error()
				p.opts.Logger.Warn("consul discovery: skipping a malformed service entry", "service", p.opts.Service, "err", err)
			}
			continue
		}
		out = append(out, in)
	}
	for id := range skipped {
		if !seen[id] {
			delete(skipped, id)
		}
	}
	return out
}

// instance turns one health entry into an instance: the service's address
// (else its node's), port, weight, Meta without shoal's own keys, and
// draining when shoal's draining key is set.
func instance(e *api.ServiceEntry) (discovery.Instance, error) {
	if e == nil || e.Service == nil {
		return discovery.Instance{}, fmt.Errorf("entry without a service")
	}
	s := e.Service
	addr := s.Address
	if addr == "" && e.Node != nil {
		addr = e.Node.Address
	}
	if s.ID == "" {
		return discovery.Instance{}, fmt.Errorf("service entry without an ID (address %q)", addr)
	}
	if addr == "" || s.Port <= 0 || s.Port > 65535 {
		return discovery.Instance{}, fmt.Errorf("instance %q: address %q port %d is not a usable host and port", s.ID, addr, s.Port)
	}
	if s.Weights.Passing > 1000 {
		return discovery.Instance{}, fmt.Errorf("instance %q: weight %d is not between 1 and 1000", s.ID, s.Weights.Passing)
	}
	scheme := "http"
	if s.Meta[metaScheme] == "https" {
		scheme = "https"
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(addr, strconv.Itoa(s.Port))}
	if _, err := url.Parse(u.String()); err != nil {
		return discovery.Instance{}, fmt.Errorf("instance %q: address %q is not a host name or IP address", s.ID, addr)
	}
	in := discovery.Instance{ID: s.ID, URL: u, Weight: max(s.Weights.Passing, 1), Draining: s.Meta[metaDraining] == "true"}
	for k, v := range s.Meta {
		if k == metaDraining || k == metaScheme {
			continue
		}
		if in.Meta == nil {
			in.Meta = make(map[string]string, len(s.Meta))
		}
		in.Meta[k] = v
	}
	return in, nil
}

// sleep waits d or until ctx is done; false then.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
