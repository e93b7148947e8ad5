package balancer

import (
	"testing"
	"time"
)

// at converts a duration since the test's epoch into the monotonic time the
// unexported observe takes, so tests control time without sleeping.
func at(d time.Duration) int64 { return int64(d) }

func TestP2CEWMA_Pick(t *testing.T) {
	t.Parallel()

	t.Run("PrefersFaster", func(t *testing.T) {
		t.Parallel()
		var p P2CEWMA
		bs := makeBackends(3)
		bs[0].observe(time.Millisecond, at(0))
		bs[1].observe(2*time.Millisecond, at(0))
		bs[2].observe(50*time.Millisecond, at(0))
		p.Update(bs)
		counts := map[*Backend]int{}
		for range 3000 {
			counts[p.Pick(0, nil)]++
		}
		// The slowest loses every comparison; the fastest wins all of its
		// comparisons, i.e. is in 2 of the 3 possible pairs.
		if counts[bs[2]] != 0 {
			t.Errorf("slowest backend picked %d times, want 0", counts[bs[2]])
		}
		if c := counts[bs[0]]; c < 1800 || c > 2200 {
			t.Errorf("fastest backend picked %d of 3000 times, want about 2000", c)
		}
	})

	t.Run("InFlightOutweighsLatency", func(t *testing.T) {
		t.Parallel()
		var p P2CEWMA
		bs := makeBackends(2)
		bs[0].observe(time.Millisecond, at(0))
		bs[1].observe(10*time.Millisecond, at(0))
		p.Update(bs)
		if b := p.Pick(0, nil); b != bs[0] {
			t.Fatalf("idle: picked %q, want the faster", b.ID)
		}
		load(t, bs, 10) // cost 1ms × 11 > 10ms × 1
		if b := p.Pick(0, nil); b != bs[1] {
			t.Errorf("fast backend with 10 in flight: picked %q, want the idle slower one", b.ID)
		}
	})

	t.Run("NewBackendGetsOneProbe", func(t *testing.T) {
		t.Parallel()
		var p P2CEWMA
		bs := makeBackends(2)
		bs[0].observe(time.Millisecond, at(0))
		fresh := bs[1] // no latency sample yet
		p.Update(bs)
		if b := p.Pick(0, nil); b != fresh {
			t.Fatalf("picked %q, want the idle unmeasured backend", b.ID)
		}
		fresh.Acquire() // the probe is in flight, no answer yet
		for range 10 {
			if b := p.Pick(0, nil); b == fresh {
				t.Fatal("unmeasured backend with a request in flight picked again")
			}
		}
	})

	t.Run("StaleLatencyDecays", func(t *testing.T) {
		t.Parallel()
		var p P2CEWMA
		bs := makeBackends(2)
		fast, slow := bs[0], bs[1]
		slow.observe(100*time.Millisecond, at(0))
		p.Update(bs)
		// The fast backend keeps answering in 1ms; the slow one gets no
		// traffic and so no new sample.
		for _, now := range []time.Duration{time.Second, 30 * time.Second, 60 * time.Second} {
			fast.observe(time.Millisecond, at(now))
			want := fast
			if now == 60*time.Second { // 100ms · e^-6 ≈ 0.25ms < 1ms
				want = slow
			}
			if b := p.Pick(0, nil); b != want {
				t.Errorf("after %v: picked %q, want %q", now, b.ID, want.ID)
			}
		}
	})
}
