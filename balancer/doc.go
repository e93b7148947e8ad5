// Package balancer chooses which backend instance serves each request: the
// load-balancing pickers behind shoal's reverse proxy, and a signed cookie for
// session affinity.
//
// # Contract
//
// The proxy keeps one [*Backend] per instance and passes the eligible ones —
// healthy, circuit breaker not open, not draining — to [Picker.Update] whenever
// that set changes. For every request it calls [Picker.Pick] with a client key
// (see [HashKey]) and the backends already tried for this request, then
// [Backend.Acquire] before sending and [Backend.Release] with the latency after
// the response, which keeps the in-flight counts and latency averages that
// least_connections and p2c_ewma read up to date. Pick returns nil when the set
// is empty or everything in it was excluded; it never returns an excluded
// backend. Pick is lock-free, does not allocate, and is safe concurrently with
// Update; Update swaps in an immutable snapshot (precomputed tables included)
// through an atomic pointer. [New] builds a picker from its config name.
//
// # Algorithms
//
// round_robin ([RoundRobin]): each backend in turn, in set order, by one atomic
// counter. Exactly even.
//
// least_connections ([LeastConnections]): the backend with the fewest requests
// in flight; equally loaded backends take turns. Exact for up to 32 backends;
// above that, the less loaded of two random backends (power of two choices, as
// Envoy's least_request), because scanning every backend's counter on every
// request costs O(n) contended cache misses.
//
// ip_hash ([IPHash]): Maglev consistent hashing of the client key. The same
// client reaches the same backend while the set is unchanged, on every proxy
// replica; adding or removing one of n backends moves only about 1/n of the
// clients. A pick is one table lookup. Weights are honoured.
//
// weighted_round_robin ([WeightedRoundRobin]): nginx's smooth weighted round
// robin, precomputed on Update into one period (weights divided by their GCD)
// that an atomic counter indexes. Picks are proportional to Weight and
// interleaved: {5, 1, 1} gives a a b a c a a.
//
// p2c_ewma ([P2CEWMA]): the better of two random backends by EWMA latency ×
// (in-flight + 1), as Finagle and go-zero; new backends get one probe request
// and idle backends' stale latencies decay so they are tried again.
//
// Only weighted_round_robin and ip_hash use [Backend.Weight].
//
// # Retries
//
// A retry passes the backends already tried as exclude so that it goes to
// another instance. Each picker makes its normal choice and, only if that is
// excluded, replaces it: round_robin with a uniformly random other backend (not
// the next in order, which would hand all of a failing backend's retries to
// its neighbour), weighted_round_robin likewise in proportion to weight,
// least_connections by scanning or sampling among the rest, p2c_ewma by
// replacing the excluded sample, and ip_hash with the next entries of its
// table, so a retry is as deterministic per client as the first try. When all
// are excluded Pick returns nil and the caller decides whether to fail or to
// call Pick again with a nil exclude.
//
// # Session affinity
//
// [Affinity] signs a cookie value naming a backend ID with HMAC-SHA256 and
// verifies it in constant time. The proxy uses it to send a client back to the
// backend that served it while that backend remains eligible, and otherwise
// falls back to the picker.
package balancer
