package balancer

import (
	"cmp"
	"math/bits"
	"slices"
	"sync/atomic"
)

// probeLimit bounds how many further Maglev table entries a pick inspects when
// the key's own backend is excluded, before it falls back to the set order.
// Adjacent entries belong to independent, weight-proportional backends, so a
// few probes almost always find one that is allowed, and the retry stays a
// deterministic function of the key.
const probeLimit = 16

// IPHash is the ip_hash picker: it maps each client key ([HashKey] of the
// client's IP) to a backend with Maglev consistent hashing (Eisenbud et al.,
// NSDI 2016, as in Envoy's maglev load balancer).
//
// Update builds a lookup table of M entries in which every backend claims
// entries in the order of its own pseudo-random permutation of the table, as
// often as its Weight relative to the heaviest backend allows. A pick is then
// one table lookup: O(1) at any set size. The properties that matter:
//
//   - Same key, same backend while the set is unchanged — and on every proxy
//     replica with the same set, because the table depends only on the
//     backends' IDs and weights, not on the order given to Update or on the
//     process.
//   - Removing or adding one of n backends remaps about 1/n of the keys (the
//     keys of the removed backend, or those the new backend takes), plus a
//     small Maglev overhead; all other keys stay put.
//   - Load is spread within about 1% of the weights, as M >= 100·n.
//
// Consistency needs M to stay the same across membership changes, so M is not
// derived from n directly: it is 65537 (Maglev's and Envoy's default) for up
// to 655 backends, and for larger sets the first prime after the smallest
// power of two >= 100·n. A change of n that crosses one of those steps (655,
// 1310, 2621, ... backends) remaps most keys, once.
//
// The table costs 4·M bytes (256 KiB up to 655 backends). Update takes
// O(M log M) time: about 3 ms for 100 backends and 7 ms for 1000 on a shared
// 2-core machine, up to about 70 ms for 1000 backends with extremely uneven
// weights (one at 1<<20, the rest at 1). When a key's backend is excluded, the pick probes the following table entries,
// which are a deterministic, weight-respecting choice among the others, and
// falls back to the set order after a few probes. Backends with duplicate IDs
// make the table depend on Update's order; IDs are meant to be unique.
//
// The zero value is ready to use.
type IPHash struct {
	table atomic.Pointer[maglev]
}

// maglev is an immutable lookup table.
type maglev struct {
	backends []*Backend // sorted by ID
	entries  []uint32   // index into backends; len is the prime M
}

// Update implements [Picker]. It builds the lookup table.
func (h *IPHash) Update(backends []*Backend) {
	h.table.Store(newMaglev(compact(backends)))
}

// Pick implements [Picker].
func (h *IPHash) Pick(key uint64, exclude []*Backend) *Backend {
	t := h.table.Load()
	if t == nil || len(t.backends) == 0 {
		return nil
	}
	m := uint64(len(t.entries))
	// Lemire's multiply-shift maps the (well-mixed) key onto [0, M) without a
	// division.
	i, _ := bits.Mul64(key, m)
	b := t.backends[t.entries[i]]
	if len(exclude) == 0 || !excluded(b, exclude) {
		return b
	}
	for range probeLimit {
		if i++; i == m {
			i = 0
		}
		if b := t.backends[t.entries[i]]; !excluded(b, exclude) {
			return b
		}
	}
	return firstAllowed(t.backends, int(key%uint64(len(t.backends))), exclude)
}

// newMaglev populates the Maglev table for set (which it may reorder).
func newMaglev(set []*Backend) *maglev {
	t := &maglev{backends: set}
	n := len(set)
	if n == 0 {
		return t
	}
	// Sort by ID so that the table is a function of the set, not of the order
	// discovery happened to list it in.
	slices.SortStableFunc(set, func(a, b *Backend) int { return cmp.Compare(a.ID, b.ID) })

	m := tableSize(n)
	// Backend i's permutation of the table is offset, offset+skip,
	// offset+2·skip, ... (mod M); M prime makes it visit every entry. pos is
	// where each backend's walk stands.
	pos := make([]uint64, n)
	skip := make([]uint64, n)
	weight := make([]uint64, n)
	target := make([]uint64, n)
	var heaviest uint64
	for i, b := range set {
		pos[i] = hashString(b.ID, 0x9e3779b97f4a7c15) % uint64(m)
		skip[i] = hashString(b.ID, 0xc2b2ae3d27d4eb4f)%uint64(m-1) + 1
		weight[i] = uint64(b.weight())
		heaviest = max(heaviest, weight[i])
	}
	// advance moves backend i one step along its permutation.
	advance := func(i int) {
		if pos[i] += skip[i]; pos[i] >= uint64(m) {
			pos[i] -= uint64(m)
		}
	}

	const empty = ^uint32(0)
	entries := make([]uint32, m)
	for i := range entries {
		entries[i] = empty
	}
	// Envoy's weighted variant of Maglev's populate: in round r, backend i
	// claims its next free preferred entry when r·weight ≥ target, and then
	// raises target by the heaviest weight. The heaviest backends claim every
	// round, lighter ones proportionally less often.
	filled := 0
	for round := uint64(0); filled < m; round++ {
		for i := range n {
			if round*weight[i] < target[i] {
				continue
			}
			target[i] += heaviest
			for entries[pos[i]] != empty {
				advance(i)
			}
			entries[pos[i]] = uint32(i)
			advance(i)
			if filled++; filled == m {
				break
			}
		}
	}
	t.entries = entries
	return t
}

// minTableSize is the Maglev table size for small sets: 2^16 + 1, a prime.
const minTableSize = 1<<16 + 1

// tableSize returns the Maglev table size M for n backends: a prime >= 100·n
// taken from a fixed ladder (65537, then the first prime after each larger
// power of two), so that M changes only when n crosses a rung.
func tableSize(n int) int {
	if 100*n <= minTableSize {
		return minTableSize
	}
	p := 1 << 17
	for p < 100*n {
		p <<= 1
	}
	return nextPrime(p)
}

// nextPrime returns the smallest prime >= n, by trial division: table sizes
// are at most a few million, so this takes microseconds.
func nextPrime(n int) int {
	for ; ; n++ {
		prime := n >= 2
		for d := 2; d*d <= n; d++ {
			if n%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			return n
		}
	}
}
