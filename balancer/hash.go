package balancer

// FNV-1a 64-bit parameters.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// HashKey returns the key [Picker.Pick] expects for a client identity s —
// normally the client's IP address without the port (the port changes with
// every connection, so including it defeats ip_hash).
//
// The hash is FNV-1a 64 followed by a 64-bit finaliser that spreads every input
// bit over the whole word. It is deterministic — the same s gives the same key
// in every process, on every proxy replica and across restarts, unlike
// hash/maphash whose seed is per process — so replicas of the proxy that see the
// same backends send the same client to the same backend. It does not allocate.
// It is not a keyed hash: a client that can choose s can choose its backend,
// which ip_hash allows anyway.
func HashKey(s string) uint64 {
	return hashString(s, 0)
}

// hashString is HashKey with a seed, used to derive independent hashes of a
// backend ID for the Maglev permutation.
func hashString(s string, seed uint64) uint64 {
	h := uint64(fnvOffset) ^ seed
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix64(h)
}

// mix64 is the finaliser of MurmurHash3 (fmix64): a bijection on uint64 with
// full avalanche, so that nearby inputs (IP addresses differing in one digit)
// land far apart.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
