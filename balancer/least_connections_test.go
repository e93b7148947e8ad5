package balancer

import (
	"testing"
)

// load gives each backend the in-flight count of the same index.
func load(t *testing.T, bs []*Backend, inflight ...int) {
	t.Helper()
	for i, n := range inflight {
		for range n {
			bs[i].Acquire()
		}
	}
}

func TestLeastConnections_Pick(t *testing.T) {
	t.Parallel()

	t.Run("PrefersLeastLoaded", func(t *testing.T) {
		t.Parallel()
		var l LeastConnections
		bs := makeBackends(4)
		load(t, bs, 3, 1, 2, 5)
		l.Update(bs)
		for i := range 20 {
			if b := l.Pick(0, nil); b != bs[1] {
				t.Fatalf("pick %d = %q, want the least loaded %q", i, b.ID, bs[1].ID)
			}
		}
	})

	t.Run("FollowsLoad", func(t *testing.T) {
		t.Parallel()
		// A proxy that acquires what it picks and never releases fills
		// the backends evenly.
		var l LeastConnections
		bs := makeBackends(5)
		load(t, bs, 0, 4, 2, 0, 1)
		l.Update(bs)
		for range 43 { // 7 already in flight + 43 = 10 per backend
			l.Pick(0, nil).Acquire()
		}
		for _, b := range bs {
			if b.InFlight() != 10 {
				t.Errorf("%s: %d in flight, want 10", b.ID, b.InFlight())
			}
		}
	})

	t.Run("TiesRotate", func(t *testing.T) {
		t.Parallel()
		var l LeastConnections
		bs := makeBackends(5)
		load(t, bs, 0, 0, 7, 0, 0) // four tied at 0
		l.Update(bs)
		counts := map[*Backend]int{}
		for range 400 {
			counts[l.Pick(0, nil)]++
		}
		if counts[bs[2]] != 0 {
			t.Errorf("loaded backend picked %d times", counts[bs[2]])
		}
		for _, i := range []int{0, 1, 3, 4} {
			if c := counts[bs[i]]; c < 60 {
				t.Errorf("tied backend %d picked %d of 400 times, want a fair share (~100)", i, c)
			}
		}
	})

	t.Run("ExcludeTakesNextLeast", func(t *testing.T) {
		t.Parallel()
		var l LeastConnections
		bs := makeBackends(4)
		load(t, bs, 3, 1, 2, 5)
		l.Update(bs)
		if b := l.Pick(0, bs[1:2]); b != bs[2] {
			t.Errorf("Pick excluding the least loaded = %q, want the next least %q", b.ID, bs[2].ID)
		}
	})

	t.Run("LargeSetSamples", func(t *testing.T) {
		t.Parallel()
		// Above exactLimit, a pick is the less loaded of two random
		// backends: a loaded backend is chosen only when both samples
		// are loaded, (50/100)·(49/99) ≈ 25% of picks.
		var l LeastConnections
		bs := makeBackends(100)
		for i, b := range bs {
			if i%2 == 0 {
				load(t, []*Backend{b}, 10)
			}
		}
		l.Update(bs)
		loaded := 0
		const picks = 10000
		for range picks {
			if l.Pick(0, nil).InFlight() > 0 {
				loaded++
			}
		}
		if frac := float64(loaded) / picks; frac < 0.20 || frac > 0.30 {
			t.Errorf("loaded backends got %.3f of picks, want about 0.25", frac)
		}
	})

	t.Run("LargeSetFollowsLoad", func(t *testing.T) {
		t.Parallel()
		var l LeastConnections
		bs := makeBackends(200)
		l.Update(bs)
		for range 200 * 20 {
			l.Pick(0, nil).Acquire()
		}
		// Two choices keep the spread tight: the most loaded backend
		// stays within a few requests of the mean of 20.
		hi := int64(0)
		for _, b := range bs {
			hi = max(hi, b.InFlight())
		}
		if hi > 24 {
			t.Errorf("max in flight = %d with mean 20, want <= 24", hi)
		}
	})
}
