package backends_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
	_ "github.com/shoal-sh/shoal/discovery/backends"
)

func parse(t *testing.T, yml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yml), "test.yml", config.Options{NoDotEnv: true})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestEveryMethod: every method of the configuration opens a provider
// without touching the network, says where it finds instances, and has a
// registrar or says why not.
func TestEveryMethod(t *testing.T) {
	if got := strings.Join(discovery.Methods(), " "); got != "consul dns etcd kubernetes static" {
		t.Fatalf("methods %q", got)
	}
	for method, want := range map[string]string{
		"static":     "static list",
		"dns":        "dns A records of api",
		"etcd":       "etcd [127.0.0.1:2379] /shoal/services/api/",
		"consul":     "consul 127.0.0.1:8500",
		"kubernetes": "kubernetes EndpointSlices of default/api",
	} {
		cfg := parse(t, "name: api\nscaling:\n  service_discovery:\n    method: "+method+"\n")
		if got := discovery.Describe(cfg); !strings.HasPrefix(got, want) {
			t.Errorf("%s: Describe = %q, want it to start with %q", method, got, want)
		}
		_, err := discovery.NewRegistrar(cfg, discovery.BackendOptions{})
		switch method {
		case "static", "kubernetes", "dns": // dns: no update.server
			if !errors.Is(err, discovery.ErrNoRegistry) {
				t.Errorf("%s: NewRegistrar = %v, want ErrNoRegistry", method, err)
			}
		default:
			if err != nil {
				t.Errorf("%s: NewRegistrar: %v", method, err)
			}
		}
		if method == "kubernetes" {
			continue // needs a cluster or kubeconfig: TestKubernetesWithoutCluster
		}
		if _, err := discovery.NewProvider(cfg, discovery.BackendOptions{}); err != nil {
			t.Errorf("%s: NewProvider: %v", method, err)
		}
	}
}

func TestKubernetesWithoutCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", t.TempDir()+"/none")
	cfg := parse(t, "name: api\nscaling:\n  service_discovery:\n    method: kubernetes\n")
	_, err := discovery.NewProvider(cfg, discovery.BackendOptions{})
	if err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("NewProvider outside a cluster: %v, want an error naming the kubeconfig setting", err)
	}
}
