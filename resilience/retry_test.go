package resilience

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// retryBundle holds the fixtures of one Retry under test.
type retryBundle struct {
	clock *manualClock
	fire  chan time.Time // what the injected After returns
	asked chan time.Duration
}

func setupRetry(t *testing.T, cfg RetryConfig) (*Retry, *retryBundle) {
	t.Helper()
	bundle := &retryBundle{clock: newManualClock(), fire: make(chan time.Time, 1), asked: make(chan time.Duration, 1)}
	cfg.Clock = bundle.clock
	cfg.After = func(d time.Duration) <-chan time.Time {
		bundle.asked <- d
		return bundle.fire
	}
	r, err := NewRetry(cfg)
	if err != nil {
		t.Fatalf("NewRetry: %v", err)
	}
	return r, bundle
}

// maxRand always draws the top of the range, so Backoff returns its ceiling.
func maxRand(n int64) int64 { return n - 1 }

func TestRetry_Backoff(t *testing.T) {
	t.Parallel()

	t.Run("CeilingDoublesUpToMaxDelay", func(t *testing.T) {
		t.Parallel()
		r, _ := setupRetry(t, RetryConfig{BaseDelay: 10 * time.Millisecond, MaxDelay: time.Second, Rand: maxRand})
		want := []time.Duration{10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000}
		for attempt, w := range want {
			if got := r.Backoff(attempt); got != w*time.Millisecond {
				t.Errorf("Backoff(%d) = %s, want %s", attempt, got, w*time.Millisecond)
			}
		}
	})

	t.Run("FloorIsZero", func(t *testing.T) {
		t.Parallel()
		r, _ := setupRetry(t, RetryConfig{Rand: func(int64) int64 { return 0 }})
		for attempt := range 20 {
			if got := r.Backoff(attempt); got != 0 {
				t.Errorf("Backoff(%d) = %s, want 0", attempt, got)
			}
		}
	})

	t.Run("AlwaysWithinZeroAndCeiling", func(t *testing.T) {
		t.Parallel()
		base, maxDelay := 3*time.Millisecond, 200*time.Millisecond
		r, _ := setupRetry(t, RetryConfig{BaseDelay: base, MaxDelay: maxDelay}) // real random source
		for attempt := -2; attempt < 100; attempt++ {
			ceil := maxDelay
			if attempt < 10 {
				ceil = min(maxDelay, base<<max(attempt, 0))
			}
			for range 200 {
				if got := r.Backoff(attempt); got < 0 || got > ceil {
					t.Fatalf("Backoff(%d) = %s, want within [0, %s]", attempt, got, ceil)
				}
			}
		}
	})

	t.Run("GrowsOnAverage", func(t *testing.T) {
		t.Parallel()
		r, _ := setupRetry(t, RetryConfig{BaseDelay: time.Millisecond, MaxDelay: time.Hour})
		mean := func(attempt int) time.Duration {
			var sum time.Duration
			for range 2000 {
				sum += r.Backoff(attempt)
			}
			return sum / 2000
		}
		// Full jitter has mean ceiling/2; 2000 draws put it within a few
		// percent, far from the 2x step between attempts.
		prev := mean(0)
		for attempt := 1; attempt < 8; attempt++ {
			m := mean(attempt)
			if m < prev*3/2 {
				t.Fatalf("mean Backoff(%d) = %s, not clearly above mean Backoff(%d) = %s", attempt, m, attempt-1, prev)
			}
			prev = m
		}
	})

	t.Run("NoOverflow", func(t *testing.T) {
		t.Parallel()
		r, _ := setupRetry(t, RetryConfig{BaseDelay: time.Hour, MaxDelay: math.MaxInt64, Rand: maxRand})
		for _, attempt := range []int{30, 40, 62, 63, 64, 1000, math.MaxInt} {
			if got := r.Backoff(attempt); got <= 0 {
				t.Errorf("Backoff(%d) = %s, want positive", attempt, got)
			}
		}
	})

	t.Run("ZeroBaseAfterDefaultsIsImpossible", func(t *testing.T) {
		t.Parallel()
		r, err := NewRetry(RetryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if r.MaxAttempts() != DefaultMaxAttempts || r.base != DefaultBaseDelay || r.max != 10*DefaultBaseDelay {
			t.Fatalf("defaults = %d %s %s", r.MaxAttempts(), r.base, r.max)
		}
	})
}

func TestRetry_Sleep(t *testing.T) {
	t.Parallel()

	t.Run("WaitsForTheTimer", func(t *testing.T) {
		t.Parallel()
		r, bundle := setupRetry(t, RetryConfig{})
		bundle.fire <- time.Time{}
		if err := r.Sleep(context.Background(), 50*time.Millisecond); err != nil {
			t.Fatalf("Sleep() = %v", err)
		}
		if got := <-bundle.asked; got != 50*time.Millisecond {
			t.Fatalf("After(%s), want After(50ms)", got)
		}
	})

	t.Run("ReturnsWhenContextIsCancelled", func(t *testing.T) {
		t.Parallel()
		r, bundle := setupRetry(t, RetryConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.Sleep(ctx, time.Hour) }()
		<-bundle.asked // Sleep is waiting; the timer never fires
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep() = %v, want context.Canceled", err)
		}
	})

	t.Run("AlreadyCancelled", func(t *testing.T) {
		t.Parallel()
		r, _ := setupRetry(t, RetryConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := r.Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep() = %v, want context.Canceled", err)
		}
	})

	t.Run("GivesUpIfTheDeadlineComesFirst", func(t *testing.T) {
		t.Parallel()
		r, bundle := setupRetry(t, RetryConfig{})
		// Contexts keep real deadlines, so start the manual clock at real now.
		bundle.clock.base = time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), bundle.clock.Now().Add(time.Hour))
		defer cancel()

		bundle.fire <- time.Time{}
		if err := r.Sleep(ctx, 30*time.Minute); err != nil {
			t.Fatalf("Sleep(30m) with 1h left = %v, want nil", err)
		}
		<-bundle.asked

		bundle.clock.Advance(45 * time.Minute) // 15 minutes left by the injected clock
		err := r.Sleep(ctx, 30*time.Minute)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "deadline") {
			t.Fatalf("Sleep(30m) with 15m left = %v, want a context.DeadlineExceeded", err)
		}
		select {
		case d := <-bundle.asked:
			t.Fatalf("Sleep started a %s timer; it should not wait at all", d)
		default:
		}
	})

	t.Run("ZeroDurationDoesNotWait", func(t *testing.T) {
		t.Parallel()
		r, bundle := setupRetry(t, RetryConfig{})
		if err := r.Sleep(context.Background(), 0); err != nil {
			t.Fatalf("Sleep(0) = %v", err)
		}
		if len(bundle.asked) != 0 {
			t.Fatal("Sleep(0) started a timer")
		}
	})

	t.Run("DefaultTimer", func(t *testing.T) {
		t.Parallel()
		r, err := NewRetry(RetryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Sleep(context.Background(), time.Nanosecond); err != nil {
			t.Fatalf("Sleep(1ns) = %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		if err := r.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep(1h) after cancel = %v, want context.Canceled", err)
		}
	})
}

func TestRetryConfig_Validate(t *testing.T) {
	t.Parallel()
	_, err := NewRetry(RetryConfig{MaxAttempts: -1, BaseDelay: -time.Second, MaxDelay: -time.Second})
	if err == nil {
		t.Fatal("NewRetry accepted an invalid config")
	}
	for _, want := range []string{"max_attempts", "base_delay", "max_delay"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if err := (&RetryConfig{BaseDelay: time.Second, MaxDelay: time.Millisecond}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "at least base_delay") {
		t.Errorf("Validate() = %v, want max_delay below base_delay rejected", err)
	}
	if err := (&RetryConfig{BaseDelay: time.Second}).Validate(); err != nil {
		t.Errorf("Validate() = %v for base_delay alone, want nil (max_delay defaults to 10×)", err)
	}
}
