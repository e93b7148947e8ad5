package resilience

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// State is the state of a [Breaker].
type State uint8

// The states of a Breaker. The zero value is StateClosed.
const (
	// StateClosed lets every call through and counts consecutive failures.
	StateClosed State = iota
	// StateOpen rejects every call with ErrOpen until the recovery timeout
	// has elapsed.
	StateOpen
	// StateHalfOpen lets a limited number of trial calls through; their
	// outcome closes or re-opens the breaker.
	StateHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	default:
		return fmt.Sprintf("State(%d)", uint8(s))
	}
}

// MarshalText returns the same text as String, so that a State renders as
// "half-open" rather than 2 in JSON and YAML status output.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Errors returned by [Breaker.Allow]. Both are sentinels, returned unwrapped,
// so that rejecting a call allocates nothing; compare with errors.Is.
var (
	// ErrOpen is returned by Allow while the breaker is open, that is from
	// the failure that tripped it until RecoveryTimeout has elapsed.
	ErrOpen = errors.New("circuit breaker is open")
	// ErrTooManyCalls is returned by Allow while the breaker is half-open and
	// HalfOpenMaxCalls trial calls have already been let through in this
	// half-open period (in flight, or succeeded while the others are still
	// in flight). If the trials have not all reported within RecoveryTimeout,
	// the next Allow counts them as failed and re-opens the breaker instead.
	ErrTooManyCalls = errors.New("circuit breaker is half-open and has no trial call left")
)

// Defaults of [BreakerConfig], taken from the seed's circuit_breaker block.
const (
	DefaultFailureThreshold = 5
	DefaultRecoveryTimeout  = 30 * time.Second
	DefaultHalfOpenMaxCalls = 3
)

// MaxBreakerCount is the largest FailureThreshold and HalfOpenMaxCalls a
// BreakerConfig accepts: both counters live in 15 bits of the breaker's
// single atomic state word.
const MaxBreakerCount = 1<<countBits - 1

// BreakerConfig configures a [Breaker]. Its data fields map the seed's YAML
//
//	circuit_breaker: {enabled: true, failure_threshold: 5, recovery_timeout: "30s", half_open_max_calls: 3}
//
// The zero value is a valid, disabled configuration.
type BreakerConfig struct {
	// Enabled turns the breaker on. A disabled Breaker lets every call
	// through and stays closed. Defaults to false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// FailureThreshold is the number of consecutive failures that open a
	// closed breaker. Between 1 and MaxBreakerCount. Defaults to 5.
	FailureThreshold int `yaml:"failure_threshold" json:"failure_threshold"`
	// RecoveryTimeout is how long an open breaker rejects calls before it
	// turns half-open. Defaults to 30 seconds.
	RecoveryTimeout time.Duration `yaml:"recovery_timeout" json:"recovery_timeout"`
	// HalfOpenMaxCalls is the number of trial calls a half-open breaker lets
	// through; when all of them succeed the breaker closes, when one fails it
	// opens again. Between 1 and MaxBreakerCount. Defaults to 3.
	HalfOpenMaxCalls int `yaml:"half_open_max_calls" json:"half_open_max_calls"`

	// Clock reads the time for RecoveryTimeout. Defaults to the system clock.
	Clock Clock `yaml:"-" json:"-"`
	// OnStateChange, if set, is called after every state change with the
	// breaker's name and the old and new state. It is called synchronously,
	// with the breaker's transition lock held, so calls for one breaker arrive
	// in order and never overlap; it must therefore be quick and must not
	// call the same breaker's Allow, Record or Release (State is fine).
	OnStateChange func(name string, from, to State) `yaml:"-" json:"-"`
}

func (c *BreakerConfig) setDefaults() {
	if c.FailureThreshold == 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.RecoveryTimeout == 0 {
		c.RecoveryTimeout = DefaultRecoveryTimeout
	}
	if c.HalfOpenMaxCalls == 0 {
		c.HalfOpenMaxCalls = DefaultHalfOpenMaxCalls
	}
}

// Validate reports every invalid field at once (errors.Join). Zero values
// are valid: they stand for the defaults.
func (c *BreakerConfig) Validate() error {
	var errs []error
	if c.FailureThreshold < 0 || c.FailureThreshold > MaxBreakerCount {
		errs = append(errs, fmt.Errorf("circuit_breaker.failure_threshold: must be between 1 and %d (0 means the default %d), got %d",
			MaxBreakerCount, DefaultFailureThreshold, c.FailureThreshold))
	}
	if c.RecoveryTimeout < 0 {
		errs = append(errs, fmt.Errorf("circuit_breaker.recovery_timeout: must be a positive duration such as \"30s\" (0 means the default %s), got %s",
			DefaultRecoveryTimeout, c.RecoveryTimeout))
	}
	if c.HalfOpenMaxCalls < 0 || c.HalfOpenMaxCalls > MaxBreakerCount {
		errs = append(errs, fmt.Errorf("circuit_breaker.half_open_max_calls: must be between 1 and %d (0 means the default %d), got %d",
			MaxBreakerCount, DefaultHalfOpenMaxCalls, c.HalfOpenMaxCalls))
	}
	return errors.Join(errs...)
}

// Ticket is the permission Allow hands out for one call. Pass it to exactly
// one of Record or Release when the call is over. It is a small value: taking
// and returning one allocates nothing.
//
// A Ticket belongs to the state period (generation) it was issued in; once
// the breaker has changed state, Record and Release ignore it, so a slow call
// that started while the breaker was closed cannot decide the outcome of a
// later half-open trial.
type Ticket struct {
	gen uint32
}

// Breaker is a consecutive-failure circuit breaker for one upstream.
//
// Closed: every call is allowed; FailureThreshold consecutive failures open
// it (a success resets the count). Open: every call gets ErrOpen until
// RecoveryTimeout has elapsed, then the breaker is half-open. Half-open: up
// to HalfOpenMaxCalls trial calls are allowed (more get ErrTooManyCalls);
// when all of them succeed the breaker closes, on the first failure it opens
// again for another RecoveryTimeout. Trials that have not reported within
// RecoveryTimeout count as failed, so a leaked Ticket or a call that never
// ends cannot hold the breaker half-open for ever. The open→half-open change
// happens lazily, on the first Allow after the timeout.
//
// Use:
//
//	t, err := b.Allow()
//	if err != nil { /* pick another upstream */ }
//	resp, err := call()
//	b.Record(t, err == nil)
//
// A Breaker is safe for concurrent use. In the closed state Allow and a
// successful Record are one atomic load each (plus one CAS for the first
// success after failures); only state changes take a mutex.
type Breaker struct {
	// word packs state, two counters and the generation; see pack.
	word atomic.Uint64
	// deadline, in nanoseconds since epoch, is when the current open period
	// ends, or when the current half-open period's unfinished trials count as
	// failed. Written under mu before the CAS on word that publishes the
	// state it belongs to; read only in that state.
	deadline atomic.Int64

	name          string
	disabled      bool
	threshold     uint32
	halfOpenMax   uint32
	timeout       time.Duration
	clock         Clock
	epoch         time.Time
	onStateChange func(name string, from, to State)

	// mu serialises state changes (and therefore OnStateChange calls).
	mu sync.Mutex
}

// NewBreaker returns a closed breaker named name (the name is only passed to
// OnStateChange; the proxy uses the upstream address). Zero fields of cfg
// take their defaults; an invalid cfg returns the Validate error.
func NewBreaker(name string, cfg BreakerConfig) (*Breaker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring circuit breaker %q: %w", name, err)
	}
	clock := clockOrSystem(cfg.Clock)
	b := &Breaker{
		name:          name,
		disabled:      !cfg.Enabled,
		threshold:     uint32(cfg.FailureThreshold),
		halfOpenMax:   uint32(cfg.HalfOpenMaxCalls),
		timeout:       cfg.RecoveryTimeout,
		clock:         clock,
		epoch:         clock.Now(),
		onStateChange: cfg.OnStateChange,
	}
	b.word.Store(pack(StateClosed, 0, 0, 1))
	return b, nil
}

// Name returns the name given to NewBreaker.
func (b *Breaker) Name() string { return b.name }

// Allow asks to make one call. On success it returns a Ticket that must be
// handed to Record or Release when the call is over. Otherwise it returns
// ErrOpen (the breaker is open) or ErrTooManyCalls (the breaker is half-open
// and its trial calls are taken); the call must not be made then.
func (b *Breaker) Allow() (Ticket, error) {
	if b.disabled {
		return Ticket{}, nil
	}
	for {
		w := b.word.Load()
		switch stateOf(w) {
		case StateClosed:
			return Ticket{gen: genOf(w)}, nil
		case StateOpen:
			if !b.recovered(w) {
				return Ticket{}, ErrOpen
			}
			// The breaker is (or just was) made half-open: look again.
		case StateHalfOpen:
			if countA(w)+countB(w) >= b.halfOpenMax {
				if b.since() < b.deadline.Load() {
					return Ticket{}, ErrTooManyCalls
				}
				// The trials have had RecoveryTimeout to report; the ones
				// still out count as failed (or their tickets leaked).
				b.transition(w, StateOpen)
				continue
			}
			if b.word.CompareAndSwap(w, w+1<<aShift) {
				return Ticket{gen: genOf(w)}, nil
			}
		default:
			panic("resilience: corrupt breaker state")
		}
	}
}

// Record reports how the call allowed with t ended. success false counts as
// a failure towards opening the breaker; decide what counts as a failure
// before calling (the proxy counts connection errors and 5xx, not a client
// that went away — for that use Release). Tickets from an earlier state
// period, and the zero Ticket, are ignored.
func (b *Breaker) Record(t Ticket, success bool) {
	if b.disabled {
		return
	}
	for {
		w := b.word.Load()
		if genOf(w) != t.gen {
			return
		}
		var next uint64
		switch stateOf(w) {
		case StateClosed:
			failures := countA(w) // consecutive failures
			switch {
			case success && failures == 0:
				return // the common case: nothing to write
			case success:
				next = w &^ (countMask << aShift)
			case failures+1 >= b.threshold:
				if b.transition(w, StateOpen) {
					return
				}
				continue
			default:
				next = w + 1<<aShift
			}
		case StateHalfOpen:
			if countA(w) == 0 {
				return // recorded twice; nothing in flight to account for
			}
			if !success {
				if b.transition(w, StateOpen) {
					return
				}
				continue
			}
			if countB(w)+1 >= b.halfOpenMax {
				// inflight+succeeded <= halfOpenMax, so this was the last
				// trial and all of them succeeded.
				if b.transition(w, StateClosed) {
					return
				}
				continue
			}
			next = w - 1<<aShift + 1<<bShift
		default:
			return // no Ticket is issued in the open state
		}
		if b.word.CompareAndSwap(w, next) {
			return
		}
	}
}

// Release gives t back without an outcome, for a call that says nothing
// about the upstream's health (the client cancelled, the request was
// invalid). In the half-open state it frees the trial slot for another call.
func (b *Breaker) Release(t Ticket) {
	if b.disabled {
		return
	}
	for {
		w := b.word.Load()
		if genOf(w) != t.gen || stateOf(w) != StateHalfOpen || countA(w) == 0 {
			return
		}
		if b.word.CompareAndSwap(w, w-1<<aShift) {
			return
		}
	}
}

// State returns the current state without changing it: an atomic load, plus
// a clock read while open. An open breaker whose recovery timeout has
// elapsed reports StateHalfOpen even before a call arrives to make the
// change (the change, and its OnStateChange call, happen on the next Allow),
// so a status page never shows a stale "open". It never blocks, so it is
// safe to call from OnStateChange. A disabled breaker is always closed.
func (b *Breaker) State() State {
	if b.disabled {
		return StateClosed
	}
	s := stateOf(b.word.Load())
	if s == StateOpen && b.since() >= b.deadline.Load() {
		return StateHalfOpen
	}
	return s
}

// recovered reports whether the open state w has lasted RecoveryTimeout, and
// if so makes the breaker half-open (unless another goroutine already moved
// it on).
func (b *Breaker) recovered(w uint64) bool {
	if b.since() < b.deadline.Load() {
		return false
	}
	b.transition(w, StateHalfOpen)
	return true
}

// transition moves the breaker from state word w to a new generation in
// state to, with zeroed counters, and reports whether it did: it fails if the
// word changed since the caller read w, and the caller then re-evaluates.
func (b *Breaker) transition(w uint64, to State) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.word.Load() != w {
		return false
	}
	if to != StateClosed {
		b.deadline.Store(b.since() + int64(b.timeout))
	}
	if !b.word.CompareAndSwap(w, pack(to, 0, 0, genOf(w)+1)) {
		return false // a counter moved under us
	}
	if b.onStateChange != nil {
		b.onStateChange(b.name, stateOf(w), to)
	}
	return true
}

// since returns the clock's time in nanoseconds since the breaker was made.
func (b *Breaker) since() int64 { return int64(b.clock.Now().Sub(b.epoch)) }

// The state word, one atomic uint64 so that the hot path is a single load
// and every update a single CAS:
//
//	bits  0..1   State
//	bits  2..16  counter a: consecutive failures (closed) or trials in flight (half-open)
//	bits 17..31  counter b: trials that succeeded (half-open)
//	bits 32..63  generation, incremented on every state change
const (
	stateBits = 2
	countBits = 15
	aShift    = stateBits
	bShift    = stateBits + countBits
	genShift  = 32
	stateMask = 1<<stateBits - 1
	countMask = 1<<countBits - 1
)

func pack(s State, a, b, gen uint32) uint64 {
	return uint64(gen)<<genShift | uint64(b)<<bShift | uint64(a)<<aShift | uint64(s)
}

func stateOf(w uint64) State { return State(w & stateMask) }
func countA(w uint64) uint32 { return uint32(w>>aShift) & countMask }
func countB(w uint64) uint32 { return uint32(w>>bShift) & countMask }
func genOf(w uint64) uint32  { return uint32(w >> genShift) }
