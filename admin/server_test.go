package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fixture is what setup returns beside the server.
type fixture struct {
	url   string
	fleet *memFleet
	key   Key
	now   time.Time
	hc    *http.Client
}

// token issues a token with scopes, valid for a day at the fixture's time.
func (fx *fixture) token(t *testing.T, scopes ...string) string {
	t.Helper()
	tok, _, err := IssueToken(fx.key, TokenOptions{Scopes: scopes, TTL: 24 * time.Hour, Now: func() time.Time { return fx.now }})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends method path with body (if not "") and the Authorization header auth (if not
// ""), and returns the status, headers and body.
func (fx *fixture) call(t *testing.T, method, path, auth, body string) (int, http.Header, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, fx.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := fx.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// setup starts the admin API over a memFleet on loopback.
func setup(t *testing.T, opts ServerOptions) (*Server, *fixture) {
	t.Helper()
	fx := &fixture{fleet: newMemFleet(), key: GenerateKey(), now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	opts.Key = fx.key
	opts.Clock = func() time.Time { return fx.now }
	s := NewServer(fx.fleet, opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	fx.url, fx.hc = srv.URL, srv.Client()
	return s, fx
}

// wantError checks an error answer: status, JSON body with code and a message containing
// msg, and the JSON content type.
func wantError(t *testing.T, status int, h http.Header, body string, wantStatus int, code, msg string) {
	t.Helper()
	var e APIError
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("status %d, body is not an APIError: %q", status, body)
	}
	if status != wantStatus || e.Code != code || !strings.Contains(e.Message, msg) {
		t.Fatalf("got %d %s %q, want %d %s containing %q", status, e.Code, e.Message, wantStatus, code, msg)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestServer_Healthz(t *testing.T) {
	t.Parallel()
	_, fx := setup(t, ServerOptions{})
	status, _, body := fx.call(t, "GET", "/healthz", "", "")
	if status != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("%d %s", status, body)
	}
}

func TestServer_Status(t *testing.T) {
	t.Parallel()
	_, fx := setup(t, ServerOptions{})
	status, h, body := fx.call(t, "GET", "/v1/status", "Bearer "+fx.token(t, ScopeRead), "")
	var st Status
	if status != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Desired != 3 || len(st.Instances) != 3 || st.Service != "demo" {
		t.Fatalf("%d %s", status, body)
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", h)
	}
	if status, _, _ := fx.call(t, "HEAD", "/v1/status", "Bearer "+fx.token(t, ScopeRead), ""); status != 200 {
		t.Errorf("HEAD: %d", status)
	}
}

func TestServer_Scale(t *testing.T) {
	t.Parallel()
	_, fx := setup(t, ServerOptions{})
	write := "Bearer " + fx.token(t, ScopeWrite)
	t.Run("ok", func(t *testing.T) {
		status, _, body := fx.call(t, "POST", "/v1/scale", write, `{"instances": 5, "reason": "load test"}`)
		var res ScaleResult
		if status != 200 || json.Unmarshal([]byte(body), &res) != nil || res.From != 3 || res.To != 5 || len(res.Started) != 2 {
			t.Fatalf("%d %s", status, body)
		}
		if fx.fleet.lastReason != "load test" {
			t.Errorf("reason %q", fx.fleet.lastReason)
		}
		status, _, body = fx.call(t, "POST", "/v1/scale", write, `{"instances": 3}`)
		if status != 200 || fx.fleet.lastReason != "manual scale through the admin API" {
			t.Fatalf("%d %s, reason %q", status, body, fx.fleet.lastReason)
		}
	})
	cases := []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"out of range", `{"instances": 9}`, 422, CodeOutOfRange, "outside scaling.instances.min_instances..max_instances (1..5)"},
		{"negative", `{"instances": -1}`, 400, CodeBadRequest, "instances must be 0 or more, not -1"},
		{"missing instances", `{"reason": "x"}`, 400, CodeBadRequest, "instances is required"},
		{"empty body", ``, 400, CodeBadRequest, "the request body is empty"},
		{"not JSON", `{"instances": 5`, 400, CodeBadRequest, "truncated JSON"},
		{"syntax", `{"instances": 5,}`, 400, CodeBadRequest, "not valid JSON"},
		{"wrong type", `{"instances": "5"}`, 400, CodeBadRequest, "instances must be a JSON number, not string"},
		{"not an object", `[5]`, 400, CodeBadRequest, "must be a JSON object"},
		{"unknown field", `{"instances": 4, "count": 4}`, 400, CodeBadRequest, `unknown field "count"`},
		{"trailing data", `{"instances": 4} {"instances": 5}`, 400, CodeBadRequest, "more than one JSON value"},
		{"long reason", fmt.Sprintf(`{"instances": 4, "reason": %q}`, strings.Repeat("x", 300)), 400, CodeBadRequest, "keep it under 256"},
		{"bad direction", `{"instances": 4, "direction": "sideways"}`, 400, CodeBadRequest, `not "sideways"`},
		{"up below current", `{"instances": 2, "direction": "up"}`, 409, CodeWrongDirection, "a scale-up to 2 instances is below the current 3"},
		{"down above current", `{"instances": 4, "direction": "down"}`, 409, CodeWrongDirection, "a scale-down to 4 instances is above the current 3"},
		{"too large", `{"instances": 4, "reason": "` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, CodeBodyTooLarge, "larger than 64 KiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, h, body := fx.call(t, "POST", "/v1/scale", write, c.body)
			wantError(t, status, h, body, c.status, c.code, c.msg)
		})
	}
	t.Run("direction equal does not scale", func(t *testing.T) {
		before := fx.fleet.scales
		status, _, body := fx.call(t, "POST", "/v1/scale", write, `{"instances": 3, "direction": "up"}`)
		if status != 200 || !strings.Contains(body, `"from": 3`) || !strings.Contains(body, `"to": 3`) || fx.fleet.scales != before {
			t.Fatalf("%d %s, %d scales", status, body, fx.fleet.scales-before)
		}
	})
	t.Run("fleet error", func(t *testing.T) {
		_, fx := setup(t, ServerOptions{})
		fx.fleet.scaleErr = errBoom
		status, h, body := fx.call(t, "POST", "/v1/scale", "Bearer "+fx.token(t, ScopeWrite), `{"instances": 4}`)
		wantError(t, status, h, body, 500, CodeInternal, "scaling to 4 instances failed: boom")
	})
}

func TestServer_Restart(t *testing.T) {
	t.Parallel()
	_, fx := setup(t, ServerOptions{})
	write := "Bearer " + fx.token(t, ScopeWrite)
	for _, body := range []string{"", "{}"} {
		status, _, got := fx.call(t, "POST", "/v1/restart", write, body)
		if status != 200 || !strings.Contains(got, `"restarted": true`) {
			t.Fatalf("body %q: %d %s", body, status, got)
		}
	}
	if fx.fleet.restarts != 2 {
		t.Errorf("%d restarts", fx.fleet.restarts)
	}
	status, h, body := fx.call(t, "POST", "/v1/restart", write, `{"now": true}`)
	wantError(t, status, h, body, 400, CodeBadRequest, `unknown field "now"`)
	fx.fleet.restartErr = errBoom
	status, h, body = fx.call(t, "POST", "/v1/restart", write, "")
	wantError(t, status, h, body, 500, CodeInternal, "the rolling restart failed: boom")
}

func TestServer_HealthCheck(t *testing.T) {
	t.Parallel()
	_, fx := setup(t, ServerOptions{})
	write := "Bearer " + fx.token(t, ScopeWrite)
	status, _, body := fx.call(t, "POST", "/v1/health-checks/cache", write, `{"enabled": false}`)
	var cs CheckStatus
	if status != 200 || json.Unmarshal([]byte(body), &cs) != nil || cs.Name != "cache" || cs.Enabled || cs.Status != "disabled" {
		t.Fatalf("%d %s", status, body)
	}
	status, h, body := fx.call(t, "POST", "/v1/health-checks/nope", write, `{"enabled": true}`)
	wantError(t, status, h, body, 404, CodeUnknownCheck, `no health check is named "nope"; the checks are database, cache`)
	status, h, body = fx.call(t, "POST", "/v1/health-checks/cache", write, `{}`)
	wantError(t, status, h, body, 400, CodeBadRequest, "enabled is required")
	status, h, body = fx.call(t, "POST", "/v1/health-checks/cache", write, `{"enabled": "no"}`)
	wantError(t, status, h, body, 400, CodeBadRequest, "enabled must be a JSON boolean")
}

func TestServer_Metrics(t *testing.T) {
	t.Parallel()
	_, fx := setup(t, ServerOptions{})
	read := "Bearer " + fx.token(t, ScopeRead)
	status, _, body := fx.call(t, "GET", "/v1/metrics?since=30m&points=4", read, "")
	var m MetricsReport
	if status != 200 || json.Unmarshal([]byte(body), &m) != nil || m.Since != 30*time.Minute || len(m.Series) != 1 || len(m.Series[0].Points) != 4 {
		t.Fatalf("%d %s", status, body)
	}
	if status, _, _ := fx.call(t, "GET", "/v1/metrics", read, ""); status != 200 || fx.fleet.since != time.Hour || fx.fleet.points != 120 {
		t.Errorf("defaults: %d since %s points %d", status, fx.fleet.since, fx.fleet.points)
	}
	if status, _, _ := fx.call(t, "GET", "/v1/metrics?since=7d", read, ""); status != 200 || fx.fleet.since != 7*24*time.Hour {
		t.Errorf("days: %d since %s", status, fx.fleet.since)
	}
	for query, msg := range map[string]string{
		"since=soon":          `invalid duration "soon"`,
		"since=-1h":           "since must be above zero",
		"since=5":             "has no unit",
		"points=0":            "points must be a whole number from 1 to 1000",
		"points=abc":          "points must be a whole number",
		"point=5":             `unknown query parameter "point"`,
		"since=1h&since=2h":   "give since once",
		"points=100000000000": "points must be",
	} {
		status, h, body := fx.call(t, "GET", "/v1/metrics?"+query, read, "")
		wantError(t, status, h, body, 400, CodeBadRequest, msg)
	}
}

func TestServer_Routes(t *testing.T) {
	t.Parallel()
	prom := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "shoal_up 1\n") })
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dashboard "+r.URL.Path) })
	_, fx := setup(t, ServerOptions{Metrics: prom, Dashboard: dash})
	read := "Bearer " + fx.token(t, ScopeRead)

	t.Run("prometheus metrics need scaling:read", func(t *testing.T) {
		if status, _, body := fx.call(t, "GET", "/metrics", read, ""); status != 200 || body != "shoal_up 1\n" {
			t.Fatalf("%d %s", status, body)
		}
		status, h, body := fx.call(t, "GET", "/metrics", "", "")
		wantError(t, status, h, body, 401, CodeMissingToken, "no admin token")
	})
	t.Run("dashboard needs no token", func(t *testing.T) {
		for _, p := range []string{"/", "/ui/", "/ui/app.js"} {
			if status, _, body := fx.call(t, "GET", p, "", ""); status != 200 || body != "dashboard "+p {
				t.Errorf("%s: %d %s", p, status, body)
			}
		}
	})
	t.Run("405", func(t *testing.T) {
		status, h, body := fx.call(t, "DELETE", "/v1/status", read, "")
		wantError(t, status, h, body, 405, CodeMethodNotAllowed, "/v1/status takes GET or HEAD, not DELETE")
		if h.Get("Allow") != "GET, HEAD" {
			t.Errorf("Allow %q", h.Get("Allow"))
		}
		status, h, body = fx.call(t, "GET", "/v1/scale", read, "")
		wantError(t, status, h, body, 405, CodeMethodNotAllowed, "takes POST, not GET")
		status, h, body = fx.call(t, "PUT", "/v1/health-checks/cache", read, "")
		wantError(t, status, h, body, 405, CodeMethodNotAllowed, "takes POST")
	})
	t.Run("404", func(t *testing.T) {
		status, h, body := fx.call(t, "GET", "/v1/nope", read, "")
		wantError(t, status, h, body, 404, CodeNotFound, "no admin endpoint at /v1/nope")
	})
	t.Run("without the optional handlers", func(t *testing.T) {
		_, fx := setup(t, ServerOptions{})
		for _, p := range []string{"/metrics", "/", "/ui/"} {
			status, h, body := fx.call(t, "GET", p, "", "")
			wantError(t, status, h, body, 404, CodeNotFound, "no admin endpoint")
		}
	})
}

func TestNewServer_Panics(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"nil fleet": func() { NewServer(nil, ServerOptions{Key: GenerateKey()}) },
		"no key":    func() { NewServer(newMemFleet(), ServerOptions{}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}

// FuzzServer sends arbitrary requests, with a token that has every scope, to the admin API:
// it must never panic, and every answer must be JSON (the memFleet never fails, so no 500).
func FuzzServer(f *testing.F) {
	key := GenerateKey()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tok, _, _ := IssueToken(key, TokenOptions{Scopes: KnownScopes(), TTL: time.Hour, Now: func() time.Time { return now }})
	for _, seed := range []struct{ method, target, body string }{
		{"POST", "/v1/scale", `{"instances": 4, "direction": "up"}`},
		{"POST", "/v1/scale", `{"instances": 1e99}`},
		{"POST", "/v1/health-checks/cache", `{"enabled": false}`},
		{"POST", "/v1/health-checks/%2F..%2F", `{"enabled": null}`},
		{"POST", "/v1/restart", `{}`},
		{"GET", "/v1/metrics?since=1.5d&points=7", ""},
		{"GET", "/v1/metrics?since=%zz", ""},
		{"GET", "/v1/status", ""},
		{"PATCH", "/", "x"},
	} {
		f.Add(seed.method, seed.target, seed.body)
	}
	f.Fuzz(func(t *testing.T, method, target, body string) {
		s := NewServer(newMemFleet(), ServerOptions{Key: key, Clock: func() time.Time { return now }})
		req, err := http.NewRequest(method, "http://admin"+target, strings.NewReader(body))
		if err != nil || req.URL.Path == "" || req.URL.Path[0] != '/' {
			t.Skip()
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s %q: 500 %s", method, target, body, rec.Body)
		}
		if rec.Code == http.StatusMovedPermanently || rec.Code == http.StatusTemporaryRedirect || req.Method == "HEAD" {
			return // the mux cleaning a path, or HEAD: no body
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s %q: %d, not JSON: %q", method, target, body, rec.Code, rec.Body)
		}
	})
}
