package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/discovery"
)

// Fleet is what the admin API operates: the local fleet under `shoal up` implements it.
// Every method is safe for concurrent use.
type Fleet interface {
	// Status reports the fleet and each instance.
	Status(ctx context.Context) Status
	// Scale brings the fleet to target instances, within min_instances..max_instances; it
	// returns when the new instances are ready or the removed ones drained and stopped.
	// A target outside the bounds returns an *OutOfRangeError.
	Scale(ctx context.Context, target int, reason string) (ScaleResult, error)
	// Restart replaces every instance, one at a time, the new one ready before the old drains.
	Restart(ctx context.Context) error
	// SetHealthCheck enables or disables a health check of health.checks by name; an unknown
	// name returns ErrUnknownCheck.
	SetHealthCheck(ctx context.Context, name string, enabled bool) error
	// Metrics returns the history of the fleet's scaling metrics over the last since, at most
	// points samples per series (downsampled).
	Metrics(ctx context.Context, since time.Duration, points int) MetricsReport
}

// ErrUnknownCheck is returned by SetHealthCheck for a name that is not in health.checks.
var ErrUnknownCheck = errors.New("no health check has that name")

// OutOfRangeError is returned by Scale for a target outside the configured bounds.
type OutOfRangeError struct {
	Target, Min, Max int
}

func (e *OutOfRangeError) Error() string {
	return fmt.Sprintf("a target of %d instances is outside scaling.instances.min_instances..max_instances (%d..%d)",
		e.Target, e.Min, e.Max)
}

// Status is the fleet as `shoal scaling status` shows it.
type Status struct {
	Service     string `json:"service"`
	Environment string `json:"environment,omitempty"`
	Desired     int    `json:"desired"`
	Min         int    `json:"min_instances"`
	Max         int    `json:"max_instances"`
	Ready       int    `json:"ready"`
	ProxyURL    string `json:"proxy_url"`
	Algorithm   string `json:"algorithm"`
	Autoscaling bool   `json:"autoscaling"`
	// AutoscalingReason says why autoscaling is on or off, e.g. "off: observability.auto_scaling.enabled is false".
	AutoscalingReason string `json:"autoscaling_reason,omitempty"`
	// Decisions are the autoscaler's latest decisions, newest first (at most StatusDecisions).
	Decisions []autoscale.Decision `json:"decisions,omitempty"`
	Instances []InstanceStatus     `json:"instances"`
	Checks    []CheckStatus        `json:"checks"`
	Events    []Event              `json:"events"` // recent scaling events, newest first
	Started   time.Time            `json:"started"`
	// Discovery says where the proxy's instance set comes from, when it last changed, and
	// the source's error while the last good set stays in use; nil when not tracked.
	Discovery *discovery.SourceStatus `json:"discovery,omitempty"`
	// Registry is where the fleet registers its instances (etcd, consul, dns); empty for none.
	Registry string `json:"registry,omitempty"`
}

// Instance states.
const (
	StateStarting = "starting" // process started, not ready yet
	StateReady    = "ready"    // in the proxy's rotation
	StateDraining = "draining" // out of rotation, in-flight requests finishing
	StateStopping = "stopping" // SIGTERM sent
	StateBackoff  = "backoff"  // crashed, waiting to be restarted
	StateFailed   = "failed"   // kept crashing; not restarted any more
	StateStopped  = "stopped"
)

// InstanceStatus is one instance.
type InstanceStatus struct {
	ID string `json:"id"`
	// PID is the service's process: the one of the instance's process group that listens on
	// its port (under `go run` or a shell script, not the process shoal started), else PGID.
	PID int `json:"pid"`
	// PGID is the process group shoal started the instance in, led by the process it started;
	// its CPU and memory are those of the whole group.
	PGID     int       `json:"pgid,omitempty"`
	Port     int       `json:"port"`
	URL      string    `json:"url"`
	State    string    `json:"state"`
	Health   string    `json:"health"`  // "healthy", "unhealthy", "ejected", "stalled" or "unknown"
	Breaker  string    `json:"breaker"` // "closed", "open", "half-open" or "disabled"
	InFlight int64     `json:"in_flight"`
	Started  time.Time `json:"started"`
	Uptime   string    `json:"uptime"`
	Restarts int       `json:"restarts"`
	LastErr  string    `json:"last_error,omitempty"`
	LogFile  string    `json:"log_file,omitempty"`
}

// CheckStatus is one health check of health.checks.
type CheckStatus struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Critical bool   `json:"critical"`
	Enabled  bool   `json:"enabled"`
	// Switchable is whether SetHealthCheck can turn the check on and off: false for the checks
	// that run inside the service (custom ones, database checks without a URL).
	Switchable bool      `json:"switchable"`
	Status     string    `json:"status"` // "pass", "fail", "disabled", "unknown" or "in-service"
	Error      string    `json:"error,omitempty"`
	Checked    time.Time `json:"checked,omitempty"`
}

// Event is a scaling event: a manual or automatic scale, a restart, a crash.
type Event struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"` // "scale_up", "scale_down", "restart", "crash", "failed", "autoscale"
	From   int       `json:"from"`
	To     int       `json:"to"`
	Reason string    `json:"reason"`
}

// ScaleResult says what Scale did.
type ScaleResult struct {
	From    int      `json:"from"`
	To      int      `json:"to"`
	Started []string `json:"started,omitempty"`
	Stopped []string `json:"stopped,omitempty"`
}

// MetricsReport is the history behind `shoal scaling metrics --since` and the dashboard chart.
type MetricsReport struct {
	Since  time.Duration `json:"since_ns"`
	Series []Series      `json:"series"`
}

// Series is one metric over time.
type Series struct {
	Metric string  `json:"metric"` // e.g. "request_rate", "response_time_p95", "instance_count"
	Unit   string  `json:"unit"`   // e.g. "req/s", "ms", "instances", "%"
	Points []Point `json:"points"`
}

// Point is one sample.
type Point struct {
	Time  time.Time `json:"t"`
	Value float64   `json:"v"`
}
