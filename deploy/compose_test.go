package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeOf generates a fixture's compose target and decodes docker-compose.yml strictly.
func composeOf(t *testing.T, fx fixture) (*composeFile, *Output) {
	t.Helper()
	out := generate(t, fx, Compose)
	var cf composeFile
	for _, f := range out.Files {
		if f.Path == "docker-compose.yml" {
			if err := yaml.UnmarshalStrict(f.Data, &cf); err != nil {
				t.Fatalf("docker-compose.yml does not decode strictly: %v", err)
			}
		}
	}
	return &cf, out
}

// TestCompose_References checks that the development stack fits together: replicas from the
// environment, a healthcheck on every service, dependencies and volumes that exist, nginx
// mounting the nginx.conf written beside it and proxying to the app's port.
func TestCompose_References(t *testing.T) {
	t.Parallel()
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			c := load(t, fx)
			cf, out := composeOf(t, fx)
			app, ok := cf.Services["app"]
			if !ok || app.Deploy == nil || *app.Deploy.Replicas != c.Scaling.Instances.MinInstances {
				t.Fatalf("app service %+v does not run min_instances %d replicas", app, c.Scaling.Instances.MinInstances)
			}
			if len(app.Ports) != 0 {
				t.Error("the app publishes a host port, which replicas cannot share")
			}
			for name, svc := range cf.Services {
				if svc.Healthcheck == nil || len(svc.Healthcheck.Test) == 0 {
					t.Errorf("service %s has no healthcheck", name)
				}
				for dep, cond := range svc.DependsOn {
					if _, ok := cf.Services[dep]; !ok || cond.Condition != "service_healthy" {
						t.Errorf("service %s depends on %s (%s)", name, dep, cond.Condition)
					}
				}
				for _, v := range svc.Volumes {
					src, _, _ := strings.Cut(v, ":")
					if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
						if _, ok := cf.Volumes[src]; !ok {
							t.Errorf("service %s mounts volume %s, which is not declared", name, src)
						}
					}
				}
			}
			nginx := cf.Services["nginx"]
			if len(nginx.Volumes) != 1 || !strings.HasPrefix(nginx.Volumes[0], "./nginx.conf:") {
				t.Errorf("nginx mounts %v", nginx.Volumes)
			}
			var conf string
			for _, f := range out.Files {
				if f.Path == "nginx.conf" {
					conf = string(f.Data)
				}
			}
			if !strings.Contains(conf, "server app:"+app.Expose[0]+" ") {
				t.Errorf("nginx.conf does not proxy to app:%s:\n%s", app.Expose[0], conf)
			}
		})
	}
}

// dockerCompose returns the command line of Compose v2 (the docker plugin or the standalone
// binary), which parses a compose file without an engine, or skips the test.
func dockerCompose(t *testing.T) []string {
	t.Helper()
	if out, err := exec.Command("docker", "compose", "version", "--short").Output(); err == nil && strings.HasPrefix(strings.TrimSpace(string(out)), "2") {
		return []string{"docker", "compose"}
	}
	if out, err := exec.Command("docker-compose", "version", "--short").Output(); err == nil && strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(string(out), "v")), "2") {
		return []string{"docker-compose"}
	}
	t.Skip("Docker Compose v2 is not installed (neither `docker compose` nor a v2 `docker-compose`); skipping `docker compose config`")
	return nil
}

// TestCompose_Config has Docker Compose parse and validate each generated file.
func TestCompose_Config(t *testing.T) {
	t.Parallel()
	compose := dockerCompose(t)
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out := generate(t, fx, Compose)
			writeFiles(t, dir, out.Files)
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := append(compose[1:], "-f", filepath.Join(dir, "docker-compose.yml"), "config", "-q")
			cmd := exec.Command(compose[0], args...)
			cmd.Env = os.Environ()
			for _, v := range []string{"DB_PASSWORD", "API_KEY", "UPSTREAM_TOKEN", "DATABASE_URL"} {
				cmd.Env = append(cmd.Env, v+"=placeholder")
			}
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("docker compose config: %v\n%s", err, b)
			}
		})
	}
}
