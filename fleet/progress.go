package fleet

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/procfs"

	"github.com/shoal-sh/shoal/admin"
)

// What an operation (a scale, a rolling restart) sees of its instances while it waits, and
// the failures that restarting an instance cannot cure.

const (
	// notServedAfter is how long a probe path may answer 404 before the instance fails: a
	// service answers 404 for a path it does not route, and restarting it changes nothing.
	notServedAfter = time.Second
	// progressEvery is how often a starting instance reports what its readiness probe says.
	progressEvery = 2 * time.Second
)

// report hands a step of the instance to the operation watching it, if any.
func (in *instance) report(state, msg string) {
	in.mu.Lock()
	fn := in.progress
	in.mu.Unlock()
	if fn != nil {
		fn(admin.Progress{Time: time.Now(), Instance: in.id, State: state, Message: msg})
	}
}

// watch makes progress receive the steps of ins; watchDone stops that.
func watch(ins []*instance, progress admin.ProgressFunc) {
	for _, in := range ins {
		in.mu.Lock()
		in.progress = progress
		in.mu.Unlock()
	}
}

func watchDone(ins []*instance) { watch(ins, nil) }

// wasReady reports whether the instance has been ready at least once.
func (in *instance) wasReady() bool {
	select {
	case <-in.ready:
		return in.readyErr == nil
	default:
		return false
	}
}

// isNotFound reports whether a probe was answered 404.
func isNotFound(err error) bool {
	var se *probeStatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// probeWhy says what a failed readiness probe saw, for people.
func probeWhy(err error) string {
	switch {
	case err == nil:
		return "no answer yet"
	case strings.Contains(err.Error(), "connection refused"):
		return "nothing listens on $PORT yet"
	default:
		return err.Error()
	}
}

// notServedReason says that the service does not serve a probe path, and how to fix it.
func (f *Fleet) notServedReason(field, path string) string {
	return fmt.Sprintf("the service does not serve %s (GET %s answered 404): serve shoal's health endpoints with "+
		"health.Registry.Mount(mux, cfg) (they are /health, /ready and /live), or set scaling.instances.startup.%s to a path it serves",
		path, path, field)
}

// isRunning reports whether Start has brought the fleet up.
func (f *Fleet) isRunning() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

// fixAdvice is what to do about an instance that kept crashing: run restart against the
// fleet when it is running, or `shoal up` again when it never started.
func (f *Fleet) fixAdvice() string {
	if f.isRunning() {
		return "fix the service and run `shoal scaling restart`"
	}
	return "fix the service and run `shoal up` again"
}

// resolveServicePID finds the process of the instance's group that listens on its port.
func (in *instance) resolveServicePID(port int) {
	in.mu.Lock()
	pgid := in.pid
	in.mu.Unlock()
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return
	}
	if pid := listenerPID(fs, procfs.DefaultMountPoint, pgid, port); pid > 0 {
		in.mu.Lock()
		in.servicePID = pid
		in.mu.Unlock()
	}
}
