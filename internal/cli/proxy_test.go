package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestProxyCommand runs `shoal proxy` in-process over two real backends, checks the weights,
// the metrics token, and that SIGTERM (context cancel) drains and exits 0.
func TestProxyCommand(t *testing.T) {
	t.Parallel()
	var backends []string
	for _, id := range []string{"one", "two"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, id) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		backends = append(backends, ln.Addr().String())
	}
	listen, metrics := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`name: demo
scaling:
  service_discovery:
    method: static
    health_check: {endpoint: "/"}
    static:
      instances:
        - {url: "http://%s", weight: 3}
        - {url: "http://%s"}
  load_balancer: {algorithm: weighted_round_robin}
  instances: {shutdown: {drain_timeout: 2s}}
`, backends[0], backends[1])
	path := filepath.Join(dir, "shoal.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) (string, bool) {
			if k == "METRICS_TOKEN" {
				return "s3cret", true
			}
			return "", false
		}}
	done := make(chan int, 1)
	go func() {
		done <- a.run(ctx, []string{"proxy", "-f", path, "--listen", listen, "--metrics-listen", metrics})
	}()

	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not start: %s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	counts := map[string]int{}
	for i := 0; i < 40; i++ {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		counts[string(b)]++
	}
	if counts["one"] != 30 || counts["two"] != 10 {
		t.Errorf("weights 3:1 gave %v", counts)
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+metrics+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `shoal_proxy_requests_total{code="2xx"`) {
		t.Errorf("/metrics with the token: %d\n%.300s", resp.StatusCode, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("exit %d after SIGTERM: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not stop after SIGTERM")
	}
	if !strings.Contains(errb.String(), "proxy stopped") {
		t.Errorf("log: %s", errb.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestProxyCommand_TracesToOTLP runs `shoal proxy` with an OTLP endpoint: the instance gets the
// client's trace with the proxy's attempt as parent, and on shutdown the proxy's spans (its
// server span and the attempt's client span, in the client's trace) reach the collector.
func TestProxyCommand_TracesToOTLP(t *testing.T) {
	var mu sync.Mutex
	var exported []byte
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		exported = append(exported, b...)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "")

	got := make(chan string, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			got <- r.Header.Get("Traceparent")
		}
	}))
	defer be.Close()
	listen := freeAddr(t)
	path := filepath.Join(t.TempDir(), "shoal.yml")
	cfg := fmt.Sprintf("name: demo\nscaling:\n  service_discovery:\n    method: static\n    static:\n      instances:\n        - {url: %q}\n", be.URL)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) (string, bool) { return "", false }}
	done := make(chan int, 1)
	go func() {
		done <- a.run(ctx, []string{"proxy", "-f", path, "--listen", listen, "--metrics-listen", freeAddr(t)})
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not start: %s", errb.String())
		}
	}

	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("GET", "http://"+listen+"/", nil)
	req.Header.Set("Traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hop := <-got; len(hop) != 55 || hop[3:35] != clientTrace || hop[36:52] == "00f067aa0ba902b7" {
		t.Fatalf("the instance got traceparent %q; want the client's trace with the proxy's span as parent", hop)
	}
	cancel() // shutting down flushes the spans
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not stop")
	}
	if !strings.Contains(errb.String(), "tracing the proxy hop") {
		t.Errorf("the log does not say that the proxy traces: %s", errb.String())
	}
	traceID, _ := hex.DecodeString(clientTrace)
	mu.Lock()
	defer mu.Unlock()
	for _, want := range [][]byte{traceID, []byte("proxy GET"), []byte("demo-proxy"), []byte("http.response.status_code")} {
		if !bytes.Contains(exported, want) {
			t.Errorf("the exported spans lack %q", want)
		}
	}
}
