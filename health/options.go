package health

import (
	"context"
	"time"
)

// Opt configures a Registry built by New or FromConfig.
type Opt interface{ apply(*options) }

type optFunc func(*options)

func (f optFunc) apply(o *options) { f(o) }

type options struct {
	handlers    map[string]Func
	dbs         map[string]Pinger
	databaseURL string
	clock       Clock
	heartbeat   time.Duration
	stale       time.Duration
}

// Pinger is what a database check needs of a connection pool; *sql.DB is one.
type Pinger interface {
	PingContext(ctx context.Context) error
}

// WithHandler makes fn the function of the custom checks whose handler is name, for this
// Registry only; it takes precedence over a function given to Register.
func WithHandler(name string, fn Func) Opt {
	return optFunc(func(o *options) {
		if o.handlers == nil {
			o.handlers = map[string]Func{}
		}
		o.handlers[name] = fn
	})
}

// WithDB makes the database check named check ping db (typically the service's own *sql.DB)
// instead of opening a connection from a DSN.
func WithDB(check string, db Pinger) Opt {
	return optFunc(func(o *options) {
		if o.dbs == nil {
			o.dbs = map[string]Pinger{}
		}
		o.dbs[check] = db
	})
}

// WithDatabaseURL is the DSN of database checks that have no url of their own. FromConfig
// sets it to database.url.
func WithDatabaseURL(dsn string) Opt {
	return optFunc(func(o *options) { o.databaseURL = dsn })
}

// WithClock replaces the wall clock, so tests drive the check intervals by hand.
func WithClock(c Clock) Opt {
	return optFunc(func(o *options) { o.clock = c })
}

// WithLiveness sets how often the liveness heartbeat ticks and how old its last tick may be
// before `/live` fails. Defaults to 1s and 30s.
func WithLiveness(heartbeat, stale time.Duration) Opt {
	return optFunc(func(o *options) { o.heartbeat, o.stale = heartbeat, stale })
}

// Clock tells the time and makes tickers. The Registry uses the wall clock unless WithClock
// gives another.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTicker returns a channel that delivers a tick every d, and a function that stops it.
	NewTicker(d time.Duration) (<-chan time.Time, func())
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
