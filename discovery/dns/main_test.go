package dns

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves goroutines behind: every Watch and
// every test DNS server starts some.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
