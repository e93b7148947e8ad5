package proxy

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-sh/shoal/balancer"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/resilience"
)

// Options configure a Proxy. FromConfig derives them from shoal.yml; zero values get the
// defaults documented on config's fields.
type Options struct {
	// Algorithm is one of balancer.Algorithms. Defaults to round_robin.
	Algorithm string
	// SessionAffinity pins clients to an instance with a signed cookie.
	SessionAffinity bool
	// AffinityKey signs affinity cookies; at least 16 bytes. Defaults to 32 random bytes, so
	// pins do not survive a restart of the proxy unless a key is given.
	AffinityKey []byte
	// AffinityCookie is the cookie's name. Defaults to "shoal_affinity".
	AffinityCookie string

	// HealthCheck is the active check of every instance.
	HealthCheck HealthCheck
	// MaxFailures of proxied requests within FailureTimeout eject an instance for
	// FailureTimeout (passive health); 0 turns passive health off.
	MaxFailures    int
	FailureTimeout time.Duration
	// Breaker configures the per-instance circuit breaker; Enabled false turns it off.
	Breaker resilience.BreakerConfig
	// Retry configures retries of failed requests on other instances.
	Retry Retry
	// LatencyEjection takes instances that stop answering out of rotation and hedges the
	// requests waiting on them (stalls.go).
	LatencyEjection LatencyEjection

	// MaxBodyBytes limits request bodies (413 beyond); 0 means no limit.
	MaxBodyBytes int64
	// H2C speaks HTTP/2 without TLS to instances (gRPC).
	H2C bool

	// Logger receives state changes. Defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the proxy's metrics. Defaults to a private registry.
	Registerer prometheus.Registerer
	// Clock drives passive ejection and the breakers. Defaults to the system clock.
	Clock resilience.Clock
	// Transport reaches the instances. Defaults to a transport sized for a proxy.
	Transport http.RoundTripper
	// WrapTransport, when set, wraps the transport of every attempt: tracing puts a client span
	// around each hop and injects its trace context (telemetry.Tracing.Transport).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Tracing, when set, traces every request and every attempt (see Tracing). Prefer it to
	// WrapTransport and ServerOptions.Middleware for tracing: those turn the raw lane off.
	Tracing *Tracing
}

// HealthCheck configures active health checks.
type HealthCheck struct {
	// Path probed with GET; a 2xx or 3xx answer passes. Empty turns active checks off.
	Path string
	// Interval between probes of one instance. Defaults to 10s.
	Interval time.Duration
	// Timeout of one probe. Defaults to 5s.
	Timeout time.Duration
	// HealthyThreshold consecutive passes bring an instance back. Defaults to 2.
	HealthyThreshold int
	// UnhealthyThreshold consecutive failures take an instance out. Defaults to 3.
	UnhealthyThreshold int
}

// Retry configures retries.
type Retry struct {
	// Attempts in total, the first included. Defaults to 3.
	Attempts int
	// Backoff is the base of exponential backoff with full jitter. Defaults to 25ms.
	Backoff time.Duration
	// MaxBackoff caps one backoff. Defaults to 1s.
	MaxBackoff time.Duration
	// Budget caps retries at this fraction of requests (plus 10 per second). Defaults to 0.2.
	Budget float64
	// NonIdempotent retries POST and PATCH on 502/503/504 and on connection errors too.
	NonIdempotent bool
	// MaxBodyBytes is the largest body kept for replay; larger requests are not retried once
	// their body started to flow. Defaults to 1 MiB; negative keeps no body.
	MaxBodyBytes int64
	// TryTimeout limits one attempt until its response headers. Defaults to three times
	// HealthCheck.Timeout (an instance that long without an answer is failing it), at most
	// Timeout; negative means none.
	TryTimeout time.Duration
	// Timeout limits the request, retries included, until response headers. Defaults to 60s.
	Timeout time.Duration
}

func (o *Options) setDefaults() error {
	d := config.Default()
	if o.Algorithm == "" {
		o.Algorithm = balancer.NameRoundRobin
	}
	if o.AffinityCookie == "" {
		o.AffinityCookie = "shoal_affinity"
	}
	if o.SessionAffinity && o.AffinityKey == nil {
		o.AffinityKey = make([]byte, 32)
		if _, err := rand.Read(o.AffinityKey); err != nil {
			return fmt.Errorf("creating an affinity key: %w", err)
		}
	}
	hc := &o.HealthCheck
	if hc.Interval <= 0 {
		hc.Interval = d.Scaling.LoadBalancer.HealthCheckInterval.D()
	}
	if hc.Timeout <= 0 {
		hc.Timeout = d.Scaling.ServiceDiscovery.HealthCheck.Timeout.D()
	}
	if hc.HealthyThreshold <= 0 {
		hc.HealthyThreshold = d.Scaling.ServiceDiscovery.HealthCheck.HealthyThreshold
	}
	if hc.UnhealthyThreshold <= 0 {
		hc.UnhealthyThreshold = d.Scaling.ServiceDiscovery.HealthCheck.UnhealthyThreshold
	}
	if o.MaxFailures < 0 {
		return errors.New("max failures must be zero (off) or more")
	}
	if o.FailureTimeout <= 0 {
		o.FailureTimeout = d.Scaling.LoadBalancer.FailureTimeout.D()
	}
	r, dr := &o.Retry, d.Scaling.LoadBalancer.Retry
	if r.Attempts <= 0 {
		r.Attempts = dr.Attempts
	}
	if r.Backoff <= 0 {
		r.Backoff = dr.Backoff.D()
	}
	if r.MaxBackoff < r.Backoff {
		r.MaxBackoff = max(dr.MaxBackoff.D(), r.Backoff)
	}
	if r.Budget <= 0 {
		r.Budget = dr.Budget
	}
	switch {
	case r.MaxBodyBytes == 0:
		r.MaxBodyBytes = dr.MaxBodyBytes
	case r.MaxBodyBytes < 0:
		r.MaxBodyBytes = 0 // keep no body for replay
	}
	if r.Timeout <= 0 {
		r.Timeout = dr.Timeout.D()
	}
	switch {
	case r.TryTimeout == 0:
		r.TryTimeout = min(3*hc.Timeout, r.Timeout)
	case r.TryTimeout < 0 || r.TryTimeout >= r.Timeout:
		r.TryTimeout = 0 // none: the overall timeout applies
	}
	le := &o.LatencyEjection
	if le.Factor <= 0 {
		le.Factor = 8
	}
	if le.MinWait <= 0 {
		le.MinWait = time.Second
	}
	if o.Breaker.Enabled {
		if err := o.Breaker.Validate(); err != nil {
			return fmt.Errorf("circuit breaker: %w", err)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Clock == nil {
		o.Clock = resilience.ClockFunc(time.Now)
	}
	if o.Breaker.Clock == nil {
		o.Breaker.Clock = o.Clock
	}
	return nil
}

// FromConfig derives proxy options from a loaded configuration. The proxy checks instances
// at load_balancer.health_check_interval on service_discovery.health_check's endpoint, with
// its timeout and thresholds (service_discovery.health_check.interval is the period of
// registration checks in Consul and Kubernetes).
func FromConfig(c *config.Config) Options {
	lb := c.Scaling.LoadBalancer
	hc := c.Scaling.ServiceDiscovery.HealthCheck
	return Options{
		Algorithm:       lb.Algorithm,
		SessionAffinity: lb.SessionAffinity,
		HealthCheck: HealthCheck{
			Path: hc.Endpoint, Interval: lb.HealthCheckInterval.D(), Timeout: hc.Timeout.D(),
			HealthyThreshold: hc.HealthyThreshold, UnhealthyThreshold: hc.UnhealthyThreshold,
		},
		MaxFailures:    lb.MaxFailures,
		FailureTimeout: lb.FailureTimeout.D(),
		Breaker: resilience.BreakerConfig{
			Enabled: lb.CircuitBreaker.Enabled, FailureThreshold: lb.CircuitBreaker.FailureThreshold,
			RecoveryTimeout: lb.CircuitBreaker.RecoveryTimeout.D(), HalfOpenMaxCalls: lb.CircuitBreaker.HalfOpenMaxCalls,
		},
		Retry: Retry{
			Attempts: lb.Retry.Attempts, Backoff: lb.Retry.Backoff.D(), MaxBackoff: lb.Retry.MaxBackoff.D(),
			Budget: lb.Retry.Budget, NonIdempotent: lb.Retry.NonIdempotent, MaxBodyBytes: replayLimit(lb.Retry.MaxBodyBytes),
			TryTimeout: lb.Retry.TryTimeout.D(), Timeout: lb.Retry.Timeout.D(),
		},
		LatencyEjection: LatencyEjection{
			Disabled: !lb.LatencyEjection.Enabled, Factor: lb.LatencyEjection.Factor,
			MinWait: lb.LatencyEjection.MinWait.D(), NoHedge: !lb.LatencyEjection.Hedge,
		},
		MaxBodyBytes: c.Server.MaxBodyBytes,
		H2C:          lb.UpstreamProtocol == "h2c",
	}
}

// replayLimit maps the configuration's max_body_bytes (0: keep no body) onto Retry.MaxBodyBytes
// (0: the default, negative: keep no body).
func replayLimit(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}
