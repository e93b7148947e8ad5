package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/proxy"
)

// quickstart is the real example service, built once for all tests; flaky is a test service
// whose liveness probe starts failing (testdata/flaky).
var quickstart, flaky string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shoal-fleet-test")
	if err != nil {
		panic(err)
	}
	quickstart = filepath.Join(dir, "quickstart")
	build := exec.Command("go", "build", "-o", quickstart, "../examples/quickstart")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the quickstart: %v\n%s", err, out)
		os.Exit(1)
	}
	flaky = filepath.Join(dir, "flaky")
	if out, err := exec.Command("go", "build", "-o", flaky, "./testdata/flaky").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building testdata/flaky: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type harness struct {
	f     *Fleet
	p     *proxy.Proxy
	url   string
	cfg   *config.Config
	state string
}

func testConfig(t *testing.T, min, max int) *config.Config {
	t.Helper()
	src := fmt.Sprintf(`
name: qs
scaling:
  service_discovery:
    health_check: {endpoint: /health, interval: 1s, timeout: 1s, unhealthy_threshold: 2}
  load_balancer:
    health_check_interval: 200ms
    retry: {attempts: 3, backoff: 5ms, max_backoff: 20ms}
  instances:
    min_instances: %d
    max_instances: %d
    startup: {initial_delay: 10s, readiness_probe: /ready, liveness_probe: /live}
    shutdown: {drain_timeout: 5s, graceful_timeout: 5s, force_timeout: 8s}
`, min, max)
	c, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func start(t *testing.T, cfg *config.Config, command []string, tweak func(*Options)) *harness {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	popts := proxy.FromConfig(cfg)
	popts.Logger = logger
	p, err := proxy.New(popts)
	if err != nil {
		t.Fatal(err)
	}
	set := discovery.NewSet()
	ctx, cancel := context.WithCancel(context.Background())
	go p.Watch(ctx, set)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, ln, proxy.ServerOptions{DrainTimeout: 5 * time.Second}) }()
	state := t.TempDir()
	opts := Options{Command: command, Dir: state, StateDir: state, Proxy: p, Instances: set, Logger: logger,
		RestartBackoff: 50 * time.Millisecond, MaxRestartBackoff: 200 * time.Millisecond,
		LivenessInterval: 100 * time.Millisecond, History: newMemHistory(), SampleInterval: 100 * time.Millisecond}
	if tweak != nil {
		tweak(&opts)
	}
	f, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{f: f, p: p, url: "http://" + ln.Addr().String(), cfg: cfg, state: state}
	t.Cleanup(func() {
		f.Stop(context.Background())
		cancel()
		<-served
		p.Close()
	})
	return h
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 10 * time.Second}

// load sends GET / from workers until stopped; it returns ok and failed counts.
func load(t *testing.T, url string, workers int) (stop func() (ok, failed int64)) {
	var okN, failN atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, err := client.Get(url + "/")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					failN.Add(1)
					once.Do(func() {
						if err != nil {
							t.Logf("first failed request: %v", err)
						} else {
							t.Logf("first failed request: %d %s", resp.StatusCode, resp.Header.Get("X-Shoal-Error"))
						}
					})
					continue
				}
				okN.Add(1)
			}
		}()
	}
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return okN.Load(), failN.Load()
	}
}

func readyCount(h *harness) int {
	return h.f.Status(context.Background()).Ready
}

// waitFor polls cond until it holds; the deadline is generous because the machine running the
// tests may be far busier than the tests themselves (it fails only a test that hangs).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFleet_StartServesThroughProxy(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 3, 5), []string{quickstart}, nil)
	if err := h.f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := h.f.Status(context.Background())
	if st.Ready != 3 || len(st.Instances) != 3 {
		t.Fatalf("status after start: %+v", st)
	}
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		resp, err := client.Get(h.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		seen[resp.Header.Get("X-Shoal-Instance")]++
	}
	if len(seen) != 3 || seen["qs-1"] != 10 {
		t.Errorf("round robin over 3 instances: %v", seen)
	}
	for _, in := range st.Instances {
		if in.PID == 0 || in.Port == 0 || in.State != admin.StateReady || in.Health != "healthy" {
			t.Errorf("instance status: %+v", in)
		}
		b, err := os.ReadFile(in.LogFile)
		if err != nil || !strings.Contains(string(b), "listening") {
			t.Errorf("instance log %s: %v %q", in.LogFile, err, b)
		}
		// Logs can hold secrets: the user's only.
		for path, want := range map[string]os.FileMode{in.LogFile: 0o600, filepath.Dir(in.LogFile): 0o700} {
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: %v %v; want mode %v", path, err, fi, want)
			}
		}
	}
}

func TestFleet_ZeroFailedRequests(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 2, 5), []string{quickstart}, nil)
	ctx := context.Background()
	if err := h.f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stop := load(t, h.url, 8)

	t.Run("scale up", func(t *testing.T) {
		res, err := h.f.Scale(ctx, 4, "test")
		if err != nil || res.From != 2 || res.To != 4 || readyCount(h) != 4 {
			t.Fatalf("scale up: %+v %v (ready %d)", res, err, readyCount(h))
		}
	})
	t.Run("scale down removes the newest by drain", func(t *testing.T) {
		res, err := h.f.Scale(ctx, 2, "test")
		if err != nil || fmt.Sprint(res.Stopped) != "[qs-3 qs-4]" {
			t.Fatalf("scale down: %+v %v", res, err)
		}
	})
	t.Run("rolling restart", func(t *testing.T) {
		before := h.f.Status(ctx).Instances
		if err := h.f.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		after := h.f.Status(ctx).Instances
		if len(after) != 2 || after[0].ID == before[0].ID || after[1].ID == before[1].ID {
			t.Fatalf("restart did not replace the instances: %v → %v", ids(before), ids(after))
		}
	})
	t.Run("kill -9", func(t *testing.T) {
		victim := h.f.Status(ctx).Instances[0]
		if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the killed instance to be restarted", func() bool {
			for _, in := range h.f.Status(ctx).Instances {
				if in.ID == victim.ID && in.State == admin.StateReady && in.PID != victim.PID && in.Restarts == 1 {
					return true
				}
			}
			return false
		})
	})
	time.Sleep(200 * time.Millisecond) // some load on the final fleet
	ok, failed := stop()
	if failed != 0 {
		t.Fatalf("%d of %d requests failed during scale-up, scale-down, rolling restart and kill -9; want 0", failed, ok+failed)
	}
	if ok < 100 {
		t.Fatalf("only %d requests went through; the load did not run", ok)
	}
	t.Logf("%d requests, 0 failed", ok)
}

func ids(s []admin.InstanceStatus) []string {
	var out []string
	for _, in := range s {
		out = append(out, in.ID)
	}
	return out
}

func TestFleet_ScaleOutOfRangeIsRefused(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 1, 2), []string{quickstart}, nil)
	if err := h.f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 3} {
		_, err := h.f.Scale(context.Background(), n, "test")
		if _, ok := err.(*admin.OutOfRangeError); !ok || !strings.Contains(err.Error(), "(1..2)") {
			t.Errorf("Scale(%d) = %v, want an OutOfRangeError naming 1..2", n, err)
		}
	}
}

func TestFleet_CrashLoopIsReportedFailed(t *testing.T) {
	t.Parallel()
	// The last words change from run to run ($$ is the shell's PID), so this is not the
	// deterministic failure that fails at once (TestFleet_DeterministicStartFailureFailsAtOnce).
	h := start(t, testConfig(t, 1, 2), []string{"/bin/sh", "-c", "echo boom $$; exit 3"}, func(o *Options) { o.MaxCrashes = 3 })
	err := h.f.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "crashed 4 times in a row") || !strings.Contains(err.Error(), "its last words: boom") {
		t.Fatalf("Start = %v, want the crash loop reported", err)
	}
	st := h.f.Status(context.Background())
	if len(st.Instances) != 1 || st.Instances[0].State != admin.StateFailed || st.Instances[0].Restarts != 4 {
		t.Fatalf("status: %+v", st.Instances)
	}
	kinds := ""
	for _, e := range st.Events {
		kinds += e.Kind + " "
	}
	if !strings.Contains(kinds, "failed") || !strings.Contains(kinds, "crash") {
		t.Errorf("events: %s", kinds)
	}
}

func TestFleet_StopLeavesNoProcess(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 2, 2), []string{quickstart}, nil)
	if err := h.f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, in := range h.f.Status(context.Background()).Instances {
		pids = append(pids, in.PID)
	}
	if err := h.f.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d is still running after Stop", pid)
		}
	}
}

func TestFleet_HungInstanceIsKilledAtForceTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1, 1)
	cfg.Scaling.Instances.Shutdown = config.Shutdown{DrainTimeout: config.Duration(100 * time.Millisecond),
		GracefulTimeout: config.Duration(200 * time.Millisecond), ForceTimeout: config.Duration(400 * time.Millisecond)}
	// A service whose main process ignores SIGTERM (its child, the quickstart, stops).
	script := `trap '' TERM; ` + quickstart + ` & while :; do sleep 0.05; done`
	var logs syncBuffer
	h := start(t, cfg, []string{"/bin/sh", "-c", script}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if err := h.f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := h.f.Status(context.Background()).Instances[0].PID
	began := time.Now()
	h.f.Stop(context.Background())
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("stopping a hung instance took %s; force_timeout is 400ms", took)
	}
	if !strings.Contains(logs.String(), "force_timeout reached; killing the instance") {
		t.Errorf("the hung instance was not killed at force_timeout:\n%s", logs.String())
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("process %d survived", pid)
	}
}

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

func TestFleet_MetricsHistory(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 2, 2), []string{quickstart}, nil)
	if err := h.f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		resp, err := client.Get(h.url + "/work?ms=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	waitFor(t, "samples", func() bool {
		r := h.f.Metrics(context.Background(), time.Minute, 100)
		for _, s := range r.Series {
			if s.Metric == "request_rate" {
				for _, p := range s.Points {
					if p.Value > 0 {
						return true
					}
				}
			}
		}
		return false
	})
	r := h.f.Metrics(context.Background(), time.Minute, 100)
	for _, s := range r.Series {
		if s.Metric == "instance_count" && (len(s.Points) == 0 || s.Points[len(s.Points)-1].Value != 2) {
			t.Errorf("instance_count series: %+v", s.Points)
		}
	}
}

// memHistory is a minimal History for these tests.
type memHistory struct {
	mu sync.Mutex
	m  map[string][]admin.Point
}

func newMemHistory() *memHistory { return &memHistory{m: map[string][]admin.Point{}} }

func (h *memHistory) Record(metric string, t time.Time, v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[metric] = append(h.m[metric], admin.Point{Time: t, Value: v})
}

func (h *memHistory) Query(metric string, since time.Duration, points int) []admin.Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []admin.Point
	for _, p := range h.m[metric] {
		if time.Since(p.Time) <= since {
			out = append(out, p)
		}
	}
	return out
}

func TestFleet_Autoscales(t *testing.T) {
	t.Parallel()
	src := `
name: qs
scaling:
  service_discovery:
    health_check: {endpoint: /health, interval: 1s, timeout: 1s}
  load_balancer: {health_check_interval: 1s}
  instances:
    min_instances: 1
    max_instances: 3
    scale_up_cooldown: 1ms
    scale_down_cooldown: 1s
    startup: {initial_delay: 10s, readiness_probe: /ready, liveness_probe: /live}
    shutdown: {drain_timeout: 5s, graceful_timeout: 5s, force_timeout: 8s}
observability:
  auto_scaling:
    enabled: true
    interval: 300ms
    metrics:
      - {metric: active_connections, threshold: 2, action: scale_up, cooldown: 1ms}
      - {metric: active_connections, threshold: 0.5, action: scale_down, cooldown: 1ms}
`
	cfg, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg, []string{quickstart}, func(o *Options) { o.Autoscale = true })
	ctx := context.Background()
	if err := h.f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Slow requests keep several in flight: active_connections > 2 scales the fleet up.
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if resp, err := client.Get(h.url + "/work?ms=100"); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	defer func() {
		if t.Failed() {
			for _, d := range h.f.Decisions(ctx, time.Hour, 0).Decisions {
				t.Logf("%s %s %+v", d.Time.Format("15:04:05.000"), d.Reason, d.Metrics)
			}
		}
	}()
	// The rules' 1 ms cooldowns and the CPU target let the count go up and down every 300 ms,
	// so the fleet may be at 3 only for a moment: wait for the scale to 3 to have happened.
	waitFor(t, "an autoscale-up to 3", func() bool {
		for _, e := range h.f.Status(ctx).Events {
			if e.Kind == "autoscale_up" && e.To == 3 {
				return true
			}
		}
		return false
	})
	close(done)
	wg.Wait()
	// Idle: active_connections < 0.5 scales it back down to min_instances.
	waitFor(t, "an autoscale-down to 1", func() bool { return readyCount(h) == 1 })
	kinds := map[string]int{}
	for _, e := range h.f.Status(ctx).Events {
		kinds[e.Kind]++
		if strings.HasPrefix(e.Kind, "autoscale") && !strings.Contains(e.Reason, " recommends ") {
			t.Errorf("autoscale event without its reason: %+v", e)
		}
	}
	if kinds["autoscale_up"] < 1 || kinds["autoscale_down"] < 1 {
		t.Errorf("events: %v", kinds)
	}
}

func TestFleet_FailingLivenessRestartsTheInstance(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 1, 1), []string{"/usr/bin/env", "FLAKY_LIVE_OK=3", flaky}, nil)
	ctx := context.Background()
	if err := h.f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := h.f.Status(ctx).Instances[0]
	// After 3 good probes /live fails; unhealthy_threshold (2) failures restart the instance.
	waitFor(t, "a restart after failed liveness probes", func() bool {
		in := h.f.Status(ctx).Instances[0]
		return in.Restarts >= 1 && in.PID != first.PID && in.State == admin.StateReady
	})
	in := h.f.Status(ctx).Instances[0]
	if !strings.Contains(in.LastErr, "liveness probe failed 2 times in a row") {
		t.Errorf("last error: %q", in.LastErr)
	}
	if syscall.Kill(first.PID, 0) == nil {
		t.Errorf("the wedged process %d was not stopped", first.PID)
	}
}

func TestFleet_KillDuringStop(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1, 1)
	cfg.Scaling.Instances.Shutdown = config.Shutdown{DrainTimeout: config.Duration(time.Second),
		GracefulTimeout: config.Duration(30 * time.Second), ForceTimeout: config.Duration(60 * time.Second)}
	// A service that ignores SIGTERM: Stop alone would wait for force_timeout (60s).
	h := start(t, cfg, []string{"/bin/sh", "-c", `trap '' TERM; ` + quickstart + ` & while :; do sleep 0.05; done`}, nil)
	if err := h.f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { h.f.Stop(context.Background()); close(stopped) }()
	waitFor(t, "the instance to be stopping", func() bool {
		return h.f.Status(context.Background()).Instances[0].State == admin.StateStopping
	})
	h.f.Kill()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after Kill")
	}
}

func TestFleet_NeverReadySaysWhy(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1, 1)
	cfg.Scaling.Instances.Startup.InitialDelay = config.Duration(300 * time.Millisecond)
	notReady := filepath.Join(t.TempDir(), "not-ready")
	if err := os.WriteFile(notReady, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg, []string{"/usr/bin/env", "FLAKY_NOT_READY_FILE=" + notReady, flaky}, func(o *Options) { o.MaxCrashes = 1 })
	err := h.f.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "GET /ready answered 503") || !strings.Contains(err.Error(), "on $PORT") {
		t.Fatalf("Start = %v; want the failing readiness probe named", err)
	}
}

func TestFleet_FailingLivenessForeverEndsFailed(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 1, 1), []string{"/usr/bin/env", "FLAKY_LIVE_OK=0", flaky}, func(o *Options) { o.MaxCrashes = 2 })
	ctx := context.Background()
	if err := h.f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Ready, but /live never passes: restarting cannot help, so the instance ends failed.
	waitFor(t, "the instance to be reported failed", func() bool {
		return h.f.Status(ctx).Instances[0].State == admin.StateFailed
	})
	if in := h.f.Status(ctx).Instances[0]; !strings.Contains(in.LastErr, "liveness probe failed") {
		t.Errorf("last error: %q", in.LastErr)
	}
}
