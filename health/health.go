// Package health runs a service's own health checks — the `health.checks` of shoal.yml — and
// serves them as the `/health`, `/ready` and `/live` endpoints that Kubernetes, shoal's fleet and
// shoal's proxy probe.
//
// A [Registry] runs every check in the background, each on its own interval and with its own
// timeout, and keeps the latest [Result]. Requests only read those cached results, so a storm of
// probes never multiplies the load on a database, and a slow dependency never makes `/health`
// slower than reading memory.
//
// Check types, by `type`:
//
//   - database: a query (SELECT 1) within the check's timeout through package database, on a
//     one-connection pool opened from the check's url, defaulting to database.url
//     (postgres://, mysql://, sqlite://); or a ping of the pool passed with [WithDB] — the
//     service's *database.DB, a *sql.DB, or a MongoDB client of database/mongo.
//   - external_service: by URL scheme — redis:// and rediss:// send PING (after AUTH when the
//     URL has credentials) and expect PONG; tcp:// dials; nats:// and tls:// connect and flush;
//     amqp:// and amqps:// open a connection; http:// and https:// GET and expect 2xx.
//   - http: GET the url and expect a 2xx answer.
//   - tcp: dial host:port (or tcp://host:port).
//   - custom: call the Go function registered under `handler` with [Register] or [WithHandler].
//     An unknown handler name is an error when the Registry is built, never a silent pass.
//
// A failing critical check fails the service (`/health` answers 503); a failing non-critical
// check only degrades it (status "warn", still 200).
package health

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Status of a check or of the service as a whole. The values follow the IETF draft "Health Check
// Response Format for HTTP APIs": pass, warn, fail.
type Status string

// Statuses.
const (
	// Pass: the check succeeded on its latest run.
	Pass Status = "pass"
	// Warn: a non-critical check failed; the service is degraded but serves.
	Warn Status = "warn"
	// Fail: a critical check failed; the service is unhealthy.
	Fail Status = "fail"
	// Disabled: the check was turned off at run time with SetEnabled.
	Disabled Status = "disabled"
	// Unknown: the check has not finished a run since it was started or re-enabled.
	Unknown Status = "unknown"
)

// Func is a health check: it returns nil when the dependency is healthy. It must return soon
// after ctx is done; the Registry reports a run that outlives its timeout as failed either way,
// and does not start the next run of the check until the previous one has returned.
type Func func(ctx context.Context) error

// Result is the latest outcome of one check.
type Result struct {
	// Name of the check, as in health.checks.
	Name string `json:"name"`
	// Type of the check: database, external_service, http, tcp or custom.
	Type string `json:"type"`
	// Critical checks fail the service; others degrade it.
	Critical bool `json:"critical"`
	// Enabled is false after SetEnabled(name, false).
	Enabled bool `json:"enabled"`
	// Status is pass, warn (a non-critical failure), fail (a critical failure), disabled, or
	// unknown before the first run finishes.
	Status Status `json:"status"`
	// Duration of the latest run.
	Duration time.Duration `json:"-"`
	// DurationSeconds is Duration in seconds, for JSON.
	DurationSeconds float64 `json:"duration_seconds"`
	// Error of the latest run, empty when it passed.
	Error string `json:"error,omitempty"`
	// Time the latest run finished; zero before the first.
	Time time.Time `json:"time,omitzero"`
	// LastSuccess is when the check last passed; zero if it never has.
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// Report is the aggregate that `/health` serves.
type Report struct {
	// Status is the worst status of the enabled checks: fail if a critical check fails, warn if
	// a non-critical one fails, else pass. Checks still unknown count as pass, so an instance
	// is not reported down while its first checks are running; readiness waits for them.
	Status Status `json:"status"`
	// Draining is true after SetDraining(true).
	Draining bool `json:"draining,omitempty"`
	// Checks in the order they were configured.
	Checks []Result `json:"checks"`
	// Time the report was assembled.
	Time time.Time `json:"time"`
}

// ErrUnknownCheck is returned by SetEnabled for a name that is not a check of the Registry.
// The admin API maps it to admin.ErrUnknownCheck.
var ErrUnknownCheck = errors.New("no health check has that name")

// ConfigError is returned by New and FromConfig when a check cannot be built: an unknown custom
// handler, a URL scheme no check speaks, a database driver that is not linked in.
type ConfigError struct {
	// Index of the check in the list given to New, as in health.checks[Index].
	Index int
	// Name of the check.
	Name string
	// Err says what is wrong and how to fix it.
	Err error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("health.checks[%d] (%s): %v", e.Index, e.Name, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// ErrUnknownHandler is wrapped in the ConfigError of a custom check whose handler was not
// registered with Register or WithHandler.
var ErrUnknownHandler = errors.New("no function is registered under that handler name")

var (
	handlersMu sync.RWMutex
	handlers   = map[string]Func{}
)

// Register makes fn the function of every custom check whose handler is name, in every Registry
// built afterwards. Call it from an init function or main, before New. It panics when name is
// empty, fn is nil or name is already registered, as database/sql.Register does.
// A handler given with WithHandler takes precedence for one Registry.
func Register(name string, fn Func) {
	if name == "" || fn == nil {
		panic("health: Register needs a name and a function")
	}
	handlersMu.Lock()
	defer handlersMu.Unlock()
	if _, dup := handlers[name]; dup {
		panic("health: Register called twice for handler " + name)
	}
	handlers[name] = fn
}

func lookupHandler(name string) (Func, bool) {
	handlersMu.RLock()
	defer handlersMu.RUnlock()
	fn, ok := handlers[name]
	return fn, ok
}
