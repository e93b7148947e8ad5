package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/resilience"
)

// backend is a real HTTP server on a loopback port that says who it is.
type backend struct {
	id    string
	addr  string
	hits  atomic.Int64
	srv   *http.Server
	ln    net.Listener
	h     http.HandlerFunc
	down  atomic.Bool // health endpoint fails
	mu    sync.Mutex
	hosts map[string]int // requests by client IP
}

func startBackend(t *testing.T, id string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{id: id, hosts: map[string]int{}}
	b.h = h
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.serve(t, ln)
	return b
}

func (b *backend) serve(t *testing.T, ln net.Listener) {
	b.ln = ln
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if b.down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		b.hits.Add(1)
		b.mu.Lock()
		b.hosts[strings.Split(r.Header.Get("X-Forwarded-For"), ",")[0]]++
		b.mu.Unlock()
		w.Header().Set("X-Backend", b.id)
		if b.h != nil {
			b.h(w, r)
			return
		}
		fmt.Fprint(w, b.id)
	})}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
}

// kill stops the backend abruptly; restart brings it back on the same port.
func (b *backend) kill() { b.srv.Close() }

func (b *backend) restart(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart %s: %v", b.id, err)
	}
	b.serve(t, ln)
}

func (b *backend) instance(weight int) discovery.Instance {
	return discovery.Instance{ID: b.id, URL: &url.URL{Scheme: "http", Host: b.addr}, Weight: weight}
}

// harness runs a Proxy on a real listener.
type harness struct {
	p    *Proxy
	url  string
	addr string
	stop context.CancelFunc
	done chan error
}

func startProxy(t *testing.T, opts Options, backends ...*backend) *harness {
	t.Helper()
	return startProxyWith(t, opts, ServerOptions{DrainTimeout: 5 * time.Second, MaxHeaderBytes: 8 << 10}, backends...)
}

// startProxyWith is startProxy with the listener side's options.
func startProxyWith(t testing.TB, opts Options, so ServerOptions, backends ...*backend) *harness {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var ins []discovery.Instance
	for _, b := range backends {
		ins = append(ins, b.instance(1))
	}
	p.Update(ins)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{p: p, url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() {
		h.done <- p.Serve(ctx, ln, so)
	}()
	t.Cleanup(func() {
		cancel()
		<-h.done
		p.Close()
	})
	return h
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

func get(t *testing.T, u string) (string, *http.Response) {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp
}

func noHealth(o Options) Options { o.HealthCheck.Path = ""; return o }

func TestProxy_RoundRobinIsExact(t *testing.T) {
	t.Parallel()
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	h := startProxy(t, noHealth(Options{Algorithm: "round_robin"}), a, b, c)
	for i := 0; i < 300; i++ {
		get(t, h.url+"/")
	}
	for _, be := range []*backend{a, b, c} {
		if n := be.hits.Load(); n != 100 {
			t.Errorf("backend %s got %d requests, want exactly 100", be.id, n)
		}
	}
}

func TestProxy_WeightedByRatio(t *testing.T) {
	t.Parallel()
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	h := startProxy(t, noHealth(Options{Algorithm: "weighted_round_robin"}))
	h.p.Update([]discovery.Instance{a.instance(3), b.instance(1)})
	for i := 0; i < 400; i++ {
		get(t, h.url+"/")
	}
	if a.hits.Load() != 300 || b.hits.Load() != 100 {
		t.Errorf("weights 3:1 gave %d:%d", a.hits.Load(), b.hits.Load())
	}
}

// clientFrom returns an HTTP client whose connections come from the loopback address ip,
// so the proxy sees distinct client IPs.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 5 * time.Second}
}

func TestProxy_IPHashStableAndConsistent(t *testing.T) {
	t.Parallel()
	var bs []*backend
	for i := 0; i < 5; i++ {
		bs = append(bs, startBackend(t, fmt.Sprintf("b%d", i), nil))
	}
	h := startProxy(t, noHealth(Options{Algorithm: "ip_hash"}), bs...)
	const clients = 200
	owner := func() map[string]string {
		m := map[string]string{}
		for i := 0; i < clients; i++ {
			ip := fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250)
			c := clientFrom(ip)
			resp, err := c.Get(h.url + "/")
			if err != nil {
				t.Fatalf("client %s: %v", ip, err)
			}
			resp.Body.Close()
			m[ip] = resp.Header.Get("X-Backend")
			// The same client lands on the same instance every time.
			resp, err = c.Get(h.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("X-Backend"); got != m[ip] {
				t.Fatalf("client %s moved from %s to %s with no change of instances", ip, m[ip], got)
			}
		}
		return m
	}
	before := owner()
	// One of five leaves: only its clients move (≈1/5), everyone else stays.
	var rest []discovery.Instance
	for _, b := range bs[1:] {
		rest = append(rest, b.instance(1))
	}
	h.p.Update(rest)
	after := owner()
	moved := 0
	for ip, was := range before {
		if after[ip] != was {
			moved++
			if was != "b0" {
				t.Errorf("client %s moved from %s, which did not leave", ip, was)
			}
		}
	}
	if frac := float64(moved) / clients; frac > 0.35 {
		t.Errorf("%.0f%% of clients were remapped; consistent hashing should move about 20%%", frac*100)
	}
}

// load sends GETs from workers until stop is closed and returns (ok, failed).
func load(t *testing.T, u string, workers int, stop <-chan struct{}) (ok, failed *atomic.Int64, wait func()) {
	ok, failed = new(atomic.Int64), new(atomic.Int64)
	var wg sync.WaitGroup
	var errOnce sync.Once
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(u)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
					errOnce.Do(func() {
						if err != nil {
							t.Logf("first failure: %v", err)
						} else {
							t.Logf("first failure: status %d %s", resp.StatusCode, resp.Header.Get("X-Shoal-Error"))
						}
					})
					continue
				}
				ok.Add(1)
			}
		}()
	}
	return ok, failed, wg.Wait
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func statusOf(p *Proxy, id string) UpstreamStatus {
	for _, s := range p.Status() {
		if s.ID == id {
			return s
		}
	}
	return UpstreamStatus{}
}

func TestProxy_KilledInstanceCostsNoRequests(t *testing.T) {
	t.Parallel()
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	h := startProxy(t, Options{
		HealthCheck: HealthCheck{Path: "/health", Interval: 20 * time.Millisecond, Timeout: 200 * time.Millisecond,
			HealthyThreshold: 2, UnhealthyThreshold: 2},
		MaxFailures: 3, FailureTimeout: 500 * time.Millisecond,
		Breaker: resilience.BreakerConfig{Enabled: true, FailureThreshold: 5, RecoveryTimeout: time.Second, HalfOpenMaxCalls: 1},
	}, a, b, c)
	stop := make(chan struct{})
	ok, failed, wait := load(t, h.url+"/", 8, stop)
	waitFor(t, "traffic", func() bool { return ok.Load() > 200 })
	b.kill()
	waitFor(t, "b to be taken out", func() bool { return !statusOf(h.p, "b").Healthy })
	hitsAtDeath := ok.Load()
	waitFor(t, "more traffic without b", func() bool { return ok.Load() > hitsAtDeath+300 })
	b.restart(t)
	waitFor(t, "b back after healthy_threshold passes", func() bool { return statusOf(h.p, "b").Healthy })
	before := b.hits.Load()
	waitFor(t, "b to serve again", func() bool { return b.hits.Load() > before+20 })
	close(stop)
	wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d GET requests failed while an instance died and came back; want 0", failed.Load(), failed.Load()+ok.Load())
	}
	t.Logf("%d requests, 0 failed", ok.Load())
}

func TestProxy_RetryBudgetCapsRetriesInOutage(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	down := func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	a, b, c := startBackend(t, "a", down), startBackend(t, "b", down), startBackend(t, "c", down)
	h := startProxy(t, noHealth(Options{Retry: Retry{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Budget: 0.2}}), a, b, c)
	const n = 600
	for i := 0; i < n; i++ {
		_, resp := get(t, h.url+"/")
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want the instance's 503 passed on", resp.StatusCode)
		}
	}
	// Budget: 20% of requests plus 10 per second over a 10 s window.
	retries := hits.Load() - n
	if max := int64(0.2*n) + 100; retries > max {
		t.Errorf("%d retries for %d requests in a full outage; the budget allows at most %d", retries, n, max)
	}
	if retries == 0 {
		t.Error("no retries at all; a budget should allow some")
	}
	t.Logf("%d requests caused %d retries", n, retries)
}

func TestProxy_RetriesGETOnAnotherInstance(t *testing.T) {
	t.Parallel()
	bad := startBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	good := startBackend(t, "good", nil)
	h := startProxy(t, noHealth(Options{Algorithm: "round_robin", MaxFailures: 0}), bad, good)
	for i := 0; i < 20; i++ {
		body, resp := get(t, h.url+"/")
		if resp.StatusCode != 200 || body != "good" {
			t.Fatalf("request %d: %d %q; a failing instance must not fail the client", i, resp.StatusCode, body)
		}
	}
}

func TestProxy_POSTNotRetriedAfterUpstreamReceivedIt(t *testing.T) {
	t.Parallel()
	var received atomic.Int64
	// Reads the body, then drops the connection without answering.
	dropper := startBackend(t, "dropper", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		received.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	h := startProxy(t, noHealth(Options{Algorithm: "round_robin"}), dropper, dropper2(t, &received))
	resp, err := client.Post(h.url+"/orders", "application/json", strings.NewReader(`{"item":1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || received.Load() != 1 {
		t.Fatalf("status %d, body %s, instances received it %d times; want 502 and exactly once", resp.StatusCode, body, received.Load())
	}
	if !strings.Contains(string(body), `"error":"upstream_unreachable"`) {
		t.Errorf("502 body must say why: %s", body)
	}
}

func dropper2(t *testing.T, received *atomic.Int64) *backend {
	return startBackend(t, "dropper2", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		received.Add(1)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
}

func TestProxy_POSTRetriedWhenNothingWasSent(t *testing.T) {
	t.Parallel()
	dead := startBackend(t, "dead", nil)
	dead.kill()
	alive := startBackend(t, "alive", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	})
	h := startProxy(t, noHealth(Options{Algorithm: "round_robin"}), dead, alive)
	for i := 0; i < 6; i++ {
		resp, err := client.Post(h.url+"/", "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "got payload" {
			t.Fatalf("POST %d: %d %q; a refused connection never reached the instance, so it must be retried", i, resp.StatusCode, body)
		}
	}
}

func TestProxy_NoInstancesIs503JSON(t *testing.T) {
	t.Parallel()
	h := startProxy(t, noHealth(Options{}))
	body, resp := get(t, h.url+"/")
	if resp.StatusCode != 503 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, "no instance of the service is registered") {
		t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestProxy_BreakerOpensAndProxyAnswers503(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := resilience.ClockFunc(func() time.Time { return time.Unix(0, now.Load()) })
	fail := startBackend(t, "fail", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	h := startProxy(t, noHealth(Options{Clock: clock, Retry: Retry{Attempts: 1},
		Breaker: resilience.BreakerConfig{Enabled: true, FailureThreshold: 3, RecoveryTimeout: 30 * time.Second, HalfOpenMaxCalls: 1}}), fail)
	for i := 0; i < 3; i++ {
		get(t, h.url+"/")
	}
	if s := statusOf(h.p, "fail").Breaker; s != "open" {
		t.Fatalf("breaker %s after 3 failures, want open", s)
	}
	body, resp := get(t, h.url+"/")
	if resp.StatusCode != 503 || !strings.Contains(body, "circuit_open") || fail.hits.Load() != 3 {
		t.Fatalf("open breaker: %d %s (instance hit %d times)", resp.StatusCode, body, fail.hits.Load())
	}
	now.Add(int64(31 * time.Second)) // past recovery_timeout: one trial goes through
	get(t, h.url+"/")
	if fail.hits.Load() != 4 {
		t.Fatalf("half-open breaker let %d trial calls through, want 1", fail.hits.Load()-3)
	}
}

func TestProxy_HeadersForwarded(t *testing.T) {
	t.Parallel()
	var got http.Header
	var host string
	echo := startBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone(); host = r.Host })
	h := startProxy(t, noHealth(Options{}), echo)
	req, _ := http.NewRequest("GET", h.url+"/x", nil)
	req.Host = "shop.example"
	req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("Connection", "X-Secret-Hop")
	req.Header.Set("X-Secret-Hop", "must not pass")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	checks := map[string]string{
		"Traceparent":       "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  "shop.example",
		"X-Secret-Hop":      "",
	}
	for k, want := range checks {
		if v := got.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if host != "shop.example" {
		t.Errorf("Host = %q, want the client's", host)
	}
}

func TestProxy_SessionAffinity(t *testing.T) {
	t.Parallel()
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	h := startProxy(t, noHealth(Options{SessionAffinity: true}), a, b, c)
	_, resp := get(t, h.url+"/")
	cookie := resp.Cookies()
	if len(cookie) != 1 || cookie[0].Name != "shoal_affinity" {
		t.Fatalf("no affinity cookie: %v", resp.Header)
	}
	pinned := resp.Header.Get("X-Backend")
	if raw, err := base64.RawURLEncoding.DecodeString(strings.Split(cookie[0].Value, ".")[0]); err != nil || string(raw) == pinned {
		t.Errorf("the affinity cookie must not reveal the instance: %q (%v)", raw, err)
	}
	for i := 0; i < 10; i++ {
		req, _ := http.NewRequest("GET", h.url+"/", nil)
		req.AddCookie(cookie[0])
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Backend"); got != pinned {
			t.Fatalf("pinned to %s, served by %s", pinned, got)
		}
	}
	// The pinned instance leaves: the client falls back to another and is re-pinned.
	var rest []discovery.Instance
	for _, be := range []*backend{a, b, c} {
		if be.id != pinned {
			rest = append(rest, be.instance(1))
		}
	}
	h.p.Update(rest)
	req, _ := http.NewRequest("GET", h.url+"/", nil)
	req.AddCookie(cookie[0])
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Backend"); got == pinned || resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
		t.Fatalf("after its instance left: served by %q, status %d, cookies %v", got, resp.StatusCode, resp.Cookies())
	}
	// A tampered cookie is ignored, not an error.
	req, _ = http.NewRequest("GET", h.url+"/", nil)
	req.AddCookie(&http.Cookie{Name: "shoal_affinity", Value: "YQ.forged"})
	resp, err = client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("tampered cookie: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestProxy_PanicModeServesFromUnhealthy(t *testing.T) {
	t.Parallel()
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	a.down.Store(true)
	b.down.Store(true)
	h := startProxy(t, Options{HealthCheck: HealthCheck{Path: "/health", Interval: 10 * time.Millisecond,
		Timeout: 100 * time.Millisecond, HealthyThreshold: 1, UnhealthyThreshold: 1}}, a, b)
	waitFor(t, "both unhealthy", func() bool { return h.p.Panicking() })
	body, resp := get(t, h.url+"/")
	if resp.StatusCode != 200 || (body != "a" && body != "b") {
		t.Fatalf("panic mode must still serve: %d %s", resp.StatusCode, body)
	}
	a.down.Store(false)
	waitFor(t, "a healthy", func() bool { return !h.p.Panicking() })
	for i := 0; i < 10; i++ {
		if body, _ := get(t, h.url+"/"); body != "a" {
			t.Fatalf("with a healthy instance only it should serve, got %s", body)
		}
	}
}

// dialRaw opens a client connection to the proxy for hand-written HTTP, closed with the test.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req[:min(len(req), 40)], err)
	}
	body, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, body)
}

func TestProxy_RejectsSmugglingAndOversize(t *testing.T) {
	t.Parallel()
	be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	h := startProxy(t, noHealth(Options{MaxBodyBytes: 1024}), be)
	cases := []struct{ name, req, want string }{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", "400"},
		{"two lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd", "400"},
		{"huge headers", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", "431"},
		{"body over limit", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n" + strings.Repeat("a", 2048), "413"},
		{"chunked body over limit", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + strings.Repeat("a", 2048) + "\r\n0\r\n\r\n", "413"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", "400"},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "405"},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n", "400"},
	}
	for _, tc := range cases {
		if got := rawRequest(t, h.addr, tc.req); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: got %q, want %s", tc.name, got, tc.want)
		}
	}
	// Smuggling after a valid request on the same connection is caught too, and the proxy
	// keeps serving.
	pipelined := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, pipelined+"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	br := bufio.NewReader(c)
	var codes []int
	for i := 0; i < 3; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		codes = append(codes, resp.StatusCode)
	}
	c.Close()
	if fmt.Sprint(codes) != "[200 200 400]" {
		t.Errorf("pipelined: %v, want [200 200 400]", codes)
	}
	if body, resp := get(t, h.url+"/"); resp.StatusCode != 200 {
		t.Fatalf("the proxy must keep serving: %d %s", resp.StatusCode, body)
	}
}

func TestProxy_DrainFinishesInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		fmt.Fprint(w, "finished")
	})
	h := startProxy(t, noHealth(Options{}), slow)
	result := make(chan string, 1)
	go func() {
		resp, err := client.Get(h.url + "/")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-started
	h.stop() // SIGTERM
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", h.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if got := <-result; got != "finished" {
		t.Fatalf("in-flight request during drain: %q", got)
	}
	if err := <-h.done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	h.done <- nil // for Cleanup
}

func TestProxy_DrainInstanceKeepsInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	a := startBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		fmt.Fprint(w, "a")
	})
	b := startBackend(t, "b", nil)
	h := startProxy(t, noHealth(Options{Algorithm: "least_connections"}), a, b)
	result := make(chan string, 1)
	go func() {
		for {
			resp, err := client.Get(h.url + "/slow")
			if err != nil {
				result <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) == "a" {
				result <- "a"
				return
			}
		}
	}()
	<-started
	drained := make(chan error, 1)
	go func() { drained <- h.p.Drain(context.Background(), "a") }()
	waitFor(t, "a draining", func() bool { return statusOf(h.p, "a").Draining })
	for i := 0; i < 10; i++ {
		if body, _ := get(t, h.url+"/"); body != "b" {
			t.Fatalf("a draining instance got a new request")
		}
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	if got := <-result; got != "a" {
		t.Fatalf("in-flight request on the draining instance: %q", got)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if s := statusOf(h.p, "a"); s.ID != "" {
		t.Fatalf("a drained instance must be forgotten: %+v", s)
	}
}

var _ = errors.New

// TestProxy_KeepsConnectionsAlive checks that one client connection carries many requests —
// GET, HEAD, a POST with a body, a chunked POST — and that the instance sees one connection
// for them all.
func TestProxy_KeepsConnectionsAlive(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	conns := map[string]bool{} // the proxy's connections, by their address
	be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d", r.Method, len(b))
	})
	h := startProxy(t, noHealth(Options{}), be)
	c := dialRaw(t, h.addr)
	br := bufio.NewReader(c)
	reqs := []struct{ raw, method, want string }{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "GET 0"},
		{"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD", ""},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "POST", "POST 5"},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST", "POST 3"},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "GET 0"},
	}
	for i, r := range reqs {
		if _, err := io.WriteString(c, r.raw); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: r.method})
		if err != nil {
			t.Fatalf("request %d on the same connection: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != r.want || resp.Close {
			t.Fatalf("request %d: %d %q close=%v", i, resp.StatusCode, body, resp.Close)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 1 {
		t.Errorf("the instance saw %d connections for 5 sequential requests; want 1 (keep-alive upstream)", len(conns))
	}
}

// TestProxy_ClientLeavingCancelsTheUpstreamRequest: a client that hangs up while its request
// waits for a slow instance cancels the instance's request too.
func TestProxy_ClientLeavingCancelsTheUpstreamRequest(t *testing.T) {
	t.Parallel()
	cancelled := make(chan struct{})
	slow := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	})
	h := startProxy(t, noHealth(Options{}), slow)
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(clientWatchDelay + 100*time.Millisecond) // past the watch delay
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the instance's request was not cancelled after its client left")
	}
}

// TestProxy_HTTP10ClientGetsNoChunks: an HTTP/1.0 client gets a streamed body without chunked
// encoding, ended by the connection closing.
func TestProxy_HTTP10ClientGetsNoChunks(t *testing.T) {
	t.Parallel()
	be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part one, ")
		http.NewResponseController(w).Flush() // unknown length: chunked from the instance
		io.WriteString(w, "part two")
	})
	h := startProxy(t, noHealth(Options{}), be)
	c := dialRaw(t, h.addr)
	io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	all, err := io.ReadAll(c) // the proxy closes the connection after the body
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(all), "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.0 200") || strings.Contains(strings.ToLower(head), "chunked") || body != "part one, part two" {
		t.Fatalf("answer to an HTTP/1.0 client:\n%s", all)
	}
}

// TestProxy_Timeouts: a try that takes longer than try_timeout moves to another instance; a
// request that gets no answer within timeout is a 504 that says so.
func TestProxy_Timeouts(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	slow := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	fast := startBackend(t, "fast", nil)
	h := startProxy(t, noHealth(Options{Algorithm: "round_robin", Retry: Retry{Attempts: 2, TryTimeout: 200 * time.Millisecond}}), slow, fast)
	for i := 0; i < 4; i++ {
		body, resp := get(t, h.url+"/")
		if resp.StatusCode != 200 || body != "fast" {
			t.Fatalf("request %d: %d %q; a slow try must move to the other instance", i, resp.StatusCode, body)
		}
	}
	only := startProxy(t, noHealth(Options{Retry: Retry{Attempts: 1, Timeout: 300 * time.Millisecond}}), slow)
	body, resp := get(t, only.url+"/")
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "retry.timeout") {
		t.Fatalf("no answer within the timeout: %d %s", resp.StatusCode, body)
	}
}

// TestProxy_ExpectContinue: a client that waits for 100 Continue before sending its body gets
// it, and the body reaches the instance.
func TestProxy_ExpectContinue(t *testing.T) {
	t.Parallel()
	be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	})
	h := startProxy(t, noHealth(Options{}), be)
	c := dialRaw(t, h.addr)
	br := bufio.NewReader(c)
	io.WriteString(c, "PUT /doc HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("want 100 Continue before the body, got %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "got hello" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

// Close may run while discovery still feeds Update (as when a watcher outlives the proxy): no
// checker or drain goroutine starts after Close waits for them (the race detector checks).
func TestProxy_CloseWhileUpdating(t *testing.T) {
	t.Parallel()
	be := startBackend(t, "a", nil)
	for i := 0; i < 20; i++ {
		p, err := New(Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for j := 0; j < 50; j++ {
				p.Update([]discovery.Instance{be.instance(1 + j%2)}) // a new weight: drain and add
				p.Update(nil)
			}
		}()
		p.Close()
		<-done
	}
}
