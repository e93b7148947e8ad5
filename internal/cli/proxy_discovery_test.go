package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/discovery"
)

// runProxy runs `shoal proxy` on cfg until the test ends; it returns the proxy's and the
// metrics listener's addresses and the log.
func runProxy(t *testing.T, cfg string) (listen, metrics string, log *syncBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shoal.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	listen, metrics = freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	log = new(syncBuffer)
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: log, getenv: func(string) (string, bool) { return "", false }}
	done := make(chan int, 1)
	go func() {
		done <- a.run(ctx, []string{"proxy", "-f", path, "--listen", listen, "--metrics-listen", metrics})
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != ExitOK {
			t.Errorf("exit %d: %s", code, log.String())
		}
	})
	return listen, metrics, log
}

// discoveryStatus polls GET /discovery until cond holds.
func discoveryStatus(t *testing.T, metrics string, cond func(discovery.SourceStatus) bool) discovery.SourceStatus {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var st discovery.SourceStatus
	for {
		if resp, err := http.Get("http://" + metrics + "/discovery"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if cond(st) {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery status %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProxyCommand_ConsulDiscovery runs `shoal proxy` with method consul against an
// in-test HTTP server answering the one call the provider makes, the blocking health
// query (a stand-in: no Consul agent can run here; discovery/consul's tests cover the API
// in depth against a fuller fake): the instance it lists gets the traffic, and /discovery
// says where the set came from.
func TestProxyCommand_ConsulDiscovery(t *testing.T) {
	t.Parallel()
	inst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "consul-instance") }))
	t.Cleanup(inst.Close)
	host, port, _ := net.SplitHostPort(inst.Listener.Addr().String())
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/health/service/shop" || !r.URL.Query().Has("passing") {
			http.Error(w, "not implemented by this stand-in", http.StatusNotImplemented)
			return
		}
		if r.URL.Query().Get("index") == "7" { // nothing changes: hold the query as the agent does
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Second):
			}
		}
		w.Header().Set("X-Consul-Index", "7")
		fmt.Fprintf(w, `[{"Node": {"Node": "n1", "Address": "127.0.0.1"}, "Service": {"ID": "shop-1", "Service": "shop", "Address": %q, "Port": %s, "Weights": {"Passing": 1}}, "Checks": []}]`, host, port)
	}))
	t.Cleanup(agent.Close)
	listen, metrics, log := runProxy(t, fmt.Sprintf(`name: shop
scaling:
  service_discovery:
    method: consul
    health_check: {endpoint: "/"}
    consul: {address: %q}
  instances: {shutdown: {drain_timeout: 1s}}
`, agent.Listener.Addr().String()))
	st := discoveryStatus(t, metrics, func(s discovery.SourceStatus) bool { return s.Synced && s.Instances == 1 })
	if !strings.HasPrefix(st.Source, "consul "+agent.Listener.Addr().String()) {
		t.Errorf("source %q", st.Source)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + listen + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "consul-instance" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consul instance got no request: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProxyCommand_RegistryUnreachableAtStart: with etcd not listening, `shoal proxy` starts
// anyway with no instances, warns, and /discovery shows the error.
func TestProxyCommand_RegistryUnreachableAtStart(t *testing.T) {
	t.Parallel()
	dead := freeAddr(t) // nothing listens there
	_, metrics, log := runProxy(t, fmt.Sprintf(`name: shop
scaling:
  service_discovery:
    method: etcd
    etcd: {endpoints: [%q], dial_timeout: 500ms}
  instances: {shutdown: {drain_timeout: 1s}}
`, dead))
	st := discoveryStatus(t, metrics, func(s discovery.SourceStatus) bool { return s.Error != "" })
	if st.Synced || !strings.Contains(st.Error, dead) {
		t.Errorf("status %+v, want an error naming %s and no set", st, dead)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "service discovery failed; keeping the last known instances") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning logged:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPrintStatus_Discovery: `shoal scaling status` says where the instances come from, when
// the set last changed, and the source's error while the last good set stays in use.
func TestPrintStatus_Discovery(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	printStatus(&b, admin.Status{Service: "shop", Registry: "etcd [127.0.0.1:2379] /shoal/services/shop/",
		Discovery: &discovery.SourceStatus{Source: "the fleet's own instances + etcd", Instances: 3, Draining: 1, Synced: true,
			Changed: now.Add(-90 * time.Second), Error: "etcd: context deadline exceeded", ErrorSince: now.Add(-10 * time.Second)}}, now)
	out := b.String()
	for _, want := range []string{
		"discovery        the fleet's own instances + etcd; 3 instances (1 draining), last changed 1m30s ago",
		"discovery error  etcd: context deadline exceeded (since 10s ago; the last good set stays in use)",
		"registered in    etcd [127.0.0.1:2379] /shoal/services/shop/",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
