package deploy

import (
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/deploy/crd"
)

// Istio retry conditions. connect-failure and refused-stream mean the instance never saw the
// request, so any request may be retried; gateway-error (502, 503, 504) and reset may repeat a
// request the instance already processed.
const (
	retrySafe      = "connect-failure,refused-stream"
	retryGateway   = "connect-failure,refused-stream,gateway-error"
	retryIdempoten = "connect-failure,refused-stream,gateway-error,reset"
	// idempotentMethods are the methods shoal's proxy retries after a response (proxy/transport.go).
	idempotentMethods = "GET|HEAD|OPTIONS|TRACE|PUT|DELETE"
	// maglevTableSize is Envoy's default Maglev table, as shoal's ip_hash uses Maglev.
	maglevTableSize = 65537
	// affinityCookie is the cookie Envoy sets and hashes on for session_affinity.
	affinityCookie = "shoal_affinity"
)

// istioFiles is the istio target: a VirtualService and a DestinationRule.
func (s *spec) istioFiles() ([]File, error) {
	var files []File
	for _, o := range []struct {
		path string
		obj  any
	}{{"virtualservice.yaml", s.virtualService()}, {"destinationrule.yaml", s.destinationRule()}} {
		f, err := s.objectFile(o.path, o.obj)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// host is the Service's fully qualified name: a short name in a VirtualService is resolved in
// the VirtualService's own namespace, which is easy to get wrong.
func (s *spec) host() string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", s.service, s.namespace)
}

// virtualService routes every request for the Service, with shoal's retry policy and timeout
// and, when deploy.canary is set, its weights. Envoy cannot filter retries by method, so when
// only idempotent requests may be retried after a response there are two routes: idempotent
// requests (shoal's list, or an Idempotency-Key header) retry on 502/503/504 and resets, every
// other request only when the instance never saw it.
func (s *spec) virtualService() *crd.VirtualService {
	lb := s.c.Scaling.LoadBalancer
	r := lb.Retry
	var dests []crd.HTTPRouteDestination
	if len(s.c.Deploy.Canary) == 0 {
		dests = []crd.HTTPRouteDestination{{Destination: crd.Destination{Host: s.host(), Port: &crd.PortSelector{Number: uint32(s.servicePort)}}}}
	}
	for _, cs := range s.c.Deploy.Canary {
		dests = append(dests, crd.HTTPRouteDestination{
			Destination: crd.Destination{Host: s.host(), Subset: cs.Name, Port: &crd.PortSelector{Number: uint32(s.servicePort)}},
			Weight:      int32(cs.Weight)})
	}
	route := func(name, retryOn string, match []crd.HTTPMatchRequest) crd.HTTPRoute {
		rt := crd.HTTPRoute{Name: name, Match: match, Route: slices.Clone(dests), Timeout: secondsString(r.Timeout),
			Retries: &crd.HTTPRetry{Attempts: int32(r.Attempts - 1), RetryOn: retryOn}}
		if r.TryTimeout > 0 {
			rt.Retries.PerTryTimeout = secondsString(r.TryTimeout)
		}
		if r.Attempts <= 1 {
			rt.Retries = &crd.HTTPRetry{Attempts: 0}
		}
		return rt
	}
	var routes []crd.HTTPRoute
	switch {
	case r.Attempts <= 1:
		routes = []crd.HTTPRoute{route("default", "", nil)}
	case r.NonIdempotent:
		// Retried after 502/503/504 whatever the method, but not after a reset: the body may
		// have reached the instance.
		routes = []crd.HTTPRoute{route("default", retryGateway, nil)}
	default:
		routes = []crd.HTTPRoute{
			route("idempotent", retryIdempoten, []crd.HTTPMatchRequest{
				{Name: "idempotent-method", Method: &crd.StringMatch{Regex: idempotentMethods}},
				{Name: "idempotency-key", Headers: map[string]crd.StringMatch{"idempotency-key": {Regex: ".*"}}},
			}),
			route("default", retrySafe, nil),
		}
	}
	if r.Attempts > 1 {
		s.warn("scaling.load_balancer.retry.budget", "Envoy has no retry budget; retries are bounded only by attempts (%d) and the timeout", r.Attempts)
		if r.Backoff.D() != 25*time.Millisecond {
			s.warn("scaling.load_balancer.retry.backoff", "a VirtualService cannot set the retry backoff; Envoy waits 25ms, doubling up to 250ms, with jitter")
		}
	}
	return &crd.VirtualService{
		TypeMeta:   metav1.TypeMeta{APIVersion: crd.IstioAPIVersion, Kind: "VirtualService"},
		ObjectMeta: s.sharedMeta(s.service),
		Spec:       crd.VirtualServiceSpec{Hosts: []string{s.host()}, HTTP: routes},
	}
}

// destinationRule maps the load-balancing algorithm, passive health and circuit breaker to
// Envoy, and declares the canary subsets.
func (s *spec) destinationRule() *crd.DestinationRule {
	lb := s.c.Scaling.LoadBalancer
	tp := &crd.TrafficPolicy{LoadBalancer: s.istioLoadBalancer()}
	if lb.UpstreamProtocol == "h2c" {
		tp.ConnectionPool = &crd.ConnectionPoolSettings{HTTP: &crd.HTTPSettings{H2UpgradePolicy: "UPGRADE"}}
	}
	tp.OutlierDetection = s.outlierDetection()
	var subsets []crd.Subset
	for _, cs := range s.c.Deploy.Canary {
		subsets = append(subsets, crd.Subset{Name: cs.Name, Labels: map[string]string{"version": cs.Version}})
	}
	return &crd.DestinationRule{
		TypeMeta:   metav1.TypeMeta{APIVersion: crd.IstioAPIVersion, Kind: "DestinationRule"},
		ObjectMeta: s.sharedMeta(s.service),
		Spec:       crd.DestinationRuleSpec{Host: s.host(), TrafficPolicy: tp, Subsets: subsets},
	}
}

// istioLoadBalancer maps scaling.load_balancer.algorithm:
//
//	round_robin           ROUND_ROBIN
//	least_connections     LEAST_REQUEST (fewest requests in flight, between two random picks)
//	p2c_ewma              LEAST_REQUEST (the same two choices, without latency)
//	weighted_round_robin  ROUND_ROBIN (pods are alike; per-instance weights do not apply)
//	ip_hash               consistentHash on the source IP, Maglev table
//	session_affinity      consistentHash on the cookie shoal_affinity, which Envoy sets
func (s *spec) istioLoadBalancer() *crd.LoadBalancerSettings {
	lb := s.c.Scaling.LoadBalancer
	const path = "scaling.load_balancer.algorithm"
	if lb.SessionAffinity {
		s.warn("scaling.load_balancer.session_affinity", "Envoy hashes the cookie %s, which it sets, onto the pods (consistentHash.httpCookie); unlike shoal's signed cookie the affinity moves for some clients when pods come and go", affinityCookie)
		if lb.Algorithm != config.RoundRobin {
			s.warn(path, "with session_affinity the cookie hash decides, so %s is not applied", lb.Algorithm)
		}
		return &crd.LoadBalancerSettings{ConsistentHash: &crd.ConsistentHashLB{
			HTTPCookie: &crd.HTTPCookie{Name: affinityCookie, Path: "/", TTL: "0s"},
			Maglev:     &crd.MagLev{TableSize: maglevTableSize}}}
	}
	switch lb.Algorithm {
	case config.LeastConnections:
		return &crd.LoadBalancerSettings{Simple: crd.LeastRequest}
	case config.P2CEWMA:
		s.warn(path, "p2c_ewma is mapped to LEAST_REQUEST: Envoy picks the less busy of two random pods by requests in flight, without shoal's latency average")
		return &crd.LoadBalancerSettings{Simple: crd.LeastRequest}
	case config.WeightedRoundRobin:
		if weighted(s.c) {
			s.warn(path, "the pods of a Deployment are alike, so the static instances' weights do not apply; ROUND_ROBIN is used")
		}
		return &crd.LoadBalancerSettings{Simple: crd.RoundRobin}
	case config.IPHash:
		s.warn(path, "ip_hash is mapped to consistentHash.useSourceIp with a Maglev table: the hash is of the address the calling Envoy sees — the client for callers in the mesh, the client behind an ingress gateway only when its load balancer keeps client addresses; behind one that does not, use session_affinity: true (a cookie) instead")
		return &crd.LoadBalancerSettings{ConsistentHash: &crd.ConsistentHashLB{UseSourceIP: true, Maglev: &crd.MagLev{TableSize: maglevTableSize}}}
	default:
		return &crd.LoadBalancerSettings{Simple: crd.RoundRobin}
	}
}

// outlierDetection ejects an instance after consecutive gateway errors (502, 503, 504 and
// connection failures — what shoal's passive health and breaker count; a 500 is the
// application's answer and ejects nothing). Of passive health (max_failures, ejected for
// failure_timeout) and the breaker (failure_threshold, open for recovery_timeout), the one
// that trips first decides; any share of the pods may be ejected, as in shoal.
func (s *spec) outlierDetection() *crd.OutlierDetection {
	lb := s.c.Scaling.LoadBalancer
	cb := lb.CircuitBreaker
	var threshold int
	var ejection config.Duration
	if lb.MaxFailures > 0 {
		threshold, ejection = lb.MaxFailures, lb.FailureTimeout
	}
	if cb.Enabled && (threshold == 0 || cb.FailureThreshold < threshold) {
		threshold, ejection = cb.FailureThreshold, cb.RecoveryTimeout
	}
	if threshold == 0 {
		return nil
	}
	if cb.Enabled {
		s.warn("scaling.load_balancer.circuit_breaker", "Envoy has no half-open state: an ejected pod gets full traffic back after baseEjectionTime (longer each time it is ejected again), not %d trial calls", cb.HalfOpenMaxCalls)
	}
	return &crd.OutlierDetection{
		Consecutive5xxErrors:     ptr(uint32(0)),
		ConsecutiveGatewayErrors: ptr(uint32(threshold)),
		Interval:                 secondsString(lb.HealthCheckInterval),
		BaseEjectionTime:         secondsString(ejection),
		MaxEjectionPercent:       100,
	}
}

// weighted reports whether static instances carry different weights.
func weighted(c *config.Config) bool {
	in := c.Scaling.ServiceDiscovery.Static.Instances
	for _, i := range in {
		if i.Weight != in[0].Weight {
			return true
		}
	}
	return false
}
