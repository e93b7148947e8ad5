package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/config"
)

// upstreamHost matches the host of an upstream server line that is a name, not an address.
var upstreamHost = regexp.MustCompile(`(?m)^(\s+server )([a-z][-a-z0-9.]*):`)

// nginxTest runs `nginx -t` on conf. nginx resolves upstream host names when it loads its
// configuration, and the compose service names (app) resolve only inside the compose network;
// so, as the issue asks, the upstreams are put on localhost first: every `server NAME:PORT`
// becomes `server 127.0.0.1:PORT` and nothing else changes. The prefix, pid file and error
// log go to a temporary directory, so the test needs no root and touches no system file.
func nginxTest(t *testing.T, nginx string, conf []byte) (string, error) {
	t.Helper()
	dir := t.TempDir()
	local := upstreamHost.ReplaceAll(conf, []byte("${1}127.0.0.1:"))
	p := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(p, local, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-q", "-p", dir, "-c", p, "-e", "stderr",
		"-g", "pid "+filepath.Join(dir, "nginx.pid")+";").CombinedOutput()
	return string(out), err
}

// TestNginx_ConfigTest validates every generated nginx.conf with the real nginx.
func TestNginx_ConfigTest(t *testing.T) {
	t.Parallel()
	nginx := tool(t, "nginx", "apt-get install -y nginx", "/usr/sbin")
	for _, fx := range fixtures {
		for _, target := range []string{Nginx, Compose} {
			t.Run(fx.name+"/"+target, func(t *testing.T) {
				t.Parallel()
				for _, f := range generate(t, fx, target).Files {
					if f.Path != "nginx.conf" {
						continue
					}
					if out, err := nginxTest(t, nginx, f.Data); err != nil {
						t.Fatalf("nginx -t: %v\n%s\n%s", err, out, f.Data)
					}
				}
			})
		}
	}
	for _, algo := range config.Algorithms {
		t.Run("algorithm "+algo, func(t *testing.T) {
			t.Parallel()
			c := load(t, fixtures[4])
			c.Scaling.LoadBalancer.Algorithm = algo
			out, err := Generate(c, Nginx, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if out, err := nginxTest(t, nginx, out.Files[0].Data); err != nil {
				t.Fatalf("nginx -t: %v\n%s", err, out)
			}
		})
	}
	t.Run("a broken configuration fails", func(t *testing.T) {
		t.Parallel()
		conf := generate(t, fixtures[0], Nginx).Files[0].Data
		broken := strings.Replace(string(conf), "keepalive 32;", "keepalive thirty-two;", 1)
		if out, err := nginxTest(t, nginx, []byte(broken)); err == nil {
			t.Fatalf("nginx -t accepted an invalid keepalive: %s", out)
		}
	})
}
