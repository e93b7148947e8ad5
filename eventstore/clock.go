package eventstore

import "time"

// Clock tells the time and makes timers, so that tests drive heartbeats, leases, polling
// and retries without sleeping.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed, and a function that stops
	// the timer.
	After(d time.Duration) (<-chan time.Time, func())
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// After implements Clock.
func (SystemClock) After(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// EventTime is the time an append stamps on its events: now in UTC to the microsecond, but
// never before last, the time of the event before them. For backends.
func EventTime(now, last time.Time) time.Time {
	t := now.UTC().Truncate(time.Microsecond)
	if t.Before(last) {
		return last.UTC()
	}
	return t
}
