package config

// Config is one shoal.yml (or rustform.yml): how a service runs, scales, is health-checked and
// observed. Load fills every optional field with its documented default, merges the selected
// environment over the base, and validates the result.
type Config struct {
	// Name of the service. Required; a DNS label (lowercase letters, digits and '-', at most 63
	// characters) because it names Kubernetes objects and instances.
	Name string `yaml:"name" json:"name"`
	// Version of the service, used as the version label of generated manifests. Defaults to "latest".
	Version string `yaml:"version,omitempty" json:"version,omitempty"`

	Server        Server        `yaml:"server" json:"server"`
	App           App           `yaml:"app" json:"app"`
	Admin         Admin         `yaml:"admin" json:"admin"`
	Scaling       Scaling       `yaml:"scaling" json:"scaling"`
	Health        Health        `yaml:"health" json:"health"`
	Observability Observability `yaml:"observability" json:"observability"`
	Database      Database      `yaml:"database" json:"database"`
	Messaging     Messaging     `yaml:"messaging" json:"messaging"`
	Jobs          Jobs          `yaml:"jobs" json:"jobs"`
	Deploy        Deploy        `yaml:"deploy" json:"deploy"`

	// Environments are overlays deep-merged over the base configuration when selected with
	// --env NAME or SHOAL_ENV: mappings merge key by key, lists and scalars replace.
	Environments map[string]*Config `yaml:"environments,omitempty" json:"environments,omitempty"`

	// Meta says where this configuration came from. It is not part of the file.
	Meta Meta `yaml:"-" json:"-"`
}

// Server is where the service (or, under `shoal up`, shoal's proxy in front of it) listens.
type Server struct {
	// Host to bind. Defaults to "0.0.0.0".
	Host string `yaml:"host" json:"host"`
	// Port to listen on, 1-65535. Defaults to scaling.service_discovery.port when that is set,
	// else 3000.
	Port int `yaml:"port" json:"port"`
	// MaxHeaderBytes is the largest request header block accepted; larger ones get 431.
	// Defaults to 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes" json:"max_header_bytes"`
	// MaxBodyBytes is the largest request body accepted; larger ones get 413. 0 means no limit.
	// Defaults to 10485760 (10 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes" json:"max_body_bytes"`
	// ReadHeaderTimeout is how long a client may take to send a request's headers, from its
	// first byte; slower clients are disconnected. Defaults to 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout" json:"read_header_timeout"`
	// ReadBodyTimeout and MinBodyRate bound how slowly a client may send a request body: after
	// n bytes it may have kept shoal waiting read_body_timeout + n/min_body_rate in all, else it
	// gets 408. ReadBodyTimeout defaults to 10s.
	ReadBodyTimeout Duration `yaml:"read_body_timeout" json:"read_body_timeout"`
	// MinBodyRate in bytes per second, see read_body_timeout; 0 turns the rate off. Defaults to 1024.
	MinBodyRate int64 `yaml:"min_body_rate" json:"min_body_rate"`
	// IdleTimeout closes a keep-alive connection that carries no request for this long.
	// Defaults to 120s.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout"`
}

// App is how shoal starts one instance of the service on this machine.
type App struct {
	// Command that runs one instance: a string split like a shell would (quotes group words,
	// no expansion) or a list of arguments. A Go package path such as ./cmd/api is built first.
	// Each instance gets PORT and SHOAL_INSTANCE_ID in its environment.
	Command Command `yaml:"command,omitempty" json:"command,omitempty"`
	// WorkingDir for the command, relative to the config file. Defaults to the config file's directory.
	WorkingDir string `yaml:"working_dir,omitempty" json:"working_dir,omitempty"`
	// Env is extra environment for every instance. Values of keys that look like secrets
	// (TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL) are redacted by `shoal config print`.
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
}

// Admin is shoal's own admin API (status, scaling, health-check toggles, metrics, dashboard).
type Admin struct {
	// Listen address of the admin API. Defaults to "127.0.0.1:9900".
	Listen string `yaml:"listen" json:"listen"`
	// StateDir keeps instance logs, the token signing key and metric history, relative to the
	// config file. Defaults to ".shoal".
	StateDir string `yaml:"state_dir" json:"state_dir"`
}

// Scaling is the seed's `scaling:` block.
type Scaling struct {
	// Enabled turns horizontal scaling on. Defaults to true.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Strategy of scaling; only "horizontal" is supported. Defaults to "horizontal".
	Strategy         string           `yaml:"strategy" json:"strategy" jsonschema:"enum=horizontal"`
	ServiceDiscovery ServiceDiscovery `yaml:"service_discovery" json:"service_discovery"`
	LoadBalancer     LoadBalancer     `yaml:"load_balancer" json:"load_balancer"`
	Instances        Instances        `yaml:"instances" json:"instances"`
}

// Discovery methods.
const (
	DiscoveryStatic     = "static"
	DiscoveryDNS        = "dns"
	DiscoveryConsul     = "consul"
	DiscoveryKubernetes = "kubernetes"
	DiscoveryEtcd       = "etcd"
)

// DiscoveryMethods lists the valid scaling.service_discovery.method values.
var DiscoveryMethods = []string{DiscoveryStatic, DiscoveryDNS, DiscoveryConsul, DiscoveryKubernetes, DiscoveryEtcd}

// ServiceDiscovery says how instances of the service find each other.
type ServiceDiscovery struct {
	// Method of discovery: static, dns, consul, kubernetes or etcd. Defaults to "static".
	Method string `yaml:"method" json:"method" jsonschema:"enum=static,enum=dns,enum=consul,enum=kubernetes,enum=etcd"`
	// ServiceName registered and looked up. Defaults to name.
	ServiceName string `yaml:"service_name" json:"service_name"`
	// Namespace (Kubernetes namespace, Consul namespace). Defaults to "default".
	Namespace string `yaml:"namespace" json:"namespace"`
	// Port each instance serves on. Defaults to server.port.
	Port int `yaml:"port" json:"port"`
	// AdvertiseAddress is the host (IP address or name) an instance registers itself under with
	// consul, etcd or dns. Defaults to $POD_IP when set, else the address of the interface that
	// routes outwards (the seed's get_local_ip).
	AdvertiseAddress string            `yaml:"advertise_address,omitempty" json:"advertise_address,omitempty"`
	HealthCheck      HealthCheck       `yaml:"health_check" json:"health_check"`
	Static           StaticDiscovery   `yaml:"static" json:"static"`
	DNS              DNSDiscovery      `yaml:"dns" json:"dns"`
	Kubernetes       KubernetesOptions `yaml:"kubernetes" json:"kubernetes"`
	Consul           ConsulOptions     `yaml:"consul" json:"consul"`
	Etcd             EtcdOptions       `yaml:"etcd" json:"etcd"`
}

// HealthCheck is the active health check every instance gets.
type HealthCheck struct {
	// Endpoint path probed on each instance. Defaults to "/health".
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	// Interval between probes. Defaults to 30s.
	Interval Duration `yaml:"interval" json:"interval"`
	// Timeout of one probe; must not exceed interval. Defaults to 5s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// HealthyThreshold is how many consecutive passes bring an instance (back) into rotation.
	// Defaults to 2.
	HealthyThreshold int `yaml:"healthy_threshold" json:"healthy_threshold"`
	// UnhealthyThreshold is how many consecutive failures take an instance out of rotation.
	// Defaults to 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold" json:"unhealthy_threshold"`
}

// StaticDiscovery is a fixed list of instances.
type StaticDiscovery struct {
	// Instances to balance over. Under `shoal up` the fleet adds its own instances to these.
	Instances []StaticInstance `yaml:"instances,omitempty" json:"instances,omitempty"`
}

// StaticInstance is one fixed upstream.
type StaticInstance struct {
	// URL of the instance, http:// or https://, e.g. http://127.0.0.1:9001. Required.
	URL string `yaml:"url" json:"url"`
	// Weight for weighted_round_robin, 1-1000. Defaults to 1.
	Weight int `yaml:"weight" json:"weight"`
}

// DNSDiscovery resolves instances from DNS.
type DNSDiscovery struct {
	// Name to resolve. Defaults to service_name.
	Name string `yaml:"name" json:"name"`
	// RecordType: "A" (A and AAAA, with service_discovery.port) or "SRV" (ports from the records).
	// Defaults to "A".
	RecordType string `yaml:"record_type" json:"record_type" jsonschema:"enum=A,enum=SRV"`
	// RefreshInterval between resolutions. Defaults to 30s.
	RefreshInterval Duration `yaml:"refresh_interval" json:"refresh_interval"`
	// Resolver address (host:port) to query instead of the system resolver. Defaults to the system's.
	Resolver string `yaml:"resolver,omitempty" json:"resolver,omitempty"`
	// Update registers instances by RFC 2136 dynamic updates; without update.server instances
	// are not registered in DNS.
	Update DNSUpdate `yaml:"update" json:"update"`
}

// DNSUpdate is how instances register themselves in DNS: RFC 2136 dynamic updates signed with
// TSIG, sent to the zone's primary server.
type DNSUpdate struct {
	// Server (host:port) that accepts dynamic updates for the zone, e.g. "10.0.0.2:53". Defaults
	// to "": no registration.
	Server string `yaml:"server,omitempty" json:"server,omitempty"`
	// Zone updated, e.g. "example.com". Defaults to the parent domain of dns.name.
	Zone string `yaml:"zone,omitempty" json:"zone,omitempty"`
	// TTL of the records added. Defaults to 30s.
	TTL Duration `yaml:"ttl" json:"ttl"`
	// TSIGKey is the name of the TSIG key updates are signed with, e.g. "shoal-key.". Defaults
	// to "": updates are not signed (most servers refuse them).
	TSIGKey string `yaml:"tsig_key,omitempty" json:"tsig_key,omitempty"`
	// TSIGSecret is the key's base64 secret, best given as ${DNS_TSIG_SECRET}. Redacted when
	// printed.
	TSIGSecret string `yaml:"tsig_secret,omitempty" json:"tsig_secret,omitempty" secret:"true"`
	// TSIGAlgorithm: hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1. Defaults to
	// "hmac-sha256".
	TSIGAlgorithm string `yaml:"tsig_algorithm" json:"tsig_algorithm" jsonschema:"enum=hmac-sha256,enum=hmac-sha512,enum=hmac-sha384,enum=hmac-sha224,enum=hmac-sha1"`
}

// KubernetesOptions are used by Kubernetes discovery and by `shoal generate kubernetes`.
type KubernetesOptions struct {
	// ServiceType of the generated Service: ClusterIP, NodePort, LoadBalancer or Headless.
	// Defaults to "ClusterIP".
	ServiceType string `yaml:"service_type" json:"service_type" jsonschema:"enum=ClusterIP,enum=NodePort,enum=LoadBalancer,enum=Headless"`
	// Annotations put on generated pods and Services.
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
	// PortName is the EndpointSlice port that instances serve on (the name of the Service's
	// port, "http" in `shoal generate kubernetes`). Defaults to "http"; when no port has that
	// name, the port numbered service_discovery.port is used.
	PortName string `yaml:"port_name" json:"port_name"`
	// Kubeconfig file to reach the API server from outside a cluster. Defaults to the in-cluster
	// configuration, then $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string `yaml:"kubeconfig,omitempty" json:"kubeconfig,omitempty"`
}

// ConsulOptions are used by Consul discovery.
type ConsulOptions struct {
	// Address of the Consul agent, host:port. Defaults to "127.0.0.1:8500".
	Address string `yaml:"address" json:"address"`
	// Datacenter to register in and query. Defaults to the agent's own.
	Datacenter string `yaml:"datacenter,omitempty" json:"datacenter,omitempty"`
	// Token (ACL) for Consul; a secret, best given as ${CONSUL_TOKEN}. Redacted when printed.
	Token string `yaml:"token,omitempty" json:"token,omitempty" secret:"true"`
	// Check registered with each instance: "http" (the agent probes
	// service_discovery.health_check.endpoint every health_check.interval) or "ttl" (the
	// instance reports its health itself). Defaults to "http".
	Check string `yaml:"check" json:"check" jsonschema:"enum=http,enum=ttl"`
	// DeregisterCriticalAfter removes an instance whose check has been critical this long (Consul
	// raises values below 1m to 1m). Defaults to 1m.
	DeregisterCriticalAfter Duration `yaml:"deregister_critical_after" json:"deregister_critical_after"`
	// ConfigKey is a key of Consul's KV store holding shared configuration, read and watched
	// by discovery/consul's WatchKey. Defaults to "": none.
	ConfigKey string `yaml:"config_key,omitempty" json:"config_key,omitempty"`
}

// EtcdOptions are used by etcd discovery: instances are keys
// prefix/service_name/instance-id on a lease that the instance keeps alive.
type EtcdOptions struct {
	// Endpoints of the etcd cluster, host:port or http(s)://host:port. Defaults to
	// ["127.0.0.1:2379"].
	Endpoints []string `yaml:"endpoints" json:"endpoints"`
	// Prefix of the keys, starting with "/". Defaults to "/shoal/services".
	Prefix string `yaml:"prefix" json:"prefix"`
	// LeaseTTL is how long an instance stays registered after its process stopped renewing the
	// lease (crashed); at least 2s. Defaults to 10s.
	LeaseTTL Duration `yaml:"lease_ttl" json:"lease_ttl"`
	// DialTimeout bounds connecting to etcd. Defaults to 5s.
	DialTimeout Duration `yaml:"dial_timeout" json:"dial_timeout"`
	// Username for etcd authentication. Defaults to "": none.
	Username string `yaml:"username,omitempty" json:"username,omitempty"`
	// Password for etcd authentication, best given as ${ETCD_PASSWORD}. Redacted when printed.
	Password string `yaml:"password,omitempty" json:"password,omitempty" secret:"true"`
}

// Load-balancing algorithms.
const (
	RoundRobin         = "round_robin"
	LeastConnections   = "least_connections"
	IPHash             = "ip_hash"
	WeightedRoundRobin = "weighted_round_robin"
	P2CEWMA            = "p2c_ewma"
)

// Algorithms lists the valid load_balancer.algorithm values.
var Algorithms = []string{RoundRobin, LeastConnections, IPHash, WeightedRoundRobin, P2CEWMA}

// LoadBalancer configures shoal's proxy.
type LoadBalancer struct {
	// Algorithm: round_robin, least_connections, ip_hash, weighted_round_robin or p2c_ewma.
	// Defaults to "round_robin".
	Algorithm string `yaml:"algorithm" json:"algorithm" jsonschema:"enum=round_robin,enum=least_connections,enum=ip_hash,enum=weighted_round_robin,enum=p2c_ewma"`
	// SessionAffinity pins a client to one instance with a signed cookie. Defaults to false.
	SessionAffinity bool `yaml:"session_affinity" json:"session_affinity"`
	// HealthCheckInterval of the proxy's own active checks. Defaults to 10s.
	HealthCheckInterval Duration `yaml:"health_check_interval" json:"health_check_interval"`
	// MaxFailures of proxied requests within failure_timeout that eject an instance (passive
	// health). 0 turns passive ejection off. Defaults to 3.
	MaxFailures int `yaml:"max_failures" json:"max_failures"`
	// FailureTimeout is the window for max_failures and how long an ejection lasts. Defaults to 60s.
	FailureTimeout Duration `yaml:"failure_timeout" json:"failure_timeout"`
	// UpstreamProtocol spoken to instances: "http1", or "h2c" (HTTP/2 without TLS, needed for
	// gRPC to plain-text instances). Defaults to "http1".
	UpstreamProtocol string         `yaml:"upstream_protocol" json:"upstream_protocol" jsonschema:"enum=http1,enum=h2c"`
	CircuitBreaker   CircuitBreaker `yaml:"circuit_breaker" json:"circuit_breaker"`
	Retry            Retry          `yaml:"retry" json:"retry"`
	// LatencyEjection takes an instance that stops answering out of rotation within about a
	// second, long before its health checks fail, and hedges the requests waiting on it.
	LatencyEjection LatencyEjection `yaml:"latency_ejection" json:"latency_ejection"`
}

// LatencyEjection is shoal's proxy's defence against an instance that hangs without failing (a
// stopped or deadlocked process still accepts connections): requests waiting on one instance,
// none answered, for factor × the fleet's p99 time to an answer's headers (at least min_wait)
// mean the instance gets no new requests until it answers again, and an idempotent request
// that waited that long is also sent to another instance; the first answer wins. At most half
// of the instances are taken out this way.
type LatencyEjection struct {
	// Enabled turns latency-aware ejection and hedging on. Defaults to true.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Factor times the fleet's p99 wait for an answer's headers is how long requests may wait
	// on one instance with none answered. At least 1. Defaults to 8.
	Factor float64 `yaml:"factor" json:"factor"`
	// MinWait is the least that wait may be; raise it above the longest an endpoint may take
	// to send its headers (long polls). Defaults to 1s.
	MinWait Duration `yaml:"min_wait" json:"min_wait"`
	// Hedge sends an idempotent request that waited that long to a second instance too (paid
	// from the retry budget, counted as an attempt). Defaults to true.
	Hedge bool `yaml:"hedge" json:"hedge"`
}

// CircuitBreaker is kept per instance by the proxy.
type CircuitBreaker struct {
	// Enabled turns the breaker on. Defaults to true.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// FailureThreshold is how many consecutive failures open the breaker. Defaults to 5.
	FailureThreshold int `yaml:"failure_threshold" json:"failure_threshold"`
	// RecoveryTimeout is how long the breaker stays open before trying again (half-open). Defaults to 30s.
	RecoveryTimeout Duration `yaml:"recovery_timeout" json:"recovery_timeout"`
	// HalfOpenMaxCalls is how many trial calls a half-open breaker lets through. Defaults to 3.
	HalfOpenMaxCalls int `yaml:"half_open_max_calls" json:"half_open_max_calls"`
}

// Retry configures how the proxy retries a failed request on another instance.
type Retry struct {
	// Attempts in total, the first try included; 1 turns retries off. Defaults to 3.
	Attempts int `yaml:"attempts" json:"attempts"`
	// Backoff is the base of the exponential backoff with full jitter. Defaults to 25ms.
	Backoff Duration `yaml:"backoff" json:"backoff"`
	// MaxBackoff caps one backoff. Defaults to 1s.
	MaxBackoff Duration `yaml:"max_backoff" json:"max_backoff"`
	// Budget is the most retries may add to the load, as a fraction of requests. Defaults to 0.2.
	Budget float64 `yaml:"budget" json:"budget"`
	// NonIdempotent retries POST and PATCH too on 502/503/504 (never after a body was sent on a
	// dead connection). Defaults to false.
	NonIdempotent bool `yaml:"non_idempotent" json:"non_idempotent"`
	// MaxBodyBytes is the largest request body kept for replay; larger requests are not retried
	// once their body started to flow. 0 keeps no body (only requests without one are replayed).
	// Defaults to 1048576 (1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes" json:"max_body_bytes"`
	// TryTimeout limits one attempt until its answer's headers. 0 (the default) means three times
	// service_discovery.health_check.timeout in shoal's proxy (an instance silent that long is
	// failing the request), and none in generated nginx and Istio configurations; at or above
	// timeout, only the overall timeout applies. Defaults to 0.
	TryTimeout Duration `yaml:"try_timeout" json:"try_timeout"`
	// Timeout limits a request with all its retries. Defaults to 60s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// Instances bounds and shapes the fleet.
type Instances struct {
	// MinInstances is the fewest instances to run, at least 1. Defaults to 1.
	MinInstances int `yaml:"min_instances" json:"min_instances"`
	// MaxInstances is the most instances to run, at least min_instances. Defaults to 10.
	MaxInstances int `yaml:"max_instances" json:"max_instances"`
	// TargetCPUUtilization (percent, 1-100) the autoscaler steers towards. Defaults to 70.
	TargetCPUUtilization int `yaml:"target_cpu_utilization" json:"target_cpu_utilization"`
	// TargetMemoryUtilization (percent, 1-100) the autoscaler steers towards. Defaults to 80.
	TargetMemoryUtilization int `yaml:"target_memory_utilization" json:"target_memory_utilization"`
	// ScaleUpCooldown is the scale-up stabilisation window (the HPA's
	// behavior.scaleUp.stabilizationWindowSeconds): the fleet grows only to the lowest count
	// recommended over it, and not within it after a scale-down. Defaults to 300s.
	ScaleUpCooldown Duration `yaml:"scale_up_cooldown" json:"scale_up_cooldown"`
	// ScaleDownCooldown is the scale-down stabilisation window: the fleet shrinks only to the
	// highest count recommended over it, and not within it after a scale-up or a manual scale.
	// Defaults to 300s.
	ScaleDownCooldown Duration `yaml:"scale_down_cooldown" json:"scale_down_cooldown"`
	Startup           Startup  `yaml:"startup" json:"startup"`
	Shutdown          Shutdown `yaml:"shutdown" json:"shutdown"`
}

// Startup is how a new instance becomes ready.
type Startup struct {
	// InitialDelay is the longest an instance may take to become ready. Defaults to 30s.
	InitialDelay Duration `yaml:"initial_delay" json:"initial_delay"`
	// ReadinessProbe path; an instance gets traffic only once it answers 2xx. Defaults to "/ready".
	ReadinessProbe string `yaml:"readiness_probe" json:"readiness_probe"`
	// LivenessProbe path; failing it unhealthy_threshold times restarts the instance. Point it at
	// a check of the process itself (/live), not at one that aggregates dependencies (/health):
	// a database outage would restart every instance. Defaults to "/live".
	LivenessProbe string `yaml:"liveness_probe" json:"liveness_probe"`
}

// Shutdown is how an instance leaves.
type Shutdown struct {
	// GracefulTimeout is how long an instance has to exit after SIGTERM. Defaults to 30s.
	GracefulTimeout Duration `yaml:"graceful_timeout" json:"graceful_timeout"`
	// DrainTimeout is how long in-flight requests may finish after the instance stops getting
	// new ones. Defaults to 15s.
	DrainTimeout Duration `yaml:"drain_timeout" json:"drain_timeout"`
	// ForceTimeout is when the instance is killed (SIGKILL), counted from the start of shutdown;
	// at least graceful_timeout. Defaults to 60s.
	ForceTimeout Duration `yaml:"force_timeout" json:"force_timeout"`
}

// Health is the service's own health endpoint and the checks behind it.
type Health struct {
	// Enabled serves the health endpoints. Defaults to true.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Endpoint of the aggregate health report. Defaults to "/health".
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	// Checks behind the endpoint.
	Checks []Check `yaml:"checks,omitempty" json:"checks,omitempty"`
}

// Health check types.
const (
	CheckDatabase        = "database"
	CheckExternalService = "external_service"
	CheckHTTP            = "http"
	CheckTCP             = "tcp"
	CheckCustom          = "custom"
)

// CheckTypes lists the valid health.checks[].type values.
var CheckTypes = []string{CheckDatabase, CheckExternalService, CheckHTTP, CheckTCP, CheckCustom}

// Check is one health check.
type Check struct {
	// Name of the check, unique; the admin API enables and disables checks by it. Required.
	Name string `yaml:"name" json:"name"`
	// Type: database, external_service, http, tcp or custom. Required.
	Type string `yaml:"type" json:"type" jsonschema:"enum=database,enum=external_service,enum=http,enum=tcp,enum=custom"`
	// URL checked: the DSN for database (defaults to database.url), redis://, tcp://, nats://,
	// amqp:// for external_service, http(s):// for http, host:port or tcp:// for tcp.
	URL string `yaml:"url,omitempty" json:"url,omitempty" secret:"url"`
	// Handler names the Go function registered for a custom check. Required for custom.
	Handler string `yaml:"handler,omitempty" json:"handler,omitempty"`
	// Timeout of one run of the check. Defaults to 5s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// Interval between background runs of the check. Defaults to 10s.
	Interval Duration `yaml:"interval" json:"interval"`
	// Critical failures make the service unhealthy; non-critical ones only degrade it. Defaults to true.
	Critical bool `yaml:"critical" json:"critical"`
}

// Observability is the seed's `observability:` block.
type Observability struct {
	ScalingMetrics ScalingMetrics `yaml:"scaling_metrics" json:"scaling_metrics"`
	AutoScaling    AutoScaling    `yaml:"auto_scaling" json:"auto_scaling"`
}

// Scaling metric names, as the seed spells them.
const (
	MetricInstanceCount     = "instance_count"
	MetricCPUUtilization    = "cpu_utilization_percentage"
	MetricMemoryUtilization = "memory_utilization_percentage"
	MetricActiveConnections = "active_connections"
	MetricRequestQueueDepth = "request_queue_depth"
	MetricResponseTimeP95   = "response_time_p95"
	// MetricJobQueueDepth is the backlog of package jobs: jobs available to run now, over all
	// queues. Jobs export it themselves (job_queue_depth), so it is not one of Metrics; the
	// autoscaler scales on it when a rule names it, from the source the fleet is given.
	MetricJobQueueDepth = "job_queue_depth"
)

// Metrics lists the scaling metrics shoal knows.
var Metrics = []string{MetricInstanceCount, MetricCPUUtilization, MetricMemoryUtilization,
	MetricActiveConnections, MetricRequestQueueDepth, MetricResponseTimeP95}

// AutoscalingMetrics lists the metrics observability.auto_scaling.metrics may name: Metrics
// and job_queue_depth.
var AutoscalingMetrics = append(Metrics[:len(Metrics):len(Metrics)], MetricJobQueueDepth)

// ScalingMetrics selects the scaling metrics shoal exports.
type ScalingMetrics struct {
	// Enabled exports scaling metrics. Defaults to true.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Metrics to export. Defaults to all of instance_count, cpu_utilization_percentage,
	// memory_utilization_percentage, active_connections, request_queue_depth, response_time_p95.
	Metrics []string `yaml:"metrics" json:"metrics"`
}

// Autoscaling targets.
const (
	AutoscaleTargetFleet      = "fleet"
	AutoscaleTargetKubernetes = "kubernetes"
)

// AutoScaling is how shoal scales the service by itself: the seed's threshold rules plus
// proportional control to scaling.instances' utilisation targets (the Kubernetes HPA's
// algorithm), combined by taking the largest recommendation.
type AutoScaling struct {
	// Enabled lets shoal scale on its own (scaling.enabled must be true too). Defaults to false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Interval between evaluations; the metrics are averaged over it. Defaults to 30s.
	Interval Duration `yaml:"interval" json:"interval"`
	// Target is what the autoscaler scales: "fleet" (the local fleet of `shoal up`) or
	// "kubernetes" (a Deployment's scale subresource, driven by `shoal autoscale`; `shoal up`
	// then leaves its fleet alone). Defaults to "fleet".
	Target string `yaml:"target" json:"target" jsonschema:"enum=fleet,enum=kubernetes"`
	// Tolerance is how far a metric may stray from its target, as a share of it, before
	// proportional control changes the instance count (the HPA's tolerance). 0 to 0.99. Defaults
	// to 0.1.
	Tolerance float64 `yaml:"tolerance" json:"tolerance"`
	// CPUInitializationPeriod is how long after an instance starts its CPU counts only once it
	// is ready and has been for a whole interval (the HPA's cpu-initialization-period): start-up
	// work does not trigger a scale-up. Defaults to 5m.
	CPUInitializationPeriod Duration `yaml:"cpu_initialization_period" json:"cpu_initialization_period"`
	// ScaleUp limits how fast the fleet grows. Defaults to the HPA's: 4 instances or 100% per
	// 15s, whichever is more.
	ScaleUp ScalingBehavior `yaml:"scale_up" json:"scale_up"`
	// ScaleDown limits how fast the fleet shrinks. Defaults to the HPA's: 100% per 15s.
	ScaleDown ScalingBehavior `yaml:"scale_down" json:"scale_down"`
	// Metrics are the rules, evaluated in order.
	Metrics []ScalingRule `yaml:"metrics,omitempty" json:"metrics,omitempty"`
}

// Rate policy select modes and types.
const (
	SelectMax      = "max"
	SelectMin      = "min"
	SelectDisabled = "disabled"
	PolicyPods     = "pods"
	PolicyPercent  = "percent"
)

// ScalingBehavior limits the rate of change in one direction (the HPA's scaleUp/scaleDown
// behavior; the stabilisation windows are scaling.instances.scale_up_cooldown and
// scale_down_cooldown).
type ScalingBehavior struct {
	// SelectPolicy picks among the policies: "max" allows the largest change, "min" the
	// smallest, "disabled" forbids changes in this direction. Defaults to "max".
	SelectPolicy string `yaml:"select_policy" json:"select_policy" jsonschema:"enum=max,enum=min,enum=disabled"`
	// Policies each allow a change per period. Defaults to the HPA's (see scale_up and scale_down).
	Policies []RatePolicy `yaml:"policies" json:"policies"`
}

// RatePolicy allows a change of at most value instances ("pods") or value percent of the
// instances at the start of the period ("percent") within any period.
type RatePolicy struct {
	// Type: "pods" or "percent". Required.
	Type string `yaml:"type" json:"type" jsonschema:"enum=pods,enum=percent"`
	// Value is the instances or percent allowed per period, at least 1. Required.
	Value int `yaml:"value" json:"value"`
	// Period the change is counted over, 1s to 30m. Defaults to 15s.
	Period Duration `yaml:"period" json:"period"`
}

// Scaling actions.
const (
	ScaleUp   = "scale_up"
	ScaleDown = "scale_down"
)

// ScalingRule scales when a metric crosses a threshold: above it for scale_up, below it for scale_down.
type ScalingRule struct {
	// Metric watched, one of the scaling metrics. Required.
	Metric string `yaml:"metric" json:"metric" jsonschema:"enum=instance_count,enum=cpu_utilization_percentage,enum=memory_utilization_percentage,enum=active_connections,enum=request_queue_depth,enum=response_time_p95,enum=job_queue_depth"`
	// Threshold in the metric's unit: percent for *_percentage (0-100), milliseconds for
	// response_time_p95, a count per instance for active_connections, request_queue_depth and
	// job_queue_depth.
	// Required unless the rule has a target.
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// Action: scale_up or scale_down. Required unless the rule has a target.
	Action string `yaml:"action" json:"action" jsonschema:"enum=scale_up,enum=scale_down"`
	// Cooldown after this rule fired before it may fire again. Defaults to the instances'
	// scale_up_cooldown or scale_down_cooldown.
	Cooldown Duration `yaml:"cooldown" json:"cooldown"`
	// Step is how many instances one firing adds or removes. Defaults to 1.
	Step int `yaml:"step" json:"step"`
	// Target, when set, also steers the metric proportionally to this value per instance (the
	// HPA's formula, as for target_cpu_utilization): percent for *_percentage (1-100), milliseconds
	// for response_time_p95, a count per instance for active_connections, request_queue_depth and
	// job_queue_depth. With a target, threshold and action may be left out. Defaults to 0: no proportional control.
	Target float64 `yaml:"target,omitempty" json:"target,omitempty"`
}

// Database types.
const (
	DatabasePostgres = "postgres"
	DatabaseMySQL    = "mysql"
	DatabaseSQLite   = "sqlite"
	DatabaseMongoDB  = "mongodb"
)

// Database is the service's database connection pool. DATABASE_URL overrides url.
type Database struct {
	// Type: postgres, mysql, sqlite or mongodb. Defaults to the scheme of url.
	Type string `yaml:"type,omitempty" json:"type,omitempty" jsonschema:"enum=postgres,enum=mysql,enum=sqlite,enum=mongodb"`
	// URL of the database, e.g. postgres://user:pass@host/db, mysql://user:pass@host/db,
	// sqlite:///path/app.db, mongodb://host/db. Its password is redacted when printed.
	URL string `yaml:"url,omitempty" json:"url,omitempty" secret:"url"`
	// Name of the database (generated compose files). Defaults to the path of url.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// User of the database (generated compose files).
	User string `yaml:"user,omitempty" json:"user,omitempty"`
	// Password of the database; a secret, best given as ${DB_PASSWORD}. Redacted when printed.
	Password string `yaml:"password,omitempty" json:"password,omitempty" secret:"true"`
	// MaxConnections in the pool. Defaults to 10.
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
	// MinConnections kept open. Defaults to 0.
	MinConnections int `yaml:"min_connections" json:"min_connections"`
	// ConnectTimeout of one connection attempt. Defaults to 5s.
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// IdleTimeout after which an idle connection is closed. Defaults to 5m.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// MaxLifetime of a connection. Defaults to 30m.
	MaxLifetime Duration `yaml:"max_lifetime" json:"max_lifetime"`
	// AcquireTimeout is how long a caller waits for a free connection of a full pool before it
	// fails with an error naming the pool. Defaults to 10s.
	AcquireTimeout Duration `yaml:"acquire_timeout" json:"acquire_timeout"`
	// ReadReplicas are URLs of read-only replicas; reads are spread round robin over those
	// that pass their health check and, on PostgreSQL, lag less than replica_max_lag. With no
	// healthy replica, reads go to the primary.
	ReadReplicas []string `yaml:"read_replicas,omitempty" json:"read_replicas,omitempty" secret:"url"`
	// ReplicaMaxLag is the replication lag, measured on each PostgreSQL replica, above which it
	// gets no reads; 0 routes by health alone. Defaults to 1s.
	ReplicaMaxLag Duration `yaml:"replica_max_lag" json:"replica_max_lag"`
	// ReplicaCheckInterval is how often each replica's health and lag are checked; a failed
	// replica is tried again at the next check. Defaults to 1s.
	ReplicaCheckInterval Duration `yaml:"replica_check_interval" json:"replica_check_interval"`
	// Migrations is the directory of the service's goose SQL migrations, for shoal db migrate;
	// relative to this file. Defaults to "migrations".
	Migrations string `yaml:"migrations" json:"migrations"`
	// ReadYourWrites is how long, after a write, reads of the same session (an HTTP request
	// through database.Middleware, or a context from database.NewSession) go to the primary;
	// 0 turns it off. Defaults to 3s.
	ReadYourWrites Duration `yaml:"read_your_writes" json:"read_your_writes"`
}

// Messaging types.
const (
	MessagingMemory   = "memory"
	MessagingKafka    = "kafka"
	MessagingRabbitMQ = "rabbitmq"
	MessagingNATS     = "nats"
)

// Messaging is the message broker. MESSAGE_QUEUE_TYPE, KAFKA_BROKERS, RABBITMQ_URL and
// NATS_URL override it.
type Messaging struct {
	// Type of broker: memory, kafka, rabbitmq or nats. Defaults to "memory".
	Type string `yaml:"type" json:"type" jsonschema:"enum=memory,enum=kafka,enum=rabbitmq,enum=nats"`
	// Topic (Kafka topic, RabbitMQ exchange, NATS subject prefix) events go to. Defaults to "events".
	Topic string `yaml:"topic" json:"topic"`
	// MaxAttempts is how many times a handler is called for one message before it goes to
	// the dead-letter topic <topic>.dlq. Defaults to 5.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// RetryBackoff is the ceiling of the first wait before a failed message is handled again;
	// it doubles per attempt up to MaxRetryBackoff (full jitter). Defaults to 100ms.
	RetryBackoff Duration `yaml:"retry_backoff" json:"retry_backoff"`
	// MaxRetryBackoff caps the wait between attempts. Defaults to 30s.
	MaxRetryBackoff Duration `yaml:"max_retry_backoff" json:"max_retry_backoff"`
	// Prefetch is how many unacknowledged messages one subscription may hold. Defaults to 256.
	Prefetch int `yaml:"prefetch" json:"prefetch"`
	// Concurrency is how many handler calls one subscription runs at once; messages with the
	// same key still run one at a time, in order. Defaults to 1.
	Concurrency int `yaml:"concurrency" json:"concurrency"`
	// DrainTimeout bounds how long closing a subscription waits for running handlers.
	// Defaults to 30s.
	DrainTimeout Duration `yaml:"drain_timeout" json:"drain_timeout"`
	// MaxPayload is the largest payload accepted, in bytes. Defaults to 0: the broker's limit
	// (NATS: the server's max_payload; RabbitMQ: 134217728, its default max_message_size;
	// Kafka: 1000000, the default message.max.bytes less room for headers).
	MaxPayload int             `yaml:"max_payload,omitempty" json:"max_payload,omitempty"`
	Kafka      KafkaOptions    `yaml:"kafka" json:"kafka"`
	RabbitMQ   RabbitMQOptions `yaml:"rabbitmq" json:"rabbitmq"`
	NATS       NATSOptions     `yaml:"nats" json:"nats"`
}

// KafkaOptions connect to Kafka.
type KafkaOptions struct {
	// Brokers, host:port each. Defaults to ["localhost:9092"]. KAFKA_BROKERS (comma-separated) overrides.
	Brokers []string `yaml:"brokers" json:"brokers"`
	// ConsumerGroup of subscribers. Defaults to name.
	ConsumerGroup string `yaml:"consumer_group,omitempty" json:"consumer_group,omitempty"`
	// Partitions of a topic shoal creates on first publish. Defaults to 3.
	Partitions int `yaml:"partitions" json:"partitions"`
	// ReplicationFactor of a topic shoal creates. Defaults to -1: the broker's default.
	ReplicationFactor int `yaml:"replication_factor" json:"replication_factor"`
	// CreateTopics lets shoal create a topic on its first publish. Defaults to true.
	CreateTopics bool `yaml:"create_topics" json:"create_topics"`
	// MetadataRefresh is how often subscribers look for new topics that match their
	// patterns. Defaults to 5s.
	MetadataRefresh Duration `yaml:"metadata_refresh" json:"metadata_refresh"`
}

// RabbitMQOptions connect to RabbitMQ.
type RabbitMQOptions struct {
	// URL of the broker. Defaults to "amqp://localhost:5672". RABBITMQ_URL overrides. Its
	// password is redacted when printed.
	URL string `yaml:"url" json:"url" secret:"url"`
}

// NATSOptions connect to NATS.
type NATSOptions struct {
	// URL of the server. Defaults to "nats://localhost:4222". NATS_URL overrides.
	URL string `yaml:"url" json:"url" secret:"url"`
	// JetStream makes subscriptions durable. Defaults to false. (shoal's messaging package
	// uses JetStream for every subscription whatever this says.)
	JetStream bool `yaml:"jetstream" json:"jetstream"`
	// AckWait is how long the server waits for an acknowledgement before redelivering.
	// Defaults to 30s.
	AckWait Duration `yaml:"ack_wait" json:"ack_wait"`
	// MaxAge is how long the stream keeps a message. Defaults to 7d.
	MaxAge Duration `yaml:"max_age" json:"max_age"`
}

// Job drivers.
const (
	JobsSQLite   = "sqlite"
	JobsPostgres = "postgres"
	JobsMemory   = "memory"
)

// Jobs is the background job queue.
type Jobs struct {
	// Enabled runs job workers in the service. Defaults to false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Driver storing jobs: sqlite, postgres or memory. Defaults to "sqlite".
	Driver string `yaml:"driver" json:"driver" jsonschema:"enum=sqlite,enum=postgres,enum=memory"`
	// URL of the job store. Defaults to database.url for postgres and "sqlite://.shoal/jobs.db" for sqlite.
	URL string `yaml:"url,omitempty" json:"url,omitempty" secret:"url"`
	// Workers running jobs concurrently. Defaults to 4.
	Workers int `yaml:"workers" json:"workers"`
	// MaxRetries of a failing job before it is discarded. Defaults to 3.
	MaxRetries int `yaml:"max_retries" json:"max_retries"`
	// RetryDelay is the base of the exponential backoff between retries. Defaults to 60s.
	RetryDelay Duration `yaml:"retry_delay" json:"retry_delay"`
	// PollInterval of workers looking for new jobs. Defaults to 1s.
	PollInterval Duration `yaml:"poll_interval" json:"poll_interval"`
	// RescueAfter is how long a job may run before it is deemed stuck and retried. Defaults to 1h.
	RescueAfter Duration `yaml:"rescue_after" json:"rescue_after"`
	// Queues and their priorities (higher runs first). Defaults to {"default": 1}.
	Queues map[string]int `yaml:"queues" json:"queues"`
	// Schedules are recurring jobs.
	Schedules []Schedule `yaml:"schedules,omitempty" json:"schedules,omitempty"`
}

// Schedule runs a job on a cron schedule.
type Schedule struct {
	// Name of the schedule, unique. Required.
	Name string `yaml:"name" json:"name"`
	// Cron expression, five fields ("0 * * * *") or a descriptor (@hourly, @every 5m). Required.
	Cron string `yaml:"cron" json:"cron"`
	// Job kind to enqueue. Required.
	Job string `yaml:"job" json:"job"`
	// Queue to enqueue into. Defaults to "default".
	Queue string `yaml:"queue" json:"queue"`
}

// Deploy is what `shoal generate` needs to know that the rest of the configuration does not
// say: the container image, its resources, extra labels, where secrets and metrics live, and
// the canary split of traffic between versions.
type Deploy struct {
	// Image of the service's container, e.g. "ghcr.io/acme/api:1.4.2". `shoal generate --image`
	// overrides it. Defaults to name:version.
	Image string `yaml:"image,omitempty" json:"image,omitempty"`
	// Resources requested and limited for each instance's container.
	Resources DeployResources `yaml:"resources" json:"resources"`
	// Labels added to every generated object and pod, e.g. team: payments. Keys and values follow
	// Kubernetes label syntax; the labels shoal selects pods by (app, version,
	// app.kubernetes.io/*) cannot be set here.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// SecretName is the Kubernetes Secret that secrets (every ${VAR} of the configuration) are
	// read from. shoal never writes the values; create the Secret yourself. Empty means
	// "<name>-secrets".
	SecretName string `yaml:"secret_name,omitempty" json:"secret_name,omitempty"`
	// Prometheus is the address KEDA queries for the auto_scaling rules an HPA cannot express.
	// `shoal generate --prometheus` overrides it. Defaults to "http://prometheus.monitoring:9090".
	Prometheus string `yaml:"prometheus" json:"prometheus"`
	// Canary splits traffic between versions of the service (Istio VirtualService weights and
	// DestinationRule subsets), e.g. 90 to v1 and 10 to v2. Each subset selects the pods whose
	// version label is its version; the weights add up to 100. Empty means no split.
	Canary []CanarySubset `yaml:"canary,omitempty" json:"canary,omitempty"`
	// Autoscaler is what `shoal generate` scales the Deployment with: "hpa" (a
	// HorizontalPodAutoscaler on CPU and memory), "keda" (a KEDA ScaledObject, which also
	// expresses the auto_scaling rules on latency, connections and queue depth), or "auto":
	// keda when an enabled auto_scaling rule needs it, hpa otherwise. Only one is generated,
	// since two autoscalers for one Deployment fight. Defaults to "auto".
	Autoscaler string `yaml:"autoscaler,omitempty" json:"autoscaler,omitempty" jsonschema:"enum=auto,enum=hpa,enum=keda"`
}

// Values of Deploy.Autoscaler.
const (
	AutoscalerAuto = "auto"
	AutoscalerHPA  = "hpa"
	AutoscalerKEDA = "keda"
)

// DeployResources are a container's resource requests and limits.
type DeployResources struct {
	// Requests reserve capacity; the autoscaler's utilisation targets are percentages of them.
	// Defaults to cpu "100m" and memory "128Mi".
	Requests ResourceAmounts `yaml:"requests" json:"requests"`
	// Limits cap use: past the memory limit the container is killed, past the CPU limit it is
	// throttled. Defaults to cpu "500m" and memory "512Mi".
	Limits ResourceAmounts `yaml:"limits" json:"limits"`
}

// ResourceAmounts are quantities in Kubernetes notation. An empty value leaves the amount unset.
type ResourceAmounts struct {
	// CPU in cores or millicores, e.g. "250m" or "1".
	CPU string `yaml:"cpu" json:"cpu"`
	// Memory in bytes with a binary or decimal suffix, e.g. "256Mi" or "1G".
	Memory string `yaml:"memory" json:"memory"`
}

// CanarySubset is one version of the service and the share of requests it receives.
type CanarySubset struct {
	// Name of the subset, a DNS label such as "v1". Required.
	Name string `yaml:"name" json:"name"`
	// Version is the value of the version label of the pods this subset selects. Defaults to name.
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
	// Weight is the percentage of requests this subset receives, 0-100. Required; the weights of
	// all subsets add up to 100.
	Weight int `yaml:"weight" json:"weight"`
}
