package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/shoal-sh/shoal/resilience"
)

// The proxy's use: a breaker per upstream, a retry policy and a shared budget,
// against an upstream that refuses every connection. Request 0 fails once and
// finds half a retry in the budget; request 1 brings the budget to one retry
// but its first failure trips the breaker, so the retry is rejected, as is
// request 2. (A real proxy would try another upstream on ErrOpen.) Thirty
// seconds later the upstream is back: request 3 is the single half-open trial
// and closes the breaker. The clock is manual and the backoff draws zero, so
// the output is fixed.
func Example() {
	var now atomic.Int64
	clock := resilience.ClockFunc(func() time.Time { return time.Unix(0, now.Load()) })

	breaker, err := resilience.NewBreaker("10.0.0.7:8080", resilience.BreakerConfig{
		Enabled: true, FailureThreshold: 2, RecoveryTimeout: 30 * time.Second, HalfOpenMaxCalls: 1,
		Clock: clock,
		OnStateChange: func(name string, from, to resilience.State) {
			fmt.Printf("breaker %s: %s -> %s\n", name, from, to)
		},
	})
	if err != nil {
		panic(err)
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{
		MaxAttempts: 3, Clock: clock,
		Rand:  func(int64) int64 { return 0 },
		After: func(time.Duration) <-chan time.Time { return nil }, // unused: Backoff is always 0
	})
	if err != nil {
		panic(err)
	}
	budget := resilience.NewBudget(0.5, 0, 10*time.Second, clock)

	var upstreamErr atomic.Pointer[error]
	down := errors.New("connection refused")
	upstreamErr.Store(&down)
	call := func() error { return *upstreamErr.Load() }

	serve := func(ctx context.Context) error {
		budget.Deposit()
		var last error
		for attempt := 0; attempt < retry.MaxAttempts(); attempt++ {
			if attempt > 0 {
				if !budget.Withdraw() {
					return fmt.Errorf("retry budget spent: %w", last)
				}
				if err := retry.Sleep(ctx, retry.Backoff(attempt-1)); err != nil {
					return err
				}
			}
			ticket, err := breaker.Allow()
			if err != nil {
				return err
			}
			last = call()
			breaker.Record(ticket, last == nil)
			if last == nil {
				return nil
			}
		}
		return last
	}

	for i := range 3 {
		fmt.Printf("request %d: %v\n", i, serve(context.Background()))
	}
	now.Add(int64(30 * time.Second))
	fmt.Println("after 30s:", breaker.State())

	var up error
	upstreamErr.Store(&up) // the upstream is back
	fmt.Printf("request 3: %v\n", serve(context.Background()))
	// Output:
	// request 0: retry budget spent: connection refused
	// breaker 10.0.0.7:8080: closed -> open
	// request 1: circuit breaker is open
	// request 2: circuit breaker is open
	// after 30s: half-open
	// breaker 10.0.0.7:8080: open -> half-open
	// breaker 10.0.0.7:8080: half-open -> closed
	// request 3: <nil>
}
