package balancer

import (
	"strings"
	"testing"
)

// weighted returns backends with IDs "a", "b", ... and the given weights.
func weighted(weights ...int) []*Backend {
	bs := make([]*Backend, len(weights))
	for i, w := range weights {
		bs[i] = NewBackend(string(rune('a'+i)), w)
	}
	return bs
}

// sequence returns the IDs of the next n picks, concatenated.
func sequence(p Picker, n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteString(p.Pick(0, nil).ID)
	}
	return sb.String()
}

func TestWeightedRoundRobin_Pick(t *testing.T) {
	t.Parallel()

	t.Run("SmoothOrder", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			weights []int
			want    string
		}{
			{[]int{5, 1, 1}, "aabacaa" + "aabacaa"}, // nginx's documented example
			{[]int{1, 1, 1}, "abcabc"},
			{[]int{2, 1}, "aba" + "aba"},
			{[]int{10, 20, 30}, "cbacbc"}, // GCD 10: period 6, same as {1, 2, 3}
			{[]int{4, 0}, "aabaa"},        // weight 0 counts as 1
		} {
			var w WeightedRoundRobin
			w.Update(weighted(tc.weights...))
			if got := sequence(&w, len(tc.want)); got != tc.want {
				t.Errorf("weights %v: sequence %q, want %q", tc.weights, got, tc.want)
			}
		}
	})

	t.Run("NoBursts", func(t *testing.T) {
		t.Parallel()
		// With weights {3, 2, 1} no backend is picked three times in a
		// row, and the lighter ones never twice.
		var w WeightedRoundRobin
		w.Update(weighted(3, 2, 1))
		seq := sequence(&w, 60)
		for _, burst := range []string{"aaa", "bb", "cc"} {
			if strings.Contains(seq, burst) {
				t.Errorf("sequence %q contains the burst %q", seq, burst)
			}
		}
	})

	t.Run("Ratio", func(t *testing.T) {
		t.Parallel()
		var w WeightedRoundRobin
		bs := weighted(7, 3, 2, 1)
		w.Update(bs)
		counts := map[*Backend]int{}
		for range 13 * 100 {
			counts[w.Pick(0, nil)]++
		}
		for _, b := range bs {
			if want := 100 * b.Weight; counts[b] != want {
				t.Errorf("%s (weight %d) picked %d times, want exactly %d", b.ID, b.Weight, counts[b], want)
			}
		}
	})

	t.Run("PeriodReducedByGCD", func(t *testing.T) {
		t.Parallel()
		var w WeightedRoundRobin
		w.Update(weighted(100, 200, 300))
		if got := len(w.seq.Load().order); got != 6 {
			t.Errorf("period = %d, want 6", got)
		}
	})

	t.Run("PeriodCapped", func(t *testing.T) {
		t.Parallel()
		var w WeightedRoundRobin
		bs := weighted(maxWeight, maxWeight-1, 1, 7)
		w.Update(bs)
		s := w.seq.Load()
		if got := len(s.order); got > maxSequence+len(bs) {
			t.Errorf("period = %d, want <= %d", got, maxSequence+len(bs))
		}
		seen := map[uint32]bool{}
		for _, i := range s.order {
			seen[i] = true
		}
		if len(seen) != len(bs) {
			t.Errorf("%d of %d backends appear in the capped period", len(seen), len(bs))
		}
	})

	t.Run("ExcludeKeepsWeights", func(t *testing.T) {
		t.Parallel()
		// Excluding the heavy backend spreads its turns over the rest in
		// proportion to their weights (1:1 here), not to whichever
		// follows it in the sequence.
		var w WeightedRoundRobin
		bs := weighted(5, 1, 1)
		w.Update(bs)
		counts := map[*Backend]int{}
		for range 7000 {
			counts[w.Pick(0, bs[:1])]++
		}
		if counts[bs[0]] != 0 {
			t.Fatalf("excluded backend picked %d times", counts[bs[0]])
		}
		if b, c := counts[bs[1]], counts[bs[2]]; b < 3200 || c < 3200 {
			t.Errorf("b, c picked %d, %d times, want about 3500 each", b, c)
		}
	})
}

func TestGCD(t *testing.T) {
	t.Parallel()
	for _, tc := range [][3]int64{{0, 5, 5}, {5, 0, 5}, {12, 18, 6}, {7, 3, 1}, {1 << 20, 1 << 10, 1 << 10}} {
		if got := gcd(tc[0], tc[1]); got != tc[2] {
			t.Errorf("gcd(%d, %d) = %d, want %d", tc[0], tc[1], got, tc[2])
		}
	}
}
