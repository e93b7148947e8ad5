package telemetry

import (
	"flag"
	"os/exec"
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-sh/shoal/internal/servicetest"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// promtool returns the path of promtool, or skips the test (fails it when services are
// required) when it is not installed.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	const install = "install it with: apt-get install -y --no-install-recommends prometheus"
	if servicetest.Required() {
		t.Fatalf("promtool is required (SHOAL_TEST_SERVICES=required) but not installed; %s", install)
	}
	t.Skipf("promtool is not installed; %s — or set SHOAL_TEST_SERVICES=required to make this a failure", install)
	return ""
}
