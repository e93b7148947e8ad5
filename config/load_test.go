package config_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

// env returns a LookupEnv over a fixed map, so tests do not depend on the process environment.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestLoad_SeedSample(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"rustform.yml", "shoal.yml"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile("../testdata/rustform.yml")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			found, err := config.Find(dir)
			if err != nil || found != path {
				t.Fatalf("Find = %q, %v; want %q", found, err, path)
			}
			c, err := config.LoadAll(path, config.Options{LookupEnv: env(nil)})
			if err != nil {
				t.Fatalf("the seed sample must load unchanged: %v", err)
			}
			checkSeed(t, c)
		})
	}
}

func checkSeed(t *testing.T, c *config.Config) {
	t.Helper()
	sd := c.Scaling.ServiceDiscovery
	in := c.Scaling.Instances
	got := map[string]any{
		"name":              c.Name,
		"method":            sd.Method,
		"namespace":         sd.Namespace,
		"port":              sd.Port,
		"server.port":       c.Server.Port,
		"hc.interval":       sd.HealthCheck.Interval.D(),
		"hc.timeout":        sd.HealthCheck.Timeout.D(),
		"hc.unhealthy":      sd.HealthCheck.UnhealthyThreshold,
		"annotation":        sd.Kubernetes.Annotations["prometheus.io/port"],
		"consul.datacenter": sd.Consul.Datacenter,
		"algorithm":         c.Scaling.LoadBalancer.Algorithm,
		"failure_timeout":   c.Scaling.LoadBalancer.FailureTimeout.D(),
		"cb.half_open":      c.Scaling.LoadBalancer.CircuitBreaker.HalfOpenMaxCalls,
		"min":               in.MinInstances,
		"max":               in.MaxInstances,
		"scale_up_cooldown": in.ScaleUpCooldown.D(),
		"initial_delay":     in.Startup.InitialDelay.D(),
		"force_timeout":     in.Shutdown.ForceTimeout.D(),
		"checks":            len(c.Health.Checks),
		"check[1].critical": c.Health.Checks[1].Critical,
		"check[3].handler":  c.Health.Checks[3].Handler,
		"metrics":           len(c.Observability.ScalingMetrics.Metrics),
		"rules":             len(c.Observability.AutoScaling.Metrics),
		"rule[2].threshold": c.Observability.AutoScaling.Metrics[2].Threshold,
		"rule[1].cooldown":  c.Observability.AutoScaling.Metrics[1].Cooldown.D(),
		"environments":      strings.Join(c.Meta.Environments, ","),
	}
	want := map[string]any{
		"name": "scalable-app", "method": "kubernetes", "namespace": "production", "port": 3000,
		"server.port": 3000, "hc.interval": 30 * time.Second, "hc.timeout": 5 * time.Second,
		"hc.unhealthy": 3, "annotation": "3000", "consul.datacenter": "dc1", "algorithm": "round_robin",
		"failure_timeout": time.Minute, "cb.half_open": 3, "min": 2, "max": 20,
		"scale_up_cooldown": 300 * time.Second, "initial_delay": 30 * time.Second,
		"force_timeout": 60 * time.Second, "checks": 4, "check[1].critical": false,
		"check[3].handler": "check_business_health", "metrics": 6, "rules": 4,
		"rule[2].threshold": 2000.0, "rule[1].cooldown": 600 * time.Second,
		"environments": "development,staging,production",
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}

func TestLoad_Environments(t *testing.T) {
	t.Parallel()
	for env, want := range map[string][2]int{"": {2, 20}, "development": {1, 2}, "staging": {1, 5}, "production": {3, 50}} {
		t.Run("env="+env, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load("../testdata/rustform.yml", config.Options{Env: env, LookupEnv: env2(nil)})
			if err != nil {
				t.Fatal(err)
			}
			if got := [2]int{c.Scaling.Instances.MinInstances, c.Scaling.Instances.MaxInstances}; got != want {
				t.Errorf("min/max = %v, want %v", got, want)
			}
			// The overlay only touches instances; everything else comes from the base.
			if c.Scaling.LoadBalancer.Algorithm != "round_robin" || c.Scaling.Instances.TargetCPUUtilization != 70 {
				t.Errorf("base values lost by the merge: %+v", c.Scaling)
			}
			if c.Meta.Env != env {
				t.Errorf("Meta.Env = %q", c.Meta.Env)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		_, err := config.Load("../testdata/rustform.yml", config.Options{Env: "qa", LookupEnv: env(nil)})
		if err == nil || !strings.Contains(err.Error(), `environment "qa" is not defined (defined: development, staging, production)`) {
			t.Fatalf("err = %v", err)
		}
	})
}

var env2 = env

func TestLoad_DeepMergeKeepsSiblings(t *testing.T) {
	t.Parallel()
	src := `
name: shop
scaling:
  load_balancer:
    algorithm: least_connections
    circuit_breaker: {failure_threshold: 7, recovery_timeout: 10s}
  service_discovery:
    static:
      instances: [{url: "http://127.0.0.1:1"}, {url: "http://127.0.0.1:2"}]
environments:
  production:
    scaling:
      load_balancer:
        circuit_breaker: {failure_threshold: 9}
      service_discovery:
        static:
          instances: [{url: "http://10.0.0.1:80", weight: 5}]
`
	c, err := config.Parse([]byte(src), "shoal.yml", config.Options{Env: "production", LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	cb := c.Scaling.LoadBalancer.CircuitBreaker
	if cb.FailureThreshold != 9 || cb.RecoveryTimeout.D() != 10*time.Second || c.Scaling.LoadBalancer.Algorithm != "least_connections" {
		t.Errorf("mappings must merge key by key: %+v %s", cb, c.Scaling.LoadBalancer.Algorithm)
	}
	if got := c.Scaling.ServiceDiscovery.Static.Instances; len(got) != 1 || got[0].Weight != 5 {
		t.Errorf("lists must be replaced, not merged: %+v", got)
	}
}

func TestLoad_Interpolation(t *testing.T) {
	t.Parallel()
	src := `
name: ${NAME:-shop}
server:
  port: ${PORT}
database:
  url: "postgres://app:${DB_PASSWORD}@db:5432/${DB_NAME-app}"
app:
  env:
    PRICE: "$$5"
    LITERAL: "a$b"
    EMPTY_DEFAULT: "${EMPTY:-fallback}"
    EMPTY_DASH: "${EMPTY-kept}"
`
	c, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: env(map[string]string{
		"PORT": "8080", "DB_PASSWORD": "s3cret", "EMPTY": "",
	})})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "shop" || c.Server.Port != 8080 {
		t.Errorf("name %q port %d", c.Name, c.Server.Port)
	}
	if c.Database.URL != "postgres://app:s3cret@db:5432/app" || c.Database.Type != "postgres" || c.Database.Name != "app" {
		t.Errorf("database = %+v", c.Database)
	}
	wantEnv := map[string]string{"PRICE": "$5", "LITERAL": "a$b", "EMPTY_DEFAULT": "fallback", "EMPTY_DASH": ""}
	if !reflect.DeepEqual(c.App.Env, wantEnv) {
		t.Errorf("app.env = %v, want %v", c.App.Env, wantEnv)
	}
	if got := c.Meta.Templates["database.url"]; got != "postgres://app:${DB_PASSWORD}@db:5432/${DB_NAME-app}" {
		t.Errorf("template of database.url = %q", got)
	}
}

func TestLoad_UnsetVariableOnlyWhereUsed(t *testing.T) {
	t.Parallel()
	src := `
name: shop
scaling:
  service_discovery:
    method: consul
    consul:
      token: "${CONSUL_TOKEN}"
`
	_, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: env(nil)})
	want := "shoal.yml:7:14: scaling.service_discovery.consul.token: ${CONSUL_TOKEN} is not set"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v\nwant prefix %s", err, want)
	}
	// The seed itself keeps ${CONSUL_TOKEN} in a consul block it does not use: no error there.
	if _, err := config.Parse([]byte(strings.Replace(src, "method: consul", "method: static", 1)), "shoal.yml",
		config.Options{LookupEnv: env(nil)}); err != nil {
		t.Fatalf("an unused block must not require its variables: %v", err)
	}
}

func TestLoad_SeedEnvironmentOverrides(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte("name: shop\n"), "shoal.yml", config.Options{LookupEnv: env(map[string]string{
		"MESSAGE_QUEUE_TYPE": "NATS",
		"KAFKA_BROKERS":      "k1:9092, k2:9092",
		"RABBITMQ_URL":       "amqp://guest:guest@127.0.0.1:5672",
		"NATS_URL":           "nats://127.0.0.1:4222",
		"DATABASE_URL":       "mysql://root@127.0.0.1:3306/test",
	})})
	if err != nil {
		t.Fatal(err)
	}
	m := c.Messaging
	if m.Type != "nats" || !reflect.DeepEqual(m.Kafka.Brokers, []string{"k1:9092", "k2:9092"}) ||
		m.RabbitMQ.URL != "amqp://guest:guest@127.0.0.1:5672" || m.NATS.URL != "nats://127.0.0.1:4222" {
		t.Errorf("messaging = %+v", m)
	}
	if c.Database.URL != "mysql://root@127.0.0.1:3306/test" || c.Database.Type != "mysql" {
		t.Errorf("database = %+v", c.Database)
	}
	_, err = config.Parse([]byte("name: shop\n"), "shoal.yml", config.Options{LookupEnv: env(map[string]string{"MESSAGE_QUEUE_TYPE": "zeromq"})})
	if err == nil || !strings.Contains(err.Error(), `environment variable MESSAGE_QUEUE_TYPE: messaging.type: "zeromq" is not one of`) {
		t.Errorf("a bad override must name the variable: %v", err)
	}
}

func TestLoad_DotEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "shoal.yml")
	must(t, os.WriteFile(path, []byte("name: ${SERVICE}\nserver:\n  port: ${PORT}\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, ".env"), []byte("# local settings\nSERVICE=from-dotenv\nPORT=4000\nNATS_URL=nats://127.0.0.1:4333\n"), 0o644))
	// The process environment wins over .env.
	c, err := config.Load(path, config.Options{LookupEnv: env(map[string]string{"PORT": "5000"})})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "from-dotenv" || c.Server.Port != 5000 || c.Messaging.NATS.URL != "nats://127.0.0.1:4333" {
		t.Errorf("name %q port %d nats %q", c.Name, c.Server.Port, c.Messaging.NATS.URL)
	}
	if _, err := config.Load(path, config.Options{NoDotEnv: true, LookupEnv: env(nil)}); err == nil {
		t.Error("without .env the variables are unset and loading must fail")
	}
}

func TestLoad_Defaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte("name: shop\nhealth:\n  checks:\n    - {name: db, type: database}\n"), "shoal.yml", config.Options{LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	d := config.Default()
	d.Name = "shop"
	d.Scaling.ServiceDiscovery.ServiceName = "shop"
	d.Scaling.ServiceDiscovery.DNS.Name = "shop"
	d.Messaging.Kafka.ConsumerGroup = "shop"
	ch := c.Health.Checks[0]
	if !ch.Critical || ch.Timeout.D() != 5*time.Second {
		t.Errorf("a list item must get its defaults: %+v", ch)
	}
	c.Health.Checks = nil
	c.Meta = d.Meta
	if !reflect.DeepEqual(c, d) {
		a, _ := json.MarshalIndent(c, "", " ")
		b, _ := json.MarshalIndent(d, "", " ")
		t.Errorf("a minimal file must equal the defaults:\n%s\n---\n%s", a, b)
	}
	if c.Server.Port != 3000 || c.Scaling.LoadBalancer.Algorithm != "round_robin" || c.Admin.Listen != "127.0.0.1:9900" ||
		!c.Scaling.LoadBalancer.CircuitBreaker.Enabled || c.Scaling.Instances.MinInstances != 1 {
		t.Errorf("defaults: %+v", c)
	}
	// An explicit false beats a default of true.
	c, err = config.Parse([]byte("name: shop\nscaling:\n  load_balancer:\n    circuit_breaker:\n      enabled: false\n"), "shoal.yml", config.Options{LookupEnv: env(nil)})
	if err != nil || c.Scaling.LoadBalancer.CircuitBreaker.Enabled {
		t.Errorf("explicit false lost: %v", err)
	}
}

func TestConfig_Redacted(t *testing.T) {
	t.Parallel()
	src := `
name: shop
database:
  url: "postgres://app:hunter2@db:5432/shop"
  password: "hunter2"
  read_replicas: ["postgres://ro:hunter2@replica/shop"]
messaging:
  type: rabbitmq
  rabbitmq: {url: "amqp://guest:hunter2@127.0.0.1:5672"}
scaling:
  service_discovery:
    consul: {token: "hunter2"}
app:
  env: {API_TOKEN: hunter2, STRIPE_SECRET_KEY: hunter2, LOG_LEVEL: debug}
`
	c, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	b, _ := json.Marshal(r)
	if strings.Contains(string(b), "hunter2") {
		t.Fatalf("a secret survived redaction: %s", b)
	}
	if r.Database.URL != "postgres://app:[redacted]@db:5432/shop" || r.App.Env["LOG_LEVEL"] != "debug" {
		t.Errorf("redaction must keep what is not secret: %q %v", r.Database.URL, r.App.Env)
	}
	if c.Database.Password != "hunter2" {
		t.Error("Redacted must not change the original")
	}
}

// TestLoad_Invalid checks each broken file against its golden list of problems.
// Regenerate with: go test ./config -run TestLoad_Invalid -update
func TestLoad_Invalid(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../testdata/invalid/*.yml")
	if err != nil || len(files) < 12 {
		t.Fatalf("want at least a dozen invalid files, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		name := strings.TrimPrefix(f, "../")
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = config.ParseAll(data, name, config.Options{LookupEnv: env(nil)})
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *config.Error, got %v", err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yml") + ".golden"
			if *update {
				must(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ from %s:\ngot:\n%swant:\n%s", golden, got, want)
			}
			for _, p := range ce.Problems {
				if p.File != name || p.Line < 1 || p.Column < 1 {
					t.Errorf("problem without a position: %+v", p)
				}
			}
		})
	}
}

func TestSchema_UpToDate(t *testing.T) {
	t.Parallel()
	got, err := config.GenerateSchema(".")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(config.Schema()) {
		t.Fatal("config/schema.json is stale; run `go generate ./config`")
	}
	var s map[string]any
	if err := json.Unmarshal(got, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	defs := s["$defs"].(map[string]any)
	lb := defs["LoadBalancer"].(map[string]any)["properties"].(map[string]any)["algorithm"].(map[string]any)
	if len(lb["enum"].([]any)) != len(config.Algorithms) || lb["description"] == "" {
		t.Errorf("algorithm schema lacks enum or description: %v", lb)
	}
}

func TestStarter_IsValid(t *testing.T) {
	t.Parallel()
	if _, err := config.ParseAll(config.Starter("My Service"), "shoal.yml", config.Options{LookupEnv: env(nil)}); err != nil {
		t.Fatalf("the starter written by shoal init must be valid: %v", err)
	}
	// The package form, so shoal builds once and samples the service's own process, not a
	// `go run` wrapper; liveness on /live, which does not aggregate dependencies.
	c, err := config.Parse(config.Starter("svc"), "shoal.yml", config.Options{LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if got := []string(c.App.Command); len(got) != 1 || got[0] != "." {
		t.Errorf("the starter's app.command is %q; want the package form \".\"", got)
	}
	if st := c.Scaling.Instances.Startup; st.LivenessProbe != "/live" || st.ReadinessProbe != "/ready" {
		t.Errorf("the starter's probes are readiness %s, liveness %s; want /ready and /live", st.ReadinessProbe, st.LivenessProbe)
	}
}

func TestDefaults_LivenessIsLive(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte("name: svc\n"), "shoal.yml", config.Options{LookupEnv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Scaling.Instances.Startup.LivenessProbe != "/live" || c.Deploy.Autoscaler != config.AutoscalerAuto {
		t.Errorf("defaults: liveness_probe %q, deploy.autoscaler %q", c.Scaling.Instances.Startup.LivenessProbe, c.Deploy.Autoscaler)
	}
	_, err = config.Parse([]byte("name: svc\ndeploy: {autoscaler: both}\n"), "shoal.yml", config.Options{LookupEnv: env(nil)})
	if err == nil || !strings.Contains(err.Error(), "use auto, hpa or keda") {
		t.Errorf("deploy.autoscaler: both = %v; want it refused", err)
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "300s": 5 * time.Minute, "1h": time.Hour,
		"7d": 7 * 24 * time.Hour, "1.5h": 90 * time.Minute, "250ms": 250 * time.Millisecond} {
		got, err := config.ParseDuration(in)
		if err != nil || got.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got.D(), err, want)
		}
	}
	for _, in := range []string{"", "30", "5 minutes", "s", "1e400d", "xd"} {
		if _, err := config.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) must fail", in)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	t.Parallel()
	got, err := config.SplitCommand(`./bin/api --name "my app" --path='/a b' x\ y`)
	want := []string{"./bin/api", "--name", "my app", "--path=/a b", "x y"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("SplitCommand = %q, %v", got, err)
	}
	if _, err := config.SplitCommand(`echo "unterminated`); err == nil {
		t.Error("unterminated quote must fail")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestReferences(t *testing.T) {
	t.Parallel()
	got := config.References("postgres://${DB_USER:-app}:${DB_PASSWORD}@$$host/${9bad}/${DB:?say which}$")
	want := []config.Reference{
		{Name: "DB_USER", Valid: true, Op: ":-", Arg: "app", Start: 11, End: 26},
		{Name: "DB_PASSWORD", Valid: true, Start: 27, End: 41},
		{Name: "9bad", Valid: false, Start: 49, End: 56},
		{Name: "DB", Valid: true, Op: ":?", Arg: "say which", Start: 57, End: 73},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("References:\n got %+v\nwant %+v", got, want)
	}
	if !got[0].HasDefault() || got[1].HasDefault() {
		t.Error("HasDefault")
	}
}

// Whatever came from the environment is never printed, whatever its name; every URL field has
// its userinfo and secret-looking query parameters masked (issue 10: a DSN in app.env, a
// GITHUB_PAT, ?password= beside user:pw@, and a static instance's user:password@ were printed).
func TestConfig_RedactedInterpolatedAndURLs(t *testing.T) {
	t.Parallel()
	src := `
name: shop
app:
  env:
    DSN: "${DSN}"
    GITHUB_PAT: "${GITHUB_PAT}"
    AWS_ACCESS_KEY_ID: "${AWS_ACCESS_KEY_ID}"
    GREETING: "hello"
  command: ["./app", "--upstream", "https://ghp_hunter2@github.com/x"]
database:
  url: "postgres://app:hunter2@db:5432/shop?sslmode=disable&password=hunter2"
scaling:
  service_discovery:
    static:
      instances:
        - url: "http://admin:hunter2@127.0.0.1:9001"
        - url: "http://127.0.0.1:9002/?token=hunter2"
`
	vars := map[string]string{"DSN": "mysql://root:hunter2@tcp(db)/app", "GITHUB_PAT": "ghp_hunter2", "AWS_ACCESS_KEY_ID": "AKIAhunter2"}
	c, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: env(vars)})
	if err != nil {
		t.Fatal(err)
	}
	if c.App.Env["GITHUB_PAT"] != "ghp_hunter2" {
		t.Fatalf("the configuration itself must keep the value: %q", c.App.Env["GITHUB_PAT"])
	}
	r := c.Redacted()
	b, _ := json.Marshal(r)
	if strings.Contains(string(b), "hunter2") {
		t.Fatalf("a secret survived redaction: %s", b)
	}
	if got := r.App.Env["GITHUB_PAT"]; got != "${GITHUB_PAT}" {
		t.Errorf("an interpolated value is shown as %q, want the variable it came from", got)
	}
	if got := r.App.Env["GREETING"]; got != "hello" {
		t.Errorf("a plain value must stay: %q", got)
	}
	if got := r.Scaling.ServiceDiscovery.Static.Instances[0].URL; got != "http://admin:[redacted]@127.0.0.1:9001" {
		t.Errorf("static instance URL: %q", got)
	}
}

// One large value aliased many times is few nodes but many bytes: the loader stops at a bound
// on the expanded size, and its error stays small, quoting only the start of any value (issue
// 10: 3 MiB aliased 1,000 times grew to 6 GB; 10 times printed 31 MB of errors).
func TestParse_AliasAmplificationIsBounded(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 3<<20)
	for _, n := range []int{10, 1000} {
		doc := "name: shop\nx: &a \"" + big + "\"\nhealth:\n  checks: [" + strings.TrimSuffix(strings.Repeat("*a, ", n), ", ") + "]\n"
		_, err := config.Parse([]byte(doc), "shoal.yml", config.Options{LookupEnv: env(nil)})
		if err == nil {
			t.Fatalf("×%d: accepted", n)
		}
		msg := err.Error()
		if len(msg) > 64<<10 {
			t.Fatalf("×%d: the error is %d bytes", n, len(msg))
		}
		if n == 1000 && !strings.Contains(msg, "too large") {
			t.Errorf("×%d: the error does not say the document is too large:\n%.2000s", n, msg)
		}
	}
}
