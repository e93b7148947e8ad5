package config

import (
	"net/url"
	"reflect"
	"strings"
	"time"
)

// defaulter is implemented by every config struct with fixed defaults. The decoder calls it on
// each struct before reading YAML into it, so a value written in the file always wins and a
// value left out keeps its default — including false for booleans that default to true.
type defaulter interface{ setDefaults() }

// applyDefaults calls setDefaults on v and on every struct nested in it by value.
func applyDefaults(v reflect.Value) {
	if v.Kind() != reflect.Struct {
		return
	}
	if v.CanAddr() {
		if d, ok := v.Addr().Interface().(defaulter); ok {
			d.setDefaults()
		}
	}
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Struct && v.Type().Field(i).IsExported() {
			applyDefaults(f)
		}
	}
}

// Default returns a configuration with every default applied and no name.
func Default() *Config {
	c := &Config{}
	applyDefaults(reflect.ValueOf(c).Elem())
	c.derive()
	return c
}

func (c *Config) setDefaults() { c.Version = "latest" }

func (s *Server) setDefaults() {
	s.Host = "0.0.0.0"
	s.MaxHeaderBytes = 64 << 10
	s.MaxBodyBytes = 10 << 20
	s.ReadHeaderTimeout = Duration(10 * time.Second)
	s.ReadBodyTimeout = Duration(10 * time.Second)
	s.MinBodyRate = 1024
	s.IdleTimeout = Duration(120 * time.Second)
}

func (a *Admin) setDefaults() {
	a.Listen = "127.0.0.1:9900"
	a.StateDir = ".shoal"
}

func (s *Scaling) setDefaults() {
	s.Enabled = true
	s.Strategy = "horizontal"
}

func (s *ServiceDiscovery) setDefaults() {
	s.Method = DiscoveryStatic
	s.Namespace = "default"
}

func (h *HealthCheck) setDefaults() {
	h.Endpoint = "/health"
	h.Interval = Duration(30 * time.Second)
	h.Timeout = Duration(5 * time.Second)
	h.HealthyThreshold = 2
	h.UnhealthyThreshold = 3
}

func (s *StaticInstance) setDefaults() { s.Weight = 1 }

func (d *DNSDiscovery) setDefaults() {
	d.RecordType = "A"
	d.RefreshInterval = Duration(30 * time.Second)
}

func (u *DNSUpdate) setDefaults() {
	u.TTL = Duration(30 * time.Second)
	u.TSIGAlgorithm = "hmac-sha256"
}

func (k *KubernetesOptions) setDefaults() {
	k.ServiceType = "ClusterIP"
	k.PortName = "http"
}

func (c *ConsulOptions) setDefaults() {
	c.Address = "127.0.0.1:8500"
	c.Check = "http"
	c.DeregisterCriticalAfter = Duration(time.Minute)
}

func (e *EtcdOptions) setDefaults() {
	e.Endpoints = []string{"127.0.0.1:2379"}
	e.Prefix = "/shoal/services"
	e.LeaseTTL = Duration(10 * time.Second)
	e.DialTimeout = Duration(5 * time.Second)
}

func (l *LoadBalancer) setDefaults() {
	l.Algorithm = RoundRobin
	l.HealthCheckInterval = Duration(10 * time.Second)
	l.MaxFailures = 3
	l.FailureTimeout = Duration(60 * time.Second)
	l.UpstreamProtocol = "http1"
}

func (l *LatencyEjection) setDefaults() {
	l.Enabled = true
	l.Factor = 8
	l.MinWait = Duration(time.Second)
	l.Hedge = true
}

func (c *CircuitBreaker) setDefaults() {
	c.Enabled = true
	c.FailureThreshold = 5
	c.RecoveryTimeout = Duration(30 * time.Second)
	c.HalfOpenMaxCalls = 3
}

func (r *Retry) setDefaults() {
	r.Attempts = 3
	r.Backoff = Duration(25 * time.Millisecond)
	r.MaxBackoff = Duration(time.Second)
	r.Budget = 0.2
	r.MaxBodyBytes = 1 << 20
	r.Timeout = Duration(60 * time.Second)
}

func (i *Instances) setDefaults() {
	i.MinInstances = 1
	i.MaxInstances = 10
	i.TargetCPUUtilization = 70
	i.TargetMemoryUtilization = 80
	i.ScaleUpCooldown = Duration(300 * time.Second)
	i.ScaleDownCooldown = Duration(300 * time.Second)
}

func (s *Startup) setDefaults() {
	s.InitialDelay = Duration(30 * time.Second)
	s.ReadinessProbe = "/ready"
	s.LivenessProbe = "/live"
}

func (s *Shutdown) setDefaults() {
	s.GracefulTimeout = Duration(30 * time.Second)
	s.DrainTimeout = Duration(15 * time.Second)
	s.ForceTimeout = Duration(60 * time.Second)
}

func (h *Health) setDefaults() {
	h.Enabled = true
	h.Endpoint = "/health"
}

func (c *Check) setDefaults() {
	c.Timeout = Duration(5 * time.Second)
	c.Interval = Duration(10 * time.Second)
	c.Critical = true
}

func (s *ScalingMetrics) setDefaults() {
	s.Enabled = true
	s.Metrics = append([]string(nil), Metrics...)
}

func (a *AutoScaling) setDefaults() {
	a.Interval = Duration(30 * time.Second)
	a.Target = AutoscaleTargetFleet
	a.Tolerance = 0.1
	a.CPUInitializationPeriod = Duration(5 * time.Minute)
	// The HPA's default behaviour (autoscaling/v2).
	a.ScaleUp = ScalingBehavior{SelectPolicy: SelectMax, Policies: []RatePolicy{
		{Type: PolicyPods, Value: 4, Period: Duration(15 * time.Second)},
		{Type: PolicyPercent, Value: 100, Period: Duration(15 * time.Second)},
	}}
	a.ScaleDown = ScalingBehavior{SelectPolicy: SelectMax, Policies: []RatePolicy{
		{Type: PolicyPercent, Value: 100, Period: Duration(15 * time.Second)},
	}}
}

func (p *RatePolicy) setDefaults() { p.Period = Duration(15 * time.Second) }

func (r *ScalingRule) setDefaults() { r.Step = 1 }

func (d *Database) setDefaults() {
	d.MaxConnections = 10
	d.ConnectTimeout = Duration(5 * time.Second)
	d.IdleTimeout = Duration(5 * time.Minute)
	d.MaxLifetime = Duration(30 * time.Minute)
	d.AcquireTimeout = Duration(10 * time.Second)
	d.ReplicaMaxLag = Duration(time.Second)
	d.ReplicaCheckInterval = Duration(time.Second)
	d.ReadYourWrites = Duration(3 * time.Second)
	d.Migrations = "migrations"
}

func (m *Messaging) setDefaults() {
	m.Type = MessagingMemory
	m.Topic = "events"
	m.MaxAttempts = 5
	m.RetryBackoff = Duration(100 * time.Millisecond)
	m.MaxRetryBackoff = Duration(30 * time.Second)
	m.Prefetch = 256
	m.Concurrency = 1
	m.DrainTimeout = Duration(30 * time.Second)
}

func (k *KafkaOptions) setDefaults() {
	k.Brokers = []string{"localhost:9092"}
	k.Partitions = 3
	k.ReplicationFactor = -1
	k.CreateTopics = true
	k.MetadataRefresh = Duration(5 * time.Second)
}

func (r *RabbitMQOptions) setDefaults() { r.URL = "amqp://localhost:5672" }

func (n *NATSOptions) setDefaults() {
	n.URL = "nats://localhost:4222"
	n.AckWait = Duration(30 * time.Second)
	n.MaxAge = Duration(7 * 24 * time.Hour)
}

func (j *Jobs) setDefaults() {
	j.Driver = JobsSQLite
	j.Workers = 4
	j.MaxRetries = 3
	j.RetryDelay = Duration(60 * time.Second)
	j.PollInterval = Duration(time.Second)
	j.RescueAfter = Duration(time.Hour)
	j.Queues = map[string]int{"default": 1}
}

func (s *Schedule) setDefaults() { s.Queue = "default" }

func (d *Deploy) setDefaults() {
	d.Prometheus = "http://prometheus.monitoring:9090"
	d.Autoscaler = AutoscalerAuto
}

func (r *DeployResources) setDefaults() {
	r.Requests = ResourceAmounts{CPU: "100m", Memory: "128Mi"}
	r.Limits = ResourceAmounts{CPU: "500m", Memory: "512Mi"}
}

// derive fills the defaults that depend on other fields, after the file has been read.
func (c *Config) derive() {
	sd := &c.Scaling.ServiceDiscovery
	switch {
	case c.Server.Port == 0 && sd.Port != 0:
		c.Server.Port = sd.Port
	case c.Server.Port == 0:
		c.Server.Port = 3000
	}
	if sd.Port == 0 {
		sd.Port = c.Server.Port
	}
	if sd.ServiceName == "" {
		sd.ServiceName = c.Name
	}
	if sd.DNS.Name == "" {
		sd.DNS.Name = sd.ServiceName
	}
	for i := range c.Observability.AutoScaling.Metrics {
		r := &c.Observability.AutoScaling.Metrics[i]
		if r.Cooldown == 0 {
			if r.Action == ScaleDown {
				r.Cooldown = c.Scaling.Instances.ScaleDownCooldown
			} else {
				r.Cooldown = c.Scaling.Instances.ScaleUpCooldown
			}
		}
	}
	for i := range c.Deploy.Canary {
		if s := &c.Deploy.Canary[i]; s.Version == "" {
			s.Version = s.Name
		}
	}
	if c.Messaging.Kafka.ConsumerGroup == "" {
		c.Messaging.Kafka.ConsumerGroup = c.Name
	}
	db := &c.Database
	if db.Type == "" && db.URL != "" {
		db.Type = databaseTypeOf(db.URL)
	}
	if db.Name == "" && db.URL != "" {
		if u, err := url.Parse(db.URL); err == nil && db.Type != DatabaseSQLite {
			db.Name = strings.TrimPrefix(u.Path, "/")
		}
	}
	if c.Jobs.URL == "" {
		switch c.Jobs.Driver {
		case JobsSQLite:
			c.Jobs.URL = "sqlite://" + c.Admin.StateDir + "/jobs.db"
		case JobsPostgres:
			c.Jobs.URL = db.URL
		}
	}
}

// databaseTypeOf infers the database type from a URL's scheme, or "" when it cannot.
func databaseTypeOf(raw string) string {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, _, _ = strings.Cut(raw, ":")
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql", "pgx":
		return DatabasePostgres
	case "mysql", "mariadb":
		return DatabaseMySQL
	case "sqlite", "sqlite3", "file":
		return DatabaseSQLite
	case "mongodb", "mongodb+srv":
		return DatabaseMongoDB
	}
	return ""
}
