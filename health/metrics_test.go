package health

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-sh/shoal/config"
)

func TestRegistry_Collector(t *testing.T) {
	t.Parallel()
	f := setup(t, []config.Check{custom("db", "ok", true), custom("cache", "bad", false), custom("off", "ok", true)},
		WithHandler("ok", func(context.Context) error { return nil }),
		WithHandler("bad", func(context.Context) error { return errors.New("cold") }))
	waitStatus(t, f.reg, "db", Pass)
	waitStatus(t, f.reg, "cache", Warn)
	waitStatus(t, f.reg, "off", Pass)
	if err := f.reg.SetEnabled("off", false); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP shoal_health_check_up 1 when the latest run of a health check passed, 0 when it failed; absent while disabled or not yet run.
# TYPE shoal_health_check_up gauge
shoal_health_check_up{check="cache",critical="false",type="custom"} 0
shoal_health_check_up{check="db",critical="true",type="custom"} 1
# HELP shoal_health_ready 1 when the service is ready for traffic (critical checks passed, not draining), else 0.
# TYPE shoal_health_ready gauge
shoal_health_ready 1
`
	if err := testutil.CollectAndCompare(f.reg.Collector(), strings.NewReader(want), MetricCheckUp, MetricReady); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(f.reg.Collector(), MetricCheckDuration); n != 2 {
		t.Fatalf("%d duration series, want 2", n)
	}
}
