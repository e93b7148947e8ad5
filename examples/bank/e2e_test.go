package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/internal/servicetest"
)

// binaries builds shoal and the bank once per test binary, without the race detector: the
// fleet under test is what a user runs (instrumented, its 2,000 operations take minutes).
var binaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "shoal-bank-e2e-")
	if err != nil {
		return "", err
	}
	builtDir = dir
	for _, b := range []struct{ out, pkg string }{{"shoal", "../../cmd/shoal"}, {"bank", "."}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return dir, nil
})

var builtDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects a process's output for the test to read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fleet is `shoal up` running the bank as a real process tree.
type fleet struct {
	bin, dir, cfg      string // bin: the directory of the shoal and bank binaries
	proxy, admin, tok  string
	env                []string
	cmd                *exec.Cmd
	stdout, stderr     *lockedBuffer
	exited             chan struct{}
	client             *admin.Client
	stateDir, database string
}

// upFleet writes a shoal.yml for the bank (the example's settings, free ports, the built
// binary) and runs `shoal up` on it with env added to the environment.
func upFleet(t *testing.T, messaging string, env ...string) *fleet {
	t.Helper()
	start := time.Now()
	bin, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("binaries built in %v", time.Since(start).Round(time.Millisecond))
	dir := t.TempDir()
	proxyAddr, adminAddr := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`name: bank
server: {host: 127.0.0.1, port: %s}
admin: {listen: %q, state_dir: state}
app: {command: %q}
scaling:
  service_discovery:
    health_check: {endpoint: /health, interval: 1s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2}
  load_balancer: {health_check_interval: 500ms, max_failures: 2, failure_timeout: 5s}
  instances:
    min_instances: 3
    max_instances: 6
    startup: {initial_delay: 30s, readiness_probe: /ready, liveness_probe: /live}
    shutdown: {drain_timeout: 2s, graceful_timeout: 3s, force_timeout: 5s}
database: {max_connections: 8}
%s
jobs:
  enabled: true
  workers: 4
  max_retries: 5
  retry_delay: 300ms
  poll_interval: 100ms
  queues: {default: 1}
  schedules:
    - {name: statements, cron: "@every 10s", job: statements}
health:
  checks:
    - {name: database, type: database, interval: 1s, timeout: 1s, critical: true}
observability: {auto_scaling: {enabled: false}}
`, strings.Split(proxyAddr, ":")[1], adminAddr, filepath.Join(bin, "bank"), messaging)
	path := filepath.Join(dir, "shoal.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	key, err := admin.NewKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := admin.IssueToken(key, admin.TokenOptions{Scopes: []string{admin.ScopeRead, admin.ScopeWrite}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{bin: bin, dir: dir, cfg: path, proxy: "http://" + proxyAddr, admin: "http://" + adminAddr, tok: tok,
		env:    append(append(os.Environ(), "SHOAL_ADMIN_KEY="+hex.EncodeToString(secret)), env...),
		stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{}),
		stateDir: filepath.Join(dir, "state")}
	f.database = filepath.Join(f.stateDir, "database.db")
	f.cmd = exec.Command(filepath.Join(bin, "shoal"), "up", "-f", path, "--quiet")
	f.cmd.Dir, f.cmd.Env, f.cmd.Stdout, f.cmd.Stderr = dir, f.env, f.stdout, f.stderr
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.cmd.Wait(); close(f.exited) }()
	t.Cleanup(func() { f.stop(t) })
	if f.client, err = admin.NewClient(f.admin, tok); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(f.stdout.String(), "bank is up") {
		select {
		case <-f.exited:
			t.Fatalf("shoal up exited before the fleet was up:\n%s\n%s", f.stdout, f.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("shoal up did not come up in 90s:\n%s\n%s", f.stdout, f.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("shoal up ready after %v", time.Since(start).Round(time.Millisecond))
	return f
}

// stop is Ctrl-C: shoal up drains and stops every instance and exits 0.
func (f *fleet) stop(t *testing.T) {
	select {
	case <-f.exited:
		return
	default:
	}
	f.cmd.Process.Signal(os.Interrupt)
	select {
	case <-f.exited:
		if code := f.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("shoal up exited %d after Ctrl-C:\n%s", code, f.stderr)
		}
	case <-time.After(60 * time.Second):
		syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		t.Errorf("shoal up did not stop within 60s of Ctrl-C")
	}
}

func (f *fleet) status(t *testing.T) admin.Status {
	t.Helper()
	st, err := f.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// op is one client operation and what became of it.
type op struct {
	key, account, kind string // kind: deposits or withdrawals
	amount             int64
	failFirst          bool
	status             int
	retries            int
}

// do sends one operation through the proxy, retrying with the same Idempotency-Key while
// the answer is a transport error or a 5xx (an instance killed mid-request, a restart): the
// bank applies it once whatever the number of tries.
func do(c *http.Client, base string, o *op) (map[string]any, error) {
	path := "/accounts/" + o.account + "/" + o.kind
	if o.failFirst {
		path += "?fail_first_notify=1"
	}
	var lastErr error
	for try := 0; try < 100; try++ {
		if try > 0 {
			o.retries++
			time.Sleep(time.Duration(20*try) * time.Millisecond) // a client's backoff, not a wait for a condition
		}
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(fmt.Sprintf(`{"amount":%d}`, o.amount)))
		req.Header.Set("Idempotency-Key", o.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			lastErr = fmt.Errorf("%d %s", resp.StatusCode, body)
			continue
		}
		o.status = resp.StatusCode
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, fmt.Errorf("%s %s answered %d with a body that is not JSON: %q", o.kind, o.account, resp.StatusCode, body)
		}
		return v, nil
	}
	return nil, fmt.Errorf("%s %s failed 100 times, last: %v", o.kind, o.account, lastErr)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestE2E_EmbeddedDefaults: shoal up with no database and nats without a URL — one SQLite
// file and the embedded NATS server — under traffic, a SIGKILL and a rolling restart.
func TestE2E_EmbeddedDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the end-to-end test runs shoal up with 3 instances; skipped with -short")
	}
	f := upFleet(t, `messaging: {type: nats, max_attempts: 10, retry_backoff: 200ms}`)
	if !strings.Contains(f.stderr.String(), "embedded NATS") || !strings.Contains(f.stderr.String(), "SQLite in the state directory") {
		t.Fatalf("shoal up did not use the embedded defaults:\n%s", f.stderr)
	}
	db := databasetest.Open(t, databasetest.Config("sqlite://"+filepath.ToSlash(f.database)))
	runFaults(t, f, db)
}

// TestE2E_PostgresRabbitMQ: the same on the machine's PostgreSQL and RabbitMQ.
func TestE2E_PostgresRabbitMQ(t *testing.T) {
	if testing.Short() {
		t.Skip("the end-to-end test runs shoal up with 3 instances; skipped with -short")
	}
	rabbit := servicetest.Need(t, servicetest.RabbitMQ)
	url := databasetest.PostgresURL(t)
	exchange := "bank-e2e-" + eventstore.NewID()[24:]
	f := upFleet(t, fmt.Sprintf(`messaging: {type: rabbitmq, topic: %s, max_attempts: 10, retry_backoff: 200ms}`, exchange),
		"DATABASE_URL="+url, "RABBITMQ_URL=amqp://guest:guest@"+rabbit+"/")
	db := databasetest.Open(t, databasetest.Config(url))
	runFaults(t, f, db)
}

func runFaults(t *testing.T, f *fleet, db *database.DB) {
	ctx := context.Background()
	start := time.Now()
	phase := func(what string) { t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond)) }
	c := &http.Client{Timeout: 15 * time.Second}
	const accounts, ops, workers = 50, 2000, 16

	// 50 accounts, each with an opening deposit so withdrawals have something to take.
	var ids []string
	want := map[string]int64{}
	for i := range accounts {
		req, _ := http.NewRequest("POST", f.proxy+"/accounts", strings.NewReader(fmt.Sprintf(`{"owner":"owner-%d"}`, i)))
		req.Header.Set("Idempotency-Key", eventstore.NewID())
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v View
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("open account %d: %d %+v", i, resp.StatusCode, v)
		}
		ids = append(ids, v.ID)
		o := &op{key: eventstore.NewID(), account: v.ID, kind: "deposits", amount: 3000}
		if _, err := do(c, f.proxy, o); err != nil || o.status != 200 {
			t.Fatalf("opening deposit: %v %d", err, o.status)
		}
		want[v.ID] = 3000
	}
	phase("50 accounts opened")

	// 2,000 operations from 16 clients; one instance SIGKILLed after 400, a rolling restart
	// from 800.
	all := make([]*op, ops)
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := range all {
		o := &op{key: eventstore.NewID(), account: ids[r.IntN(accounts)], kind: "deposits", amount: int64(r.IntN(1500) + 1)}
		if r.IntN(2) == 0 {
			o.kind, o.amount = "withdrawals", int64(r.IntN(2500)+1)
			o.failFirst = o.amount >= LargeWithdrawal && r.IntN(4) == 0
		}
		all[i] = o
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= ops {
					return
				}
				o := all[i]
				v, err := do(c, f.proxy, o)
				done.Add(1)
				switch {
				case err != nil:
					errs <- err
					return
				case o.status == 200:
					if v["balance"].(float64) < 0 {
						errs <- fmt.Errorf("a balance went negative: %v", v)
						return
					}
				case o.status == 409 && o.kind == "withdrawals" && v["error"] == "insufficient_funds" && v["message"] != "":
				default:
					errs <- fmt.Errorf("%s %s of %d: %d %v", o.kind, o.account, o.amount, o.status, v)
					return
				}
			}
		}()
	}
	waitDone := func(n int64) {
		for done.Load() < n && next.Load() < ops {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitDone(400)
	st := f.status(t)
	victim := st.Instances[1]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %s (pid %d): %v", victim.ID, victim.PID, err)
	}
	t.Logf("SIGKILLed %s (pid %d) after %d operations", victim.ID, victim.PID, done.Load())
	waitDone(800)
	restart := exec.Command(filepath.Join(f.bin, "shoal"), "scaling", "restart", "--admin", f.admin, "--token", f.tok)
	restart.Env = f.env
	restartOut, restartErr := restart.CombinedOutput()
	t.Logf("rolling restart finished after %d operations", done.Load())
	wg.Wait()
	phase("2000 operations done")
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if restartErr != nil {
		t.Fatalf("shoal scaling restart: %v\n%s", restartErr, restartOut)
	}
	if t.Failed() {
		t.FailNow()
	}

	// What the clients saw: every accepted operation, and the large withdrawals.
	large := map[string]*op{}
	retried, refused := 0, 0
	for _, o := range all {
		if o.retries > 0 {
			retried++
		}
		if o.status == 409 {
			refused++
			continue
		}
		if o.kind == "deposits" {
			want[o.account] += o.amount
		} else {
			want[o.account] -= o.amount
			if o.amount >= LargeWithdrawal {
				large[o.key] = o
			}
		}
	}
	t.Logf("%d operations: %d refused overdrafts, %d retried after a 5xx or a broken connection, %d large withdrawals (%d with fail_first_notify)",
		ops, refused, retried, len(large), func() (n int) {
			for _, o := range large {
				if o.failFirst {
					n++
				}
			}
			return
		}())

	// Every notification written, nothing left to do.
	var s Stats
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		getJSON(t, f.proxy+"/stats", &s)
		if s.Notifications >= int64(len(large)) && s.JobsPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %+v, want %d notifications and no pending job", s, len(large))
		}
	}
	phase("every notification written")
	if s.Accounts != accounts || s.Operations != int64(2*accounts+ops-refused) || s.Events != s.Operations ||
		s.Alerts != int64(len(large)) || s.Notifications != int64(len(large)) {
		t.Errorf("stats %+v; want %d accounts, %d operations and events, %d large withdrawals and notifications",
			s, accounts, 2*accounts+ops-refused, len(large))
	}

	// Balances: the read model, the fold of the events (a temporal read folds them) and the
	// client's sum of its accepted operations agree; no balance was ever negative.
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	for _, id := range ids {
		var now, folded View
		getJSON(t, f.proxy+"/accounts/"+id, &now)
		getJSON(t, f.proxy+"/accounts/"+id+"?at="+future, &folded)
		if now.Balance != want[id] || folded.Balance != want[id] || now.Version != folded.Version {
			t.Errorf("account %s: read model %d (v%d), fold of its events %d (v%d), accepted operations sum to %d",
				id, now.Balance, now.Version, folded.Balance, folded.Version, want[id])
		}
	}
	var negative int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM bank_ledger WHERE balance < 0").Scan(&negative); err != nil || negative != 0 {
		t.Errorf("ledger rows with a negative balance after them: %d (%v)", negative, err)
	}

	// Notifications: exactly one per large withdrawal, none without its event, and two
	// attempts for those that asked to fail the first.
	rows, err := db.QueryContext(ctx, "SELECT n.event_id, n.account_id, n.amount, n.attempt, l.amount FROM notifications n LEFT JOIN bank_ledger l ON l.event_id = n.event_id")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var ev, acc string
		var amount, attempt int64
		var ledger *int64
		if err := rows.Scan(&ev, &acc, &amount, &attempt, &ledger); err != nil {
			t.Fatal(err)
		}
		o := large[ev]
		switch {
		case ledger == nil:
			t.Errorf("notification %s has no event", ev)
		case o == nil || seen[ev]:
			t.Errorf("notification %s (attempt %d) is not of one accepted large withdrawal, or is its second", ev, attempt)
		case o.account != acc || o.amount != amount || *ledger != -amount:
			t.Errorf("notification %s: account %s amount %d, the withdrawal was %s %d", ev, acc, amount, o.account, o.amount)
		case o.failFirst && attempt < 2:
			// Attempt 2, or later when a killed instance's lease expired under the job: the notify
			// jobs' check below requires every extra attempt to be such a rescue.
			t.Errorf("notification %s asked fail_first_notify and was written at attempt %d, want 2 or later", ev, attempt)
		}
		seen[ev] = true
	}
	rows.Close()
	for k := range large {
		if !seen[k] {
			t.Errorf("large withdrawal %s has no notification", k)
		}
	}
	var notifyJobs, distinct int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*), COUNT(DISTINCT args) FROM shoal_jobs WHERE kind = 'notify'").Scan(&notifyJobs, &distinct); err != nil {
		t.Fatal(err)
	}
	if notifyJobs != len(large) || distinct != len(large) {
		t.Errorf("%d notify jobs (%d distinct), want one per large withdrawal (%d)", notifyJobs, distinct, len(large))
	}
	// Each notify job ran once, twice for fail_first_notify; a further attempt is allowed
	// only as a rescue — its worker was the instance SIGKILLed or stopped mid-job — and
	// then the notification row (checked above) still shows the attempt that wrote it.
	type jobRow struct {
		id      int64
		args    NotifyArgs
		attempt int
		state   string
	}
	var jobRows []jobRow
	jrows, err := db.QueryContext(ctx, "SELECT id, args, attempt, state FROM shoal_jobs WHERE kind = 'notify'")
	if err != nil {
		t.Fatal(err)
	}
	for jrows.Next() {
		var j jobRow
		var args string
		if err := jrows.Scan(&j.id, &args, &j.attempt, &j.state); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(args), &j.args); err != nil {
			t.Fatalf("notify job args %q: %v", args, err)
		}
		jobRows = append(jobRows, j)
	}
	jrows.Close()
	rescued := 0
	for _, j := range jobRows {
		want := map[bool]int{true: 2, false: 1}[j.args.FailFirst]
		var errs []string
		erows, err := db.QueryContext(ctx, db.Rebind("SELECT error FROM shoal_job_errors WHERE job_id = $1 ORDER BY attempt"), j.id)
		if err != nil {
			t.Fatal(err)
		}
		for erows.Next() {
			var e string
			erows.Scan(&e)
			errs = append(errs, e)
		}
		erows.Close()
		others, rescues := 0, 0
		for _, e := range errs {
			switch {
			case strings.HasPrefix(e, "rescued"):
				rescues++
			case j.args.FailFirst && strings.Contains(e, "on purpose"):
			default:
				others++
			}
		}
		if j.state != "completed" || j.attempt < want || others > 0 {
			t.Errorf("notify job %d of %s (fail_first %v): %s after %d attempts (want %d), errors %q", j.id, j.args.EventID, j.args.FailFirst, j.state, j.attempt, want, errs)
		}
		if j.attempt > want && rescues == 0 {
			t.Errorf("notify job %d (fail_first %v) took %d attempts, more than %d, and none was a rescue: %q", j.id, j.args.FailFirst, j.attempt, want, errs)
		}
		if j.attempt > want {
			rescued++
			t.Logf("notify job %d (fail_first %v) took %d attempts, the extra ones rescues: %q", j.id, j.args.FailFirst, j.attempt, errs)
		}
		if j.attempt == want && len(errs) != want-1 {
			t.Errorf("notify job %d: %d attempts but errors %q", j.id, j.attempt, errs)
		}
	}
	// Through the API too, for one account.
	for _, o := range large {
		var n struct {
			EventIDs []string `json:"event_ids"`
		}
		getJSON(t, f.proxy+"/accounts/"+o.account+"/notifications", &n)
		found := false
		for _, id := range n.EventIDs {
			found = found || id == o.key
		}
		if !found {
			t.Errorf("GET /accounts/%s/notifications = %v lacks %s", o.account, n.EventIDs, o.key)
		}
		break
	}

	// Statements: one run per 10s tick, none twice, no tick skipped while the test ran, and
	// after a tick that followed the traffic every account's last statement is its balance.
	last := s.StatementRuns
	for deadline := time.Now().Add(25 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		getJSON(t, f.proxy+"/stats", &s)
		if s.StatementRuns >= last+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statements run within 25s: %+v", s)
		}
	}
	var ticks []int64
	trows, err := db.QueryContext(ctx, "SELECT tick FROM statement_runs ORDER BY tick")
	if err != nil {
		t.Fatal(err)
	}
	for trows.Next() {
		var tk int64
		trows.Scan(&tk)
		ticks = append(ticks, tk)
	}
	trows.Close()
	for i := 1; i < len(ticks); i++ {
		if ticks[i]-ticks[i-1] != 10 {
			t.Errorf("statement ticks %d and %d are not 10s apart (all: %v)", ticks[i-1], ticks[i], ticks)
		}
	}
	var dups int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT account_id, tick FROM statements GROUP BY account_id, tick HAVING COUNT(*) > 1) d").Scan(&dups); err != nil || dups != 0 {
		t.Errorf("statements written twice for one account and tick: %d (%v)", dups, err)
	}
	var stale int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM bank_accounts a WHERE a.balance <> (SELECT s.balance FROM statements s
		WHERE s.account_id = a.id ORDER BY s.version DESC LIMIT 1)`).Scan(&stale); err != nil || stale != 0 {
		t.Errorf("accounts whose last statement is not their balance: %d (%v)", stale, err)
	}
	t.Logf("stats after the run: %+v; statement ticks %v; %d notify jobs rescued after their worker died", s, ticks, rescued)
}
