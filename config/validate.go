package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// oneOf formats the valid choices for a message.
func oneOf(valid []string) string {
	q := make([]string, len(valid))
	for i, v := range valid {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

// validate reports every problem of a decoded, defaulted configuration.
func (c *Config) validate(report func(path, msg string)) {
	bad := func(path, format string, args ...any) { report(path, fmt.Sprintf(format, args...)) }
	enum := func(path, value string, valid []string) {
		if !slices.Contains(valid, value) {
			bad(path, "%q is not one of %s", value, oneOf(valid))
		}
	}
	port := func(path string, p int) {
		if p < 1 || p > 65535 {
			bad(path, "port %d is out of range; use 1-65535", p)
		}
	}
	atLeast := func(path string, v, min int) {
		if v < min {
			bad(path, "must be at least %d, got %d", min, v)
		}
	}
	positive := func(path string, d Duration) {
		if d <= 0 {
			bad(path, "must be longer than zero, e.g. \"30s\"")
		}
	}
	percent := func(path string, v int) {
		if v < 1 || v > 100 {
			bad(path, "is a percentage and must be between 1 and 100, got %d", v)
		}
	}
	probePath := func(path, p string) {
		if !strings.HasPrefix(p, "/") {
			bad(path, "%q must be a path starting with /, e.g. \"/health\"", p)
		}
	}

	switch {
	case c.Name == "":
		bad("name", "is required; set name: to the service's name, e.g. name: \"my-api\"")
	case len(c.Name) > 63 || !dnsLabel.MatchString(c.Name):
		bad("name", "%q must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters", c.Name)
	}

	port("server.port", c.Server.Port)
	if c.Server.MaxHeaderBytes < 4096 {
		bad("server.max_header_bytes", "%d is too small for real requests; use at least 4096", c.Server.MaxHeaderBytes)
	}
	if le := c.Scaling.LoadBalancer.LatencyEjection; le.Enabled {
		if le.Factor < 1 {
			bad("scaling.load_balancer.latency_ejection.factor", "must be at least 1 (times the fleet's p99), got %g", le.Factor)
		}
		if le.MinWait <= 0 {
			bad("scaling.load_balancer.latency_ejection.min_wait", "must be more than zero, e.g. \"1s\"")
		}
	}
	if c.Server.MinBodyRate < 0 {
		bad("server.min_body_rate", "must be zero (no minimum) or more bytes per second, got %d", c.Server.MinBodyRate)
	}
	for _, d := range []struct {
		path string
		v    Duration
	}{{"server.read_header_timeout", c.Server.ReadHeaderTimeout}, {"server.read_body_timeout", c.Server.ReadBodyTimeout}, {"server.idle_timeout", c.Server.IdleTimeout}} {
		if d.v <= 0 {
			bad(d.path, "must be more than zero, e.g. \"10s\"")
		}
	}
	if c.Server.MaxBodyBytes < 0 {
		bad("server.max_body_bytes", "must be zero (no limit) or more, got %d", c.Server.MaxBodyBytes)
	}
	if c.Server.Host != "" && c.Server.Host != "localhost" && net.ParseIP(c.Server.Host) == nil {
		bad("server.host", "%q is not an IP address; use \"0.0.0.0\" for all interfaces or \"127.0.0.1\" for this machine only", c.Server.Host)
	}
	if _, p, err := net.SplitHostPort(c.Admin.Listen); err != nil {
		bad("admin.listen", "%q is not host:port, e.g. \"127.0.0.1:9900\"", c.Admin.Listen)
	} else if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		bad("admin.listen", "%q has an invalid port", c.Admin.Listen)
	}
	if c.Admin.StateDir == "" {
		bad("admin.state_dir", "must not be empty; it defaults to \".shoal\"")
	}
	if len(c.App.Command) > 0 && strings.TrimSpace(c.App.Command[0]) == "" {
		bad("app.command", "the program to run is empty")
	}

	// scaling
	s := c.Scaling
	enum("scaling.strategy", s.Strategy, []string{"horizontal"})
	sd := s.ServiceDiscovery
	enum("scaling.service_discovery.method", sd.Method, DiscoveryMethods)
	if a := sd.AdvertiseAddress; a != "" && strings.ContainsAny(a, ":/ ") && net.ParseIP(a) == nil {
		bad("scaling.service_discovery.advertise_address", "%q is not a host: give an IP address or a host name, without a port", a)
	}
	port("scaling.service_discovery.port", sd.Port)
	hc := sd.HealthCheck
	probePath("scaling.service_discovery.health_check.endpoint", hc.Endpoint)
	positive("scaling.service_discovery.health_check.interval", hc.Interval)
	positive("scaling.service_discovery.health_check.timeout", hc.Timeout)
	if hc.Timeout > hc.Interval && hc.Interval > 0 {
		bad("scaling.service_discovery.health_check.timeout", "%s is longer than the interval %s; a probe must finish before the next one starts", hc.Timeout, hc.Interval)
	}
	atLeast("scaling.service_discovery.health_check.healthy_threshold", hc.HealthyThreshold, 1)
	atLeast("scaling.service_discovery.health_check.unhealthy_threshold", hc.UnhealthyThreshold, 1)
	for i, in := range sd.Static.Instances {
		p := fmt.Sprintf("scaling.service_discovery.static.instances[%d]", i)
		u, err := url.Parse(in.URL)
		switch {
		case in.URL == "":
			bad(p+".url", "is required, e.g. url: http://127.0.0.1:9001")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad(p+".url", "%q is not an http:// or https:// URL with a host, e.g. http://127.0.0.1:9001", in.URL)
		}
		if in.Weight < 1 || in.Weight > 1000 {
			bad(p+".weight", "must be between 1 and 1000, got %d", in.Weight)
		}
	}
	if sd.Method == DiscoveryDNS {
		enum("scaling.service_discovery.dns.record_type", sd.DNS.RecordType, []string{"A", "SRV"})
		positive("scaling.service_discovery.dns.refresh_interval", sd.DNS.RefreshInterval)
		if sd.DNS.Name == "" {
			bad("scaling.service_discovery.dns.name", "is required for dns discovery")
		}
		if r := sd.DNS.Resolver; r != "" {
			if _, _, err := net.SplitHostPort(r); err != nil {
				bad("scaling.service_discovery.dns.resolver", "%q is not host:port, e.g. \"127.0.0.1:53\"", r)
			}
		}
	}
	if sd.Method == DiscoveryDNS && sd.DNS.Update.Server != "" {
		u := sd.DNS.Update
		if _, _, err := net.SplitHostPort(u.Server); err != nil {
			bad("scaling.service_discovery.dns.update.server", "%q is not host:port, e.g. \"10.0.0.2:53\"", u.Server)
		}
		positive("scaling.service_discovery.dns.update.ttl", u.TTL)
		enum("scaling.service_discovery.dns.update.tsig_algorithm", u.TSIGAlgorithm, []string{"hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1"})
		if (u.TSIGKey == "") != (u.TSIGSecret == "") {
			bad("scaling.service_discovery.dns.update.tsig_key", "tsig_key and tsig_secret go together; set both to sign updates, or neither")
		}
	}
	enum("scaling.service_discovery.kubernetes.service_type", sd.Kubernetes.ServiceType, []string{"ClusterIP", "NodePort", "LoadBalancer", "Headless"})
	if sd.Method == DiscoveryKubernetes && sd.Kubernetes.PortName == "" {
		bad("scaling.service_discovery.kubernetes.port_name", "must name the Service port instances serve on, e.g. \"http\"")
	}
	if sd.Method == DiscoveryConsul {
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(sd.Consul.Address, "http://"), "https://")); err != nil {
			bad("scaling.service_discovery.consul.address", "%q is not host:port, e.g. \"127.0.0.1:8500\"", sd.Consul.Address)
		}
		enum("scaling.service_discovery.consul.check", sd.Consul.Check, []string{"http", "ttl"})
		if sd.Consul.DeregisterCriticalAfter < 0 {
			bad("scaling.service_discovery.consul.deregister_critical_after", "must not be negative; Consul removes a critical instance after it, e.g. \"1m\"")
		}
	}
	if sd.Method == DiscoveryEtcd {
		e := sd.Etcd
		if len(e.Endpoints) == 0 {
			bad("scaling.service_discovery.etcd.endpoints", "lists no endpoint; give at least one, e.g. [\"127.0.0.1:2379\"]")
		}
		for i, ep := range e.Endpoints {
			hostport := ep
			if u, err := url.Parse(ep); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
				hostport = u.Host
			}
			if _, _, err := net.SplitHostPort(hostport); err != nil {
				bad(fmt.Sprintf("scaling.service_discovery.etcd.endpoints[%d]", i), "%q is not host:port or http(s)://host:port, e.g. \"127.0.0.1:2379\"", ep)
			}
		}
		if !strings.HasPrefix(e.Prefix, "/") || strings.HasSuffix(e.Prefix, "/") && e.Prefix != "/" {
			bad("scaling.service_discovery.etcd.prefix", "%q must start with / and not end with /, e.g. \"/shoal/services\"", e.Prefix)
		}
		if e.LeaseTTL.D() < 2*time.Second {
			bad("scaling.service_discovery.etcd.lease_ttl", "%s is too short; a lease needs at least \"2s\" to be kept alive", e.LeaseTTL)
		}
		positive("scaling.service_discovery.etcd.dial_timeout", e.DialTimeout)
	}

	lb := s.LoadBalancer
	enum("scaling.load_balancer.algorithm", lb.Algorithm, Algorithms)
	enum("scaling.load_balancer.upstream_protocol", lb.UpstreamProtocol, []string{"http1", "h2c"})
	positive("scaling.load_balancer.health_check_interval", lb.HealthCheckInterval)
	atLeast("scaling.load_balancer.max_failures", lb.MaxFailures, 0)
	if lb.MaxFailures > 0 {
		positive("scaling.load_balancer.failure_timeout", lb.FailureTimeout)
	}
	if cb := lb.CircuitBreaker; cb.Enabled {
		atLeast("scaling.load_balancer.circuit_breaker.failure_threshold", cb.FailureThreshold, 1)
		positive("scaling.load_balancer.circuit_breaker.recovery_timeout", cb.RecoveryTimeout)
		atLeast("scaling.load_balancer.circuit_breaker.half_open_max_calls", cb.HalfOpenMaxCalls, 1)
	}
	r := lb.Retry
	if r.Attempts < 1 || r.Attempts > 10 {
		bad("scaling.load_balancer.retry.attempts", "must be between 1 (no retries) and 10, got %d", r.Attempts)
	}
	if r.MaxBackoff < r.Backoff {
		bad("scaling.load_balancer.retry.max_backoff", "%s is shorter than backoff %s", r.MaxBackoff, r.Backoff)
	}
	if r.Budget <= 0 || r.Budget > 1 {
		bad("scaling.load_balancer.retry.budget", "is the share of extra load retries may add and must be more than 0 and at most 1, got %g; to turn retries off set attempts: 1", r.Budget)
	}
	positive("scaling.load_balancer.retry.backoff", r.Backoff)
	if r.MaxBodyBytes < 0 {
		bad("scaling.load_balancer.retry.max_body_bytes", "must be zero or more, got %d", r.MaxBodyBytes)
	}
	positive("scaling.load_balancer.retry.timeout", r.Timeout)

	in := s.Instances
	atLeast("scaling.instances.min_instances", in.MinInstances, 1)
	if in.MaxInstances < in.MinInstances {
		bad("scaling.instances.max_instances", "%d is less than min_instances %d; raise max_instances or lower min_instances", in.MaxInstances, in.MinInstances)
	}
	if in.MaxInstances > 1000 {
		bad("scaling.instances.max_instances", "%d is more than 1000 instances; shoal's local fleet is one machine — use `shoal generate kubernetes` for more", in.MaxInstances)
	}
	percent("scaling.instances.target_cpu_utilization", in.TargetCPUUtilization)
	percent("scaling.instances.target_memory_utilization", in.TargetMemoryUtilization)
	probePath("scaling.instances.startup.readiness_probe", in.Startup.ReadinessProbe)
	probePath("scaling.instances.startup.liveness_probe", in.Startup.LivenessProbe)
	sh := in.Shutdown
	if sh.ForceTimeout < sh.GracefulTimeout {
		bad("scaling.instances.shutdown.force_timeout", "%s is shorter than graceful_timeout %s; the instance would be killed before its graceful period ends", sh.ForceTimeout, sh.GracefulTimeout)
	}

	// health
	if c.Health.Enabled {
		probePath("health.endpoint", c.Health.Endpoint)
	}
	names := map[string]int{}
	for i, ch := range c.Health.Checks {
		p := fmt.Sprintf("health.checks[%d]", i)
		if ch.Name == "" {
			bad(p+".name", "is required; the admin API enables and disables checks by name")
		} else if j, dup := names[ch.Name]; dup {
			bad(p+".name", "%q is already the name of health.checks[%d]; names must be unique", ch.Name, j)
		} else {
			names[ch.Name] = i
		}
		positive(p+".timeout", ch.Timeout)
		positive(p+".interval", ch.Interval)
		switch ch.Type {
		case CheckDatabase:
			// The DSN defaults to database.url; a check without either is given a *sql.DB in
			// code, which is checked when the service starts.
			if ch.URL != "" && databaseTypeOf(ch.URL) == "" {
				bad(p+".url", "cannot tell the database from %q; start it with postgres://, mysql://, sqlite:// or mongodb://", redactURL(ch.URL))
			}
		case CheckExternalService:
			checkURL(bad, p+".url", ch.URL, []string{"redis", "rediss", "tcp", "nats", "amqp", "amqps", "http", "https"})
		case CheckHTTP:
			checkURL(bad, p+".url", ch.URL, []string{"http", "https"})
		case CheckTCP:
			if _, _, err := net.SplitHostPort(strings.TrimPrefix(ch.URL, "tcp://")); err != nil {
				bad(p+".url", "%q is not host:port or tcp://host:port", ch.URL)
			}
		case CheckCustom:
			if ch.Handler == "" {
				bad(p+".handler", "is required for a custom check; name the function registered with health.Register")
			}
		case "":
			bad(p+".type", "is required; one of %s", oneOf(CheckTypes))
		default:
			bad(p+".type", "%q is not one of %s", ch.Type, oneOf(CheckTypes))
		}
	}

	// observability
	for i, m := range c.Observability.ScalingMetrics.Metrics {
		enum(fmt.Sprintf("observability.scaling_metrics.metrics[%d]", i), m, Metrics)
	}
	as := c.Observability.AutoScaling
	positive("observability.auto_scaling.interval", as.Interval)
	validateAutoScaling(as, bad)
	for i, rule := range as.Metrics {
		p := fmt.Sprintf("observability.auto_scaling.metrics[%d]", i)
		if rule.Metric == "" {
			bad(p+".metric", "is required; one of %s", oneOf(AutoscalingMetrics))
		} else if !slices.Contains(AutoscalingMetrics, rule.Metric) {
			bad(p+".metric", "%q is not a scaling metric shoal measures; use one of %s", rule.Metric, oneOf(AutoscalingMetrics))
		}
		switch {
		case rule.Action == "" && rule.Target == 0:
			bad(p+".action", "is required; \"scale_up\" or \"scale_down\" (or give the rule a target for proportional control)")
		case rule.Action != "":
			enum(p+".action", rule.Action, []string{ScaleUp, ScaleDown})
		}
		validateRuleTarget(p, rule, bad)
		atLeast(p+".step", rule.Step, 1)
	}

	// database
	db := c.Database
	if db.URL != "" {
		if db.Type == "" {
			bad("database.url", "cannot tell the database from %q; start it with postgres://, mysql://, sqlite:// or mongodb://, or set database.type", redactURL(db.URL))
		}
	}
	if db.Type != "" {
		enum("database.type", db.Type, []string{DatabasePostgres, DatabaseMySQL, DatabaseSQLite, DatabaseMongoDB})
	}
	atLeast("database.max_connections", db.MaxConnections, 1)
	atLeast("database.min_connections", db.MinConnections, 0)
	if db.MinConnections > db.MaxConnections {
		bad("database.min_connections", "%d is more than max_connections %d", db.MinConnections, db.MaxConnections)
	}
	positive("database.acquire_timeout", db.AcquireTimeout)
	positive("database.replica_check_interval", db.ReplicaCheckInterval)
	if db.ReplicaMaxLag < 0 {
		bad("database.replica_max_lag", "must not be negative; 0 routes reads by replica health alone")
	}
	if db.ReadYourWrites < 0 {
		bad("database.read_your_writes", "must not be negative; 0 turns read-your-writes off")
	}
	for i, r := range db.ReadReplicas {
		if t := databaseTypeOf(r); t != db.Type && db.Type != "" {
			bad(fmt.Sprintf("database.read_replicas[%d]", i), "%q is not a %s URL like database.url; a replica must be the same kind of database", redactURL(r), db.Type)
		}
	}

	// messaging
	m := c.Messaging
	enum("messaging.type", m.Type, []string{MessagingMemory, MessagingKafka, MessagingRabbitMQ, MessagingNATS})
	if m.Topic == "" {
		bad("messaging.topic", "must not be empty")
	} else if !messagingToken(m.Topic) {
		bad("messaging.topic", "%q must be one token of letters, digits, \"_\" and \"-\" (it prefixes every subject, exchange and Kafka topic)", m.Topic)
	}
	atLeast("messaging.max_attempts", m.MaxAttempts, 1)
	atLeast("messaging.prefetch", m.Prefetch, 1)
	atLeast("messaging.concurrency", m.Concurrency, 1)
	atLeast("messaging.max_payload", m.MaxPayload, 0)
	if m.MaxRetryBackoff < m.RetryBackoff {
		bad("messaging.max_retry_backoff", "%s is shorter than retry_backoff %s", m.MaxRetryBackoff, m.RetryBackoff)
	}
	if m.Type == MessagingKafka {
		atLeast("messaging.kafka.partitions", m.Kafka.Partitions, 1)
		if m.Kafka.ReplicationFactor == 0 || m.Kafka.ReplicationFactor < -1 {
			bad("messaging.kafka.replication_factor", "is %d; use -1 for the broker's default or a positive count", m.Kafka.ReplicationFactor)
		}
	}
	switch m.Type {
	case MessagingKafka:
		if len(m.Kafka.Brokers) == 0 {
			bad("messaging.kafka.brokers", "needs at least one broker, e.g. [\"localhost:9092\"]")
		}
		for i, b := range m.Kafka.Brokers {
			if _, _, err := net.SplitHostPort(b); err != nil {
				bad(fmt.Sprintf("messaging.kafka.brokers[%d]", i), "%q is not host:port", b)
			}
		}
	case MessagingRabbitMQ:
		checkURL(bad, "messaging.rabbitmq.url", m.RabbitMQ.URL, []string{"amqp", "amqps"})
	case MessagingNATS:
		for _, u := range strings.Split(m.NATS.URL, ",") {
			checkURL(bad, "messaging.nats.url", strings.TrimSpace(u), []string{"nats", "tls", "ws", "wss"})
		}
	}

	c.validateDeploy(bad)

	// jobs
	j := c.Jobs
	enum("jobs.driver", j.Driver, []string{JobsSQLite, JobsPostgres, JobsMemory})
	if j.Enabled && j.Driver == JobsPostgres && j.URL == "" {
		bad("jobs.url", "is required for the postgres driver (or set database.url)")
	}
	atLeast("jobs.workers", j.Workers, 1)
	atLeast("jobs.max_retries", j.MaxRetries, 0)
	positive("jobs.poll_interval", j.PollInterval)
	for q, prio := range j.Queues {
		if prio < 0 {
			bad("jobs.queues."+q, "priority must be zero or more, got %d", prio)
		}
	}
	sched := map[string]bool{}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	for i, sc := range j.Schedules {
		p := fmt.Sprintf("jobs.schedules[%d]", i)
		if sc.Name == "" {
			bad(p+".name", "is required")
		} else if sched[sc.Name] {
			bad(p+".name", "%q is used twice; schedule names must be unique", sc.Name)
		}
		sched[sc.Name] = true
		if _, err := parser.Parse(sc.Cron); err != nil {
			bad(p+".cron", "%q is not a cron expression (%v); write five fields such as \"0 * * * *\" or @hourly", sc.Cron, err)
		}
		if sc.Job == "" {
			bad(p+".job", "is required; name the job kind to enqueue")
		}
		if _, ok := j.Queues[sc.Queue]; !ok {
			bad(p+".queue", "%q is not one of jobs.queues", sc.Queue)
		}
	}
}

// Kubernetes syntax the deploy block must follow, so `shoal generate` cannot emit an object the
// API server would refuse.
var (
	quantity      = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)
	labelName     = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	labelValue    = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	dnsSubdomain  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	reservedLabel = map[string]bool{"app": true, "version": true}
)

// validateDeploy reports the problems of the deploy: block.
func (c *Config) validateDeploy(bad func(path, format string, args ...any)) {
	d := c.Deploy
	if d.Image != "" && strings.ContainsAny(d.Image, " \t\n") {
		bad("deploy.image", "%q contains whitespace; write an image reference such as \"ghcr.io/acme/api:1.4.2\"", d.Image)
	}
	for _, q := range []struct{ path, v string }{
		{"deploy.resources.requests.cpu", d.Resources.Requests.CPU},
		{"deploy.resources.requests.memory", d.Resources.Requests.Memory},
		{"deploy.resources.limits.cpu", d.Resources.Limits.CPU},
		{"deploy.resources.limits.memory", d.Resources.Limits.Memory},
	} {
		if q.v != "" && !quantity.MatchString(q.v) {
			bad(q.path, "%q is not a Kubernetes quantity; write e.g. \"250m\" for CPU or \"256Mi\" for memory", q.v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(d.Labels)) {
		v, p := d.Labels[k], "deploy.labels."+k
		prefix, name, hasPrefix := strings.Cut(k, "/")
		if !hasPrefix {
			name, prefix = prefix, ""
		}
		switch {
		case reservedLabel[k] || strings.HasPrefix(k, "app.kubernetes.io/"):
			bad(p, "is set by shoal, which selects pods by it; choose another key")
		case len(name) > 63 || !labelName.MatchString(name) || (hasPrefix && (len(prefix) > 253 || !dnsSubdomain.MatchString(prefix))):
			bad(p, "%q is not a Kubernetes label key: an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'", k)
		}
		if len(v) > 63 || !labelValue.MatchString(v) {
			bad(p, "%q is not a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", v)
		}
	}
	if d.SecretName != "" && (len(d.SecretName) > 253 || !dnsSubdomain.MatchString(d.SecretName)) {
		bad("deploy.secret_name", "%q is not a Kubernetes object name: lowercase letters, digits, '-' and '.'", d.SecretName)
	}
	if d.Prometheus != "" {
		checkURL(bad, "deploy.prometheus", d.Prometheus, []string{"http", "https"})
	}
	switch d.Autoscaler {
	case AutoscalerAuto, AutoscalerHPA, AutoscalerKEDA:
	default:
		bad("deploy.autoscaler", "%q is not an autoscaler; use auto, hpa or keda", d.Autoscaler)
	}
	total, seen := 0, map[string]int{}
	for i, s := range d.Canary {
		p := fmt.Sprintf("deploy.canary[%d]", i)
		switch {
		case s.Name == "":
			bad(p+".name", "is required, e.g. name: v1")
		case len(s.Name) > 63 || !dnsLabel.MatchString(s.Name):
			bad(p+".name", "%q must be a DNS label: lowercase letters, digits and '-'", s.Name)
		}
		if j, dup := seen[s.Name]; dup && s.Name != "" {
			bad(p+".name", "%q is already the name of deploy.canary[%d]; names must be unique", s.Name, j)
		}
		seen[s.Name] = i
		if len(s.Version) > 63 || !labelValue.MatchString(s.Version) {
			bad(p+".version", "%q is not a Kubernetes label value", s.Version)
		}
		if s.Weight < 0 || s.Weight > 100 {
			bad(p+".weight", "is a percentage and must be between 0 and 100, got %d", s.Weight)
		}
		total += s.Weight
	}
	if len(d.Canary) > 0 && total != 100 {
		bad("deploy.canary", "the weights add up to %d; they must add up to 100", total)
	}
}

func checkURL(bad func(string, string, ...any), path, raw string, schemes []string) {
	if raw == "" {
		bad(path, "is required, e.g. %s://host:port", schemes[0])
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		bad(path, "%q is not a URL with a host, e.g. %s://host:port", redactURL(raw), schemes[0])
		return
	}
	if !slices.Contains(schemes, u.Scheme) {
		bad(path, "scheme %q is not supported here; use one of %s", u.Scheme, oneOf(schemes))
	}
}

// validateAutoScaling checks the autoscaler's own settings: target, tolerance and rate policies.
func validateAutoScaling(as AutoScaling, bad func(path, format string, args ...any)) {
	const p = "observability.auto_scaling"
	if as.Target != AutoscaleTargetFleet && as.Target != AutoscaleTargetKubernetes {
		bad(p+".target", "%q is not a target; use \"fleet\" (the local fleet of shoal up) or \"kubernetes\" (a Deployment, through shoal autoscale)", as.Target)
	}
	if as.Tolerance < 0 || as.Tolerance >= 1 {
		bad(p+".tolerance", "%g is out of range; it is a share of the target from 0 to 0.99, e.g. 0.1 for 10%%", as.Tolerance)
	}
	if as.CPUInitializationPeriod < 0 {
		bad(p+".cpu_initialization_period", "must not be negative, e.g. \"5m\"")
	}
	for _, d := range []struct {
		dir string
		b   ScalingBehavior
	}{{"scale_up", as.ScaleUp}, {"scale_down", as.ScaleDown}} {
		dir, b := d.dir, d.b
		bp := p + "." + dir
		if !slices.Contains([]string{SelectMax, SelectMin, SelectDisabled}, b.SelectPolicy) {
			bad(bp+".select_policy", "%q is not one of \"max\", \"min\", \"disabled\"", b.SelectPolicy)
		}
		if len(b.Policies) == 0 && b.SelectPolicy != SelectDisabled {
			bad(bp+".policies", "lists no policy, so the fleet could never %s; give one, e.g. {type: percent, value: 100, period: 15s}, or set select_policy: disabled", map[string]string{"scale_up": "grow", "scale_down": "shrink"}[dir])
		}
		for i, rp := range b.Policies {
			pp := fmt.Sprintf("%s.policies[%d]", bp, i)
			if rp.Type != PolicyPods && rp.Type != PolicyPercent {
				bad(pp+".type", "%q is not a policy type; use \"pods\" (instances per period) or \"percent\"", rp.Type)
			}
			if rp.Value < 1 {
				bad(pp+".value", "must be at least 1, got %d; to forbid changes set select_policy: disabled", rp.Value)
			}
			if rp.Period.D() < time.Second || rp.Period.D() > 30*time.Minute {
				bad(pp+".period", "%s is out of range; use 1s to 30m (the HPA's limits)", rp.Period)
			}
		}
	}
}

// validateRuleTarget checks a rule's threshold and its proportional target, both in the metric's unit.
func validateRuleTarget(p string, rule ScalingRule, bad func(path, format string, args ...any)) {
	percent := strings.HasSuffix(rule.Metric, "_percentage")
	if rule.Action != "" {
		switch {
		case percent && (rule.Threshold < 0 || rule.Threshold > 100):
			bad(p+".threshold", "%g is out of range; %s is a percentage, 0-100", rule.Threshold, rule.Metric)
		case rule.Threshold < 0:
			bad(p+".threshold", "must be zero or more, got %g", rule.Threshold)
		}
	}
	if rule.Target == 0 {
		return
	}
	switch {
	case rule.Metric == MetricInstanceCount:
		bad(p+".target", "the instance count cannot be steered to a target; bound it with scaling.instances.min_instances and max_instances")
	case rule.Target < 0:
		bad(p+".target", "must be above zero, got %g", rule.Target)
	case percent && rule.Target > 100:
		bad(p+".target", "%g%% is over 100%%; %s is a percentage, so use 1-100", rule.Target, rule.Metric)
	}
}

// messagingToken reports whether s is one messaging token: letters, digits, "_" and "-",
// not starting with "_".
func messagingToken(s string) bool {
	if s == "" || s[0] == '_' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
