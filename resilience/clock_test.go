package resilience

import (
	"sync/atomic"
	"testing"
	"time"
)

// manualClock is a Clock that only moves when told to; safe for concurrent use.
type manualClock struct {
	base time.Time
	ns   atomic.Int64
}

func newManualClock() *manualClock {
	return &manualClock{base: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time          { return c.base.Add(time.Duration(c.ns.Load())) }
func (c *manualClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var _ Clock = (*manualClock)(nil)

func TestClockFunc_Now(t *testing.T) {
	t.Parallel()
	at := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := ClockFunc(func() time.Time { return at }).Now(); !got.Equal(at) {
		t.Fatalf("Now() = %v, want %v", got, at)
	}
	if clockOrSystem(nil) == nil {
		t.Fatal("clockOrSystem(nil) = nil, want the system clock")
	}
}
