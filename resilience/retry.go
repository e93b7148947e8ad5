package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Defaults of [RetryConfig]. They follow Envoy's router retries (25 ms base
// interval, cap at ten times the base); a proxy retry that waits seconds is
// worse than failing over to another upstream at once.
const (
	DefaultMaxAttempts = 3
	DefaultBaseDelay   = 25 * time.Millisecond
)

// RetryConfig configures a [Retry] policy. The zero value is valid and
// means the defaults.
type RetryConfig struct {
	// MaxAttempts is the maximum number of tries, the first one included;
	// 1 disables retries. Defaults to 3.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// BaseDelay is the backoff ceiling before the first retry; the ceiling
	// doubles on every further retry. Defaults to 25 milliseconds.
	BaseDelay time.Duration `yaml:"base_delay" json:"base_delay"`
	// MaxDelay caps the backoff ceiling; no single sleep is longer. At least
	// BaseDelay. Defaults to 10 × BaseDelay.
	MaxDelay time.Duration `yaml:"max_delay" json:"max_delay"`

	// Rand returns a uniform random int64 in [0, n) for n > 0 and must be
	// safe for concurrent use. Defaults to math/rand/v2.Int64N.
	Rand func(n int64) int64 `yaml:"-" json:"-"`
	// Clock reads the time Sleep compares with the context's deadline.
	// Defaults to the system clock.
	Clock Clock `yaml:"-" json:"-"`
	// After returns a channel that receives once d has elapsed, like
	// time.After; Sleep waits on it. Tests inject a channel they control.
	// Defaults to a time.Timer that Sleep stops when the context ends first.
	After func(d time.Duration) <-chan time.Time `yaml:"-" json:"-"`
}

func (c *RetryConfig) setDefaults() {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = DefaultBaseDelay
	}
	if c.MaxDelay == 0 && c.BaseDelay > 0 {
		c.MaxDelay = c.BaseDelay
		if c.BaseDelay <= math.MaxInt64/10 {
			c.MaxDelay = 10 * c.BaseDelay
		}
	}
	if c.Rand == nil {
		c.Rand = rand.Int64N
	}
}

// Validate reports every invalid field at once (errors.Join). Zero values
// are valid: they stand for the defaults.
func (c *RetryConfig) Validate() error {
	var errs []error
	if c.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("retry.max_attempts: must be at least 1 (0 means the default %d), got %d",
			DefaultMaxAttempts, c.MaxAttempts))
	}
	if c.BaseDelay < 0 {
		errs = append(errs, fmt.Errorf("retry.base_delay: must not be negative (0 means the default %s), got %s",
			DefaultBaseDelay, c.BaseDelay))
	}
	if c.MaxDelay < 0 {
		errs = append(errs, fmt.Errorf("retry.max_delay: must not be negative (0 means 10 × base_delay), got %s", c.MaxDelay))
	} else if c.MaxDelay != 0 && c.BaseDelay > c.MaxDelay {
		errs = append(errs, fmt.Errorf("retry.max_delay: must be at least base_delay (%s), got %s; raise max_delay or lower base_delay",
			c.BaseDelay, c.MaxDelay))
	}
	return errors.Join(errs...)
}

// Retry is a retry policy: how many tries, and how long to back off before
// each retry. It holds no per-request state, so one Retry serves all
// requests concurrently. Pair it with a [Budget] so that retries cannot
// amplify an outage.
//
// The backoff is exponential with full jitter (AWS Architecture Blog,
// "Exponential Backoff and Jitter"): before retry n (n = 0 for the first
// retry) sleep a uniform random duration in [0, min(MaxDelay, BaseDelay·2^n)].
//
// Why not cenkalti/backoff: its ExponentialBackOff jitters ±RandomizationFactor
// around the interval and caps the interval before jittering, so even with
// factor 1 it draws from [0, 2·interval] and can sleep up to 2×MaxInterval —
// not full jitter under a cap. It is also stateful and not goroutine-safe (one
// allocation per request), takes no random source, and its Retry loop cannot
// ask a Budget or switch upstream between tries. Full jitter is one line.
type Retry struct {
	maxAttempts int
	base, max   time.Duration
	rand        func(n int64) int64
	clock       Clock
	after       func(d time.Duration) <-chan time.Time
}

// NewRetry returns the policy cfg describes. Zero fields take their
// defaults; an invalid cfg returns the Validate error.
func NewRetry(cfg RetryConfig) (*Retry, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring retry: %w", err)
	}
	return &Retry{
		maxAttempts: cfg.MaxAttempts,
		base:        cfg.BaseDelay,
		max:         cfg.MaxDelay,
		rand:        cfg.Rand,
		clock:       clockOrSystem(cfg.Clock),
		after:       cfg.After,
	}, nil
}

// MaxAttempts returns the maximum number of tries, the first one included.
func (r *Retry) MaxAttempts() int { return r.maxAttempts }

// Backoff returns how long to sleep before retry number attempt, counted from
// 0 for the first retry (the second try): a uniform random duration in
// [0, min(MaxDelay, BaseDelay·2^attempt)]. A negative attempt counts as 0.
// It never overflows, whatever attempt is.
func (r *Retry) Backoff(attempt int) time.Duration {
	ceil := r.ceiling(attempt) // > 0: BaseDelay > 0 after the defaults
	if ceil == math.MaxInt64 {
		return time.Duration(r.rand(int64(ceil)))
	}
	return time.Duration(r.rand(int64(ceil) + 1))
}

// ceiling returns min(max, base·2^attempt) without overflowing.
func (r *Retry) ceiling(attempt int) time.Duration {
	attempt = max(attempt, 0)
	if attempt >= 63 || r.base > r.max>>attempt {
		return r.max
	}
	return r.base << attempt
}

// Sleep waits for d or until ctx is done, whichever comes first, and returns
// nil or ctx.Err() accordingly. If ctx's deadline (by the configured Clock)
// comes before d would be over, Sleep does not wait at all and returns an
// error that errors.Is context.DeadlineExceeded: a retry that would start
// after the deadline cannot succeed, so the caller should give up now and
// report its last error. d <= 0 returns at once.
func (r *Retry) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok {
		if left := deadline.Sub(r.clock.Now()); left < d {
			return fmt.Errorf("backoff of %s exceeds the %s left before the deadline: %w", d, left, context.DeadlineExceeded)
		}
	}
	if r.after != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.after(d):
			return nil
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
