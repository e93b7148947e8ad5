package balancer

import (
	"math/rand/v2"
	"sync/atomic"
)

// maxSequence caps the length of WeightedRoundRobin's precomputed sequence.
const maxSequence = 1 << 16

// WeightedRoundRobin is the weighted_round_robin picker: nginx's smooth weighted
// round robin. Each backend is picked in proportion to its Weight, and the
// picks are interleaved rather than bunched: weights {a:5, b:1, c:1} give the
// repeating sequence a a b a c a a, not a a a a a b c.
//
// Update runs nginx's algorithm once over a whole period — every backend's
// current weight grows by its weight, the largest current weight wins and
// gives back the total — and stores the resulting sequence; a pick is then one
// atomic counter increment and an index, with no lock and no shared state
// beyond the counter. The weights are first divided by their greatest common
// divisor, so {10, 20, 30} has a period of 6, not 60. If the period is still
// longer than 65536 picks, the weights are scaled down to fit (each stays at
// least 1), which approximates ratios finer than about 1/65536 of the total.
// Update takes O(period · n) time: about 5 ms for 1000 backends of weights
// 1 to 7, and up to about 40 ms for 1000 backends whose weights hit the cap.
//
// When the backend whose turn it is was excluded, the pick chooses at random
// among the others in proportion to their weights. The zero value is ready to
// use.
type WeightedRoundRobin struct {
	seq  atomic.Pointer[smooth]
	_    pad
	next atomic.Uint64
}

// smooth is an immutable precomputed period of smooth weighted round robin.
type smooth struct {
	backends []*Backend
	weights  []int64  // of backends, as used for order (reduced, capped)
	order    []uint32 // indices into backends, one period
}

// Update implements [Picker]. It precomputes one period of the sequence.
func (w *WeightedRoundRobin) Update(backends []*Backend) {
	w.seq.Store(newSmooth(compact(backends)))
}

// Pick implements [Picker]; key is ignored.
func (w *WeightedRoundRobin) Pick(_ uint64, exclude []*Backend) *Backend {
	s := w.seq.Load()
	if s == nil || len(s.order) == 0 {
		return nil
	}
	l := uint64(len(s.order))
	i := (w.next.Add(1) - 1) % l
	b := s.backends[s.order[i]]
	if len(exclude) == 0 || !excluded(b, exclude) {
		return b
	}
	return s.weightedAllowed(exclude)
}

// weightedAllowed returns a backend chosen at random, in proportion to its
// weight, among those not excluded; nil if there is none. It takes
// O(n·len(exclude)), which only retries pay. (Walking on along the sequence
// instead would favour whichever backend follows the excluded one in it.)
func (s *smooth) weightedAllowed(exclude []*Backend) *Backend {
	var total uint64
	for i, b := range s.backends {
		if !excluded(b, exclude) {
			total += uint64(s.weights[i])
		}
	}
	if total == 0 {
		return nil
	}
	r := rand.Uint64N(total)
	for i, b := range s.backends {
		if excluded(b, exclude) {
			continue
		}
		if w := uint64(s.weights[i]); r >= w {
			r -= w
			continue
		}
		return b
	}
	return nil // unreachable
}

// newSmooth computes one period of nginx's smooth weighted round robin over
// set.
func newSmooth(set []*Backend) *smooth {
	s := &smooth{backends: set}
	n := len(set)
	if n == 0 {
		return s
	}
	weight := make([]int64, n)
	var g int64
	for i, b := range set {
		weight[i] = int64(b.weight())
		g = gcd(g, weight[i])
	}
	var total int64
	for i := range weight {
		weight[i] /= g
		total += weight[i]
	}
	if total > maxSequence {
		// Scale down to fit; every backend keeps at least one slot, so the
		// period can exceed maxSequence by at most n.
		scaled := int64(0)
		for i := range weight {
			weight[i] = max(weight[i]*maxSequence/total, 1) // < 2^20·2^16: no overflow
			scaled += weight[i]
		}
		total = scaled
	}

	s.weights = weight
	s.order = make([]uint32, total)
	current := make([]int64, n)
	for k := range s.order {
		best := 0
		for i := range n {
			current[i] += weight[i]
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		s.order[k] = uint32(best)
	}
	return s
}

// gcd returns the greatest common divisor of a and b (gcd(0, b) = b).
func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
