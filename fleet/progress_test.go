package fleet

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/config"
)

// steps records the progress an operation reports.
type steps struct {
	mu   sync.Mutex
	list []admin.Progress
	on   func(admin.Progress) // called with each, outside the lock
}

func (s *steps) add(p admin.Progress) {
	s.mu.Lock()
	s.list = append(s.list, p)
	on := s.on
	s.mu.Unlock()
	if on != nil {
		on(p)
	}
}

func (s *steps) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, p := range s.list {
		b.WriteString(p.Instance + " " + p.State + ": " + p.Message + "\n")
	}
	return b.String()
}

// TestFleet_WrapperIsMeasuredAsItsGroup runs the service under a shell that waits for it, as
// `go run` does: the status names the service's own PID beside the group's, and its CPU is
// sampled although the process shoal started does nothing.
func TestFleet_WrapperIsMeasuredAsItsGroup(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 1, 1), []string{"/bin/sh", "-c", quickstart + "; exit $?"}, nil)
	if err := h.f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	in := h.f.Status(context.Background()).Instances[0]
	if in.PGID == 0 || in.PID == in.PGID {
		t.Fatalf("status PID %d, PGID %d: want the service's PID, not the wrapper's", in.PID, in.PGID)
	}
	if exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(in.PID), "exe")); err != nil || exe != quickstart {
		t.Errorf("PID %d runs %q (%v); want the quickstart %s", in.PID, exe, err, quickstart)
	}
	// Each request spins 20ms of CPU in the service; the shell uses none.
	waitFor(t, "a CPU sample above 1% under load", func() bool {
		for range 10 {
			if resp, err := client.Get(h.url + "/work?ms=20"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		for _, s := range h.f.Metrics(context.Background(), time.Minute, 1000).Series {
			if s.Metric == "cpu_utilization_percentage" {
				for _, p := range s.Points {
					if p.Value > 1 {
						return true
					}
				}
			}
		}
		return false
	})
}

// TestFleet_ProbeNotServedFailsAtOnce checks that a service answering 404 on its readiness
// path fails at once, without crash-loop restarts, with the fix in the reason; and that a
// scale-up reports it as a step.
func TestFleet_ProbeNotServedFailsAtOnce(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1, 2)
	cfg.Scaling.Instances.Startup.ReadinessProbe = "/not-here"
	cfg.Scaling.Instances.Startup.InitialDelay = config.Duration(10 * time.Minute)
	h := start(t, cfg, []string{quickstart}, nil)
	err := h.f.Start(context.Background())
	for _, want := range []string{"does not serve /not-here (GET /not-here answered 404)", "health.Registry.Mount", "scaling.instances.startup.readiness_probe"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Start = %v; want it to say %q", err, want)
		}
	}
	st := h.f.Status(context.Background())
	if in := st.Instances[0]; in.State != admin.StateFailed || in.Restarts != 0 {
		t.Errorf("instance %+v; want failed without a restart", in)
	}
	for _, e := range st.Events {
		if e.Kind == "crash" {
			t.Errorf("a service that does not serve its probe was restarted: %+v", e)
		}
	}
}

// TestFleet_InterruptedRestartLeavesNoPhantom interrupts a rolling restart while the
// replacement waits for readiness: it is stopped and forgotten and the old instance keeps
// serving. A replacement that never becomes ready ends the restart with its reason, the same
// way; a restart once the service is ready again replaces the instance.
func TestFleet_InterruptedRestartLeavesNoPhantom(t *testing.T) {
	t.Parallel()
	notReady := filepath.Join(t.TempDir(), "not-ready")
	cfg := testConfig(t, 1, 1)
	cfg.Scaling.Instances.Startup.InitialDelay = config.Duration(2 * time.Second)
	h := start(t, cfg, []string{"/usr/bin/env", "FLAKY_LIVE_OK=1000000", "FLAKY_NOT_READY_FILE=" + notReady, flaky}, nil)
	ctx := context.Background()
	if err := h.f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := h.f.Status(ctx).Instances[0]
	if err := os.WriteFile(notReady, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	onlyFirst := func(when string) {
		t.Helper()
		st := h.f.Status(ctx)
		if len(st.Instances) != 1 || st.Instances[0].ID != first.ID || st.Instances[0].State != admin.StateReady {
			t.Fatalf("%s: instances %+v; want only %s, ready", when, st.Instances, first.ID)
		}
	}

	t.Run("interrupted", func(t *testing.T) {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var rec steps
		var replacement admin.Progress
		rec.on = func(p admin.Progress) {
			if p.Instance != first.ID && strings.HasPrefix(p.Message, "started") {
				replacement = p
				cancel() // Ctrl-C while the replacement starts
			}
		}
		err := h.f.Restart(admin.WithProgress(rctx, rec.add))
		if err == nil || !strings.Contains(err.Error(), "it was stopped, "+first.ID+" keeps serving") {
			t.Fatalf("Restart = %v\nsteps:\n%s", err, rec.String())
		}
		onlyFirst("after an interrupted restart")
		if !strings.Contains(rec.String(), replacement.Instance+" stopped: stopped") {
			t.Errorf("the replacement's stop was not reported:\n%s", rec.String())
		}
	})
	t.Run("never ready", func(t *testing.T) {
		var rec steps
		err := h.f.Restart(admin.WithProgress(ctx, rec.add))
		if err == nil || !strings.Contains(err.Error(), "did not become ready") || !strings.Contains(err.Error(), "GET /ready answered 503") {
			t.Fatalf("Restart = %v", err)
		}
		onlyFirst("after a restart whose replacement never became ready")
		if !strings.Contains(rec.String(), "waiting for /ready: GET /ready answered 503") {
			t.Errorf("no step said why the replacement was not ready:\n%s", rec.String())
		}
	})
	t.Run("then a restart replaces it", func(t *testing.T) {
		if err := os.Remove(notReady); err != nil {
			t.Fatal(err)
		}
		if err := h.f.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		st := h.f.Status(ctx)
		if len(st.Instances) != 1 || st.Instances[0].ID == first.ID || st.Instances[0].State != admin.StateReady {
			t.Fatalf("instances %+v; want one new, ready instance", st.Instances)
		}
		if syscall.Kill(first.PGID, 0) == nil {
			t.Errorf("the old instance's process %d still runs", first.PGID)
		}
	})
}

// TestFleet_ScaleReportsSteps checks the steps a scale-up and a scale-down report.
func TestFleet_ScaleReportsSteps(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 1, 2), []string{quickstart}, nil)
	ctx := context.Background()
	if err := h.f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var rec steps
	if _, err := h.f.Scale(admin.WithProgress(ctx, rec.add), 2, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.f.Scale(admin.WithProgress(ctx, rec.add), 1, "test"); err != nil {
		t.Fatal(err)
	}
	got := rec.String()
	for _, want := range []string{"qs-2 starting: started: pid ", "qs-2 ready: ready: in the proxy's rotation", "qs-2 draining: draining", "qs-2 stopped: stopped"} {
		if !strings.Contains(got, want) {
			t.Errorf("steps lack %q:\n%s", want, got)
		}
	}
}

// TestFleet_StartFailureAdvisesUpAgain checks that a crash loop during `shoal up`'s start does
// not advise `shoal scaling restart`, since no fleet is left to restart.
func TestFleet_StartFailureAdvisesUpAgain(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 1, 1), []string{"/bin/sh", "-c", "exit 3"}, func(o *Options) { o.MaxCrashes = 1 })
	err := h.f.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "run `shoal up` again") || strings.Contains(err.Error(), "scaling restart") {
		t.Fatalf("Start = %v", err)
	}
}

// TestFleet_DeterministicStartFailureFailsAtOnce checks that an instance which fails the same
// way twice while the fleet starts (a compile error under `go run`, a missing file) is not
// retried through every backoff: Start fails after the second run with its last words.
func TestFleet_DeterministicStartFailureFailsAtOnce(t *testing.T) {
	t.Parallel()
	h := start(t, testConfig(t, 1, 1), []string{"/bin/sh", "-c", "echo './main.go:7:2: undefined: handler' >&2; exit 1"}, nil)
	err := h.f.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "failed the same way on 2 starts in a row, so not retrying") ||
		!strings.Contains(err.Error(), "its last words: ./main.go:7:2: undefined: handler") ||
		!strings.Contains(err.Error(), "run `shoal up` again") {
		t.Fatalf("Start = %v", err)
	}
	st := h.f.Status(context.Background())
	if len(st.Instances) != 1 || st.Instances[0].State != admin.StateFailed || st.Instances[0].Restarts != 1 {
		t.Fatalf("status: %+v", st.Instances)
	}
}
