package balancer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Picker chooses a backend for each request among the current eligible set.
//
// Implementations are safe for concurrent use: any number of goroutines may
// call Pick while another calls Update. The zero value of every Picker in this
// package is ready to use and holds the empty set. A Picker must not be copied
// after first use.
type Picker interface {
	// Update replaces the eligible set: the backends that are healthy, whose
	// circuit breaker is not open and that are not draining. It is meant to be
	// called rarely (on membership or health changes), may allocate and may
	// take time proportional to the set (ip_hash and weighted_round_robin
	// precompute tables). Update copies the slice, so the caller may reuse it;
	// nil entries are dropped. Picks that started before Update returns may
	// still return a backend of the previous set. Concurrent Updates are
	// safe, but the last to finish wins: callers that produce sets in order
	// serialize their Updates.
	Update(backends []*Backend)

	// Pick returns the backend for one request, or nil when the set is empty.
	//
	// key is a hash of the client, such as [HashKey] of its IP address; only
	// ip_hash uses it. exclude, if not empty, lists the backends already tried
	// for this request (compared by pointer): Pick never returns one of them,
	// and returns nil when every backend of the set is excluded. A caller that
	// prefers retrying on an already-tried backend to failing calls Pick again
	// with a nil exclude.
	//
	// Pick does not allocate, does not block and does not call Acquire: the
	// caller does, once it commits to the backend.
	Pick(key uint64, exclude []*Backend) *Backend
}

// The algorithm names, exactly as the config's load_balancer.algorithm spells
// them.
const (
	// NameRoundRobin selects [RoundRobin].
	NameRoundRobin = "round_robin"
	// NameLeastConnections selects [LeastConnections].
	NameLeastConnections = "least_connections"
	// NameIPHash selects [IPHash].
	NameIPHash = "ip_hash"
	// NameWeightedRoundRobin selects [WeightedRoundRobin].
	NameWeightedRoundRobin = "weighted_round_robin"
	// NameP2CEWMA selects [P2CEWMA].
	NameP2CEWMA = "p2c_ewma"
)

// Algorithms lists the names [New] accepts, in the order the documentation
// presents them. Treat it as read-only.
var Algorithms = []string{
	NameRoundRobin,
	NameLeastConnections,
	NameIPHash,
	NameWeightedRoundRobin,
	NameP2CEWMA,
}

// ErrUnknownAlgorithm is returned (wrapped, with the offending name and the
// valid ones) by [New] when the algorithm name is not one of [Algorithms].
var ErrUnknownAlgorithm = errors.New("unknown load-balancing algorithm")

// New returns an empty Picker for the named algorithm; see [Algorithms]. Names
// are case-sensitive and there is no default: an empty name is an error, so the
// config layer decides the default.
func New(algorithm string) (Picker, error) {
	switch algorithm {
	case NameRoundRobin:
		return new(RoundRobin), nil
	case NameLeastConnections:
		return new(LeastConnections), nil
	case NameIPHash:
		return new(IPHash), nil
	case NameWeightedRoundRobin:
		return new(WeightedRoundRobin), nil
	case NameP2CEWMA:
		return new(P2CEWMA), nil
	}
	return nil, fmt.Errorf("balancer: %w %q: use one of %s",
		ErrUnknownAlgorithm, algorithm, strings.Join(Algorithms, ", "))
}

// Interface guards.
var (
	_ Picker = (*RoundRobin)(nil)
	_ Picker = (*LeastConnections)(nil)
	_ Picker = (*IPHash)(nil)
	_ Picker = (*WeightedRoundRobin)(nil)
	_ Picker = (*P2CEWMA)(nil)
)

// pad keeps a frequently written field off the cache line of the fields
// around it, so that writes by one core do not evict what others only read.
type pad [64]byte

// compact returns a fresh copy of backends without nil entries.
func compact(backends []*Backend) []*Backend {
	out := make([]*Backend, 0, len(backends))
	for _, b := range backends {
		if b != nil {
			out = append(out, b)
		}
	}
	return out
}

// excluded reports whether b is in exclude. Exclude lists hold the few
// backends a request already tried, so a linear scan is the fastest lookup.
func excluded(b *Backend, exclude []*Backend) bool {
	for _, e := range exclude {
		if e == b {
			return true
		}
	}
	return false
}

// firstAllowed returns the first backend of set, starting at index start and
// wrapping around, that is not excluded; nil if there is none.
func firstAllowed(set []*Backend, start int, exclude []*Backend) *Backend {
	n := len(set)
	for i := range n {
		j := start + i
		if j >= n {
			j -= n
		}
		if b := set[j]; !excluded(b, exclude) {
			return b
		}
	}
	return nil
}

// randomAllowed returns a backend chosen uniformly at random among those of
// set that are not excluded; nil if there is none. It is how most pickers
// replace a choice that turned out to be excluded: uniformly, so that the
// retries of one failing backend do not all land on the same neighbour. A few
// rejection-sampling draws settle the common case (few exclusions) in O(1);
// otherwise it counts the allowed backends and takes one, in O(n·len(exclude)).
func randomAllowed(set []*Backend, exclude []*Backend) *Backend {
	n := len(set)
	if n == 0 {
		return nil
	}
	for range 4 {
		if b := set[rand.IntN(n)]; !excluded(b, exclude) {
			return b
		}
	}
	allowed := 0
	for _, b := range set {
		if !excluded(b, exclude) {
			allowed++
		}
	}
	if allowed == 0 {
		return nil
	}
	r := rand.IntN(allowed)
	for _, b := range set {
		if !excluded(b, exclude) {
			if r == 0 {
				return b
			}
			r--
		}
	}
	return nil // unreachable
}
