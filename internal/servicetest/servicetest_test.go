package servicetest

import "testing"

// TestNeed_Services checks that every service tests rely on is reachable — or, on a laptop
// without them, that each is skipped with a message saying how to start it.
func TestNeed_Services(t *testing.T) {
	t.Parallel()
	for _, s := range All {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			if addr := Need(t, s); addr != s.Addr {
				t.Fatalf("Need returned %q", addr)
			}
		})
	}
}
