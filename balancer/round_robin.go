package balancer

import "sync/atomic"

// RoundRobin is the round_robin picker: it hands out the backends of the set in
// turn, in the order given to Update, so over any n consecutive picks of an
// unchanged set each of n backends is picked exactly once (with a nil exclude).
// Weights are ignored.
//
// The set is an immutable snapshot swapped atomically on Update, and the
// rotation is one atomic counter shared by all callers: a pick costs one atomic
// add, which is also the only contended write. The zero value is ready to use.
type RoundRobin struct {
	set  atomic.Pointer[[]*Backend]
	_    pad // next is written on every pick; set is read on every pick
	next atomic.Uint64
}

// Update implements [Picker].
func (r *RoundRobin) Update(backends []*Backend) {
	set := compact(backends)
	r.set.Store(&set)
}

// Pick implements [Picker]; key is ignored. When the backend whose turn it is
// was excluded, a backend chosen uniformly at random among those not excluded
// is returned instead (not simply the next in order, which would send all the
// retries of one failing backend to its neighbour).
func (r *RoundRobin) Pick(_ uint64, exclude []*Backend) *Backend {
	p := r.set.Load()
	if p == nil || len(*p) == 0 {
		return nil
	}
	set := *p
	i := int((r.next.Add(1) - 1) % uint64(len(set)))
	if b := set[i]; len(exclude) == 0 || !excluded(b, exclude) {
		return b
	}
	return randomAllowed(set, exclude)
}
