package balancer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// clientKeys returns n distinct client keys hashed from IPv4 addresses.
func clientKeys(n int) []uint64 {
	keys := make([]uint64, n)
	for i := range keys {
		keys[i] = HashKey(fmt.Sprintf("198.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	return keys
}

// mapping returns the backend IDs p picks for keys.
func mapping(p Picker, keys []uint64) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = p.Pick(k, nil).ID
	}
	return ids
}

// changed returns the fraction of positions where a and b differ.
func changed(a, b []string) float64 {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return float64(n) / float64(len(a))
}

func TestIPHash_Pick(t *testing.T) {
	t.Parallel()
	keys := clientKeys(10000)

	t.Run("StablePerKey", func(t *testing.T) {
		t.Parallel()
		var h IPHash
		h.Update(makeBackends(10))
		first := mapping(&h, keys)
		if again := mapping(&h, keys); changed(first, again) != 0 {
			t.Error("the same key mapped to a different backend on an unchanged set")
		}
	})

	t.Run("IndependentOfOrderAndInstance", func(t *testing.T) {
		t.Parallel()
		// Two proxy replicas, with their own Backend values listed in
		// different orders, agree on every key.
		var a, b IPHash
		bs := makeBackends(10)
		a.Update(bs)
		shuffled := makeBackends(10)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		b.Update(shuffled)
		if f := changed(mapping(&a, keys), mapping(&b, keys)); f != 0 {
			t.Errorf("%.4f of keys differ between replicas", f)
		}
	})

	t.Run("Balanced", func(t *testing.T) {
		t.Parallel()
		var h IPHash
		bs := makeBackends(10)
		h.Update(bs)
		counts := map[string]int{}
		for _, id := range mapping(&h, keys) {
			counts[id]++
		}
		for _, b := range bs {
			// 1000 expected; sampling noise alone is ~±95.
			if c := counts[b.ID]; c < 800 || c > 1200 {
				t.Errorf("%s got %d of 10000 keys, want about 1000", b.ID, c)
			}
		}
	})

	t.Run("Weighted", func(t *testing.T) {
		t.Parallel()
		var h IPHash
		bs := makeBackends(3)
		bs[0].Weight = 3
		h.Update(bs)
		counts := map[string]int{}
		for _, id := range mapping(&h, keys) {
			counts[id]++
		}
		// Expected 6000 : 2000 : 2000.
		if c := counts[bs[0].ID]; c < 5600 || c > 6400 {
			t.Errorf("weight-3 backend got %d of 10000 keys, want about 6000", c)
		}
	})

	for _, n := range []int{3, 10, 50} {
		t.Run(fmt.Sprintf("RemoveOneOf%d", n), func(t *testing.T) {
			t.Parallel()
			var h IPHash
			bs := makeBackends(n)
			h.Update(bs)
			before := mapping(&h, keys)
			gone := bs[n/2]
			h.Update(slices.Delete(slices.Clone(bs), n/2, n/2+1))
			after := mapping(&h, keys)
			f := changed(before, after)
			t.Logf("removing 1 of %d backends remapped %.4f of keys (ideal %.4f)", n, f, 1/float64(n))
			if f >= 2/float64(n) {
				t.Errorf("removing 1 of %d backends remapped %.4f of keys, want < %.4f", n, f, 2/float64(n))
			}
			if slices.Contains(after, gone.ID) {
				t.Error("a key still maps to the removed backend")
			}
		})
		t.Run(fmt.Sprintf("AddOneTo%d", n), func(t *testing.T) {
			t.Parallel()
			var h IPHash
			bs := makeBackends(n + 1)
			h.Update(bs[:n])
			before := mapping(&h, keys)
			h.Update(bs)
			f := changed(before, mapping(&h, keys))
			t.Logf("adding 1 to %d backends remapped %.4f of keys (ideal %.4f)", n, f, 1/float64(n+1))
			if f >= 2/float64(n+1) {
				t.Errorf("adding a backend to %d remapped %.4f of keys, want < %.4f", n, f, 2/float64(n+1))
			}
		})
	}

	t.Run("Pinned", func(t *testing.T) {
		t.Parallel()
		// The mapping must not change across releases: during a rolling
		// upgrade of the proxy, old and new replicas must agree.
		var h IPHash
		h.Update(makeBackends(5))
		for ip, want := range map[string]string{
			"192.0.2.1":     "10.0.0.2:8080",
			"192.0.2.2":     "10.0.0.3:8080",
			"198.51.100.7":  "10.0.0.4:8080",
			"2001:db8::1":   "10.0.0.2:8080",
			"203.0.113.200": "10.0.0.3:8080",
		} {
			if got := h.Pick(HashKey(ip), nil).ID; got != want {
				t.Errorf("client %s → %s, want %s", ip, got, want)
			}
		}
	})

	t.Run("ExcludeIsDeterministic", func(t *testing.T) {
		t.Parallel()
		var h IPHash
		bs := makeBackends(10)
		h.Update(bs)
		for _, k := range keys[:500] {
			first := h.Pick(k, nil)
			retry := h.Pick(k, []*Backend{first})
			if retry == first || retry == nil {
				t.Fatalf("retry = %v, want another backend", retry)
			}
			if again := h.Pick(k, []*Backend{first}); again != retry {
				t.Fatalf("retry for the same key went to %q then %q", retry.ID, again.ID)
			}
		}
	})
}

func TestTableSize(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]int{1: 65537, 655: 65537, 656: 131101, 1000: 131101, 1310: 131101, 1311: 262147} {
		if got := tableSize(n); got != want {
			t.Errorf("tableSize(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestNextPrime(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]int{2: 2, 4: 5, 257: 257, 258: 263, 1000: 1009, 100000: 100003} {
		if got := nextPrime(n); got != want {
			t.Errorf("nextPrime(%d) = %d, want %d", n, got, want)
		}
	}
}
