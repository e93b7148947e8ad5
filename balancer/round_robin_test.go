package balancer

import "testing"

func TestRoundRobin_Pick(t *testing.T) {
	t.Parallel()

	t.Run("ExactRotation", func(t *testing.T) {
		t.Parallel()
		var r RoundRobin
		bs := makeBackends(4)
		r.Update(bs)
		for i := range 3 * len(bs) {
			if got, want := r.Pick(0, nil), bs[i%len(bs)]; got != want {
				t.Fatalf("pick %d = %q, want %q", i, got.ID, want.ID)
			}
		}
	})

	t.Run("EqualCounts", func(t *testing.T) {
		t.Parallel()
		var r RoundRobin
		bs := makeBackends(7)
		r.Update(bs)
		counts := map[*Backend]int{}
		for range 700 {
			counts[r.Pick(0, nil)]++
		}
		for _, b := range bs {
			if counts[b] != 100 {
				t.Errorf("%s picked %d times in 700, want exactly 100", b.ID, counts[b])
			}
		}
	})

	t.Run("ExcludeSpreadsRetries", func(t *testing.T) {
		t.Parallel()
		// The retries of a failing backend are spread over the others,
		// not all handed to its successor.
		var r RoundRobin
		bs := makeBackends(4)
		r.Update(bs)
		counts := map[*Backend]int{}
		for range 3000 {
			counts[r.Pick(0, bs[:1])]++
		}
		if counts[bs[0]] != 0 {
			t.Fatalf("excluded backend picked %d times", counts[bs[0]])
		}
		// Turns of bs[1..3] give 750 each; bs[0]'s 750 turns are spread
		// at random, so each gets 750 + ~250.
		for _, b := range bs[1:] {
			if c := counts[b]; c < 850 || c > 1150 {
				t.Errorf("%s picked %d times, want about 1000", b.ID, c)
			}
		}
	})
}
