package resilience

import "time"

// Clock tells the time to the time-based logic of this package: the breaker's
// recovery timeout, the budget's expiry window and the deadline check in
// [Retry.Sleep]. Tests inject a manual clock so that they never sleep
// (river calls this a TimeGenerator).
//
// Now must be safe for concurrent use and should not go backwards; the
// package only ever subtracts two readings of the same Clock, so a clock that
// starts at any instant works.
type Clock interface {
	Now() time.Time
}

// ClockFunc adapts a function to [Clock], e.g. ClockFunc(fake.Now).
type ClockFunc func() time.Time

// Now returns f().
func (f ClockFunc) Now() time.Time { return f() }

// systemClock is the default Clock: the wall clock with its monotonic reading.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

var (
	_ Clock = ClockFunc(nil)
	_ Clock = systemClock{}
)

// clockOrSystem returns c, or the system clock when c is nil.
func clockOrSystem(c Clock) Clock {
	if c == nil {
		return systemClock{}
	}
	return c
}
