package balancer

import (
	"math/rand/v2"
	"sync/atomic"
)

// exactLimit is the largest set LeastConnections scans in full. Above it a
// pick samples two backends at random instead; see [LeastConnections].
const exactLimit = 32

// LeastConnections is the least_connections picker: it sends each request to
// the backend with the fewest requests in flight ([Backend.InFlight]). Weights
// are ignored.
//
// For sets of up to 32 backends a pick scans the whole set, starting at a
// position that advances by one on every pick, and keeps the first backend with
// the strictly lowest count. That choice is exact, and backends with equal
// counts take turns: with every backend idle it behaves exactly like
// round_robin.
//
// For larger sets a full scan reads one contended cache line per backend on
// every request, so a pick instead samples two distinct backends uniformly at
// random and takes the less loaded ("power of two choices", which is what
// Envoy's least_request does at any size). That is not always the least
// loaded backend, but in the balls-into-bins model two choices keep the
// maximum load within O(log log n) of the average, against O(log n / log log n)
// for one random choice (Azar et al.; Mitzenmacher), and a pick costs the same
// at 1000 backends as at 33. An excluded sample is replaced by a random
// backend that is not excluded.
//
// The zero value is ready to use.
type LeastConnections struct {
	set  atomic.Pointer[[]*Backend]
	_    pad
	next atomic.Uint64 // scan start, small sets only
}

// Update implements [Picker].
func (l *LeastConnections) Update(backends []*Backend) {
	set := compact(backends)
	l.set.Store(&set)
}

// Pick implements [Picker]; key is ignored.
func (l *LeastConnections) Pick(_ uint64, exclude []*Backend) *Backend {
	p := l.set.Load()
	if p == nil {
		return nil
	}
	set := *p
	n := len(set)
	switch {
	case n == 0:
		return nil
	case n == 1:
		if b := set[0]; len(exclude) == 0 || !excluded(b, exclude) {
			return b
		}
		return nil
	case n > exactLimit:
		return leastOfTwo(set, exclude)
	}
	start := int((l.next.Add(1) - 1) % uint64(n))
	return leastScan(set, start, exclude)
}

// leastScan returns the non-excluded backend of set with the fewest in flight,
// scanning from start and keeping the first of equals; nil if all are
// excluded.
func leastScan(set []*Backend, start int, exclude []*Backend) *Backend {
	var best *Backend
	var bestLoad int64
	n := len(set)
	for i := range n {
		j := start + i
		if j >= n {
			j -= n
		}
		b := set[j]
		if len(exclude) != 0 && excluded(b, exclude) {
			continue
		}
		if load := b.inflight.Load(); best == nil || load < bestLoad {
			best, bestLoad = b, load
		}
	}
	return best
}

// leastOfTwo samples two distinct backends of set (len(set) >= 2) and returns
// the less loaded. A sample that is excluded is replaced by a uniformly random
// backend that is not; nil if every backend is excluded.
func leastOfTwo(set []*Backend, exclude []*Backend) *Backend {
	x, y := sampleTwo(set, exclude)
	if x == nil {
		return nil
	}
	if y.inflight.Load() < x.inflight.Load() {
		return y
	}
	return x
}

// sampleTwo returns two backends of set (len(set) >= 2), distinct and uniformly
// random when neither is excluded. An excluded sample is replaced using
// randomAllowed, which may then coincide with the other sample. Both are nil
// if every backend is excluded.
func sampleTwo(set []*Backend, exclude []*Backend) (x, y *Backend) {
	i, j := twoDistinct(len(set))
	x, y = set[i], set[j]
	if len(exclude) != 0 {
		if excluded(x, exclude) {
			if x = randomAllowed(set, exclude); x == nil {
				return nil, nil
			}
		}
		if excluded(y, exclude) {
			y = randomAllowed(set, exclude) // non-nil: x is allowed
		}
	}
	return x, y
}

// twoDistinct returns two distinct indices uniformly at random from [0, n),
// 2 <= n < 2^32, from one draw of the top-level math/rand/v2 generator, which
// is per thread: no lock, no shared write, no allocation. Each 32-bit half of
// the draw is mapped onto its range by multiply-shift; the bias, n/2^32, is
// immaterial.
func twoDistinct(n int) (int, int) {
	r := rand.Uint64()
	a := int((r & 0xffffffff) * uint64(n) >> 32)
	b := int((r >> 32) * uint64(n-1) >> 32)
	if b >= a {
		b++
	}
	return a, b
}
