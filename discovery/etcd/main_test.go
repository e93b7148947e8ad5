package etcd

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-sh/shoal/internal/etcdtest"
)

// TestMain serves etcd or a test instance when the binary is started as one
// of those children; otherwise it runs the tests, stops the shared etcd and
// checks that no test left goroutines behind.
func TestMain(m *testing.M) {
	etcdtest.RunIfChild()
	runInstanceIfChild()
	code := m.Run()
	etcdtest.StopAll()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
