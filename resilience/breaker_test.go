package resilience

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type transition struct {
	name     string
	from, to State
}

// breakerBundle holds the fixtures of one breaker under test.
type breakerBundle struct {
	clock *manualClock
	mu    sync.Mutex
	seen  []transition
}

func (b *breakerBundle) transitions() []transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]transition(nil), b.seen...)
}

// setupBreaker returns an enabled breaker with threshold 5, timeout 30s and 3
// half-open calls (the seed's values) unless cfg says otherwise, driven by a
// manual clock and recording its state changes.
func setupBreaker(t *testing.T, cfg BreakerConfig) (*Breaker, *breakerBundle) {
	t.Helper()
	bundle := &breakerBundle{clock: newManualClock()}
	cfg.Enabled = true
	cfg.Clock = bundle.clock
	cfg.OnStateChange = func(name string, from, to State) {
		bundle.mu.Lock()
		defer bundle.mu.Unlock()
		bundle.seen = append(bundle.seen, transition{name, from, to})
	}
	b, err := NewBreaker(t.Name(), cfg)
	if err != nil {
		t.Fatalf("NewBreaker: %v", err)
	}
	return b, bundle
}

func mustAllow(t *testing.T, b *Breaker) Ticket {
	t.Helper()
	tk, err := b.Allow()
	if err != nil {
		t.Fatalf("Allow() in state %s: %v, want nil", b.State(), err)
	}
	return tk
}

func wantRejected(t *testing.T, b *Breaker, want error) {
	t.Helper()
	if _, err := b.Allow(); !errors.Is(err, want) {
		t.Fatalf("Allow() = %v, want %v", err, want)
	}
}

func wantState(t *testing.T, b *Breaker, want State) {
	t.Helper()
	if got := b.State(); got != want {
		t.Fatalf("State() = %s, want %s", got, want)
	}
}

func fail(t *testing.T, b *Breaker, n int) {
	t.Helper()
	for range n {
		b.Record(mustAllow(t, b), false)
	}
}

// trip opens b (closed, threshold 5) with five failures.
func trip(t *testing.T, b *Breaker) {
	t.Helper()
	fail(t, b, DefaultFailureThreshold)
	wantState(t, b, StateOpen)
}

// halfOpen trips b, waits out the recovery timeout and makes the breaker
// half-open with a call it releases at once.
func halfOpen(t *testing.T, b *Breaker, clock *manualClock) {
	t.Helper()
	trip(t, b)
	clock.Advance(DefaultRecoveryTimeout)
	b.Release(mustAllow(t, b))
	wantState(t, b, StateHalfOpen)
}

func TestBreaker_Allow(t *testing.T) {
	t.Parallel()

	t.Run("ClosedAllowsEveryCall", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{})
		for range 100 {
			b.Record(mustAllow(t, b), true)
		}
		wantState(t, b, StateClosed)
		if got := bundle.transitions(); len(got) != 0 {
			t.Fatalf("transitions = %v, want none", got)
		}
	})

	t.Run("OpenRejectsUntilRecoveryTimeout", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{})
		trip(t, b)
		for range 10 {
			wantRejected(t, b, ErrOpen)
		}
		bundle.clock.Advance(DefaultRecoveryTimeout - time.Nanosecond)
		wantRejected(t, b, ErrOpen)
		wantState(t, b, StateOpen)

		bundle.clock.Advance(time.Nanosecond)
		mustAllow(t, b)
		wantState(t, b, StateHalfOpen)
		want := []transition{
			{t.Name(), StateClosed, StateOpen},
			{t.Name(), StateOpen, StateHalfOpen},
		}
		if got := bundle.transitions(); !reflect.DeepEqual(got, want) {
			t.Fatalf("transitions = %v, want %v", got, want)
		}
	})

	t.Run("HalfOpenLimitsTrialCalls", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{})
		halfOpen(t, b, bundle.clock)
		var tickets []Ticket
		for range DefaultHalfOpenMaxCalls {
			tickets = append(tickets, mustAllow(t, b))
		}
		wantRejected(t, b, ErrTooManyCalls)

		// A success frees no slot: the trial set is fixed at three calls.
		b.Record(tickets[0], true)
		wantRejected(t, b, ErrTooManyCalls)
		// A release does: that call said nothing about the upstream.
		b.Release(tickets[1])
		tickets[1] = mustAllow(t, b)
		wantRejected(t, b, ErrTooManyCalls)
		wantState(t, b, StateHalfOpen)
	})

	t.Run("HalfOpenTrialsThatNeverReportCountAsFailed", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{})
		halfOpen(t, b, bundle.clock)
		var tickets []Ticket
		for range DefaultHalfOpenMaxCalls {
			tickets = append(tickets, mustAllow(t, b)) // never recorded: leaked, or a hung call
		}
		bundle.clock.Advance(DefaultRecoveryTimeout - time.Nanosecond)
		wantRejected(t, b, ErrTooManyCalls)
		bundle.clock.Advance(time.Nanosecond)
		wantRejected(t, b, ErrOpen)
		wantState(t, b, StateOpen)
		b.Record(tickets[0], true) // too late: ignored
		wantState(t, b, StateOpen)

		bundle.clock.Advance(DefaultRecoveryTimeout)
		for range DefaultHalfOpenMaxCalls {
			b.Record(mustAllow(t, b), true)
		}
		wantState(t, b, StateClosed)
		want := []transition{
			{t.Name(), StateClosed, StateOpen},
			{t.Name(), StateOpen, StateHalfOpen},
			{t.Name(), StateHalfOpen, StateOpen},
			{t.Name(), StateOpen, StateHalfOpen},
			{t.Name(), StateHalfOpen, StateClosed},
		}
		if got := bundle.transitions(); !reflect.DeepEqual(got, want) {
			t.Fatalf("transitions = %v, want %v", got, want)
		}
	})

	t.Run("HalfOpenAdmitsExactlyMaxCallsConcurrently", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{HalfOpenMaxCalls: 7})
		halfOpen(t, b, bundle.clock)
		var allowed, tooMany atomic.Int32
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				_, err := b.Allow()
				switch {
				case err == nil:
					allowed.Add(1)
				case errors.Is(err, ErrTooManyCalls):
					tooMany.Add(1)
				default:
					t.Errorf("Allow() = %v", err)
				}
			})
		}
		wg.Wait()
		if allowed.Load() != 7 || tooMany.Load() != 64-7 {
			t.Fatalf("allowed %d, rejected %d; want 7 and 57", allowed.Load(), tooMany.Load())
		}
	})

	t.Run("DisabledAllowsEverything", func(t *testing.T) {
		t.Parallel()
		b, err := NewBreaker("off", BreakerConfig{FailureThreshold: 1})
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			b.Record(mustAllow(t, b), false)
		}
		wantState(t, b, StateClosed)
	})
}

func TestBreaker_Record(t *testing.T) {
	t.Parallel()

	t.Run("ThresholdConsecutiveFailuresOpen", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{})
		fail(t, b, DefaultFailureThreshold-1)
		wantState(t, b, StateClosed)
		fail(t, b, 1)
		wantState(t, b, StateOpen)
		wantRejected(t, b, ErrOpen)
		want := []transition{{t.Name(), StateClosed, StateOpen}}
		if got := bundle.transitions(); !reflect.DeepEqual(got, want) {
			t.Fatalf("transitions = %v, want %v", got, want)
		}
	})

	t.Run("ThresholdOfOne", func(t *testing.T) {
		t.Parallel()
		b, _ := setupBreaker(t, BreakerConfig{FailureThreshold: 1})
		fail(t, b, 1)
		wantState(t, b, StateOpen)
	})

	t.Run("SuccessResetsConsecutiveFailures", func(t *testing.T) {
		t.Parallel()
		b, _ := setupBreaker(t, BreakerConfig{})
		for range 10 {
			fail(t, b, DefaultFailureThreshold-1)
			b.Record(mustAllow(t, b), true)
		}
		wantState(t, b, StateClosed)
		fail(t, b, DefaultFailureThreshold)
		wantState(t, b, StateOpen)
	})

	t.Run("InFlightCallsCountWhenTheyEnd", func(t *testing.T) {
		t.Parallel()
		b, _ := setupBreaker(t, BreakerConfig{})
		var tickets []Ticket
		for range DefaultFailureThreshold {
			tickets = append(tickets, mustAllow(t, b))
		}
		for _, tk := range tickets {
			wantState(t, b, StateClosed)
			b.Record(tk, false)
		}
		wantState(t, b, StateOpen)
	})

	t.Run("HalfOpenClosesWhenAllTrialsSucceed", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{})
		halfOpen(t, b, bundle.clock)
		var tickets []Ticket
		for range DefaultHalfOpenMaxCalls {
			tickets = append(tickets, mustAllow(t, b))
		}
		for _, tk := range tickets {
			wantState(t, b, StateHalfOpen)
			b.Record(tk, true)
		}
		wantState(t, b, StateClosed)
		mustAllow(t, b)
		want := []transition{
			{t.Name(), StateClosed, StateOpen},
			{t.Name(), StateOpen, StateHalfOpen},
			{t.Name(), StateHalfOpen, StateClosed},
		}
		if got := bundle.transitions(); !reflect.DeepEqual(got, want) {
			t.Fatalf("transitions = %v, want %v", got, want)
		}
		// Closed again with a fresh count.
		fail(t, b, DefaultFailureThreshold-1)
		wantState(t, b, StateClosed)
	})

	t.Run("HalfOpenReopensOnAFailure", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{})
		halfOpen(t, b, bundle.clock)
		first, second := mustAllow(t, b), mustAllow(t, b)
		b.Record(first, true)
		bundle.clock.Advance(10 * time.Second) // the new open period starts at the failure
		b.Record(second, false)
		wantState(t, b, StateOpen)
		wantRejected(t, b, ErrOpen)

		bundle.clock.Advance(DefaultRecoveryTimeout - time.Nanosecond)
		wantRejected(t, b, ErrOpen)
		bundle.clock.Advance(time.Nanosecond)
		mustAllow(t, b)
		want := []transition{
			{t.Name(), StateClosed, StateOpen},
			{t.Name(), StateOpen, StateHalfOpen},
			{t.Name(), StateHalfOpen, StateOpen},
			{t.Name(), StateOpen, StateHalfOpen},
		}
		if got := bundle.transitions(); !reflect.DeepEqual(got, want) {
			t.Fatalf("transitions = %v, want %v", got, want)
		}
	})

	t.Run("StaleTicketsAreIgnored", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{})
		slowFail, slowOK := mustAllow(t, b), mustAllow(t, b) // calls still running while the breaker trips
		halfOpen(t, b, bundle.clock)
		trial := mustAllow(t, b)
		b.Record(slowFail, false) // must not re-open the half-open breaker
		b.Record(slowOK, true)    // must not count as a trial success
		b.Release(slowOK)
		wantState(t, b, StateHalfOpen)
		mustAllow(t, b)
		mustAllow(t, b)
		wantRejected(t, b, ErrTooManyCalls)
		b.Record(trial, false)
		wantState(t, b, StateOpen)
		b.Record(Ticket{}, false) // the zero Ticket belongs to no period
		wantState(t, b, StateOpen)
	})

	t.Run("RecordAfterCloseIsIgnored", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{HalfOpenMaxCalls: 1})
		halfOpen(t, b, bundle.clock)
		tk := mustAllow(t, b)
		b.Record(tk, true)
		wantState(t, b, StateClosed)
		b.Record(tk, false) // stale now
		wantState(t, b, StateClosed)
	})
}

func TestBreaker_Release(t *testing.T) {
	t.Parallel()

	t.Run("ClosedIsNeutral", func(t *testing.T) {
		t.Parallel()
		b, _ := setupBreaker(t, BreakerConfig{})
		fail(t, b, DefaultFailureThreshold-1)
		b.Release(mustAllow(t, b))
		fail(t, b, 1)
		wantState(t, b, StateOpen) // the release neither reset nor added a failure
	})

	t.Run("HalfOpenReleaseTwiceFreesOneSlot", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{HalfOpenMaxCalls: 2})
		halfOpen(t, b, bundle.clock)
		a := mustAllow(t, b)
		mustAllow(t, b)
		b.Release(a)
		mustAllow(t, b)
		b.Release(a) // double release: frees one more slot at worst, never below zero
		mustAllow(t, b)
		wantRejected(t, b, ErrTooManyCalls)
	})
}

func TestBreaker_State(t *testing.T) {
	t.Parallel()

	t.Run("ReportsHalfOpenWithoutTraffic", func(t *testing.T) {
		t.Parallel()
		b, bundle := setupBreaker(t, BreakerConfig{RecoveryTimeout: time.Minute})
		trip(t, b)
		bundle.clock.Advance(time.Minute - time.Nanosecond)
		wantState(t, b, StateOpen)
		bundle.clock.Advance(time.Nanosecond)
		wantState(t, b, StateHalfOpen)
		// State changes nothing: the hook fires with the next Allow.
		if got := len(bundle.transitions()); got != 1 {
			t.Fatalf("%d transitions after State(), want 1 (closed→open)", got)
		}
		mustAllow(t, b)
		want := []transition{
			{t.Name(), StateClosed, StateOpen},
			{t.Name(), StateOpen, StateHalfOpen},
		}
		if got := bundle.transitions(); !reflect.DeepEqual(got, want) {
			t.Fatalf("transitions = %v, want %v", got, want)
		}
	})

	t.Run("HookMayReadStateEvenIfTimeoutElapsed", func(t *testing.T) {
		t.Parallel()
		clock := newManualClock()
		var b *Breaker
		b, err := NewBreaker("x", BreakerConfig{Enabled: true, FailureThreshold: 1, RecoveryTimeout: time.Nanosecond,
			Clock: clock,
			OnStateChange: func(string, State, State) {
				clock.Advance(time.Second) // the open period is over before the hook returns
				_ = b.State()              // must not deadlock
			}})
		if err != nil {
			t.Fatal(err)
		}
		fail(t, b, 1)
		wantState(t, b, StateHalfOpen)
	})

	t.Run("HookMayReadState", func(t *testing.T) {
		t.Parallel()
		clock := newManualClock()
		var b *Breaker
		var got []State
		b, err := NewBreaker("x", BreakerConfig{Enabled: true, FailureThreshold: 1, Clock: clock,
			OnStateChange: func(_ string, _, to State) {
				if s := b.State(); s != to {
					t.Errorf("State() inside hook = %s, want %s", s, to)
				}
				got = append(got, to)
			}})
		if err != nil {
			t.Fatal(err)
		}
		fail(t, b, 1)
		clock.Advance(DefaultRecoveryTimeout)
		b.Record(mustAllow(t, b), true)
		b.Record(mustAllow(t, b), true)
		b.Record(mustAllow(t, b), true)
		if want := []State{StateOpen, StateHalfOpen, StateClosed}; !reflect.DeepEqual(got, want) {
			t.Fatalf("hook saw %v, want %v", got, want)
		}
	})
}

// TestBreaker_ConcurrentUse hammers one breaker from many goroutines while
// the clock moves, for the race detector, and checks that the reported state
// changes form one legal chain.
func TestBreaker_ConcurrentUse(t *testing.T) {
	t.Parallel()
	b, bundle := setupBreaker(t, BreakerConfig{FailureThreshold: 3, RecoveryTimeout: time.Millisecond, HalfOpenMaxCalls: 2})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 2000 {
				if r.IntN(50) == 0 {
					bundle.clock.Advance(time.Millisecond)
				}
				tk, err := b.Allow()
				if err != nil {
					if !errors.Is(err, ErrOpen) && !errors.Is(err, ErrTooManyCalls) {
						t.Errorf("Allow() = %v", err)
					}
					_ = b.State()
					continue
				}
				switch r.IntN(10) {
				case 0, 1, 2:
					b.Record(tk, false)
				case 3:
					b.Release(tk)
				default:
					b.Record(tk, true)
				}
			}
		})
	}
	wg.Wait()

	legal := map[[2]State]bool{
		{StateClosed, StateOpen}:     true,
		{StateOpen, StateHalfOpen}:   true,
		{StateHalfOpen, StateOpen}:   true,
		{StateHalfOpen, StateClosed}: true,
	}
	seen := bundle.transitions()
	if len(seen) < 3 {
		t.Fatalf("only %d state changes; the test did not exercise the breaker", len(seen))
	}
	prev := StateClosed
	for i, tr := range seen {
		if tr.from != prev || !legal[[2]State{tr.from, tr.to}] {
			t.Fatalf("change %d: %s→%s after %s", i, tr.from, tr.to, prev)
		}
		prev = tr.to
	}
	// Drain and check the breaker is still coherent: it must be able to close.
	bundle.clock.Advance(time.Hour)
	for range 10 {
		if tk, err := b.Allow(); err == nil {
			b.Record(tk, true)
		}
	}
	wantState(t, b, StateClosed)
}

func TestNewBreaker(t *testing.T) {
	t.Parallel()

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		b, err := NewBreaker("up", BreakerConfig{Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		if b.Name() != "up" || b.threshold != DefaultFailureThreshold || b.timeout != DefaultRecoveryTimeout ||
			b.halfOpenMax != DefaultHalfOpenMaxCalls {
			t.Fatalf("breaker = %+v, want the defaults", b)
		}
		wantState(t, b, StateClosed)
	})

	t.Run("InvalidConfigNamesEveryField", func(t *testing.T) {
		t.Parallel()
		_, err := NewBreaker("up", BreakerConfig{Enabled: true, FailureThreshold: -1, RecoveryTimeout: -time.Second,
			HalfOpenMaxCalls: MaxBreakerCount + 1})
		if err == nil {
			t.Fatal("NewBreaker accepted an invalid config")
		}
		for _, want := range []string{`"up"`, "failure_threshold", "recovery_timeout", "half_open_max_calls"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
		}
	})
}

func TestBreakerConfig_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg     BreakerConfig
		wantErr string
	}{
		{BreakerConfig{}, ""},
		{BreakerConfig{FailureThreshold: MaxBreakerCount, HalfOpenMaxCalls: MaxBreakerCount}, ""},
		{BreakerConfig{FailureThreshold: MaxBreakerCount + 1}, "failure_threshold"},
		{BreakerConfig{HalfOpenMaxCalls: -3}, "half_open_max_calls"},
		{BreakerConfig{RecoveryTimeout: -1}, "recovery_timeout"},
	} {
		t.Run(fmt.Sprintf("%+v", tc.cfg), func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestState_String(t *testing.T) {
	t.Parallel()
	for s, want := range map[State]string{StateClosed: "closed", StateOpen: "open", StateHalfOpen: "half-open", 7: "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", s, got, want)
		}
		if got, _ := s.MarshalText(); string(got) != want {
			t.Errorf("%d.MarshalText() = %q, want %q", s, got, want)
		}
	}
}

func TestPack(t *testing.T) {
	t.Parallel()
	w := pack(StateHalfOpen, MaxBreakerCount, 1, 1<<32-1)
	if stateOf(w) != StateHalfOpen || countA(w) != MaxBreakerCount || countB(w) != 1 || genOf(w) != 1<<32-1 {
		t.Fatalf("unpack(%#x) = %s %d %d %d", w, stateOf(w), countA(w), countB(w), genOf(w))
	}
}
