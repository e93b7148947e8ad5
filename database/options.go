package database

import (
	"log/slog"
	"time"

	"github.com/shoal-sh/shoal/resilience"
)

// Opt configures Open beyond the database block.
type Opt interface{ apply(*options) }

type optFunc func(*options)

func (f optFunc) apply(o *options) { f(o) }

type options struct {
	clock        Clock
	log          *slog.Logger
	retry        resilience.RetryConfig
	manualChecks bool
}

// WithTxRetry sets how often and with what backoff WithTx runs a transaction again after a
// conflict. Defaults to 5 attempts (the first included), backoff with full jitter from 5ms,
// capped at 250ms.
func WithTxRetry(cfg resilience.RetryConfig) Opt {
	return optFunc(func(o *options) { o.retry = cfg })
}

// WithLogger is where replica state changes are logged (URLs redacted). Defaults to
// slog.Default().
func WithLogger(l *slog.Logger) Opt {
	return optFunc(func(o *options) { o.log = l })
}

// WithClock replaces the wall clock of the read-your-writes window and the replica checks, so
// tests drive them by hand.
func WithClock(c Clock) Opt {
	return optFunc(func(o *options) { o.clock = c })
}

// WithManualReplicaChecks turns the periodic replica checks off: replicas are checked only at
// Open and by [DB.CheckReplicas]. For tests and for programs that schedule checks themselves.
func WithManualReplicaChecks() Opt {
	return optFunc(func(o *options) { o.manualChecks = true })
}

// Clock tells the time and makes tickers.
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

func defaultRetry(c resilience.RetryConfig) resilience.RetryConfig {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = 5 * time.Millisecond
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = 250 * time.Millisecond
	}
	return c
}
