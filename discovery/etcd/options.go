package etcd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// Options configure a [Provider] and a [Registrar]. [FromConfig] fills them
// from the seed's service_discovery block.
type Options struct {
	// Endpoints of the etcd cluster, host:port or http(s)://host:port.
	// Defaults to ["127.0.0.1:2379"].
	Endpoints []string
	// Prefix of the keys, starting with "/". Defaults to "/shoal/services".
	Prefix string
	// Service whose instances are registered and watched: keys are
	// Prefix/Service/<instance ID>. Required.
	Service string
	// LeaseTTL of a registrar's lease, whole seconds, at least 2s: how long
	// its instances outlive a process that stopped renewing it. Defaults to 10s.
	LeaseTTL time.Duration
	// DialTimeout bounds connecting to etcd. Defaults to 5s.
	DialTimeout time.Duration
	// Username and Password for etcd's authentication; empty for none.
	Username, Password string
	// ProbeInterval is how often a watching provider checks that etcd still
	// answers (within DialTimeout), so that an outage is reported (the watch
	// itself stays quiet through one) and the set is read again once etcd is
	// back. Defaults to 2s.
	ProbeInterval time.Duration
	// Logger receives warnings: malformed keys skipped, a lost lease
	// renewed. Defaults to slog.Default().
	Logger *slog.Logger
}

// FromConfig returns the options of the seed's service_discovery block.
func FromConfig(sd config.ServiceDiscovery) Options {
	return Options{
		Endpoints:   sd.Etcd.Endpoints,
		Prefix:      sd.Etcd.Prefix,
		Service:     sd.ServiceName,
		LeaseTTL:    sd.Etcd.LeaseTTL.D(),
		DialTimeout: sd.Etcd.DialTimeout.D(),
		Username:    sd.Etcd.Username,
		Password:    sd.Etcd.Password,
	}
}

func (o *Options) setDefaults() {
	if len(o.Endpoints) == 0 {
		o.Endpoints = []string{"127.0.0.1:2379"}
	}
	if o.Prefix == "" {
		o.Prefix = "/shoal/services"
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports every problem of o, as New would after filling in the
// defaults.
func (o Options) Validate() error {
	o.setDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, ep := range o.Endpoints {
		hostport := ep
		if u, err := url.Parse(ep); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			hostport = u.Host
		}
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			bad("Endpoints: %q is not host:port or http(s)://host:port, e.g. \"127.0.0.1:2379\"", ep)
		}
	}
	if !strings.HasPrefix(o.Prefix, "/") || (len(o.Prefix) > 1 && strings.HasSuffix(o.Prefix, "/")) {
		bad("Prefix: %q must start with / and not end with /, e.g. \"/shoal/services\"", o.Prefix)
	}
	if o.Service == "" || strings.Contains(o.Service, "/") {
		bad("Service: %q must be a non-empty name without /", o.Service)
	}
	if o.LeaseTTL < 2*time.Second {
		bad("LeaseTTL: %s is shorter than 2s", o.LeaseTTL)
	}
	if o.DialTimeout < 0 || o.ProbeInterval < 0 {
		bad("DialTimeout and ProbeInterval must not be negative")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("etcd discovery options: %w", err)
	}
	return nil
}

// dir is the key prefix of the service's instances, ending in "/".
func (o Options) dir() string {
	if o.Prefix == "/" {
		return "/" + o.Service + "/"
	}
	return o.Prefix + "/" + o.Service + "/"
}

// endpoints returns the endpoints as the client wants them (host:port, or
// URLs kept as they are).
func (o Options) endpoints() []string { return o.Endpoints }
