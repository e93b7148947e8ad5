package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-sh/shoal/resilience"
)

// Regression tests for what trying the proxy as an attacker found (issue 10). Each case failed
// before its fix.

// answerOrClose sends req on a new connection, half-closes it when cut is set (the client
// abandons its upload), and returns the status of the answer, or 0 when the proxy closed the
// connection without one.
func answerOrClose(t *testing.T, addr, req string, cut bool) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	if cut {
		c.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no answer and no close within 10s to %q", req[:min(len(req), 60)])
		}
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// A client's broken body — malformed chunks, an upload cut off, a body over the replay limit
// that stops half-way — is the client's failure: it must never open an instance's breaker, eject
// it, or cost other clients anything (defect 1: ~20 such requests opened every breaker).
func TestProxy_ClientBodyFailuresAreNotTheInstances(t *testing.T) {
	t.Parallel()
	be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	h := startProxy(t, noHealth(Options{
		MaxFailures: 2, FailureTimeout: time.Minute,
		Breaker: resilience.BreakerConfig{Enabled: true, FailureThreshold: 3, RecoveryTimeout: time.Minute, HalfOpenMaxCalls: 1},
		Retry:   Retry{MaxBodyBytes: 1024}, // larger bodies stream to the instance
	}), be)
	cases := []struct {
		name string
		req  string
		cut  bool
		want []int // acceptable answers; 0 is a close without one (nobody left to answer)
	}{
		{"malformed chunk size", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", false, []int{400}},
		{"malformed chunk end", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", false, []int{400}},
		{"chunked upload abandoned", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc", true, []int{0}},
		{"large upload abandoned", "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("a", 2000), true, []int{0}},
		{"small upload abandoned", "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nabc", true, []int{0}},
		{"buffered chunked upload abandoned", "PUT /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", true, []int{0}},
	}
	for _, tc := range cases {
		for i := 0; i < 8; i++ {
			got := answerOrClose(t, h.addr, tc.req, tc.cut)
			ok := false
			for _, w := range tc.want {
				ok = ok || got == w
			}
			if !ok {
				t.Fatalf("%s: answered %d, want one of %v", tc.name, got, tc.want)
			}
		}
	}
	s := statusOf(h.p, "be")
	if s.Breaker != "closed" || s.Ejected || s.LastErr != "" {
		t.Fatalf("the client's broken bodies were held against the instance: breaker %s, ejected %v, last error %q", s.Breaker, s.Ejected, s.LastErr)
	}
	if body, resp := get(t, h.url+"/"); resp.StatusCode != 200 {
		t.Fatalf("legitimate request after broken bodies: %d %s", resp.StatusCode, body)
	}
}

// Framing by RFC 9112 to the letter (defect 4): whitespace before a colon is a 400, not an
// unknown header that lets the body through as a second request; an HTTP/1.0 request with
// Transfer-Encoding is faulty framing and closes the connection; a Host that is not a host is a
// 400. On both serving loops: the proxy's own and net/http's behind a middleware.
func TestProxy_FramingPerRFC9112(t *testing.T) {
	t.Parallel()
	for _, loop := range []string{"fast", "net/http"} {
		t.Run(loop, func(t *testing.T) {
			t.Parallel()
			var smuggled atomic.Int64
			be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "SMUGGLED") {
					smuggled.Add(1)
				}
				io.Copy(io.Discard, r.Body)
			})
			so := ServerOptions{DrainTimeout: 5 * time.Second, MaxHeaderBytes: 8 << 10}
			if loop == "net/http" {
				so.Middleware = func(h http.Handler) http.Handler { return h }
			}
			h := startProxyWith(t, noHealth(Options{}), so, be)
			smuggle := "GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"
			cases := []struct{ name, req, want string }{
				{"space before colon in Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : " + itoa(len(smuggle)) + "\r\n\r\n" + smuggle, "400"},
				{"tab before colon", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length\t: " + itoa(len(smuggle)) + "\r\n\r\n" + smuggle, "400"},
				{"space before colon in Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggle, "400"},
				{"space before colon elsewhere", "GET / HTTP/1.1\r\nHost: x\r\nX-Thing : 1\r\n\r\n", "400"},
				{"HTTP/1.0 with Transfer-Encoding", "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + itoa16(len(smuggle)) + "\r\n" + smuggle + "\r\n0\r\n\r\n", "400"},
				{"HTTP/1.0 with Transfer-Encoding and Content-Length", "POST / HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
				{"Host with a space and userinfo", "GET / HTTP/1.1\r\nHost: a b@evil\r\n\r\n", "400"},
				{"Host with userinfo", "GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n", "400"},
				{"Host with a bad port", "GET / HTTP/1.1\r\nHost: x:80a\r\n\r\n", "400"},
				{"Host with a path", "GET / HTTP/1.1\r\nHost: x/y\r\n\r\n", "400"},
				{"Host with an unclosed bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "400"},
				{"Host name and port", "GET / HTTP/1.1\r\nHost: shop.example:8080\r\n\r\n", "200"},
				{"Host IPv6 and port", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "200"},
				{"Host IPv4", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "200"},
			}
			for _, tc := range cases {
				if got := rawRequest(t, h.addr, tc.req); !strings.HasPrefix(got, tc.want) {
					t.Errorf("%s: got %q, want %s", tc.name, got, tc.want)
				}
			}
			if n := smuggled.Load(); n > 0 {
				t.Fatalf("%d smuggled requests reached the instance", n)
			}
			// An HTTP/1.0 request with Transfer-Encoding closes the connection after the 400.
			c := dialRaw(t, h.addr)
			io.WriteString(c, "POST / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 400 {
				t.Fatalf("HTTP/1.0 with TE: %v %v", resp, err)
			}
			io.Copy(io.Discard, resp.Body)
			if _, err := http.ReadResponse(br, nil); err == nil {
				t.Fatal("the connection carried another request after faulty framing")
			}
		})
	}
}

func itoa(n int) string   { return strconvItoa(n, 10) }
func itoa16(n int) string { return strconvItoa(n, 16) }

// A request head shorter than HTTP/2's preface waits the header timeout, not the idle timeout
// (defect 4: the preface peek ran before the header timeout started).
func TestProxy_ShortHeadTimesOutAtTheHeaderTimeout(t *testing.T) {
	t.Parallel()
	h := startProxyWith(t, noHealth(Options{}), ServerOptions{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute},
		startBackend(t, "be", nil))
	for _, head := range []string{"GET / HTTP/1", "PRI * HTTP/2.0", "G"} {
		c := dialRaw(t, h.addr)
		c.SetDeadline(time.Now().Add(5 * time.Second)) // far below the idle timeout
		io.WriteString(c, head)
		_, err := io.ReadAll(c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%q: the proxy kept the connection open past its header timeout", head)
		}
	}
}

// A client that sends its body a byte at a time gets 408 once it falls behind
// server.min_body_rate after server.read_body_timeout, on the raw lane and on the standard path,
// and the instance is not blamed (defect 4: one byte every 5 s held a connection forever).
func TestProxy_SlowBodyGets408(t *testing.T) {
	t.Parallel()
	be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
	h := startProxyWith(t, noHealth(Options{Breaker: resilience.BreakerConfig{Enabled: true, FailureThreshold: 1, RecoveryTimeout: time.Minute, HalfOpenMaxCalls: 1}}),
		ServerOptions{ReadBodyTimeout: 300 * time.Millisecond, MinBodyRate: 1024}, be)
	for _, head := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",              // raw lane
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n", // standard path
	} {
		c := dialRaw(t, h.addr)
		c.SetDeadline(time.Now().Add(8 * time.Second))
		io.WriteString(c, head)
		answered := make(chan int, 1)
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				answered <- 0
				return
			}
			answered <- resp.StatusCode
		}()
		var code int
	drip:
		for i := 0; i < 100; i++ {
			select {
			case code = <-answered:
				break drip
			case <-time.After(100 * time.Millisecond):
				if _, err := c.Write([]byte("a")); err != nil {
					code = <-answered
					break drip
				}
			}
		}
		if code != http.StatusRequestTimeout {
			t.Fatalf("%q dripped a byte every 100ms: answered %d, want 408", head, code)
		}
	}
	if s := statusOf(h.p, "be"); s.Breaker != "closed" {
		t.Fatalf("a slow client opened the instance's breaker (%s)", s.Breaker)
	}
}

// An instance that sends a valid head and then closes mid-body is failing, even while its
// health checks pass: each cut-short answer counts against it in passive health, the metric and
// the status (defect 3: logged at debug level, never ejected).
func TestProxy_TruncatedAnswerCountsAgainstTheInstance(t *testing.T) {
	t.Parallel()
	answers := map[string]string{
		"raw lane":      "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this much",
		"standard path": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cut := rawBackend(t, cannedAnswers(func(string) (string, bool) { return answer, true }))
			reg := prometheus.NewRegistry()
			h := startProxy(t, noHealth(Options{MaxFailures: 3, FailureTimeout: time.Minute, Registerer: reg, Retry: Retry{Attempts: 1}}), cut)
			for i := 0; i < 3; i++ {
				resp, err := client.Get(h.url + "/")
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					t.Fatal("a cut-short answer reached the client as complete")
				}
			}
			waitFor(t, "the instance ejected", func() bool { return statusOf(h.p, "raw").Ejected })
			if s := statusOf(h.p, "raw"); !strings.Contains(s.LastErr, "cut short") {
				t.Fatalf("status last error %q does not say the answer was cut short", s.LastErr)
			}
			if n := testutil.ToFloat64(h.p.metrics.truncated.WithLabelValues("raw")); n != 3 {
				t.Fatalf("shoal_proxy_truncated_answers_total = %v, want 3", n)
			}
		})
	}
}

func strconvItoa(n, base int) string { return strconv.FormatInt(int64(n), base) }

// hangable is an instance that can be made to stop answering, as a SIGSTOPped or deadlocked
// process does: its connections are accepted and its requests read, but no answer comes — to
// health checks either, unless halfBroken.
type hangable struct {
	*backend
	hung       atomic.Bool
	halfBroken bool // health checks still pass while requests hang
	release    chan struct{}
}

func startHangable(t *testing.T, id string, halfBroken bool) *hangable {
	h := &hangable{release: make(chan struct{}), halfBroken: halfBroken}
	h.backend = &backend{id: id, hosts: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		health := r.URL.Path == "/health"
		if !health {
			h.hits.Add(1)
		}
		if h.hung.Load() && !(health && h.halfBroken) {
			select {
			case <-h.release:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, id)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { h.unhang(); srv.Close() })
	return h
}

func (h *hangable) unhang() {
	if h.hung.CompareAndSwap(true, false) {
		close(h.release)
	}
}

// One hung instance of three must not stall the fleet (defect 2): under load, with nothing
// configured, no client with a 5 s timeout sees a failure — the requests already waiting on it
// are hedged to the others, and it gets no new ones once it is stalled.
func TestProxy_HungInstanceCostsNoRequests(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"raw lane", "standard path"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
			c := startHangable(t, "c", false)
			reg := prometheus.NewRegistry()
			opts := Options{Registerer: reg, HealthCheck: HealthCheck{Path: "/health", Interval: 200 * time.Millisecond, Timeout: time.Second}}
			if path == "standard path" {
				opts.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return rt } // turns the raw lane off
			}
			h := startProxy(t, opts, a, b, c.backend)
			stop := make(chan struct{})
			ok, failed, wait := loadWithTimeout(t, h.url+"/", 16, 5*time.Second, stop)
			time.Sleep(300 * time.Millisecond) // the proxy learns the fleet's latency
			hungAt := time.Now()
			c.hung.Store(true)
			// Out of rotation: stalled, or (on a machine so loaded that the fleet's p99 makes the
			// stall wait longer than its health checks take to fail) unhealthy.
			out := func() bool { s := statusOf(h.p, "c"); return s.Stalled || !s.Healthy }
			for deadline := time.Now().Add(10 * time.Second); !out(); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					u := h.p.pool.Load().byID["c"]
					t.Fatalf("the hung instance was not stalled in 10 s: stall wait %s, c awaiting %d, silent for %s, status %+v / a %+v",
						h.p.stallWait(), u.awaiting.Load(), time.Since(time.Unix(0, max(u.lastHead.Load(), u.awaitSince.Load()))),
						statusOf(h.p, "c"), statusOf(h.p, "a"))
				}
			}
			t.Logf("%s: the hung instance was out of rotation %s after it hung (stalled %v, stall wait %s)", path,
				time.Since(hungAt).Round(10*time.Millisecond), statusOf(h.p, "c").Stalled, h.p.stallWait())
			hitsAtStall := c.hits.Load()
			time.Sleep(2 * time.Second)
			close(stop)
			wait()
			for _, o := range []string{"hedge_won", "primary_won", "both_failed", "not_sent"} {
				t.Logf("hedges %s: %v", o, testutil.ToFloat64(h.p.metrics.hedges.WithLabelValues(o)))
			}
			if n := failed.Load(); n > 0 {
				t.Fatalf("%d of %d requests failed with one instance hung", n, n+ok.Load())
			}
			// Requests picked just before it went out may still reach it, no more.
			if more := c.hits.Load() - hitsAtStall; more > 16 {
				t.Errorf("the instance got %d more requests after it went out of rotation", more)
			}
			if n := testutil.ToFloat64(h.p.metrics.hedges.WithLabelValues("hedge_won")); n == 0 {
				t.Error("no request waiting on the hung instance was hedged")
			}
			// It answers again: it comes back into rotation.
			c.unhang()
			waitFor(t, "the instance back", func() bool { _, _ = get(t, h.url+"/"); return !statusOf(h.p, "c").Stalled })
		})
	}
}

// loadWithTimeout is load with clients that give up after timeout.
func loadWithTimeout(t *testing.T, u string, workers int, timeout time.Duration, stop <-chan struct{}) (ok, failed *atomic.Int64, wait func()) {
	ok, failed = new(atomic.Int64), new(atomic.Int64)
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: timeout}
	done := make(chan struct{})
	var n atomic.Int64
	n.Store(int64(workers))
	for w := 0; w < workers; w++ {
		go func() {
			defer func() {
				if n.Add(-1) == 0 {
					close(done)
				}
			}()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := cl.Get(u)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					if failed.Add(1) == 1 {
						t.Logf("first failure: %v %v", err, resp)
					}
					continue
				}
				ok.Add(1)
			}
		}()
	}
	return ok, failed, func() { <-done; cl.CloseIdleConnections() }
}

// An instance whose health endpoint still answers while its requests hang comes back after each
// passed check only after a hold that doubles: it costs no client a failure, and gets fewer and
// fewer requests.
func TestProxy_HalfBrokenInstanceCostsNoRequests(t *testing.T) {
	t.Parallel()
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	c := startHangable(t, "c", true)
	h := startProxy(t, Options{HealthCheck: HealthCheck{Path: "/health", Interval: 100 * time.Millisecond, Timeout: time.Second}}, a, b, c.backend)
	stop := make(chan struct{})
	ok, failed, wait := loadWithTimeout(t, h.url+"/", 16, 5*time.Second, stop)
	time.Sleep(300 * time.Millisecond)
	c.hung.Store(true)
	time.Sleep(5 * time.Second)
	close(stop)
	wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed with one instance half broken", n, n+ok.Load())
	}
	t.Logf("%d requests; the half-broken instance was sent %d", ok.Load(), c.hits.Load())
}

// Under load, an instance that cuts every answer short is out of rotation after max_failures of
// them, so a handful of requests fail, not a third of them for as long as it runs (defect 3).
func TestProxy_CutBodyInstanceUnderLoad(t *testing.T) {
	t.Parallel()
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	cut := rawBackend(t, cannedAnswers(func(string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ncut", true
	}))
	h := startProxy(t, noHealth(Options{MaxFailures: 3, FailureTimeout: time.Minute}), a, b, cut)
	const workers = 8
	stop := make(chan struct{})
	ok, failed, wait := loadWithTimeout(t, h.url+"/", workers, 5*time.Second, stop)
	time.Sleep(2 * time.Second)
	close(stop)
	wait()
	total := ok.Load() + failed.Load()
	t.Logf("%d of %d requests failed with one instance cutting every answer short", failed.Load(), total)
	if n := failed.Load(); n > 3+workers {
		t.Fatalf("%d of %d requests failed; the instance should be ejected after 3 cut answers", n, total)
	}
	if !statusOf(h.p, "raw").Ejected {
		t.Fatal("the cutting instance is not ejected")
	}
}

// A client that gives up while its request is hedged between two instances that both hang
// releases both at once, and neither is blamed.
func TestProxy_ClientLeavingDuringAHedge(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"raw lane", "standard path"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			a, b := startHangable(t, "a", false), startHangable(t, "b", false)
			opts := noHealth(Options{LatencyEjection: LatencyEjection{MinWait: 200 * time.Millisecond},
				Breaker: resilience.BreakerConfig{Enabled: true, FailureThreshold: 1, RecoveryTimeout: time.Minute, HalfOpenMaxCalls: 1}})
			if path == "standard path" {
				opts.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return rt }
			}
			h := startProxy(t, opts, a.backend, b.backend)
			a.hung.Store(true)
			b.hung.Store(true)
			cl := &http.Client{Timeout: time.Second}
			if _, err := cl.Get(h.url + "/"); err == nil {
				t.Fatal("an answer came from two hung instances")
			}
			waitFor(t, "both attempts released", func() bool {
				return statusOf(h.p, "a").InFlight == 0 && statusOf(h.p, "b").InFlight == 0
			})
			if n := testutil.ToFloat64(h.p.metrics.retries.WithLabelValues("hedge")); n != 1 {
				t.Errorf("%v hedges, want 1", n)
			}
			for _, id := range []string{"a", "b"} {
				if s := statusOf(h.p, id); s.Breaker != "closed" {
					t.Errorf("instance %s blamed for a client that left: breaker %s", id, s.Breaker)
				}
			}
		})
	}
}
