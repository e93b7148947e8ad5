package balancer

import "sync/atomic"

// P2CEWMA is the p2c_ewma picker: "power of two choices" over a latency-aware
// cost, as in Finagle's and go-zero's p2c balancers. A pick samples two
// distinct backends uniformly at random and takes the one with the lower cost
//
//	cost = EWMA latency × (in-flight + 1)
//
// so it prefers backends that answer fast and are not already busy, without
// scanning the set: a pick costs the same at any size (one random draw, six
// atomic loads, no clock read), and random sampling avoids the herd behaviour
// of always choosing the single best backend. The latency EWMA comes from
// [Backend.Release]; two refinements from Finagle keep it honest:
//
//   - A backend with no latency sample yet costs 0 while idle, and a huge
//     penalty while it has a request in flight: a new backend gets one probe
//     request, not every request, until its first response.
//   - A backend's EWMA, as read for the cost, decays towards zero with the time
//     since its last completed request (time constant 10 s). A backend that was
//     slow once, and therefore stopped being picked, is tried again after a
//     while instead of starving on a stale measurement.
//
// Weights are ignored. The random source is math/rand/v2's per-thread
// generator: no lock, no contended write, no allocation. The zero value is
// ready to use.
type P2CEWMA struct {
	set atomic.Pointer[[]*Backend]
}

// Update implements [Picker].
func (p *P2CEWMA) Update(backends []*Backend) {
	set := compact(backends)
	p.set.Store(&set)
}

// Pick implements [Picker]; key is ignored. A sample that is excluded is
// replaced by a uniformly random backend that is not, and the two are compared
// as usual.
func (p *P2CEWMA) Pick(_ uint64, exclude []*Backend) *Backend {
	s := p.set.Load()
	if s == nil {
		return nil
	}
	set := *s
	switch len(set) {
	case 0:
		return nil
	case 1:
		if b := set[0]; len(exclude) == 0 || !excluded(b, exclude) {
			return b
		}
		return nil
	}
	x, y := sampleTwo(set, exclude)
	if x == nil {
		return nil
	}
	if cheaper(y, x) {
		return y
	}
	return x
}

// cheaper reports whether y costs less than x now. Both costs decay by
// e^(-(now-stamp)/τ), so
//
//	cy·e^(-(now-sy)/τ) < cx·e^(-(now-sx)/τ)  ⇔  cy < cx·e^((sx-sy)/τ)
//
// and the comparison needs no clock read: only the difference between the two
// backends' sample times matters. Unmeasured backends (cost 0 or penalty) do
// not decay.
func cheaper(y, x *Backend) bool {
	cx, sx, mx := x.load()
	cy, sy, my := y.load()
	if mx && my {
		if d := sx - sy; d >= 0 {
			cx /= decay(d) // x is fresher: y has decayed more
		} else {
			cx *= decay(-d) // x is staler: it has decayed more
		}
	}
	return cy < cx
}
