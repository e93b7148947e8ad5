package health

import (
	"sync"
	"time"
)

// fakeClock is a Clock whose time moves and whose tickers tick only when a test says so.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers map[time.Duration][]chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), tickers: map[time.Duration][]chan time.Time{}}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	f.tickers[d] = append(f.tickers[d], ch)
	return ch, func() {}
}

// Advance moves the time forward by d without ticking.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// Tick delivers one tick to every ticker of period d (dropped when the last is still unread,
// as time.Ticker does).
func (f *fakeClock) Tick(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.tickers[d] {
		select {
		case ch <- f.now:
		default:
		}
	}
}

var _ Clock = (*fakeClock)(nil)
