package balancer

import (
	"fmt"
	"math/bits"
	"testing"
)

func TestHashKey(t *testing.T) {
	t.Parallel()

	t.Run("Pinned", func(t *testing.T) {
		t.Parallel()
		// The key must never change across releases, or proxy replicas
		// running different versions would disagree. These values were
		// checked against an independent implementation of FNV-1a 64 +
		// fmix64.
		for s, want := range map[string]uint64{
			"":            0xefd01f60ba992926,
			"192.0.2.1":   0x8fc433616f773343,
			"2001:db8::1": 0x85a0a62ee75faf77,
		} {
			if got := HashKey(s); got != want {
				t.Errorf("HashKey(%q) = %#x, want %#x", s, got, want)
			}
		}
	})

	t.Run("Avalanche", func(t *testing.T) {
		t.Parallel()
		// Addresses differing in one digit differ in about half the bits.
		total := 0
		const n = 1000
		for i := range n {
			a := HashKey(fmt.Sprintf("10.0.%d.%d", i/250, i%250))
			b := HashKey(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1))
			total += bits.OnesCount64(a ^ b)
		}
		if avg := float64(total) / n; avg < 28 || avg > 36 {
			t.Errorf("neighbouring addresses differ in %.1f bits on average, want about 32", avg)
		}
	})

}

// TestHashKey_Allocs is not parallel: AllocsPerRun counts process-wide.
func TestHashKey_Allocs(t *testing.T) {
	s := "2001:db8:85a3::8a2e:370:7334"
	var sink uint64
	if a := testing.AllocsPerRun(100, func() { sink += HashKey(s) }); a != 0 {
		t.Errorf("HashKey allocates %v times, want 0", a)
	}
	_ = sink
}
