package deploy

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/shoal-sh/shoal/config"
)

// Images of the development stack's services, pinned to a major version.
const (
	nginxImage    = "nginx:1.27-alpine"
	postgresImage = "postgres:17-alpine"
	mysqlImage    = "mysql:8.4"
	mongoImage    = "mongo:7"
	redisImage    = "redis:7-alpine"
)

// composeFile is a docker-compose.yml: the subset of the Compose Specification shoal writes.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]composeVolume  `json:"volumes,omitempty"`
}

// composeService is one service of a compose file.
type composeService struct {
	Image           string                       `json:"image,omitempty"`
	Build           string                       `json:"build,omitempty"`
	Environment     map[string]*string           `json:"environment,omitempty"`
	Expose          []string                     `json:"expose,omitempty"`
	Ports           []string                     `json:"ports,omitempty"`
	Volumes         []string                     `json:"volumes,omitempty"`
	DependsOn       map[string]composeDependency `json:"depends_on,omitempty"`
	Healthcheck     *composeHealthcheck          `json:"healthcheck,omitempty"`
	Deploy          *composeDeploy               `json:"deploy,omitempty"`
	StopGracePeriod string                       `json:"stop_grace_period,omitempty"`
	Restart         string                       `json:"restart,omitempty"`
}

// composeDependency makes a service wait for another.
type composeDependency struct {
	Condition string `json:"condition"`
}

// composeHealthcheck is a container health check.
type composeHealthcheck struct {
	Test        []string `json:"test"`
	Interval    string   `json:"interval,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`
	Retries     int      `json:"retries,omitempty"`
	StartPeriod string   `json:"start_period,omitempty"`
}

// composeDeploy is the deploy section: replicas, restart policy and resource limits.
type composeDeploy struct {
	Replicas      *int                  `json:"replicas,omitempty"`
	RestartPolicy *composeRestartPolicy `json:"restart_policy,omitempty"`
	Resources     *composeResources     `json:"resources,omitempty"`
}

// composeRestartPolicy restarts failed containers.
type composeRestartPolicy struct {
	Condition   string `json:"condition"`
	Delay       string `json:"delay,omitempty"`
	MaxAttempts int    `json:"max_attempts,omitempty"`
	Window      string `json:"window,omitempty"`
}

// composeResources are resource limits.
type composeResources struct {
	Limits *composeAmounts `json:"limits,omitempty"`
}

// composeAmounts are CPUs (a decimal number of cores) and memory (bytes with a unit).
type composeAmounts struct {
	CPUs   string `json:"cpus,omitempty"`
	Memory string `json:"memory,omitempty"`
}

// composeVolume is a named volume with default options.
type composeVolume struct{}

// composeDB is the database service of the stack.
type composeDB struct {
	service, image, volume, mount string
	env                           map[string]*string
	test                          []string
	url                           string
	// pwVar is the environment variable holding the password.
	pwVar string
}

// composeFiles is the compose target: docker-compose.yml with the app (min_instances replicas,
// healthcheck, limits), nginx in front, the database and Redis the configuration uses, and the
// nginx.conf it mounts.
func (s *spec) composeFiles() ([]File, error) {
	c := s.c
	str := func(v string) *string { return &v }
	in := c.Scaling.Instances
	hc := c.Scaling.ServiceDiscovery.HealthCheck
	port := strconv.Itoa(int(s.port))

	env := map[string]*string{"PORT": str(port)}
	if s.env != "" {
		env["SHOAL_ENV"] = str(s.env)
		env["ENVIRONMENT"] = str(s.env)
	}
	for _, v := range s.secrets {
		if v.Optional {
			env[v.Name] = nil // passed on from the environment when set there
		} else {
			env[v.Name] = str(requiredVar(v.Name))
		}
	}
	for _, e := range s.appEnv {
		switch {
		case e.Secret:
			env[e.Key] = str(requiredVar(e.Key))
		case e.Template != "":
			if refs := references(e.Template); len(refs) == 1 && refs[0].whole && !refs[0].hasDefault && refs[0].name == e.Key {
				continue // set above, from the environment
			}
			// Compose expands ${VAR}, ${VAR:-default} and $$ as shoal does.
			env[e.Key] = str(e.Template)
		default:
			env[e.Key] = str(composeEscape(e.Value))
		}
	}
	s.literalSecrets()

	app := composeService{
		Build:       ".",
		Image:       s.image,
		Environment: env,
		Expose:      []string{port},
		Healthcheck: &composeHealthcheck{
			Test:        []string{"CMD", "curl", "-fsS", "http://localhost:" + port + in.Startup.ReadinessProbe},
			Interval:    hc.Interval.String(),
			Timeout:     hc.Timeout.String(),
			Retries:     hc.UnhealthyThreshold,
			StartPeriod: in.Startup.InitialDelay.String(),
		},
		Deploy: &composeDeploy{
			Replicas:      ptr(in.MinInstances),
			RestartPolicy: &composeRestartPolicy{Condition: "on-failure", Delay: "5s", MaxAttempts: 3, Window: "120s"},
		},
		StopGracePeriod: fmt.Sprintf("%ds", s.terminationGrace()),
	}
	limits, err := composeLimits(c.Deploy.Resources.Limits)
	if err != nil {
		return nil, err
	}
	if limits != nil {
		app.Deploy.Resources = &composeResources{Limits: limits}
	}

	services := map[string]composeService{"app": app}
	volumes := map[string]composeVolume{}
	deps := map[string]composeDependency{}
	if db := s.composeDatabase(); db != nil {
		services[db.service] = composeService{Image: db.image, Environment: db.env,
			Volumes: []string{db.volume + ":" + db.mount}, Restart: "unless-stopped",
			Healthcheck: &composeHealthcheck{Test: db.test, Interval: "10s", Timeout: "5s", Retries: 5, StartPeriod: "30s"}}
		volumes[db.volume] = composeVolume{}
		deps[db.service] = composeDependency{Condition: "service_healthy"}
		env["DATABASE_URL"] = str(db.url)
	}
	if s.usesRedis() {
		services["redis"] = composeService{Image: redisImage, Volumes: []string{"redis_data:/data"}, Restart: "unless-stopped",
			Healthcheck: &composeHealthcheck{Test: []string{"CMD", "redis-cli", "ping"}, Interval: "10s", Timeout: "3s", Retries: 5}}
		volumes["redis_data"] = composeVolume{}
		deps["redis"] = composeDependency{Condition: "service_healthy"}
	}
	if len(deps) > 0 {
		app.DependsOn = deps
		services["app"] = app
	}
	if t := c.Messaging.Type; t != config.MessagingMemory {
		s.warn("messaging.type", "the development stack has no %s broker; the app reaches the one its configuration (or %s) names", t, map[string]string{
			config.MessagingKafka: "KAFKA_BROKERS", config.MessagingRabbitMQ: "RABBITMQ_URL", config.MessagingNATS: "NATS_URL"}[t])
	}
	services["nginx"] = composeService{
		Image:     nginxImage,
		Ports:     []string{strconv.Itoa(int(s.servicePort)) + ":80"},
		Volumes:   []string{"./nginx.conf:/etc/nginx/nginx.conf:ro"},
		DependsOn: map[string]composeDependency{"app": {Condition: "service_healthy"}},
		Restart:   "unless-stopped",
		Healthcheck: &composeHealthcheck{Test: []string{"CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1" + c.Health.Endpoint},
			Interval: hc.Interval.String(), Timeout: hc.Timeout.String(), Retries: hc.UnhealthyThreshold},
	}
	cf := composeFile{Name: s.name, Services: services}
	if len(volumes) > 0 {
		cf.Volumes = volumes
	}
	tree, err := toTree(cf)
	if err != nil {
		return nil, err
	}
	comment := "# The app's image is built from the Dockerfile beside this file; its healthcheck runs curl in it.\n" +
		"# nginx (nginx.conf beside this file) publishes the app on port " + strconv.Itoa(int(s.servicePort)) + ".\n"
	f, err := s.treeFile("docker-compose.yml", tree, comment)
	if err != nil {
		return nil, err
	}
	var required []string
	for _, svc := range services {
		for _, v := range svc.Environment {
			if v != nil {
				required = append(required, requiredVars(*v)...)
			}
		}
	}
	if len(required) > 0 {
		slices.Sort(required)
		s.notes = append(s.notes, "export "+strings.Join(slices.Compact(required), ", ")+" (or put them in .env beside docker-compose.yml): the stack reads secrets from the environment, never from the file")
	}
	app1 := []upstreamServer{{addr: net.JoinHostPort("app", port), weight: 1}}
	return []File{f, {Path: "nginx.conf", Data: s.nginxConf(app1)}}, nil
}

// composeDatabase is the database of the stack: database.type's server, or PostgreSQL (the
// seed's development stack) when no database is configured but a database health check is.
// SQLite needs none. The password comes from the environment variable database.password
// names (${DB_PASSWORD}), else DB_PASSWORD; the app's DATABASE_URL points at the stack's server.
func (s *spec) composeDatabase() *composeDB {
	db := s.c.Database
	kind := db.Type
	if kind == "" && db.URL == "" {
		for _, ch := range s.c.Health.Checks {
			if ch.Type == config.CheckDatabase {
				kind = config.DatabasePostgres
			}
		}
	}
	pwVar := "DB_PASSWORD"
	if refs := references(s.c.Meta.Templates["database.password"]); len(refs) == 1 && refs[0].whole {
		pwVar = refs[0].name
	}
	user := firstOf(db.User, "app")
	name := firstOf(db.Name, strings.ReplaceAll(s.name, "-", "_"))
	pw := requiredVar(pwVar)
	str := func(v string) *string { return &v }
	userinfo := composeEscape(url.PathEscape(user)) + ":${" + pwVar + "}"
	switch kind {
	case config.DatabasePostgres:
		return &composeDB{service: "postgres", pwVar: pwVar, image: postgresImage, volume: "postgres_data", mount: "/var/lib/postgresql/data",
			env:  map[string]*string{"POSTGRES_DB": str(composeEscape(name)), "POSTGRES_USER": str(composeEscape(user)), "POSTGRES_PASSWORD": str(pw)},
			test: []string{"CMD-SHELL", `pg_isready -U "$${POSTGRES_USER}" -d "$${POSTGRES_DB}"`},
			url:  "postgres://" + userinfo + "@postgres:5432/" + composeEscape(url.PathEscape(name)) + "?sslmode=disable"}
	case config.DatabaseMySQL:
		return &composeDB{service: "mysql", pwVar: pwVar, image: mysqlImage, volume: "mysql_data", mount: "/var/lib/mysql",
			env: map[string]*string{"MYSQL_DATABASE": str(composeEscape(name)), "MYSQL_USER": str(composeEscape(user)),
				"MYSQL_PASSWORD": str(pw), "MYSQL_RANDOM_ROOT_PASSWORD": str("yes")},
			test: []string{"CMD-SHELL", `mysqladmin ping -h 127.0.0.1 -u"$${MYSQL_USER}" -p"$${MYSQL_PASSWORD}" --silent`},
			url:  "mysql://" + userinfo + "@mysql:3306/" + composeEscape(url.PathEscape(name))}
	case config.DatabaseMongoDB:
		return &composeDB{service: "mongodb", pwVar: pwVar, image: mongoImage, volume: "mongodb_data", mount: "/data/db",
			env: map[string]*string{"MONGO_INITDB_DATABASE": str(composeEscape(name)), "MONGO_INITDB_ROOT_USERNAME": str(composeEscape(user)),
				"MONGO_INITDB_ROOT_PASSWORD": str(pw)},
			test: []string{"CMD", "mongosh", "--quiet", "--eval", "db.adminCommand('ping')"},
			url:  "mongodb://" + userinfo + "@mongodb:27017/" + composeEscape(url.PathEscape(name)) + "?authSource=admin"}
	}
	return nil
}

// usesRedis reports whether a health check or the configuration reaches Redis.
func (s *spec) usesRedis() bool {
	for _, ch := range s.c.Health.Checks {
		if strings.HasPrefix(ch.URL, "redis://") || strings.HasPrefix(ch.URL, "rediss://") {
			return true
		}
	}
	return false
}

// requiredVar is a compose reference to a variable that must be set when the stack starts.
func requiredVar(name string) string {
	return "${" + name + ":?set " + name + " or put it in .env}"
}

// requiredVars lists the variables a compose value requires: ${NAME:?message}, and
// ${NAME} without a default.
func requiredVars(v string) []string {
	var names []string
	for _, r := range references(v) {
		if !r.hasDefault {
			names = append(names, r.name)
		}
	}
	return names
}

// composeEscape protects a literal from compose's interpolation: $ becomes $$.
func composeEscape(v string) string { return strings.ReplaceAll(v, "$", "$$") }

// composeLimits converts deploy.resources.limits into compose units: CPUs as a decimal
// number of cores, memory in bytes with a binary unit.
func composeLimits(a config.ResourceAmounts) (*composeAmounts, error) {
	out := &composeAmounts{}
	if a.CPU != "" {
		q, err := resource.ParseQuantity(a.CPU)
		if err != nil {
			return nil, fmt.Errorf("deploy.resources.limits.cpu: %q is not a Kubernetes quantity", a.CPU)
		}
		out.CPUs = strconv.FormatFloat(float64(q.MilliValue())/1000, 'f', -1, 64)
	}
	if a.Memory != "" {
		q, err := resource.ParseQuantity(a.Memory)
		if err != nil {
			return nil, fmt.Errorf("deploy.resources.limits.memory: %q is not a Kubernetes quantity", a.Memory)
		}
		b := q.Value()
		switch {
		case b%(1<<30) == 0:
			out.Memory = fmt.Sprintf("%dg", b>>30)
		case b%(1<<20) == 0:
			out.Memory = fmt.Sprintf("%dm", b>>20)
		default:
			out.Memory = fmt.Sprintf("%db", b)
		}
	}
	if *out == (composeAmounts{}) {
		return nil, nil
	}
	return out, nil
}
