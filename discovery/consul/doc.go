// Package consul discovers and registers a service's instances through a
// Consul agent: `scaling.service_discovery.method: consul`, with
// hashicorp/consul/api.
//
// # Watching
//
// A [Provider] follows /v1/health/service/<service>?passing with blocking
// queries: each query asks for the X-Consul-Index of the previous answer and
// the agent holds it until something changed or WaitTime passed. As Consul's
// documentation of blocking queries asks, an index that goes backwards resets
// to 0 (the next query answers at once), an index of 0 becomes 1, and failed
// queries back off (100ms doubling to RetryMax). Only passing instances are
// delivered; an instance's URL is its service address (else its node's) and
// port, its Weight the service's Weights.Passing, its Meta the service Meta
// without shoal's own keys. A malformed entry (no port, a weight beyond 1000)
// is skipped with a warning. A failed query is an error event: the consumer
// keeps its last good set — so an agent unreachable at start gives an error
// first, and `shoal proxy` starts with no instances and a warning, then
// catches up once the agent answers.
//
// # Registering
//
// A [Registrar] registers each instance as an agent service with one check:
//
//   - "http": the agent probes scheme://host:port + health_check.endpoint
//     every health_check.interval. SetHealth(false) puts the service in
//     maintenance mode (critical whatever the probe says) until
//     SetHealth(true).
//   - "ttl": the registrar renews a TTL check every third of CheckTTL in the
//     background; SetHealth sets its status. A process that dies stops
//     renewing it and the instance turns critical within CheckTTL.
//
// Either way the check carries DeregisterCriticalServiceAfter
// (service_discovery.consul.deregister_critical_after), so that Consul removes
// an instance that stayed critical, and the registrar registers an instance
// again when the agent has lost it (an agent restarted without its data).
// Drain registers the instance again with Meta shoal_draining=true, which the
// provider turns into Draining: still listed, no new requests. The agent
// registers in its own datacenter; Options.Datacenter selects the datacenter
// that watches query. The ACL token (service_discovery.consul.token, best
// ${CONSUL_TOKEN}) goes with every request and is never printed.
//
// # Shared configuration
//
// [WatchKey] follows one key of the KV store — the seed's key-value
// configuration sharing, service_discovery.consul.config_key — with the same
// blocking queries, and [ReadKey] reads it once.
//
// # Tests
//
// No Consul agent can run where shoal is developed: the tests run against an
// in-process fake agent that implements the documented HTTP API of exactly
// the calls above, index semantics included. docs/architecture.md lists what
// that leaves untested.
package consul
