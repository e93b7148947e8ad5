package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
)

const interval = 10 * time.Second

// counter is a custom check that counts its runs, reports each on a channel and returns the
// error it is told to.
type counter struct {
	runs atomic.Int64
	ran  chan int64
	err  atomic.Pointer[error]
}

func newCounter() *counter { return &counter{ran: make(chan int64, 100)} }

func (c *counter) fn(context.Context) error {
	n := c.runs.Add(1)
	defer func() { c.ran <- n }()
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *counter) fail(err error) { c.err.Store(&err) }

// waitRun waits until the check has run n times in all.
func (c *counter) waitRun(t *testing.T, n int64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-c.ran:
			if got >= n {
				return
			}
		case <-deadline:
			t.Fatalf("the check did not run %d times (ran %d)", n, c.runs.Load())
		}
	}
}

func custom(name, handler string, critical bool) config.Check {
	return config.Check{Name: name, Type: config.CheckCustom, Handler: handler, Critical: critical,
		Timeout: config.Duration(time.Hour), Interval: config.Duration(interval)}
}

type fixture struct {
	reg   *Registry
	clock *fakeClock
}

// setup builds and starts a registry over checks on a fake clock, closed when the test ends.
func setup(t *testing.T, checks []config.Check, opts ...Opt) fixture {
	t.Helper()
	clock := newFakeClock()
	r, err := New(checks, append([]Opt{WithClock(clock)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	r.Start()
	return fixture{reg: r, clock: clock}
}

// waitStatus waits until the named check reports status.
func waitStatus(t *testing.T, r *Registry, name string, status Status) Result {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, res := range r.Results() {
			if res.Name == name && res.Status == status {
				return res
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("check %s never reported %s: %+v", name, status, r.Results())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func get(t *testing.T, h http.Handler, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("GET %s: body %q is not JSON: %v", path, rec.Body.String(), err)
	}
	return rec.Code, body
}

func TestRegistry_ProbeStormRunsOncePerInterval(t *testing.T) {
	t.Parallel()
	c := newCounter()
	f := setup(t, []config.Check{custom("db", "count", true)}, WithHandler("count", c.fn))
	c.waitRun(t, 1)

	storm := func() {
		var wg sync.WaitGroup
		h := f.reg.Handler()
		for range 1000 {
			wg.Go(func() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
				if rec.Code != http.StatusOK {
					t.Errorf("GET /health = %d", rec.Code)
				}
			})
		}
		wg.Wait()
	}
	storm()
	if n := c.runs.Load(); n != 1 {
		t.Fatalf("1000 probes ran the check %d times in one interval, want 1", n)
	}
	f.clock.Advance(interval)
	f.clock.Tick(interval)
	c.waitRun(t, 2)
	storm()
	if n := c.runs.Load(); n != 2 {
		t.Fatalf("after one more interval and 1000 more probes the check ran %d times, want 2", n)
	}
}

func TestRegistry_SlowCheckDoesNotSlowHealth(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	slow := func(ctx context.Context) error {
		started <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f := setup(t, []config.Check{custom("slow", "slow", true)}, WithHandler("slow", slow))
	<-started

	// The first run is still blocked: /health answers from the cache (unknown counts as pass)
	// instead of waiting for it. If it waited, this call would never return.
	code, body := get(t, f.reg.Handler(), "/health")
	if code != http.StatusOK || body["status"] != "pass" {
		t.Fatalf("during the first run: %d %v", code, body)
	}
	if st := f.reg.Results()[0].Status; st != Unknown {
		t.Fatalf("status during the first run = %s, want unknown", st)
	}
	if ok, _ := f.reg.Ready(); ok {
		t.Fatal("ready before the critical check passed once")
	}

	release <- struct{}{}
	waitStatus(t, f.reg, "slow", Pass)

	// The second run blocks too; /health serves the last result meanwhile.
	f.clock.Tick(interval)
	<-started
	code, body = get(t, f.reg.Handler(), "/health")
	if code != http.StatusOK || body["status"] != "pass" {
		t.Fatalf("during the second run: %d %v", code, body)
	}
	close(release)
}

func TestRegistry_CriticalFailsNonCriticalWarns(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, tc := range []struct {
		critical   bool
		wantCode   int
		wantStatus Status
	}{
		{true, http.StatusServiceUnavailable, Fail},
		{false, http.StatusOK, Warn},
	} {
		t.Run(string(tc.wantStatus), func(t *testing.T) {
			t.Parallel()
			c := newCounter()
			c.fail(boom)
			f := setup(t, []config.Check{custom("dep", "dep", tc.critical)}, WithHandler("dep", c.fn))
			c.waitRun(t, 1)
			res := waitStatus(t, f.reg, "dep", tc.wantStatus)
			if res.Error != "boom" || res.Time.IsZero() {
				t.Errorf("result = %+v", res)
			}
			code, body := get(t, f.reg.Handler(), "/health")
			if code != tc.wantCode || body["status"] != string(tc.wantStatus) {
				t.Fatalf("GET /health = %d %v, want %d %s", code, body, tc.wantCode, tc.wantStatus)
			}
			checks := body["checks"].([]any)
			first := checks[0].(map[string]any)
			for _, k := range []string{"name", "status", "duration_seconds", "error", "time"} {
				if _, ok := first[k]; !ok {
					t.Errorf("check in report lacks %q: %v", k, first)
				}
			}
		})
	}
}

func TestNew_UnknownHandler(t *testing.T) {
	t.Parallel()
	_, err := New([]config.Check{
		{Name: "ok", Type: config.CheckTCP, URL: "127.0.0.1:1"},
		{Name: "biz", Type: config.CheckCustom, Handler: "nobody_registered_this"},
	})
	if !errors.Is(err, ErrUnknownHandler) {
		t.Fatalf("err = %v, want ErrUnknownHandler", err)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Index != 1 || ce.Name != "biz" {
		t.Fatalf("err = %#v, want a ConfigError for health.checks[1]", err)
	}
	if !strings.Contains(err.Error(), "health.checks[1] (biz)") || !strings.Contains(err.Error(), "health.Register") {
		t.Errorf("message does not say where or how to fix: %v", err)
	}
}

func TestRegister_Global(t *testing.T) {
	t.Parallel()
	name := fmt.Sprintf("test_global_handler_%d", globalRuns.Add(1)) // -count=N registers again
	Register(name, func(context.Context) error { return nil })
	r, err := New([]config.Check{{Name: "g", Type: config.CheckCustom, Handler: name}})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer func() {
		if recover() == nil {
			t.Error("registering the same handler twice did not panic")
		}
	}()
	Register(name, func(context.Context) error { return nil })
}

var globalRuns atomic.Int64

func TestRegistry_SetEnabled(t *testing.T) {
	t.Parallel()
	c := newCounter()
	c.fail(errors.New("down"))
	f := setup(t, []config.Check{custom("db", "db", true)}, WithHandler("db", c.fn))
	waitStatus(t, f.reg, "db", Fail)

	if err := f.reg.SetEnabled("nope", false); !errors.Is(err, ErrUnknownCheck) {
		t.Fatalf("SetEnabled(unknown) = %v, want ErrUnknownCheck", err)
	}
	if err := f.reg.SetEnabled("db", false); err != nil {
		t.Fatal(err)
	}
	res := f.reg.Results()[0]
	if res.Enabled || res.Status != Disabled {
		t.Fatalf("after disabling: %+v", res)
	}
	if code, body := get(t, f.reg.Handler(), "/health"); code != http.StatusOK || body["status"] != "pass" {
		t.Fatalf("a disabled failing check still fails /health: %d %v", code, body)
	}
	if ok, why := f.reg.Ready(); !ok {
		t.Fatalf("a disabled check still holds readiness: %s", why)
	}
	// Disabled checks do not run on their interval.
	before := c.runs.Load()
	f.clock.Tick(interval)
	if err := f.reg.SetEnabled("db", true); err != nil {
		t.Fatal(err)
	}
	// Re-enabling runs the check at once.
	c.waitRun(t, before+1)
	waitStatus(t, f.reg, "db", Fail)
	if code, _ := get(t, f.reg.Handler(), "/health"); code != http.StatusServiceUnavailable {
		t.Fatalf("re-enabled failing check: /health = %d", code)
	}
}

func TestRegistry_Ready(t *testing.T) {
	t.Parallel()
	c := newCounter()
	c.fail(errors.New("not yet"))
	r, err := New([]config.Check{custom("db", "db", true), custom("cache", "cache", false)},
		WithHandler("db", c.fn), WithHandler("cache", func(context.Context) error { return errors.New("cold") }),
		WithClock(newFakeClock()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ready := r.ReadyHandler()
	if code, _ := get(t, ready, "/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("before Start: /ready = %d", code)
	}
	r.Start()
	waitStatus(t, r, "db", Fail)
	if code, body := get(t, ready, "/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body["reason"].(string), "db") {
		t.Fatalf("before the critical check passed: /ready = %d %v", code, body)
	}
	c.err.Store(nil)
	if err := r.SetEnabled("db", false); err != nil {
		t.Fatal(err)
	}
	if err := r.SetEnabled("db", true); err != nil { // runs it now
		t.Fatal(err)
	}
	waitStatus(t, r, "db", Pass)
	// The failing non-critical check does not hold readiness.
	if code, body := get(t, ready, "/ready"); code != http.StatusOK {
		t.Fatalf("after the critical check passed: /ready = %d %v", code, body)
	}
	r.SetDraining(true)
	if code, body := get(t, ready, "/ready"); code != http.StatusServiceUnavailable || body["reason"] != "draining" {
		t.Fatalf("while draining: /ready = %d %v", code, body)
	}
	if code, _ := get(t, r.Handler(), "/health"); code != http.StatusOK {
		t.Fatalf("draining changed /health: %d", code)
	}
	r.SetDraining(false)
	if code, _ := get(t, ready, "/ready"); code != http.StatusOK {
		t.Fatalf("after draining ended: /ready = %d", code)
	}
}

func TestRegistry_Live(t *testing.T) {
	t.Parallel()
	f := setup(t, nil, WithLiveness(time.Second, 5*time.Second))
	if code, _ := get(t, f.reg.LiveHandler(), "/live"); code != http.StatusOK {
		t.Fatalf("/live = %d", code)
	}
	// The heartbeat is not ticked while the clock moves past the bound: the process looks wedged.
	f.clock.Advance(6 * time.Second)
	if code, body := get(t, f.reg.LiveHandler(), "/live"); code != http.StatusServiceUnavailable || !strings.Contains(body["reason"].(string), "heartbeat") {
		t.Fatalf("stale heartbeat: /live = %d %v", code, body)
	}
	f.clock.Tick(time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, _ := f.reg.Live(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a tick of the heartbeat did not make /live pass again")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRegistry_TimeoutAndStuckCheck(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	stuck := func(context.Context) error { <-release; return nil } // ignores its context
	cc := custom("stuck", "stuck", true)
	cc.Timeout = config.Duration(20 * time.Millisecond)
	f := setup(t, []config.Check{cc}, WithHandler("stuck", stuck))
	res := waitStatus(t, f.reg, "stuck", Fail)
	if !strings.Contains(res.Error, "timed out after 20ms") {
		t.Fatalf("error = %q", res.Error)
	}
	f.clock.Advance(time.Second)
	f.clock.Tick(interval)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(f.reg.Results()[0].Error, "previous run has not returned") {
		if time.Now().After(deadline) {
			t.Fatalf("a second run was started over a stuck one: %+v", f.reg.Results()[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRegistry_PanickingCheck(t *testing.T) {
	t.Parallel()
	f := setup(t, []config.Check{custom("p", "p", false)}, WithHandler("p", func(context.Context) error { panic("oops") }))
	res := waitStatus(t, f.reg, "p", Warn)
	if !strings.Contains(res.Error, "panicked: oops") {
		t.Fatalf("error = %q", res.Error)
	}
}

func TestRegistry_Mount(t *testing.T) {
	t.Parallel()
	c := newCounter()
	f := setup(t, []config.Check{custom("db", "db", true)}, WithHandler("db", c.fn))
	waitStatus(t, f.reg, "db", Pass)
	cfg := &config.Config{}
	cfg.Health.Enabled = true
	cfg.Health.Endpoint = "/health"
	cfg.Scaling.Instances.Startup.ReadinessProbe = "/ready"
	cfg.Scaling.Instances.Startup.LivenessProbe = "/healthz"
	mux := http.NewServeMux()
	f.reg.Mount(mux, cfg)
	for path, key := range map[string]string{
		"/health": "checks", "/ready": "status", "/live": "status",
		"/health/ready": "status", "/health/live": "status", "/healthz": "status",
	} {
		code, body := get(t, mux, path)
		if _, ok := body[key]; code != http.StatusOK || !ok {
			t.Errorf("GET %s = %d %v", path, code, body)
		}
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/health", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /health = %d, want 405", rec.Code)
	}
	cfg.Health.Enabled = false
	if p := Paths(cfg); len(p) != 0 {
		t.Errorf("health.enabled false still mounts %v", p)
	}
}
