package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/shoal-sh/shoal/admin"
)

// fakeFleet is a small in-memory admin.Fleet for the CLI's tests. The real fleet, with
// processes behind the proxy, is exercised by the `shoal up` tests.
type fakeFleet struct {
	mu       sync.Mutex
	desired  int
	proxyURL string
	checks   []admin.CheckStatus
	restarts int
	// restartErr fails Restart after a step saying why, as the fleet reports a replacement
	// that does not serve its readiness probe.
	restartErr error
}

func (f *fakeFleet) Status(context.Context) admin.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := admin.Status{Service: "demo", Environment: "staging", Desired: f.desired, Ready: f.desired, Min: 1, Max: 6,
		ProxyURL: f.proxyURL, Algorithm: "round_robin", Checks: append([]admin.CheckStatus(nil), f.checks...),
		Started: time.Now().Add(-time.Hour),
		Events:  []admin.Event{{Time: time.Now(), Kind: "scale_up", From: 2, To: f.desired, Reason: "load"}}}
	for i := 1; i <= f.desired; i++ {
		st.Instances = append(st.Instances, admin.InstanceStatus{ID: fmt.Sprintf("demo-%d", i), PID: 100 + i, Port: 5000 + i,
			State: admin.StateReady, Health: "healthy", Breaker: "closed", InFlight: int64(i), Uptime: "5m0s"})
	}
	return st
}

func (f *fakeFleet) Scale(_ context.Context, target int, _ string) (admin.ScaleResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if target < 1 || target > 6 {
		return admin.ScaleResult{}, &admin.OutOfRangeError{Target: target, Min: 1, Max: 6}
	}
	res := admin.ScaleResult{From: f.desired, To: target}
	for i := f.desired + 1; i <= target; i++ {
		res.Started = append(res.Started, fmt.Sprintf("demo-%d", i))
	}
	for i := f.desired; i > target; i-- {
		res.Stopped = append(res.Stopped, fmt.Sprintf("demo-%d", i))
	}
	f.desired = target
	return res, nil
}

func (f *fakeFleet) Restart(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarts++
	if p := admin.ProgressFrom(ctx); p != nil {
		p(admin.Progress{Instance: "demo-4", State: admin.StateStarting, Message: "started: pid 104, port 5004"})
		if f.restartErr != nil {
			p(admin.Progress{Instance: "demo-4", State: admin.StateFailed, Message: f.restartErr.Error()})
			return f.restartErr
		}
		p(admin.Progress{Instance: "demo-4", State: admin.StateReady, Message: "ready"})
	}
	return f.restartErr
}

func (f *fakeFleet) SetHealthCheck(_ context.Context, name string, enabled bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.checks {
		if f.checks[i].Name == name {
			f.checks[i].Enabled = enabled
			return nil
		}
	}
	return admin.ErrUnknownCheck
}

func (f *fakeFleet) Metrics(_ context.Context, since time.Duration, points int) admin.MetricsReport {
	t0 := time.Now().Add(-since)
	rate := admin.Series{Metric: "request_rate", Unit: "req/s"}
	for i, v := range []float64{0, 10, 20, 40, 80, 40, 20.5} {
		rate.Points = append(rate.Points, admin.Point{Time: t0.Add(time.Duration(i) * time.Minute), Value: v})
	}
	count := admin.Series{Metric: "instance_count", Unit: "instances", Points: []admin.Point{{Time: t0, Value: 3}, {Time: t0, Value: 3}}}
	return admin.MetricsReport{Since: since, Series: []admin.Series{rate, count, {Metric: "cpu", Unit: "%"}}}
}

// adminFixture is a live admin API over a fakeFleet, with its key and tokens.
type adminFixture struct {
	url        string
	fleet      *fakeFleet
	key        admin.Key
	keyText    string // the key as SHOAL_ADMIN_KEY holds it
	read, both string // tokens
}

// startAdmin serves the admin API on loopback for one test.
func startAdmin(t *testing.T) *adminFixture {
	t.Helper()
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i + 1)
	}
	fx := &adminFixture{fleet: &fakeFleet{desired: 3, checks: []admin.CheckStatus{
		{Name: "database", Type: "database", Critical: true, Enabled: true, Status: "pass"},
		{Name: "cache", Type: "redis", Enabled: true, Status: "fail", Error: "dial tcp: connection refused"}}},
		keyText: hex.EncodeToString(secret)}
	var err error
	if fx.key, err = admin.ParseKey(fx.keyText); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin.NewServer(fx.fleet, admin.ServerOptions{Key: fx.key}))
	t.Cleanup(srv.Close)
	fx.url = srv.URL
	fx.read = fx.token(t, admin.ScopeRead)
	fx.both = fx.token(t, admin.ScopeRead, admin.ScopeWrite)
	return fx
}

func (fx *adminFixture) token(t *testing.T, scopes ...string) string {
	t.Helper()
	tok, _, err := admin.IssueToken(fx.key, admin.TokenOptions{Scopes: scopes, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// scaling runs `shoal scaling args…` against the fixture with the given token in SHOAL_TOKEN.
func (fx *adminFixture) scaling(t *testing.T, token string, args ...string) (int, string, string) {
	t.Helper()
	vars := map[string]string{}
	if token != "" {
		vars["SHOAL_TOKEN"] = token
	}
	return run(t, vars, append([]string{"scaling", "--admin", fx.url}, args...)...)
}

func TestScaling_Status(t *testing.T) {
	t.Parallel()
	fx := startAdmin(t)
	code, out, errs := fx.scaling(t, fx.read, "status")
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errs)
	}
	for _, want := range []string{"demo (environment staging)", "3 desired, 3 ready (min 1, max 6); autoscaling off",
		"INSTANCE  PID  PORT  STATE  HEALTH   BREAKER  IN-FLIGHT  UPTIME  RESTARTS  LAST ERROR",
		"demo-3    103  5003  ready  healthy  closed   3          5m0s    0         -",
		"cache     redis     no        yes      fail    dial tcp: connection refused", "scale_up  2     3   load"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = fx.scaling(t, fx.read, "status", "-o", "json")
	var st admin.Status
	if code != ExitOK || json.Unmarshal([]byte(out), &st) != nil || len(st.Instances) != 3 {
		t.Fatalf("json: %d %s", code, out)
	}
	t.Run("--token wins over SHOAL_TOKEN", func(t *testing.T) {
		code, _, errs := fx.scaling(t, "bogus", "status", "--token", fx.read)
		if code != ExitOK {
			t.Fatalf("%d %s", code, errs)
		}
	})
	t.Run("bad -o", func(t *testing.T) {
		code, _, errs := fx.scaling(t, fx.read, "status", "-o", "xml")
		if code != ExitInvalid || !strings.Contains(errs, `-o "xml" is not a format; use -o table, -o json or -o yaml`) ||
			!strings.Contains(errs, "Run 'shoal scaling status --help' for usage.") {
			t.Fatalf("%d %s", code, errs)
		}
	})
	t.Run("-o yaml", func(t *testing.T) {
		code, out, errs := fx.scaling(t, fx.read, "status", "-o", "yaml")
		if code != ExitOK || !strings.Contains(out, "service: demo\n") || !strings.Contains(out, "- id: demo-1\n") {
			t.Fatalf("%d %s %s", code, out, errs)
		}
		// The same data as -o json, field for field.
		_, js, _ := fx.scaling(t, fx.read, "status", "-o", "json")
		var fromYAML, fromJSON any
		if err := sigsyaml.Unmarshal([]byte(out), &fromYAML); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal([]byte(js), &fromJSON)
		fromYAML, fromJSON = dropVolatile(fromYAML), dropVolatile(fromJSON)
		if !reflect.DeepEqual(fromYAML, fromJSON) {
			t.Errorf("-o yaml and -o json differ:\n%v\n%v", fromYAML, fromJSON)
		}
	})
}

// TestToYAML checks that strings which read as other YAML types stay strings.
func TestToYAML(t *testing.T) {
	t.Parallel()
	in := map[string]any{"a": "true", "b": "0.5", "c": "null", "d": "- x", "e": "x: y", "f": "", "g": []any{}, "h": map[string]any{}, "i": 3.5, "j": "multi\nline"}
	b, err := toYAML(in)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := sigsyaml.Unmarshal(b, &back); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(back, in) {
		t.Errorf("round trip:\n%s\ngot %#v", b, back)
	}
}

// dropVolatile removes the times, which the fake fleet takes from the clock on each call.
func dropVolatile(v any) any {
	switch v := v.(type) {
	case map[string]any:
		delete(v, "uptime")
		delete(v, "time")
		delete(v, "started")
		for k, x := range v {
			v[k] = dropVolatile(x)
		}
	case []any:
		for i, x := range v {
			v[i] = dropVolatile(x)
		}
	}
	return v
}

func TestScaling_Errors(t *testing.T) {
	t.Parallel()
	fx := startAdmin(t)
	t.Run("no token", func(t *testing.T) {
		t.Parallel()
		code, _, errs := fx.scaling(t, "", "status")
		want := "shoal: no admin token: pass --token or set SHOAL_TOKEN (create one with `shoal scaling generate-token`)\n"
		if code != ExitInvalid || !strings.HasPrefix(errs, want) {
			t.Fatalf("%d %q", code, errs)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		addr := freeAddr(t)
		code, _, errs := run(t, map[string]string{"SHOAL_TOKEN": fx.read}, "scaling", "status", "--admin", "http://"+addr)
		if code != ExitFailure || errs != "shoal: no admin API at http://"+addr+": is `shoal up` running?\n" {
			t.Fatalf("%d %q", code, errs)
		}
	})
	t.Run("token of another key", func(t *testing.T) {
		t.Parallel()
		other, _, _ := admin.IssueToken(admin.GenerateKey(), admin.TokenOptions{Scopes: []string{admin.ScopeRead}, TTL: time.Hour})
		code, _, errs := fx.scaling(t, other, "status")
		if code != ExitFailure || !strings.Contains(errs, "shoal: the admin token was signed with a different key") {
			t.Fatalf("%d %q", code, errs)
		}
	})
	t.Run("read-only token cannot scale", func(t *testing.T) {
		t.Parallel()
		code, _, errs := fx.scaling(t, fx.read, "scale-up", "--instances", "4")
		if code != ExitFailure || !strings.Contains(errs, "shoal: this token grants only scaling:read, but to scale the fleet it needs scaling:write") {
			t.Fatalf("%d %q", code, errs)
		}
	})
	t.Run("write-only token scales", func(t *testing.T) {
		t.Parallel()
		code, out, errs := fx.scaling(t, fx.token(t, admin.ScopeWrite), "scale-up", "--instances", "3")
		if code != ExitOK || out != "the fleet already runs 3 instances; nothing to do\n" {
			t.Fatalf("%d %q %q", code, out, errs)
		}
	})
}

func TestScaling_Scale(t *testing.T) {
	t.Parallel()
	fx := startAdmin(t)
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"scale-up", "--instances", "5"}, ExitOK, "scaled from 3 to 5 instances; started demo-4, demo-5\n"},
		{[]string{"scale-up", "--instances", "5"}, ExitOK, "the fleet already runs 5 instances; nothing to do\n"},
		{[]string{"scale-up", "--instances", "2"}, ExitFailure, "shoal: a scale-up to 2 instances is below the current 5; scale down instead with `shoal scaling scale-down --instances 2`\n"},
		{[]string{"scale-up", "--instances", "9"}, ExitFailure, "shoal: a target of 9 instances is outside scaling.instances.min_instances..max_instances (1..6)\n"},
		{[]string{"scale-down", "--instances", "6"}, ExitFailure, "shoal: a scale-down to 6 instances is above the current 5; scale up instead with `shoal scaling scale-up --instances 6`\n"},
		{[]string{"scale-down", "--instances", "2", "--reason", "quiet night"}, ExitOK, "scaled from 5 to 2 instances; drained and stopped demo-5, demo-4, demo-3\n"},
		{[]string{"scale-down", "--instances", "0"}, ExitFailure, "outside scaling.instances.min_instances..max_instances (1..6)"},
		{[]string{"scale-down"}, ExitInvalid, "shoal: scale-down needs --instances N, the number of instances to run\n"},
		{[]string{"scale-up", "--instances", "-1"}, ExitInvalid, "shoal: --instances must be 0 or more, not -1\n"},
		{[]string{"scale-up", "--instances", "three"}, ExitInvalid, "shoal: --instances takes a whole number, not \"three\"\nRun 'shoal scaling scale-up --help' for usage.\n"},
	}
	for _, s := range steps {
		code, out, errs := fx.scaling(t, fx.both, s.args...)
		got := out
		if s.code != ExitOK {
			got = errs
		}
		if code != s.code || !strings.Contains(got, s.out) {
			t.Fatalf("%v: code %d\nout %q\nerr %q\nwant %q", s.args, code, out, errs, s.out)
		}
	}
	code, out, _ := fx.scaling(t, fx.both, "scale-up", "--instances", "4", "-o", "json")
	var res admin.ScaleResult
	if code != ExitOK || json.Unmarshal([]byte(out), &res) != nil || res.From != 2 || res.To != 4 {
		t.Fatalf("json: %d %s", code, out)
	}
}

func TestScaling_RestartAndHealthCheck(t *testing.T) {
	t.Parallel()
	fx := startAdmin(t)
	code, out, errs := fx.scaling(t, fx.both, "restart")
	if code != ExitOK || out != "restarted every instance\n" || !strings.Contains(errs, "one at a time") || fx.fleet.restarts != 1 ||
		!strings.Contains(errs, "  demo-4  starting  started: pid 104, port 5004\n  demo-4  ready     ready\n") {
		t.Fatalf("restart: %d %q %q", code, out, errs)
	}
	// A replacement that cannot become ready: its step, then the reason, and exit 1.
	fx.fleet.mu.Lock()
	fx.fleet.restartErr = errors.New("the replacement for demo-1 did not become ready: demo-4: the service does not serve /ready (GET /ready answered 404)")
	fx.fleet.mu.Unlock()
	code, _, errs = fx.scaling(t, fx.both, "restart")
	if code != ExitFailure || !strings.Contains(errs, "  demo-4  failed    the replacement") ||
		!strings.Contains(errs, "shoal: the rolling restart failed: the replacement for demo-1 did not become ready: demo-4: the service does not serve /ready") {
		t.Fatalf("failed restart: %d %q", code, errs)
	}
	fx.fleet.mu.Lock()
	fx.fleet.restartErr = nil
	fx.fleet.mu.Unlock()
	for _, c := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{[]string{"--name", "cache", "--disable"}, ExitOK, `health check "cache" is disabled (status fail)` + "\n", ""},
		{[]string{"--name", "cache", "--enable"}, ExitOK, `health check "cache" is enabled (status fail)` + "\n", ""},
		{[]string{"--name", "disk", "--enable"}, ExitFailure, "", `shoal: no health check is named "disk"; the checks are database, cache` + "\n"},
		{[]string{"--name", "cache"}, ExitInvalid, "", "shoal: health-check needs one of --enable or --disable\n"},
		{[]string{"--name", "cache", "--enable", "--disable"}, ExitInvalid, "", "shoal: health-check needs one of --enable or --disable\n"},
		{[]string{"--enable"}, ExitInvalid, "", "shoal: health-check needs --name NAME"},
	} {
		code, out, errs := fx.scaling(t, fx.both, append([]string{"health-check"}, c.args...)...)
		if code != c.code || out != c.out || !strings.HasPrefix(errs, c.errs) {
			t.Errorf("%v: %d %q %q", c.args, code, out, errs)
		}
	}
}

func TestScaling_Metrics(t *testing.T) {
	t.Parallel()
	fx := startAdmin(t)
	code, out, errs := fx.scaling(t, fx.read, "metrics", "--since", "1h")
	if code != ExitOK {
		t.Fatalf("%d %s", code, errs)
	}
	for _, want := range []string{
		"METRIC          UNIT       MIN  AVG   MAX  LAST  TREND (last 1h)",
		"request_rate    req/s      0    30.1  80   20.5  ▁▂▃▅█▅▃",
		"instance_count  instances  3    3     3    3     ▄▄",
		"cpu             %          -    -     -    -     (no data)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
	code, out, _ = fx.scaling(t, fx.read, "metrics", "--since", "7d", "-o", "json")
	var m admin.MetricsReport
	if code != ExitOK || json.Unmarshal([]byte(out), &m) != nil || m.Since != 7*24*time.Hour {
		t.Fatalf("json: %d %s", code, out)
	}
	for _, args := range [][]string{{"--since", "soon"}, {"--since", "0s"}, {"--points", "0"}} {
		if code, _, errs := fx.scaling(t, fx.read, append([]string{"metrics"}, args...)...); code != ExitInvalid {
			t.Errorf("%v: %d %s", args, code, errs)
		}
	}
}

func TestSparkline(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   []float64
		want string
	}{
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8}, "▁▂▃▄▅▆▇█"},
		{[]float64{0, 0, 0}, "▁▁▁"},
		{[]float64{5, 5}, "▄▄"},
		{[]float64{}, ""},
		{[]float64{0, math.NaN(), 10}, "▁ █"},
	} {
		if got := sparkline(c.in); got != c.want {
			t.Errorf("sparkline(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// writeConfig writes a shoal.yml in a new directory and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shoal.yml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestScaling_AdminFromConfig(t *testing.T) {
	t.Parallel()
	fx := startAdmin(t)
	path := writeConfig(t, "name: demo\nadmin:\n  listen: "+strings.TrimPrefix(fx.url, "http://")+"\n")
	code, out, errs := run(t, map[string]string{"SHOAL_TOKEN": fx.read}, "scaling", "status", "-f", path)
	if code != ExitOK || !strings.Contains(out, "demo-1") {
		t.Fatalf("%d %s %s", code, out, errs)
	}
	if got, _ := dialURL("0.0.0.0:9900"); got != "http://127.0.0.1:9900" {
		t.Errorf("dialURL 0.0.0.0: %s", got)
	}
	if got, _ := dialURL("[::]:9900"); got != "http://127.0.0.1:9900" {
		t.Errorf("dialURL [::]: %s", got)
	}
	if got, _ := dialURL(":9900"); got != "http://127.0.0.1:9900" {
		t.Errorf("dialURL :9900: %s", got)
	}
}

func TestScaling_GenerateToken(t *testing.T) {
	t.Parallel()
	fx := startAdmin(t)
	t.Run("SHOAL_ADMIN_KEY", func(t *testing.T) {
		t.Parallel()
		code, out, errs := run(t, map[string]string{admin.KeyEnv: fx.keyText}, "scaling", "generate-token",
			"--scopes", "scaling:read,scaling:write", "--expires-in", "7d", "--subject", "ci")
		if code != ExitOK || strings.Count(out, "\n") != 1 || !strings.Contains(errs, "token for ci with scaling:read and scaling:write") {
			t.Fatalf("%d %q %q", code, out, errs)
		}
		if strings.Contains(out+errs, fx.keyText) {
			t.Fatal("printed the key")
		}
		c, err := admin.VerifyToken(fx.key, strings.TrimSpace(out), time.Now())
		if err != nil || !c.Has(admin.ScopeWrite) || c.Subject != "ci" || c.ExpiresAt.Sub(c.IssuedAt.Time) != 7*24*time.Hour {
			t.Fatalf("%+v %v", c, err)
		}
		// The token works end to end.
		if code, _, errs := fx.scaling(t, strings.TrimSpace(out), "scale-up", "--instances", "3"); code != ExitOK {
			t.Fatalf("%d %s", code, errs)
		}
	})
	t.Run("key file in the state directory", func(t *testing.T) {
		t.Parallel()
		path := writeConfig(t, "name: demo\nadmin:\n  state_dir: state\n")
		keyFile := filepath.Join(filepath.Dir(path), "state", admin.KeyFileName)
		code, out, errs := run(t, nil, "scaling", "generate-token", "-f", path, "-o", "json")
		if code != ExitOK || !strings.Contains(errs, "created the admin signing key "+keyFile) {
			t.Fatalf("%d %q %q", code, out, errs)
		}
		fi, err := os.Stat(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %04o", fi.Mode().Perm())
		}
		type generated struct {
			Token  string   `json:"token"`
			KeyID  string   `json:"key_id"`
			Scopes []string `json:"scopes"`
		}
		var first, second generated
		if json.Unmarshal([]byte(out), &first) != nil || first.KeyID == "" || first.Token == "" || fmt.Sprint(first.Scopes) != "[scaling:read]" {
			t.Fatalf("json %s", out)
		}
		code, out, errs = run(t, nil, "scaling", "generate-token", "-f", path, "-o", "json")
		if code != ExitOK || strings.Contains(errs, "created") || json.Unmarshal([]byte(out), &second) != nil || second.KeyID != first.KeyID {
			t.Fatalf("the key must be reused: %d %s %s", code, out, errs)
		}
		key, err := admin.LoadKey(filepath.Dir(keyFile), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.VerifyToken(key, first.Token, time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	for name, c := range map[string]struct {
		args []string
		vars map[string]string
		code int
		errs string
	}{
		"unknown scope": {[]string{"--scopes", "scaling:read,root"}, map[string]string{admin.KeyEnv: fx.keyText}, ExitInvalid,
			`shoal: --scopes: unknown scope "root"; the scopes are scaling:read and scaling:write`},
		"bad lifetime": {[]string{"--expires-in", "a week"}, map[string]string{admin.KeyEnv: fx.keyText}, ExitInvalid, `shoal: --expires-in: invalid duration "a week"`},
		"zero lifetime": {[]string{"--expires-in", "0d"}, map[string]string{admin.KeyEnv: fx.keyText}, ExitInvalid,
			"shoal: --expires-in must be above zero"},
		"short key": {nil, map[string]string{admin.KeyEnv: "abcd"}, ExitFailure,
			"shoal: SHOAL_ADMIN_KEY: the admin key decodes to 2 bytes but needs at least 32"},
		"no key": {[]string{"-f", filepath.Join(t.TempDir(), "missing.yml")}, nil, ExitFailure, "shoal: config file"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out, errs := run(t, c.vars, append([]string{"scaling", "generate-token"}, c.args...)...)
			if code != c.code || out != "" || !strings.HasPrefix(errs, c.errs) {
				t.Fatalf("%d %q %q", code, out, errs)
			}
		})
	}
}

// backend is a service that names its instance in turn, round-robin, as shoal's proxy would
// spread requests; every fail-th request (0: none) answers 503.
func backend(t *testing.T, header string, instances, fail int) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if header != "" {
			w.Header().Set(header, fmt.Sprintf("demo-%d", (i-1)%int64(instances)+1))
		}
		if fail > 0 && i%int64(fail) == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestScaling_TestLB(t *testing.T) {
	t.Parallel()
	t.Run("even spread", func(t *testing.T) {
		t.Parallel()
		srv := backend(t, "X-Shoal-Instance", 3, 0)
		code, out, errs := run(t, nil, "scaling", "test-lb", "--requests", "90", "--concurrent", "5", "--url", srv.URL)
		if code != ExitOK {
			t.Fatalf("%d %s %s", code, out, errs)
		}
		for _, want := range []string{"90 requests to " + srv.URL + " with 5 workers", "demo-1    30        33.3%", "demo-3    30        33.3%",
			"status codes  200 ×90", "errors        0", "latency       p50 "} {
			if !strings.Contains(out, want) {
				t.Errorf("lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "\r") {
			t.Error("a progress bar was drawn on a non-terminal")
		}
	})
	t.Run("failures exit 1", func(t *testing.T) {
		t.Parallel()
		srv := backend(t, "X-Backend", 2, 10)
		code, out, errs := run(t, nil, "scaling", "test-lb", "--requests", "50", "--concurrent", "4", "--url", srv.URL, "-o", "json")
		var r lbResult
		if code != ExitFailure || errs != "shoal: 5 of 50 requests failed\n" || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("%d %q %q", code, out, errs)
		}
		if r.Failed != 5 || r.StatusCodes[503] != 5 || r.StatusCodes[200] != 45 || r.Instances["demo-1"]+r.Instances["demo-2"] != 50 ||
			r.Errors["HTTP 503 Service Unavailable"] != 5 || r.Latency.Max < r.Latency.P50 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("no instance header", func(t *testing.T) {
		t.Parallel()
		srv := backend(t, "", 1, 0)
		code, out, _ := run(t, nil, "scaling", "test-lb", "--requests", "3", "--concurrent", "10", "--url", srv.URL)
		if code != ExitOK || !strings.Contains(out, "unknown   3         100.0%") || !strings.Contains(out, "with 3 workers") {
			t.Fatalf("%d %s", code, out)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		code, out, errs := run(t, nil, "scaling", "test-lb", "--requests", "4", "--url", "http://"+freeAddr(t))
		if code != ExitFailure || errs != "shoal: 4 of 4 requests failed\n" || !strings.Contains(out, "4 × dial: connection refused") {
			t.Fatalf("%d %s %s", code, out, errs)
		}
	})
	t.Run("the proxy URL from the admin API", func(t *testing.T) {
		t.Parallel()
		fx := startAdmin(t)
		srv := backend(t, "X-Shoal-Instance", 2, 0)
		fx.fleet.proxyURL = srv.URL + "/work"
		code, out, errs := fx.scaling(t, fx.read, "test-lb", "--requests", "4")
		if code != ExitOK || !strings.Contains(out, "4 requests to "+srv.URL+"/work") {
			t.Fatalf("%d %s %s", code, out, errs)
		}
	})
	t.Run("server.port from the configuration", func(t *testing.T) {
		t.Parallel()
		srv := backend(t, "X-Shoal-Instance", 2, 0)
		port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
		path := writeConfig(t, "name: demo\nserver:\n  port: "+port+"\n")
		code, out, errs := run(t, nil, "scaling", "test-lb", "--requests", "2", "-f", path)
		if code != ExitOK || !strings.Contains(out, "2 requests to http://127.0.0.1:"+port+"/") {
			t.Fatalf("%d %s %s", code, out, errs)
		}
	})
	t.Run("bad flags", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{"--requests", "0"}, {"--concurrent", "0"}, {"--url", "ftp://x"}, {"--timeout", "0s"}} {
			if code, _, errs := run(t, nil, append([]string{"scaling", "test-lb", "--url", "http://127.0.0.1:1"}, args...)...); code != ExitInvalid {
				t.Errorf("%v: %d %s", args, code, errs)
			}
		}
	})
}

func TestProgressBar(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := &progressBar{w: &b, total: 200, width: 10}
	p.draw(50)
	p.draw(200)
	p.clear()
	want := "\r[██░░░░░░░░]  50/200  25%\r[██████████] 200/200 100%\r\033[K"
	if b.String() != want {
		t.Fatalf("%q\nwant %q", b.String(), want)
	}
}

func TestNaturalCompare(t *testing.T) {
	t.Parallel()
	names := []string{"demo-10", "demo-2", "unknown", "demo-1", "api-3"}
	slices.SortFunc(names, naturalCompare)
	if strings.Join(names, " ") != "api-3 demo-1 demo-2 demo-10 unknown" {
		t.Fatal(names)
	}
}

// TestScalingRevokeToken revokes one token by the ID generate-token printed: it lands in the
// state directory's revocation list, which the admin server reads; the other tokens stay.
func TestScalingRevokeToken(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "name: demo\nadmin:\n  state_dir: state\n")
	stateDir := filepath.Join(filepath.Dir(path), "state")
	var tok struct {
		ID string `json:"id"`
	}
	code, out, errs := run(t, nil, "scaling", "generate-token", "-f", path, "-o", "json")
	if code != ExitOK || json.Unmarshal([]byte(out), &tok) != nil || tok.ID == "" {
		t.Fatalf("generate-token: %d %s %s", code, out, errs)
	}
	code, _, errs = run(t, nil, "scaling", "revoke-token", "-f", path, tok.ID, "--reason", "pasted in a ticket")
	if code != ExitOK || !strings.Contains(errs, "revoked token "+tok.ID) {
		t.Fatalf("revoke-token: %d %s", code, errs)
	}
	if code, _, errs = run(t, nil, "scaling", "revoke-token", "-f", path, tok.ID); code != ExitOK || !strings.Contains(errs, "already revoked") {
		t.Fatalf("revoking again: %d %s", code, errs)
	}
	r := admin.NewRevocations(stateDir)
	if revoked, err := r.Revoked(tok.ID, time.Now()); !revoked || err != nil {
		t.Fatalf("the admin server's list does not revoke %s: %v, %v", tok.ID, revoked, err)
	}
	if revoked, _ := r.Revoked("another", time.Now()); revoked {
		t.Fatal("a token that was not named is revoked")
	}
	for _, args := range [][]string{
		{"scaling", "revoke-token", "-f", path},              // no ID
		{"scaling", "revoke-token", "-f", path, "two words"}, // not an ID
		{"scaling", "revoke-token", tok.ID},                  // no configuration: no state directory
	} {
		if code, _, errs := run(t, map[string]string{}, args...); code != ExitInvalid || errs == "" {
			t.Errorf("%q: exit %d %q; want %d with a message", args, code, errs, ExitInvalid)
		}
	}
}
