// Package admin is shoal's admin API: the Fleet it operates, the HTTP server in front of it,
// a typed client, and the signed bearer tokens (HS256 JWTs) that guard it.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// Limits of the API.
const (
	// MaxBodyBytes is the largest request body accepted; larger ones get 413.
	MaxBodyBytes = 64 << 10
	// MaxReasonLen is the longest ScaleRequest.Reason accepted.
	MaxReasonLen = 256
	// DefaultMetricsSince and DefaultMetricsPoints apply when GET /v1/metrics omits them.
	DefaultMetricsSince  = time.Hour
	DefaultMetricsPoints = 120
	// MaxMetricsPoints is the most points per series a query may ask for.
	MaxMetricsPoints = 1000
)

// ServerOptions configures NewServer.
type ServerOptions struct {
	// Key verifies the bearer tokens. Required: see LoadKey.
	Key Key
	// Logger receives refused tokens (debug) and every change made through the API (info).
	// Defaults to discarding.
	Logger *slog.Logger
	// Metrics, when set, is served at GET /metrics behind scaling:read (the Prometheus
	// registry's handler: Prometheus sends the token as its bearer credentials).
	Metrics http.Handler
	// Dashboard, when set, is served at GET / and GET /ui/ without a token: the page asks for
	// the token and sends it with each API call it makes.
	Dashboard http.Handler
	// Clock tells the time tokens are checked against. Defaults to time.Now.
	Clock func() time.Time
	// Revocations, when set, refuses the tokens it lists (see NewRevocations).
	Revocations *Revocations
}

// Server is the admin API over a Fleet. It is an http.Handler; serve it on its own listener
// (admin.listen). Endpoints:
//
//	GET  /healthz                   no token: the admin server is up
//	GET  /v1/status                 scaling:read   → Status
//	POST /v1/scale                  scaling:write  ScaleRequest → ScaleResult
//	POST /v1/restart                scaling:write  → RestartResult, when every instance is replaced
//	POST /v1/health-checks/{name}   scaling:write  HealthCheckRequest → CheckStatus
//	GET  /v1/metrics?since=1h&points=120  scaling:read → MetricsReport
//	GET  /v1/autoscale/decisions?since=1h&limit=100  scaling:read → DecisionsReport (a Fleet that is Autoscaled)
//	GET  /metrics                   scaling:read   Prometheus exposition (ServerOptions.Metrics)
//	GET  /, /ui/                    no token: the dashboard (ServerOptions.Dashboard)
//
// Scale and restart stream each instance's steps as they happen to a client that sends
// Accept: application/x-ndjson (ProgressContentType).
//
// Every error is an APIError as JSON. Bodies are limited to MaxBodyBytes and unknown JSON
// fields are refused. Scale and restart answer when the fleet is done, and run with the
// request's context: a client that goes away ends the wait, and the Fleet decides whether the
// change itself carries on. There are no CORS headers, so a page on another origin cannot
// call the API with a token it does not have.
type Server struct {
	fleet   Fleet
	key     Key
	log     *slog.Logger
	now     func() time.Time
	revoked *Revocations // nil: no revocation list
	mux     *http.ServeMux
	allowed map[string][]string // path pattern → methods, for 405's Allow
}

var _ http.Handler = (*Server)(nil)

// NewServer returns the admin API over fleet. It panics when fleet is nil or opts.Key is
// zero: both are mistakes in the calling code, not in input.
func NewServer(fleet Fleet, opts ServerOptions) *Server {
	if fleet == nil {
		panic("admin.NewServer: fleet is nil")
	}
	if opts.Key.IsZero() {
		panic("admin.NewServer: ServerOptions.Key is empty; load one with admin.LoadKey")
	}
	s := &Server{fleet: fleet, key: opts.Key, log: opts.Logger, now: opts.Clock, revoked: opts.Revocations,
		mux: http.NewServeMux(), allowed: map[string][]string{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.route("GET", "/healthz", http.HandlerFunc(s.healthz))
	s.route("GET", "/v1/status", s.require(ScopeRead, "read the status", s.status))
	s.route("POST", "/v1/scale", s.require(ScopeWrite, "scale the fleet", s.scale))
	s.route("POST", "/v1/restart", s.require(ScopeWrite, "restart the fleet", s.restart))
	s.route("POST", "/v1/health-checks/{name}", s.require(ScopeWrite, "change a health check", s.healthCheck))
	s.route("GET", "/v1/metrics", s.require(ScopeRead, "read the metrics", s.metrics))
	s.route("GET", "/v1/autoscale/decisions", s.require(ScopeRead, "read the autoscaling decisions", s.decisions))
	if opts.Metrics != nil {
		s.route("GET", "/metrics", s.require(ScopeRead, "read the Prometheus metrics", opts.Metrics.ServeHTTP))
	}
	if opts.Dashboard != nil {
		s.route("GET", "/{$}", opts.Dashboard)
		s.route("GET", "/ui/", opts.Dashboard)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, &APIError{StatusCode: http.StatusNotFound, Code: CodeNotFound,
			Message: fmt.Sprintf("no admin endpoint at %s; the API is /v1/status, /v1/scale, /v1/restart, /v1/health-checks/{name}, /v1/metrics and /v1/autoscale/decisions", r.URL.Path)})
	})
	return s
}

// route registers h for method and path, and a JSON 405 for the path's other methods.
func (s *Server) route(method, path string, h http.Handler) {
	if _, seen := s.allowed[path]; !seen {
		s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			allow := s.allowed[path]
			if slices.Contains(allow, "GET") {
				allow = append(slices.Clone(allow), "HEAD")
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.writeError(w, &APIError{StatusCode: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
				Message: fmt.Sprintf("%s takes %s, not %s", r.URL.Path, strings.Join(allow, " or "), r.Method)})
		})
	}
	s.allowed[path] = append(s.allowed[path], method)
	s.mux.Handle(method+" "+path, h)
}

// ServeHTTP serves the admin API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	s.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, s.fleet.Status(r.Context()))
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Instances *int   `json:"instances"`
		Reason    string `json:"reason"`
		Direction string `json:"direction"`
	}
	if err := decodeBody(w, r, &body, false, `{"instances": 5, "reason": "…"}`); err != nil {
		s.writeError(w, err)
		return
	}
	switch {
	case body.Instances == nil:
		s.writeError(w, badRequest(`instances is required: send {"instances": N} with the target number of instances`))
		return
	case *body.Instances < 0:
		s.writeError(w, badRequest(fmt.Sprintf("instances must be 0 or more, not %d", *body.Instances)))
		return
	case len(body.Reason) > MaxReasonLen:
		s.writeError(w, badRequest(fmt.Sprintf("reason is %d bytes; keep it under %d", len(body.Reason), MaxReasonLen)))
		return
	case body.Direction != "" && body.Direction != DirectionUp && body.Direction != DirectionDown:
		s.writeError(w, badRequest(fmt.Sprintf("direction must be %q, %q or left out, not %q", DirectionUp, DirectionDown, body.Direction)))
		return
	}
	target, reason := *body.Instances, strings.TrimSpace(body.Reason)
	if reason == "" {
		reason = "manual scale through the admin API"
	}
	if body.Direction != "" {
		cur := s.fleet.Status(r.Context()).Desired
		switch {
		case target == cur:
			s.writeJSON(w, http.StatusOK, ScaleResult{From: cur, To: cur})
			return
		case body.Direction == DirectionUp && target < cur:
			s.writeError(w, &APIError{StatusCode: http.StatusConflict, Code: CodeWrongDirection,
				Message: fmt.Sprintf("a scale-up to %s is below the current %d; scale down instead", instances(target), cur)})
			return
		case body.Direction == DirectionDown && target > cur:
			s.writeError(w, &APIError{StatusCode: http.StatusConflict, Code: CodeWrongDirection,
				Message: fmt.Sprintf("a scale-down to %s is above the current %d; scale up instead", instances(target), cur)})
			return
		}
	}
	s.log.Info("admin: scaling", append(who(r), "target", target, "reason", reason)...)
	pw := &progressWriter{w: w}
	ctx := r.Context()
	if wantsProgress(r) {
		ctx = WithProgress(ctx, pw.step)
	}
	res, err := s.fleet.Scale(ctx, target, reason)
	var oor *OutOfRangeError
	switch {
	case errors.As(err, &oor):
		pw.finish(s, 0, nil, &APIError{StatusCode: http.StatusUnprocessableEntity, Code: CodeOutOfRange, Message: oor.Error()})
	case err != nil:
		s.log.Warn("admin: scaling failed", "target", target, "error", err)
		pw.finish(s, 0, nil, &APIError{StatusCode: http.StatusInternalServerError, Code: CodeInternal,
			Message: fmt.Sprintf("scaling to %s failed: %v", instances(target), err)})
	default:
		pw.finish(s, http.StatusOK, res, nil)
	}
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(w, r, &body, true, "{}"); err != nil {
		s.writeError(w, err)
		return
	}
	s.log.Info("admin: rolling restart", who(r)...)
	pw := &progressWriter{w: w}
	ctx := r.Context()
	if wantsProgress(r) {
		ctx = WithProgress(ctx, pw.step)
	}
	if err := s.fleet.Restart(ctx); err != nil {
		s.log.Warn("admin: rolling restart failed", "error", err)
		pw.finish(s, 0, nil, &APIError{StatusCode: http.StatusInternalServerError, Code: CodeInternal,
			Message: fmt.Sprintf("the rolling restart failed: %v", err)})
		return
	}
	pw.finish(s, http.StatusOK, RestartResult{Restarted: true}, nil)
}

func (s *Server) healthCheck(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := decodeBody(w, r, &body, false, `{"enabled": true}`); err != nil {
		s.writeError(w, err)
		return
	}
	if body.Enabled == nil {
		s.writeError(w, badRequest(`enabled is required: send {"enabled": true} or {"enabled": false}`))
		return
	}
	s.log.Info("admin: health check", append(who(r), "name", name, "enabled", *body.Enabled)...)
	err := s.fleet.SetHealthCheck(r.Context(), name, *body.Enabled)
	if errors.Is(err, ErrUnknownCheck) {
		var names []string
		for _, c := range s.fleet.Status(r.Context()).Checks {
			names = append(names, c.Name)
		}
		msg := fmt.Sprintf("no health check is named %q; health.checks defines none", name)
		if len(names) > 0 {
			msg = fmt.Sprintf("no health check is named %q; the checks are %s", name, strings.Join(names, ", "))
		}
		s.writeError(w, &APIError{StatusCode: http.StatusNotFound, Code: CodeUnknownCheck, Message: msg})
		return
	}
	if err != nil {
		s.writeError(w, &APIError{StatusCode: http.StatusInternalServerError, Code: CodeInternal,
			Message: fmt.Sprintf("changing health check %q failed: %v", name, err)})
		return
	}
	for _, c := range s.fleet.Status(r.Context()).Checks {
		if c.Name == name {
			s.writeJSON(w, http.StatusOK, c)
			return
		}
	}
	s.writeJSON(w, http.StatusOK, CheckStatus{Name: name, Enabled: *body.Enabled})
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	since, points, err := metricsQuery(r.URL.Query())
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.writeJSON(w, http.StatusOK, s.fleet.Metrics(r.Context(), since, points))
}

// metricsQuery reads since and points, refusing anything else.
func metricsQuery(q url.Values) (time.Duration, int, *APIError) {
	since, points := DefaultMetricsSince, DefaultMetricsPoints
	for k, v := range q {
		if len(v) != 1 {
			return 0, 0, badRequest(fmt.Sprintf("give %s once", k))
		}
		switch k {
		case "since":
			d, err := config.ParseDuration(v[0])
			if err != nil {
				return 0, 0, badRequest("since: " + err.Error())
			}
			if d <= 0 {
				return 0, 0, badRequest(fmt.Sprintf("since must be above zero, e.g. since=1h, not %q", v[0]))
			}
			since = d.D()
		case "points":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 || n > MaxMetricsPoints {
				return 0, 0, badRequest(fmt.Sprintf("points must be a whole number from 1 to %d, not %q", MaxMetricsPoints, v[0]))
			}
			points = n
		default:
			return 0, 0, badRequest(fmt.Sprintf("unknown query parameter %q; /v1/metrics takes since and points", k))
		}
	}
	return since, points, nil
}

// instances says "1 instance" or "n instances".
func instances(n int) string {
	if n == 1 {
		return "1 instance"
	}
	return strconv.Itoa(n) + " instances"
}

// who returns log attributes naming the token behind r: its subject and ID, never the token.
func who(r *http.Request) []any {
	if c, ok := ClaimsFrom(r.Context()); ok {
		return []any{"sub", c.Subject, "jti", c.ID}
	}
	return nil
}

func badRequest(msg string) *APIError {
	return &APIError{StatusCode: http.StatusBadRequest, Code: CodeBadRequest, Message: msg}
}

// decodeBody reads one JSON object of at most MaxBodyBytes into v, refusing unknown fields and
// trailing data. An empty body is accepted when emptyOK. example shows a good body in messages.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, emptyOK bool, example string) *APIError {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return &APIError{StatusCode: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
				Message: fmt.Sprintf("the request body is larger than %d KiB", MaxBodyBytes>>10)}
		}
		return badRequest("reading the request body: " + err.Error())
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if emptyOK {
			return nil
		}
		return badRequest("the request body is empty; send a JSON object such as " + example)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return badRequest("the request body holds more than one JSON value; send one object such as " + example)
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syntax):
		return badRequest(fmt.Sprintf("the request body is not valid JSON (at byte %d: %v); send an object such as %s", syntax.Offset, err, example))
	case errors.As(err, &typ) && typ.Field != "":
		return badRequest(fmt.Sprintf("%s must be a JSON %s, not %s; send an object such as %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value, example))
	case errors.As(err, &typ):
		return badRequest(fmt.Sprintf("the request body must be a JSON object such as %s, not %s", example, typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return badRequest(fmt.Sprintf("unknown field %s; send an object such as %s", field, example))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the request body is truncated JSON; send an object such as " + example)
	default:
		return badRequest(fmt.Sprintf("the request body is not valid: %v; send an object such as %s", err, example))
	}
}

// jsonKind names a Go kind the way JSON does.
func jsonKind(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"), strings.HasPrefix(kind, "float"):
		return "number"
	case kind == "bool":
		return "boolean (true or false)"
	default:
		return kind
	}
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Debug("admin: writing a response", "error", err)
	}
}

func (s *Server) writeError(w http.ResponseWriter, e *APIError) {
	s.writeJSON(w, e.StatusCode, e)
}
