package health

import (
	"encoding/json"
	"net/http"

	"github.com/shoal-sh/shoal/config"
)

// Handler serves the aggregate report as JSON: 200 when the status is pass or warn, 503 when it
// is fail. It reads cached results and never runs a check.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rep := r.Report()
		code := http.StatusOK
		if rep.Status == Fail {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, rep)
	})
}

// probe is the body of /ready and /live.
type probe struct {
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// ReadyHandler answers 200 when Ready reports true, else 503 with the reason.
func (r *Registry) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ok, why := r.Ready()
		serveProbe(w, ok, why)
	})
}

// LiveHandler answers 200 when Live reports true, else 503. It does not look at the checks: a
// dependency that is down is no reason to restart the process.
func (r *Registry) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ok, why := r.Live()
		serveProbe(w, ok, why)
	})
}

func serveProbe(w http.ResponseWriter, ok bool, why string) {
	if ok {
		writeJSON(w, http.StatusOK, probe{Status: Pass})
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, probe{Status: Fail, Reason: why})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Paths returns the paths Mount serves for cfg, each with what it serves: "health" for the
// report, "ready" and "live" for the probes. They are health.endpoint (default /health), the
// readiness probe of scaling.instances.startup (default /ready), /live, and the paths of the
// Kubernetes manifests of the "scalability" seed, <endpoint>/ready and <endpoint>/live, and
// the liveness probe of scaling.instances.startup when it is none of those. The seed's default
// liveness probe is /health, the report itself. When health.enabled is false there are none and
// the service must answer its probes itself.
func Paths(cfg *config.Config) map[string]string {
	paths := map[string]string{}
	if !cfg.Health.Enabled {
		return paths
	}
	endpoint := cfg.Health.Endpoint
	if endpoint == "" {
		endpoint = "/health"
	}
	ready := cfg.Scaling.Instances.Startup.ReadinessProbe
	if ready == "" {
		ready = "/ready"
	}
	// Later assignments win, so a configured path is never shadowed by a conventional one.
	paths["/live"] = "live"
	paths[endpoint+"/live"] = "live"
	paths[endpoint+"/ready"] = "ready"
	paths[ready] = "ready"
	paths[endpoint] = "health"
	if live := cfg.Scaling.Instances.Startup.LivenessProbe; live != "" && paths[live] == "" {
		paths[live] = "live"
	}
	return paths
}

// Mount registers the report and the probes on mux for GET and HEAD, at the paths Paths
// returns. Mount panics, as ServeMux does, when mux
// already has a handler for one of the same patterns.
func (r *Registry) Mount(mux *http.ServeMux, cfg *config.Config) {
	handlers := map[string]http.Handler{"health": r.Handler(), "ready": r.ReadyHandler(), "live": r.LiveHandler()}
	for path, what := range Paths(cfg) {
		mux.Handle("GET "+path, handlers[what])
	}
}
