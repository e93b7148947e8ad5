package balancer

import (
	"math"
	"sync"
	"testing"
	"time"
	"unsafe"
)

func TestNewBackend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want int }{{1, 1}, {5, 5}, {0, 1}, {-3, 1}, {math.MaxInt, maxWeight}} {
		if b := NewBackend("x", tc.in); b.ID != "x" || b.Weight != tc.want {
			t.Errorf("NewBackend(x, %d) = {%q, %d}, want {x, %d}", tc.in, b.ID, b.Weight, tc.want)
		}
	}
}

func TestBackend_size(t *testing.T) {
	t.Parallel()
	// One cache line per Backend; see the padding in Backend.
	if got := unsafe.Sizeof(Backend{}); got != 64 {
		t.Errorf("Backend is %d bytes, want 64: adjust the padding", got)
	}
}

func TestBackend_AcquireRelease(t *testing.T) {
	t.Parallel()
	b := NewBackend("x", 1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				b.Acquire()
				b.Release(time.Millisecond)
			}
		})
	}
	b.Acquire()
	b.Acquire()
	wg.Wait()
	if got := b.InFlight(); got != 2 {
		t.Errorf("InFlight = %d, want 2", got)
	}
	if got := b.EWMA(); got < time.Millisecond-time.Nanosecond || got > time.Millisecond {
		t.Errorf("EWMA = %v after only 1ms samples, want 1ms", got)
	}
}

func TestBackend_EWMA(t *testing.T) {
	t.Parallel()
	const tau = decayTime
	approx := func(t *testing.T, got, want time.Duration) {
		t.Helper()
		if d := got - want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("EWMA = %v, want %v", got, want)
		}
	}

	t.Run("ZeroBeforeFirstSample", func(t *testing.T) {
		t.Parallel()
		if got := NewBackend("x", 1).EWMA(); got != 0 {
			t.Errorf("EWMA = %v, want 0", got)
		}
	})
	t.Run("FirstSampleSeeds", func(t *testing.T) {
		t.Parallel()
		b := NewBackend("x", 1)
		b.observe(40*time.Millisecond, at(time.Hour))
		approx(t, b.EWMA(), 40*time.Millisecond)
	})
	t.Run("WeighsByElapsedTime", func(t *testing.T) {
		t.Parallel()
		b := NewBackend("x", 1)
		b.observe(10*time.Millisecond, at(0))
		// One τ later the old average weighs 1/e.
		b.observe(20*time.Millisecond, at(tau))
		want := 10*math.Exp(-1) + 20*(1-math.Exp(-1))
		approx(t, b.EWMA(), time.Duration(want*float64(time.Millisecond)))
		// A simultaneous sample has no weight.
		before := b.EWMA()
		b.observe(time.Second, at(tau))
		approx(t, b.EWMA(), before)
	})
	t.Run("NegativeLatencyIsZero", func(t *testing.T) {
		t.Parallel()
		b := NewBackend("x", 1)
		b.observe(10*time.Millisecond, at(0))
		b.observe(-time.Hour, at(100*tau))
		if got := b.EWMA(); got < 0 || got > time.Microsecond {
			t.Errorf("EWMA = %v, want about 0", got)
		}
	})
}

func TestBackend_load(t *testing.T) {
	t.Parallel()
	b := NewBackend("x", 1)
	if c, _, measured := b.load(); c != 0 || measured {
		t.Errorf("unmeasured, idle: load = %v, measured %v; want 0, false", c, measured)
	}
	b.Acquire()
	if c, _, measured := b.load(); c < penalty || measured {
		t.Errorf("unmeasured, busy: load = %v, measured %v; want >= penalty, false", c, measured)
	}
	b.observe(10*time.Millisecond, at(time.Minute))
	b.Acquire()
	c, stamp, measured := b.load()
	if want := float64(30 * time.Millisecond); c != want || stamp != at(time.Minute) || !measured {
		t.Errorf("10ms, 2 in flight: load = %v, %v, %v; want %v, %v, true", c, stamp, measured, want, at(time.Minute))
	}
}

func TestDecay(t *testing.T) {
	t.Parallel()
	for _, dt := range []time.Duration{-time.Second, 0, time.Microsecond, time.Millisecond,
		decayTime/32 - 1, decayTime / 32, decayTime, 100 * decayTime, 1 << 62} {
		want := math.Exp(-max(float64(dt), 0) / float64(decayTime))
		if got := decay(int64(dt)); math.Abs(got-want) > 1e-5 {
			t.Errorf("decay(%v) = %v, want %v", dt, got, want)
		}
	}
}
