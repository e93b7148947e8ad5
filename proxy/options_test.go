package proxy

import (
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
)

func TestFromConfig(t *testing.T) {
	t.Parallel()
	src := `
name: shop
server: {max_body_bytes: 2048}
scaling:
  service_discovery:
    health_check: {endpoint: /healthz, timeout: 2s, healthy_threshold: 4, unhealthy_threshold: 5}
  load_balancer:
    algorithm: p2c_ewma
    health_check_interval: 3s
    upstream_protocol: h2c
    retry: {attempts: 2, max_body_bytes: 0, try_timeout: 1s}
`
	c, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	o := FromConfig(c)
	if o.Algorithm != "p2c_ewma" || !o.H2C || o.MaxBodyBytes != 2048 {
		t.Errorf("options: %+v", o)
	}
	want := HealthCheck{Path: "/healthz", Interval: 3 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 4, UnhealthyThreshold: 5}
	if o.HealthCheck != want {
		t.Errorf("health check %+v, want %+v", o.HealthCheck, want)
	}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	// max_body_bytes: 0 means "keep no body for replay", not "use the default".
	if o.Retry.MaxBodyBytes != 0 || o.Retry.Attempts != 2 || o.Retry.TryTimeout != time.Second || !o.Breaker.Enabled {
		t.Errorf("retry %+v breaker %+v", o.Retry, o.Breaker)
	}
}
