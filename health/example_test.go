package health_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/health"
)

// A service registers the function behind a custom check, builds the registry from its
// configuration, and mounts the endpoints.
func Example() {
	cfg := &config.Config{}
	cfg.Health.Enabled = true
	cfg.Health.Endpoint = "/health"
	cfg.Health.Checks = []config.Check{{Name: "business_logic", Type: config.CheckCustom,
		Handler: "check_business_health", Critical: true}}

	reg, err := health.FromConfig(cfg, health.WithHandler("check_business_health",
		func(ctx context.Context) error { return nil }))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close()
	reg.Start()

	mux := http.NewServeMux()
	reg.Mount(mux, cfg)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/live", nil))
	fmt.Println(rec.Code, rec.Body.String())

	fmt.Println(reg.SetEnabled("no_such_check", false))
	// Output:
	// 200 {"status":"pass"}
	//
	// no health check has that name: "no_such_check"; the checks are business_logic
}
