package etcd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/internal/etcdtest"
	"github.com/shoal-sh/shoal/proxy"
)

// instanceEnv makes the test binary a service instance that registers itself
// in etcd with discovery.RegisterSelf: "endpoint prefix id".
const instanceEnv = "SHOAL_ETCD_TEST_INSTANCE"

// runInstanceIfChild serves as a registered instance until killed, when the
// binary was started by startInstance.
func runInstanceIfChild() {
	spec := os.Getenv(instanceEnv)
	if spec == "" {
		return
	}
	f := strings.Fields(spec)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	id := f[2]
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok", id)
	})}
	go srv.Serve(ln)
	yml := fmt.Sprintf(`name: api
scaling:
  service_discovery:
    method: etcd
    etcd: {endpoints: [%q], prefix: %q, lease_ttl: 2s, dial_timeout: 1s}
  instances:
    shutdown: {drain_timeout: 100ms}
`, f[0], f[1])
	cfg, err := config.Parse([]byte(yml), "instance.yml", config.Options{NoDotEnv: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	self, err := discovery.RegisterSelf(context.Background(), cfg, discovery.WithID(id),
		discovery.WithAddress("127.0.0.1", ln.Addr().(*net.TCPAddr).Port), discovery.WithLogger(quiet))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-self.Registered()
	fmt.Println("registered")
	<-self.Done() // SIGTERM: drained, waited, deregistered
	os.Exit(0)
}

// child is a test instance process.
type child struct {
	id  string
	cmd *exec.Cmd
}

// startInstance starts an instance process registered under prefix; it does
// not wait for the registration (etcd may be down).
func startInstance(t *testing.T, endpoint, prefix, id string) (*child, <-chan struct{}) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s", instanceEnv, endpoint, prefix, id))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	registered := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "registered" {
				close(registered)
			}
		}
	}()
	c := &child{id: id, cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c, registered
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: not within 60s", what)
	}
}

// harness is a real proxy.Proxy serving on loopback over etcd discovery,
// with a load of concurrent GET requests through it.
type harness struct {
	p        *proxy.Proxy
	url      string
	ok, fail atomic.Int64
	seen     sync.Map // instance id → requests it answered
	sets     recorder // every set the proxy was given
	firstErr atomic.Value
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	prov, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{
		HealthCheck: proxy.HealthCheck{Path: "/", Interval: 200 * time.Millisecond, Timeout: time.Second},
		MaxFailures: 3, FailureTimeout: 5 * time.Second, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, ln, proxy.ServerOptions{DrainTimeout: time.Second}) }()
	h := &harness{p: p, url: "http://" + ln.Addr().String() + "/"}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		p.Watch(ctx, &recording{p: prov, r: &h.sets})
	}()
	t.Cleanup(func() {
		cancel()
		<-served
		<-watched
		p.Close()
	})
	return h
}

// recorder keeps the instance sets a provider delivered, in order.
type recorder struct {
	mu   sync.Mutex
	sets []string // IDs, space-separated
}

// recording is a provider that records what the provider p delivers.
type recording struct {
	p discovery.Provider
	r *recorder
}

func (rp *recording) Watch(ctx context.Context) <-chan discovery.Event {
	out := make(chan discovery.Event)
	go func() {
		defer close(out)
		for ev := range rp.p.Watch(ctx) {
			if ev.Err == nil {
				rp.r.mu.Lock()
				rp.r.sets = append(rp.r.sets, ids(ev.Instances))
				rp.r.mu.Unlock()
			}
			select {
			case out <- ev:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

// since returns the sets recorded after the first n.
func (r *recorder) since(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sets[min(n, len(r.sets)):])
}

// count returns how many sets were recorded.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sets)
}

// load sends GET requests from n goroutines until stopped.
func (h *harness) load(n int) {
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for range n {
		h.wg.Go(func() {
			for i := 0; ctx.Err() == nil && i < 1_000_000; i++ {
				resp, err := client.Get(h.url)
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						h.ok.Add(1)
						id := strings.TrimSpace(strings.TrimPrefix(string(body), "ok "))
						v, _ := h.seen.LoadOrStore(id, new(atomic.Int64))
						v.(*atomic.Int64).Add(1)
						continue
					}
					err = fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
				}
				h.fail.Add(1)
				h.firstErr.CompareAndSwap(nil, err.Error())
			}
		})
	}
}

func (h *harness) finish(t *testing.T) {
	t.Helper()
	h.stop()
	h.wg.Wait()
	t.Logf("%d requests answered, %d failed", h.ok.Load(), h.fail.Load())
	if n := h.fail.Load(); n > 0 {
		t.Errorf("%d requests failed; the first: %v", n, h.firstErr.Load())
	}
}

// answered returns how many requests the instance has answered so far.
func (h *harness) answered(id string) int64 {
	if v, ok := h.seen.Load(id); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// waitRouted waits until the proxy routes to exactly the instances ids.
func (h *harness) waitRouted(t *testing.T, ids ...string) {
	t.Helper()
	want := strings.Join(ids, " ")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var got []string
		for _, u := range h.p.Status() {
			if !u.Draining {
				got = append(got, u.ID)
			}
		}
		if strings.Join(got, " ") == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proxy routes to %v, want %s", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAnswered waits until the instance has answered a request.
func (h *harness) waitAnswered(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for h.answered(id) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s answered no request within 60s", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIntegration_KilledInstanceLeaves SIGKILLs a registered instance under
// load: its key disappears when its lease runs out, the proxy stops routing
// to it, and no client request fails meanwhile (the proxy retries the
// requests the dead instance dropped on the others).
func TestIntegration_KilledInstanceLeaves(t *testing.T) {
	srv := server(t)
	opts := testOptions(srv.Endpoint())
	h := newHarness(t, opts)
	var kids []*child
	for i := range 3 {
		c, registered := startInstance(t, srv.Endpoint(), opts.Prefix, fmt.Sprintf("api-%d", i))
		waitClosed(t, registered, c.id+" registered")
		kids = append(kids, c)
	}
	h.waitRouted(t, "api-0", "api-1", "api-2")
	h.load(4)
	h.waitAnswered(t, "api-1")
	if err := kids[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = kids[1].cmd.Wait()
	h.waitRouted(t, "api-0", "api-2") // the lease (2s) ran out
	before := h.answered("api-0") + h.answered("api-2")
	for h.answered("api-0")+h.answered("api-2") < before+200 {
		time.Sleep(5 * time.Millisecond)
	}
	h.finish(t)
}

// TestIntegration_EtcdOutage stops etcd itself for 10 seconds under load: no
// request fails (the proxy keeps the last set), an instance that starts
// during the outage registers once etcd is back, and the proxy catches up.
func TestIntegration_EtcdOutage(t *testing.T) {
	srv := etcdtest.Start(t) // its own server: this test kills it
	opts := testOptions(srv.Endpoint())
	h := newHarness(t, opts)
	for i := range 2 {
		c, registered := startInstance(t, srv.Endpoint(), opts.Prefix, fmt.Sprintf("api-%d", i))
		waitClosed(t, registered, c.id+" registered")
	}
	h.waitRouted(t, "api-0", "api-1")
	h.load(4)
	h.waitAnswered(t, "api-0")

	before := h.sets.count()
	srv.Kill()
	late, registered := startInstance(t, srv.Endpoint(), opts.Prefix, "api-2")
	outage := time.NewTimer(10 * time.Second)
	during := h.ok.Load()
	<-outage.C
	if h.ok.Load() == during {
		t.Error("no request was answered while etcd was down")
	}
	srv.Restart()
	waitClosed(t, registered, late.id+" registered after etcd came back")
	h.waitRouted(t, "api-0", "api-1", "api-2")
	h.waitAnswered(t, "api-2")
	// The instances that lived through the outage never left the set: their
	// registrars renewed the leases etcd kept for them, within the grace it
	// gives leases when it comes back (a registrar that gave its lease up and
	// came back later let the keys expire — a moment with no instance at all).
	for _, set := range h.sets.since(before) {
		if !strings.HasPrefix(set, "api-0 api-1") {
			t.Errorf("the proxy was given the set %q after the outage began; api-0 and api-1 never left (sets: %q)", set, h.sets.since(before))
			break
		}
	}
	h.finish(t)
}
