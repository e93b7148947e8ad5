package consul

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/shoal-sh/shoal/config"
)

// Check types of [Options.Check].
const (
	// CheckHTTP makes the agent probe the instance's health endpoint.
	CheckHTTP = "http"
	// CheckTTL makes the instance report its health itself: the registrar
	// renews a TTL check in the background and SetHealth changes its status.
	CheckTTL = "ttl"
)

// Options configure a [Provider], a [Registrar] and [WatchKey]. [FromConfig]
// fills them from the seed's service_discovery block.
type Options struct {
	// Address of the Consul agent, host:port or http(s)://host:port.
	// Defaults to "127.0.0.1:8500".
	Address string
	// Datacenter registered in and queried; empty for the agent's own.
	Datacenter string
	// Token is the ACL token sent with every request; empty for none.
	Token string
	// Service whose instances are registered and watched. Required.
	Service string
	// Check registered with each instance: [CheckHTTP] or [CheckTTL].
	// Defaults to CheckHTTP.
	Check string
	// HealthPath is the path the agent's HTTP check probes on the instance.
	// Defaults to "/health".
	HealthPath string
	// CheckInterval and CheckTimeout of the HTTP check. Default to 30s and 5s.
	CheckInterval, CheckTimeout time.Duration
	// CheckTTL is the TTL of a TTL check: the registrar renews it every third
	// of it, and Consul marks the instance critical when a process stops
	// renewing it. Defaults to 10s.
	CheckTTL time.Duration
	// DeregisterCriticalAfter makes Consul remove an instance whose check has
	// been critical this long (Consul raises values below 1m to 1m). Defaults
	// to 1m.
	DeregisterCriticalAfter time.Duration
	// WaitTime of a blocking query: how long the agent holds a query whose
	// answer has not changed. Defaults to 30s; a connection that went silent
	// (a partition) is noticed within it.
	WaitTime time.Duration
	// RetryMax bounds the backoff between failed queries. Defaults to 2s.
	RetryMax time.Duration
	// HTTPClient talks to the agent; nil for the client's default.
	HTTPClient *http.Client
	// Logger receives warnings: malformed entries skipped, a registration
	// lost by the agent and made again. Defaults to slog.Default().
	Logger *slog.Logger
}

// FromConfig returns the options of the seed's service_discovery block.
func FromConfig(sd config.ServiceDiscovery) Options {
	return Options{
		Address:                 sd.Consul.Address,
		Datacenter:              sd.Consul.Datacenter,
		Token:                   sd.Consul.Token,
		Service:                 sd.ServiceName,
		Check:                   sd.Consul.Check,
		HealthPath:              sd.HealthCheck.Endpoint,
		CheckInterval:           sd.HealthCheck.Interval.D(),
		CheckTimeout:            sd.HealthCheck.Timeout.D(),
		DeregisterCriticalAfter: sd.Consul.DeregisterCriticalAfter.D(),
	}
}

func (o *Options) setDefaults() {
	if o.Address == "" {
		o.Address = "127.0.0.1:8500"
	}
	if o.Check == "" {
		o.Check = CheckHTTP
	}
	if o.HealthPath == "" {
		o.HealthPath = "/health"
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = 30 * time.Second
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = 5 * time.Second
	}
	if o.CheckTTL == 0 {
		o.CheckTTL = 10 * time.Second
	}
	if o.DeregisterCriticalAfter == 0 {
		o.DeregisterCriticalAfter = time.Minute
	}
	if o.WaitTime == 0 {
		o.WaitTime = 30 * time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = 2 * time.Second
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
	hostport := o.Address
	if rest, ok := strings.CutPrefix(hostport, "http://"); ok {
		hostport = rest
	} else if rest, ok := strings.CutPrefix(hostport, "https://"); ok {
		hostport = rest
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		bad("Address: %q is not host:port or http(s)://host:port, e.g. \"127.0.0.1:8500\"", o.Address)
	}
	if o.Service == "" || strings.ContainsAny(o.Service, "/?#") {
		bad("Service: %q must be a non-empty name without / ? #", o.Service)
	}
	if o.Check != CheckHTTP && o.Check != CheckTTL {
		bad("Check: %q is not %q or %q", o.Check, CheckHTTP, CheckTTL)
	}
	if !strings.HasPrefix(o.HealthPath, "/") {
		bad("HealthPath: %q must start with /", o.HealthPath)
	}
	if o.CheckTTL < time.Second {
		bad("CheckTTL: %s is shorter than 1s", o.CheckTTL)
	}
	if o.CheckInterval < 0 || o.CheckTimeout < 0 || o.DeregisterCriticalAfter < 0 || o.WaitTime < 0 || o.RetryMax < 0 {
		bad("durations must not be negative")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("consul discovery options: %w", err)
	}
	return nil
}

// client returns a Consul API client for o (it does not connect).
func (o Options) client() (*api.Client, error) {
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = o.Address
	if rest, ok := strings.CutPrefix(o.Address, "https://"); ok {
		cfg.Address, cfg.Scheme = rest, "https"
	} else if rest, ok := strings.CutPrefix(o.Address, "http://"); ok {
		cfg.Address, cfg.Scheme = rest, "http"
	}
	cfg.Datacenter = o.Datacenter
	cfg.Token = o.Token
	if o.HTTPClient != nil {
		cfg.HttpClient = o.HTTPClient
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul %s: %w", o.Address, err)
	}
	return c, nil
}

// Meta keys shoal adds to a registration; they are not delivered in
// [discovery.Instance.Meta].
const (
	metaDraining = "shoal_draining"
	metaScheme   = "shoal_scheme"
)
