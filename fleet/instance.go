package fleet

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-sh/shoal/admin"
)

// instance is one supervised process of the service. Its supervisor goroutine owns the
// process: it starts it, gates it on readiness, watches liveness, restarts it after a crash
// with backoff, and stops it by drain, SIGTERM and SIGKILL.
type instance struct {
	f   *Fleet
	id  string
	seq int

	mu       sync.Mutex
	state    string
	pid      int
	port     int
	started  time.Time
	restarts int
	lastErr  string
	lastLine string // the last line the process wrote, quoted when it dies
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the current process has exited
	exitErr  error

	// servicePID is the process of the group that listens on the port, once ready: under
	// `go run` or a script, not pid (proctree.go).
	servicePID int
	// progress receives the instance's steps while a scale or restart waits for it; nil
	// otherwise (progress.go).
	progress admin.ProgressFunc
	// notServed is set when a probe path answers 404: the service does not serve it, so
	// restarting cannot help and the instance fails at once.
	notServed string
	// strict makes the first failure to become ready final (no crash-loop retries): a
	// replacement during a rolling restart, whose old instance keeps serving.
	strict bool

	stop     chan struct{} // closed to ask the supervisor to stop the instance for good
	stopOnce sync.Once
	done     chan struct{} // closed when the supervisor has finished
	ready    chan struct{} // closed the first time the instance becomes ready (or fails)
	readyErr error
	readyOne sync.Once
}

func (in *instance) setState(s string) {
	in.mu.Lock()
	in.state = s
	in.mu.Unlock()
}

func (in *instance) snapshot() admin.InstanceStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := admin.InstanceStatus{
		ID: in.id, PID: cmp.Or(in.servicePID, in.pid), PGID: in.pid, Port: in.port, State: in.state, Started: in.started,
		Restarts: in.restarts, LastErr: in.lastErr, Health: "unknown", Breaker: "disabled",
		LogFile: in.f.logPath(in.id),
	}
	if in.port != 0 {
		s.URL = "http://127.0.0.1:" + strconv.Itoa(in.port)
	}
	if !in.started.IsZero() && in.state != admin.StateStopped && in.state != admin.StateFailed {
		s.Uptime = time.Since(in.started).Round(time.Second).String()
	}
	return s
}

func (in *instance) markReady(err error) {
	in.readyOne.Do(func() {
		in.readyErr = err
		close(in.ready)
	})
}

// run is the supervisor loop.
func (in *instance) run() {
	defer close(in.done)
	defer in.markReady(errors.New("stopped before it became ready"))
	f := in.f
	backoff := f.opts.RestartBackoff
	crashes := 0
	// lastEarly is why the previous run ended before the instance ever became ready.
	lastEarly := ""
	for {
		err := in.startProcess()
		if err != nil {
			in.fail(fmt.Sprintf("cannot start: %v", err))
			return
		}
		healthyRun, reason := in.watch()
		if reason == reasonStop {
			return
		}
		// The process died or was declared dead: take it out of rotation now.
		f.deregister(in)
		in.kill()
		if in.notServed != "" {
			in.fail(in.notServed)
			return
		}
		if in.strict && !in.wasReady() {
			in.fail(reason)
			return
		}
		// While the fleet starts, a second run that ends before it is ready exactly as the
		// first did (same exit status, same last words) is deterministic — a build error in
		// `go run`, a missing file or variable — and retrying for MaxCrashes backoffs would
		// only delay the message.
		if !in.wasReady() && !f.isRunning() {
			if reason == lastEarly {
				in.mu.Lock()
				in.lastErr = reason
				in.mu.Unlock()
				in.fail(fmt.Sprintf("failed the same way on 2 starts in a row, so not retrying: %s — %s", reason, f.fixAdvice()))
				return
			}
			lastEarly = reason
		}
		if healthyRun {
			crashes, backoff = 0, f.opts.RestartBackoff
		}
		crashes++
		in.mu.Lock()
		in.lastErr = reason
		in.restarts++
		in.mu.Unlock()
		if crashes > f.opts.MaxCrashes {
			in.fail(fmt.Sprintf("crashed %d times in a row (last: %s); not restarting it — %s", crashes, reason, f.fixAdvice()))
			return
		}
		in.report(admin.StateBackoff, reason+"; restarting in "+backoff.String())
		f.event("crash", reason+"; restarting "+in.id+" in "+backoff.String(), 0, 0)
		f.log.Warn("instance died; restarting after backoff", "instance", in.id, "reason", reason, "backoff", backoff.String(), "attempt", crashes)
		in.setState(admin.StateBackoff)
		select {
		case <-time.After(backoff):
		case <-in.stop:
			in.setState(admin.StateStopped)
			return
		}
		backoff = min(backoff*2, f.opts.MaxRestartBackoff)
	}
}

func (in *instance) fail(reason string) {
	in.mu.Lock()
	in.state, in.lastErr = admin.StateFailed, reason
	in.mu.Unlock()
	// Recorded before Start is woken, so whoever it wakes sees the event.
	in.f.event("failed", in.id+": "+reason, 0, 0)
	in.f.log.Error("instance failed", "instance", in.id, "reason", reason)
	in.report(admin.StateFailed, reason)
	in.markReady(errors.New(reason))
}

const reasonStop = "stop"

// startProcess starts the service on a fresh port.
func (in *instance) startProcess() error {
	f := in.f
	port, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(f.opts.Command[0], f.opts.Command[1:]...)
	cmd.Dir = f.opts.Dir
	cmd.Env = append(append(os.Environ(), f.opts.Env...),
		"PORT="+strconv.Itoa(port),
		"SHOAL_INSTANCE_ID="+in.id,
		"SHOAL_SERVICE="+f.cfg.Name,
		"SHOAL_CONFIG="+f.configPath(),
		"SHOAL_ENV="+f.cfg.Meta.Env,
	)
	// A process group of its own: Ctrl-C in the terminal reaches shoal, not the instances
	// (shoal drains them in order), and SIGKILL reaches any children they spawned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A child that outlives the instance must not keep its output pipe, and so Wait, open.
	cmd.WaitDelay = 2 * time.Second
	logw, err := f.instanceLog(in.id)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	// Reset what the previous run left before this one starts: a process that exits at once
	// reports its exit and last line from the goroutines below, maybe before Start returns here.
	in.mu.Lock()
	in.state, in.exitErr, in.lastLine, in.servicePID = admin.StateStarting, nil, "", 0
	in.mu.Unlock()
	if err := cmd.Start(); err != nil {
		pw.Close()
		logw.Close()
		return err
	}
	exited := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		s := bufio.NewScanner(pr)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			line := s.Text()
			fmt.Fprintf(logw, "%s %s\n", time.Now().Format(time.RFC3339Nano), line)
			f.instanceOutput(in.id, line)
			if strings.TrimSpace(line) != "" {
				in.mu.Lock()
				in.lastLine = line
				in.mu.Unlock()
			}
		}
		io.Copy(io.Discard, pr)
		logw.Close()
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		<-readerDone // every line is logged before the exit is reported
		in.mu.Lock()
		in.exitErr = err
		in.mu.Unlock()
		close(exited)
	}()
	in.mu.Lock()
	in.cmd, in.exited, in.pid, in.port, in.started = cmd, exited, cmd.Process.Pid, port, time.Now()
	in.mu.Unlock()
	f.log.Info("instance started", "instance", in.id, "pid", cmd.Process.Pid, "port", port)
	in.report(admin.StateStarting, fmt.Sprintf("started: pid %d, port %d", cmd.Process.Pid, port))
	return nil
}

// watch gates the process on readiness, then watches it until it exits, fails its liveness
// probe, or is asked to stop. It returns whether the run was healthy (it passed a liveness
// probe) and why it ended.
func (in *instance) watch() (healthy bool, reason string) {
	f := in.f
	in.mu.Lock()
	exited, port := in.exited, in.port
	in.mu.Unlock()
	base := "http://127.0.0.1:" + strconv.Itoa(port)

	// Readiness: only a ready instance gets traffic.
	deadline := time.NewTimer(f.cfg.Scaling.Instances.Startup.InitialDelay.D())
	defer deadline.Stop()
	tick := time.NewTicker(f.opts.ReadinessPoll)
	defer tick.Stop()
	var lastProbe error
	startup := f.cfg.Scaling.Instances.Startup
	var missing time.Time // since when the readiness path answers 404
	waiting, lastWhy := time.Now(), ""
	for ready := false; !ready; {
		select {
		case <-exited:
			return false, in.exitReason("before it became ready")
		case <-in.stop:
			in.shutdown(false)
			return false, reasonStop
		case <-deadline.C:
			why := "no answer"
			if lastProbe != nil {
				why = lastProbe.Error()
			}
			return false, fmt.Sprintf("not ready within startup.initial_delay %s (last probe: %s); does the service serve startup.readiness_probe %s on $PORT?",
				f.cfg.Scaling.Instances.Startup.InitialDelay, why, f.cfg.Scaling.Instances.Startup.ReadinessProbe)
		case <-tick.C:
			lastProbe = probe(f.client, base+startup.ReadinessProbe)
			ready = lastProbe == nil
			if isNotFound(lastProbe) {
				if missing.IsZero() {
					missing = time.Now()
				} else if time.Since(missing) >= notServedAfter {
					in.notServed = f.notServedReason("readiness_probe", startup.ReadinessProbe)
					return false, in.notServed
				}
			} else {
				missing = time.Time{}
			}
			// Say what the probe sees when that changes, and again every progressEvery.
			if why := probeWhy(lastProbe); !ready && (why != lastWhy || time.Since(waiting) >= progressEvery) {
				waiting, lastWhy = time.Now(), why
				in.report(admin.StateStarting, "waiting for "+startup.ReadinessProbe+": "+why)
			}
		}
	}
	in.setState(admin.StateReady)
	f.register(in, port)
	in.resolveServicePID(port)
	in.markReady(nil)
	f.log.Info("instance ready", "instance", in.id, "url", base)
	in.report(admin.StateReady, "ready: in the proxy's rotation at "+base)

	// Liveness: unhealthy_threshold failures in a row restart the instance. A run counts as
	// healthy (and resets the crash count) once the instance has passed a liveness probe, so an
	// instance that dies or fails its probes before that is crash-looping and ends up failed.
	live := time.NewTicker(f.opts.LivenessInterval)
	defer live.Stop()
	failures := 0
	passed := false
	threshold := f.cfg.Scaling.ServiceDiscovery.HealthCheck.UnhealthyThreshold
	for {
		select {
		case <-exited:
			return passed, in.exitReason("")
		case <-in.stop:
			in.shutdown(true)
			return passed, reasonStop
		case <-live.C:
			if err := probe(f.client, base+f.cfg.Scaling.Instances.Startup.LivenessProbe); err != nil {
				if isNotFound(err) {
					in.notServed = f.notServedReason("liveness_probe", f.cfg.Scaling.Instances.Startup.LivenessProbe)
					return passed, in.notServed
				}
				failures++
				if failures >= threshold {
					return passed, fmt.Sprintf("liveness probe failed %d times in a row: %v", failures, err)
				}
			} else {
				failures, passed = 0, true
			}
		}
	}
}

func (in *instance) exitReason(when string) string {
	in.mu.Lock()
	err, last := in.exitErr, in.lastLine
	in.mu.Unlock()
	msg := "exited"
	if err != nil {
		msg = err.Error()
	} else {
		msg = "exited with status 0"
	}
	if when != "" {
		msg += " " + when
	}
	if last != "" {
		if len(last) > 200 {
			last = last[:200] + "…"
		}
		msg += "; its last words: " + last
	}
	return msg
}

// shutdown takes the instance out of rotation, lets in-flight requests finish for
// drain_timeout, sends SIGTERM, waits graceful_timeout, and kills it at force_timeout.
func (in *instance) shutdown(wasReady bool) {
	f := in.f
	sh := f.cfg.Scaling.Instances.Shutdown
	begin := time.Now()
	if wasReady {
		in.setState(admin.StateDraining)
		in.report(admin.StateDraining, "draining: out of rotation, in-flight requests finishing (drain_timeout "+sh.DrainTimeout.String()+")")
		// With a registry: mark it draining there first (the seed's deregister_instance), so
		// that every proxy watching it stops sending new requests; deregister after drain_timeout.
		drainBegan := time.Now()
		f.drainRemote(in.id)
		f.set.Remove(in.id)
		// Drain only once the proxy has seen the removal: a membership snapshot still on its
		// way, taken before it, would add the drained instance back.
		f.awaitDeregistered(in.id)
		ctx, cancel := context.WithTimeout(context.Background(), sh.DrainTimeout.D())
		if err := f.proxy.Drain(ctx, in.id); err != nil {
			f.log.Warn("drain timeout passed; stopping the instance with requests in flight", "instance", in.id, "err", err)
		}
		cancel()
		f.waitDrainTimeout(drainBegan)
		f.deregisterRemote(in.id)
	}
	in.setState(admin.StateStopping)
	in.signal(syscall.SIGTERM)
	in.mu.Lock()
	exited := in.exited
	in.mu.Unlock()
	graceful := time.NewTimer(sh.GracefulTimeout.D())
	defer graceful.Stop()
	force := time.NewTimer(max(sh.ForceTimeout.D()-time.Since(begin), 0))
	defer force.Stop()
	select {
	case <-exited:
	case <-graceful.C:
		f.log.Warn("instance did not exit within graceful_timeout after SIGTERM", "instance", in.id,
			"graceful_timeout", sh.GracefulTimeout.String())
		select {
		case <-exited:
		case <-force.C:
			f.log.Warn("force_timeout reached; killing the instance", "instance", in.id)
			in.kill()
		}
	}
	in.kill() // any children left in its process group
	in.setState(admin.StateStopped)
	f.log.Info("instance stopped", "instance", in.id)
	in.report(admin.StateStopped, "stopped")
}

func (in *instance) signal(sig syscall.Signal) {
	in.mu.Lock()
	pid := in.pid
	in.mu.Unlock()
	if pid > 0 {
		_ = syscall.Kill(-pid, sig) // the whole process group
	}
}

// kill sends SIGKILL to the process group and waits for the process to be reaped.
func (in *instance) kill() {
	in.signal(syscall.SIGKILL)
	in.mu.Lock()
	exited := in.exited
	in.mu.Unlock()
	if exited != nil {
		<-exited
	}
}

func (in *instance) requestStop() {
	in.stopOnce.Do(func() { close(in.stop) })
}

func probe(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return &probeStatusError{Path: resp.Request.URL.Path, Code: resp.StatusCode}
	}
	return nil
}

// probeStatusError is a probe answered with a status other than 2xx.
type probeStatusError struct {
	Path string
	Code int
}

func (e *probeStatusError) Error() string { return fmt.Sprintf("GET %s answered %d", e.Path, e.Code) }

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (f *Fleet) logPath(id string) string {
	return filepath.Join(f.opts.StateDir, "logs", id+".log")
}

func (f *Fleet) instanceLog(id string) (io.WriteCloser, error) {
	// Instance output can hold secrets (a DSN in a panic, a token in a debug line): readable by
	// the user only, as the admin key is, also for logs an older shoal left more open.
	p := f.logPath(id)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the log directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making the log directory private: %w", err)
	}
	w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the instance log: %w", err)
	}
	if err := w.Chmod(0o600); err != nil {
		w.Close()
		return nil, fmt.Errorf("making the instance log private: %w", err)
	}
	return w, nil
}
