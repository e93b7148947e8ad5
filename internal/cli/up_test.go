package cli

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/internal/servicetest"
)

// upHarness runs `shoal up` in-process on the real quickstart example.
type upHarness struct {
	proxyURL, adminURL, token string
	path                      string // the configuration
	vars                      map[string]string
	cancel                    context.CancelFunc
	done                      chan int
	out, errb                 *syncBuffer
}

func startUp(t *testing.T, min, max int) *upHarness {
	t.Helper()
	pkg, err := filepath.Abs("../../examples/quickstart")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`name: qs
server: {host: 127.0.0.1, port: %s}
admin: {listen: %q, state_dir: state}
app: {command: %q}
health:
  checks:
    - {name: admin_port, type: tcp, url: %q, interval: 200ms, timeout: 1s, critical: false}
    - {name: self, type: custom, handler: quickstart_self}
scaling:
  service_discovery:
    health_check: {endpoint: /health, interval: 1s, timeout: 1s}
  load_balancer: {health_check_interval: 500ms}
  instances:
    min_instances: %d
    max_instances: %d
    startup: {initial_delay: 20s, readiness_probe: /ready, liveness_probe: /live}
    shutdown: {drain_timeout: 5s, graceful_timeout: 5s, force_timeout: 10s}
`, strings.Split(proxyAddr, ":")[1], adminAddr, pkg, adminAddr, min, max)
	path := filepath.Join(dir, "shoal.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i * 7)
	}
	key, err := admin.NewKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := admin.IssueToken(key, admin.TokenOptions{Scopes: []string{admin.ScopeRead, admin.ScopeWrite}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := &upHarness{proxyURL: "http://" + proxyAddr, adminURL: "http://" + adminAddr, token: token, path: path,
		vars: map[string]string{"SHOAL_ADMIN_KEY": hex.EncodeToString(secret)}, done: make(chan int, 1),
		out: &syncBuffer{}, errb: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	a := &app{stdin: strings.NewReader(""), stdout: h.out, stderr: h.errb,
		getenv: func(k string) (string, bool) { v, ok := h.vars[k]; return v, ok }}
	go func() { h.done <- a.run(ctx, []string{"up", "-f", path, "--quiet"}) }()
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(h.out.String(), "qs is up") {
		select {
		case code := <-h.done:
			t.Fatalf("shoal up exited %d before it was up:\n%s", code, h.errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("shoal up did not come up:\n%s", h.errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { h.stop(t) })
	return h
}

// stop sends the equivalent of Ctrl-C and checks the exit code.
func (h *upHarness) stop(t *testing.T) {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case code := <-h.done:
		if code != ExitOK {
			t.Errorf("shoal up exited %d after Ctrl-C:\n%s", code, h.errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Errorf("shoal up did not stop after Ctrl-C")
	}
}

func (h *upHarness) status(t *testing.T) admin.Status {
	t.Helper()
	c, err := admin.NewClient(h.adminURL, h.token)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestUp_QuickstartEndToEnd(t *testing.T) {
	t.Parallel()
	h := startUp(t, 3, 6)

	// Three instances behind the proxy, round robin.
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		resp, err := http.Get(h.proxyURL + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen[resp.Header.Get("X-Shoal-Instance")]++
	}
	if len(seen) != 3 {
		t.Fatalf("requests reached %v; want 3 instances", seen)
	}

	// The seed's CLI against the running fleet.
	code, out, errs := run(t, h.vars, "scaling", "status", "--admin", h.adminURL, "--token", h.token)
	if code != ExitOK || !strings.Contains(out, "qs-1") || !strings.Contains(out, "ready") {
		t.Fatalf("scaling status: %d\n%s%s", code, out, errs)
	}
	code, out, errs = run(t, h.vars, "scaling", "test-lb", "--requests", "1000", "--concurrent", "50", "--admin", h.adminURL, "--token", h.token)
	if code != ExitOK {
		t.Fatalf("test-lb: %d\n%s%s", code, out, errs)
	}
	// An even spread: round robin gives each of the 3 instances a third, give or take one.
	for _, id := range []string{"qs-1", "qs-2", "qs-3"} {
		if !regexp.MustCompile(id + `\s+33[34]\s`).MatchString(out) {
			t.Errorf("test-lb: %s did not get a third of 1000 requests:\n%s", id, out)
		}
	}
	if !strings.Contains(out, "errors        0") {
		t.Errorf("test-lb reported errors:\n%s", out)
	}
	code, out, errs = run(t, h.vars, "scaling", "scale-up", "--instances", "4", "--admin", h.adminURL, "--token", h.token)
	if code != ExitOK || h.status(t).Ready != 4 {
		t.Fatalf("scale-up: %d\n%s%s", code, out, errs)
	}
	code, _, errs = run(t, h.vars, "scaling", "scale-up", "--instances", "9", "--admin", h.adminURL, "--token", h.token)
	if code == ExitOK || !strings.Contains(errs, "outside") {
		t.Fatalf("scale-up beyond max_instances must be refused: %d %s", code, errs)
	}
	code, out, errs = run(t, h.vars, "scaling", "scale-down", "--instances", "3", "--admin", h.adminURL, "--token", h.token)
	if code != ExitOK || h.status(t).Ready != 3 {
		t.Fatalf("scale-down: %d\n%s%s", code, out, errs)
	}

	// A rolling restart through the CLI replaces every instance.
	before := h.status(t).Instances
	code, out, errs = run(t, h.vars, "scaling", "restart", "--admin", h.adminURL, "--token", h.token)
	if code != ExitOK {
		t.Fatalf("restart: %d\n%s%s", code, out, errs)
	}
	for i, in := range h.status(t).Instances {
		if in.ID == before[i].ID || in.State != "ready" {
			t.Fatalf("after a rolling restart: %v, before: %v", h.status(t).Instances, before)
		}
	}

	// Health checks shoal runs can be switched off and on by name.
	code, out, errs = run(t, h.vars, "scaling", "health-check", "--name", "admin_port", "--disable", "--admin", h.adminURL, "--token", h.token)
	if code != ExitOK || h.status(t).Checks[0].Enabled {
		t.Fatalf("health-check --disable: %d\n%s%s\n%+v", code, out, errs, h.status(t).Checks)
	}
	code, _, errs = run(t, h.vars, "scaling", "health-check", "--name", "nope", "--enable", "--admin", h.adminURL, "--token", h.token)
	if code == ExitOK || !strings.Contains(errs, "admin_port") {
		t.Errorf("an unknown check must be refused, naming the valid ones: %d %s", code, errs)
	}

	// Prometheus metrics of the fleet and the proxy on the admin server, behind the token.
	req, _ := http.NewRequest("GET", h.adminURL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"shoal_fleet_instances_ready 3", `shoal_proxy_requests_total{code="2xx",instance="qs-1",method="GET"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("admin /metrics lacks %q", want)
		}
	}
	if resp, err := http.Get(h.adminURL + "/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin /metrics without a token: %v %v", err, resp)
	}

	// Ctrl-C drains everything and leaves no process behind.
	var pids []int
	for _, in := range h.status(t).Instances {
		pids = append(pids, in.PID)
	}

	// The token revoked by its ID: shoal up refuses it within a second, and the CLI says why.
	key, err := admin.LoadKey("", func(k string) (string, bool) { v, ok := h.vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	claims, err := admin.VerifyToken(key, h.token, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, h.vars, "scaling", "revoke-token", "-f", h.path, claims.ID); code != ExitOK {
		t.Fatalf("revoke-token: %d %s", code, errs)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, _, errs := run(t, h.vars, "scaling", "status", "--admin", h.adminURL, "--token", h.token)
		if code != ExitOK && strings.Contains(errs, "was revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shoal up still accepts the revoked token: %d %s", code, errs)
		}
	}
	h.stop(t)
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("instance process %d is still running after Ctrl-C", pid)
		}
	}
}

// traffic sends requests to url for d, so the dashboard's charts have something to show.
func traffic(url string, d time.Duration) error {
	for end := time.Now().Add(d); time.Now().Before(end); {
		resp, err := http.Get(url + "/work?ms=2")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return nil
}

// TestUp_Dashboard loads the dashboard in a real headless Chromium, signs in with a token,
// sees the instances, presses scale-up and sees a new instance.
func TestUp_Dashboard(t *testing.T) {
	t.Parallel()
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if servicetest.Required() {
			t.Fatalf("chromium is required (SHOAL_TEST_SERVICES=required) but not installed: apt-get install -y chromium")
		}
		t.Skip("chromium is not installed (apt-get install -y chromium); skipping the dashboard test")
	}
	h := startUp(t, 2, 4)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1400, 1000), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	var console syncBuffer // the page's console and uncaught errors, shown when the test fails
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			for _, a := range e.Args {
				fmt.Fprintf(&console, "console.%s: %s\n", e.Type, a.Value)
			}
		case *runtime.EventExceptionThrown:
			fmt.Fprintf(&console, "exception: %s\n", e.ExceptionDetails.Error())
		}
	})
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	rows := func(n int) chromedp.Action {
		return chromedp.Poll(fmt.Sprintf(`document.querySelectorAll("#instances tbody tr").length === %d &&
			[...document.querySelectorAll("#instances tbody tr td:nth-child(2)")].every(td => td.textContent === "ready")`, n), nil,
			chromedp.WithPollingInterval(100*time.Millisecond))
	}
	var shot []byte
	var summary string
	// What a person reads on the charts: every label at least 11 CSS pixels tall, a time axis
	// of clock times, values with their unit, the value under the pointer on hover; and a
	// toggle only on the checks the API can switch.
	var readable struct {
		Smallest  float64  `json:"smallest"`
		Times     []string `json:"times"`
		Values    []string `json:"values"`
		Tip       string   `json:"tip"`
		Clipped   []string `json:"clipped"`
		Toggles   []string `json:"toggles"`
		InService []string `json:"inService"`
	}
	const inspect = `(() => {
		const texts = [...document.querySelectorAll(".charts svg text")].filter(t => t.textContent);
		const out = (t) => {
			const b = t.getBoundingClientRect(), s = t.ownerSVGElement.getBoundingClientRect();
			return b.left < s.left - 0.5 || b.right > s.right + 0.5 || b.top < s.top - 0.5 || b.bottom > s.bottom + 0.5;
		};
		const clipped = texts.filter(out).map(t => t.textContent);
		const svg = document.querySelector("#chart-rate"), r = svg.getBoundingClientRect();
		svg.dispatchEvent(new MouseEvent("mousemove", {clientX: r.left + r.width * 0.6, clientY: r.top + r.height / 2, bubbles: true}));
		return {
			smallest: Math.min(...texts.map(t => t.getBoundingClientRect().height)),
			clipped: clipped,
			times: [...document.querySelectorAll("#chart-rate text.tick")].map(t => t.textContent).filter(s => /^\d\d:\d\d/.test(s)),
			values: [...document.querySelectorAll("#chart-rate text.tick")].map(t => t.textContent).filter(s => / req\/s$/.test(s)),
			tip: document.querySelector("#chart-rate text.tip-text").textContent,
			toggles: [...document.querySelectorAll("#checks button[data-check]")].map(b => b.dataset.check),
			inService: [...document.querySelectorAll("#checks tbody tr")].filter(tr => tr.textContent.includes("runs in the service")).map(tr => tr.cells[0].textContent),
		};
	})()`
	err = chromedp.Run(ctx,
		chromedp.Navigate(h.adminURL+"/"),
		chromedp.WaitVisible("#token", chromedp.ByQuery),
		chromedp.SendKeys("#token", h.token, chromedp.ByQuery),
		chromedp.Click("#login-form button", chromedp.ByQuery),
		rows(2),
		chromedp.Text("#summary", &summary, chromedp.ByQuery),
		chromedp.Click("#scale-up", chromedp.ByQuery),
		rows(3),
		chromedp.ActionFunc(func(context.Context) error { return traffic(h.proxyURL, 3*time.Second) }),
		chromedp.Poll(`document.querySelector("#chart-instances path.line") !== null && document.querySelectorAll("#chart-rate text.tick").length >= 4`,
			nil, chromedp.WithPollingInterval(200*time.Millisecond)),
		chromedp.FullScreenshot(&shot, 100), // quality 100 means PNG
		chromedp.Evaluate(inspect, &readable),
	)
	if err != nil {
		var html string
		chromedp.Run(ctx, chromedp.OuterHTML("main", &html, chromedp.ByQuery))
		t.Fatalf("dashboard in Chromium: %v\nbrowser console:\n%s\npage:\n%.3000s\nshoal log:\n%s", err, console.String(), html, h.errb.String())
	}
	if !strings.Contains(summary, "bounds 2–4") {
		t.Errorf("summary: %q", summary)
	}
	if st := h.status(t); st.Ready != 3 {
		t.Errorf("after pressing scale-up the fleet has %d ready instances, want 3", st.Ready)
	}
	if readable.Smallest < 11 || len(readable.Times) == 0 || len(readable.Values) < 2 ||
		!regexp.MustCompile(`^\d\d:\d\d:\d\d .* req/s$`).MatchString(readable.Tip) {
		t.Errorf("the charts are not readable: smallest label %.1fpx, time labels %q, value labels %q, hover %q",
			readable.Smallest, readable.Times, readable.Values, readable.Tip)
	}
	if len(readable.Clipped) > 0 {
		t.Errorf("chart labels cut off at the chart's edge: %q", readable.Clipped)
	}
	if strings.Join(readable.Toggles, ",") != "admin_port" || len(readable.InService) != 1 || !strings.HasPrefix(readable.InService[0], "self") {
		t.Errorf("check toggles on %q, 'runs in the service' on %q; want a toggle on admin_port only", readable.Toggles, readable.InService)
	}
	if dir := os.Getenv("SHOAL_SCREENSHOTS"); dir != "" {
		os.WriteFile(filepath.Join(dir, "dashboard.png"), shot, 0o644)
	}
}
