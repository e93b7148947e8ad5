package consul

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/discovery/discoverytest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testOptions(addr string) Options {
	return Options{Address: addr, Service: "api", Check: CheckTTL, CheckTTL: 2 * time.Second,
		WaitTime: 2 * time.Second, RetryMax: 200 * time.Millisecond, Logger: quiet}
}

// instance is the i-th test instance, as the provider reports it.
func testInstance(i int) discovery.Instance {
	return discovery.Instance{
		ID:     fmt.Sprintf("api-%d", i),
		URL:    &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", 9000+i)},
		Weight: i + 1,
		Meta:   map[string]string{"version": fmt.Sprintf("v%d", i%2)},
	}
}

// registration is what another agent would hold for in.
func agentReg(in discovery.Instance) api.AgentServiceRegistration {
	host, port, _ := strings.Cut(in.URL.Host, ":")
	var p int
	fmt.Sscan(port, &p)
	return api.AgentServiceRegistration{ID: in.ID, Name: "api", Address: host, Port: p, Meta: in.Meta,
		Weights: &api.AgentWeights{Passing: in.Weight, Warning: 1}}
}

func next(t *testing.T, ch <-chan discovery.Event) discovery.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	panic("unreachable")
}

func ids(set []discovery.Instance) string {
	var out []string
	for _, in := range set {
		s := in.ID
		if in.Draining {
			s += "(draining)"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// until reads events until one has the set want.
func until(t *testing.T, ch <-chan discovery.Event, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := "(none)"
	for time.Now().Before(deadline) {
		ev := next(t, ch)
		if ev.Err == nil {
			if last = ids(ev.Instances); last == want {
				return
			}
		}
	}
	t.Fatalf("last set %q, want %q", last, want)
}

func TestProvider_Conformance(t *testing.T) {
	discoverytest.Exercise(t, func(t *testing.T) discoverytest.Subject {
		f := newFakeConsul(t, "")
		p, err := New(testOptions(f.addr()))
		if err != nil {
			t.Fatal(err)
		}
		return discoverytest.Subject{
			Provider: p,
			Instance: testInstance,
			Apply: func(t *testing.T, instances []discovery.Instance) {
				var regs []api.AgentServiceRegistration
				for _, in := range instances {
					regs = append(regs, agentReg(in))
				}
				f.replace(regs)
			},
			Fail: func(*testing.T) { f.fail(true) },
		}
	})
}

// registrarSubject is the registrar cases against the fake agent, with the
// provider's connection through a cutter. With check "http" every instance
// is a real HTTP server whose /health the fake agent probes.
func registrarSubject(check string) func(t *testing.T) discoverytest.RegistrarSubject {
	return func(t *testing.T) discoverytest.RegistrarSubject {
		f := newFakeConsul(t, "")
		cut := discoverytest.NewCutter(t, f.addr())
		p, err := New(testOptions(cut.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		ropts := testOptions(f.addr())
		ropts.Check, ropts.CheckInterval = check, 50*time.Millisecond
		r, err := NewRegistrar(ropts)
		if err != nil {
			t.Fatal(err)
		}
		inst := testInstance
		if check == CheckHTTP {
			var urls []*url.URL
			for range 8 {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
				t.Cleanup(srv.Close)
				u, _ := url.Parse(srv.URL)
				urls = append(urls, u)
			}
			inst = func(i int) discovery.Instance {
				in := testInstance(i)
				in.URL = urls[i]
				return in
			}
		}
		return discoverytest.RegistrarSubject{
			Provider: p, Registrar: r, Instance: inst,
			Cut: func(*testing.T) func() { return cut.Cut() },
		}
	}
}

func TestRegistrar_Conformance(t *testing.T) {
	t.Run("ttl", func(t *testing.T) { discoverytest.ExerciseRegistrar(t, registrarSubject(CheckTTL)) })
	t.Run("http", func(t *testing.T) { discoverytest.ExerciseRegistrar(t, registrarSubject(CheckHTTP)) })
}

// TestProvider_BlockingQueryIndex checks the index rules of Consul's
// blocking queries: each query asks for the index of the last answer, an
// index that went backwards starts again from 0, and 0 becomes 1.
func TestProvider_BlockingQueryIndex(t *testing.T) {
	f := newFakeConsul(t, "")
	f.put(agentReg(testInstance(0)))
	p, err := New(testOptions(f.addr()))
	if err != nil {
		t.Fatal(err)
	}
	ch := p.Watch(t.Context())
	until(t, ch, "api-0")
	f.put(agentReg(testInstance(1)))
	until(t, ch, "api-0 api-1")
	// The agent's index goes backwards (a restored snapshot): the query
	// blocked on the old index returns after its wait with the lower one,
	// and the provider starts again from 0.
	f.setIndex(1)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(f.healthQueries()[1:], 0) {
		if time.Now().After(deadline) {
			t.Fatalf("no query asked for index 0 after the index went backwards: %v", f.healthQueries())
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.put(agentReg(testInstance(2)))
	until(t, ch, "api-0 api-1 api-2")
	q := f.healthQueries()
	if q[0] != 0 || !slices.Contains(q, 0) {
		t.Fatalf("queries asked for indexes %v: the first must ask for 0", q)
	}
	if i := slices.Index(q[1:], 0); i < 0 {
		t.Errorf("after the index went backwards no query asked for 0 again: %v", q)
	}
	for i := 1; i < len(q); i++ {
		if q[i] != 0 && q[i] < q[i-1] && q[i-1] != 0 {
			// Fine only right after a reset, which asks for 0 first.
			t.Errorf("query %d asked for %d after %d without a reset: %v", i, q[i], q[i-1], q)
		}
	}
	if nextIndex(5, 0) != 0 || nextIndex(0, 0) != 1 || nextIndex(3, 7) != 7 || nextIndex(7, 3) != 0 {
		t.Error("nextIndex does not follow the documented rules")
	}
}

// TestProvider_TokenAndDatacenter: the ACL token and datacenter of the
// options are sent; a wrong one is an error event that says so.
func TestProvider_TokenAndDatacenter(t *testing.T) {
	f := newFakeConsul(t, "s3cret")
	f.put(agentReg(testInstance(0)))
	opts := testOptions(f.addr())
	opts.Token, opts.Datacenter = "s3cret", "dc1"
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	until(t, p.Watch(t.Context()), "api-0")

	opts.Token = "wrong"
	p, _ = New(opts)
	if ev := next(t, p.Watch(t.Context())); ev.Err == nil || !strings.Contains(ev.Err.Error(), "ACL not found") {
		t.Errorf("with a wrong token: %v, want an error saying ACL not found", ev.Err)
	} else if strings.Contains(ev.Err.Error(), "wrong") {
		t.Errorf("the error shows the token: %v", ev.Err)
	}
	opts.Token, opts.Datacenter = "s3cret", "dc9"
	p, _ = New(opts)
	if ev := next(t, p.Watch(t.Context())); ev.Err == nil || !strings.Contains(ev.Err.Error(), "No path to datacenter") {
		t.Errorf("with an unknown datacenter: %v, want an error", ev.Err)
	}
}

func TestProvider_UnreachableAtStart(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close() // nothing listens there now
	p, err := New(testOptions(addr))
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, p.Watch(t.Context()))
	if ev.Err == nil || !strings.Contains(ev.Err.Error(), addr) || ev.Instances != nil {
		t.Fatalf("first event %+v, want an error naming %s and no set", ev, addr)
	}
}

func TestProvider_SkipsMalformedEntries(t *testing.T) {
	f := newFakeConsul(t, "")
	f.put(agentReg(testInstance(0)))
	f.put(api.AgentServiceRegistration{ID: "no-port", Name: "api", Address: "10.0.0.9"})
	f.put(api.AgentServiceRegistration{ID: "heavy", Name: "api", Address: "10.0.0.9", Port: 80, Weights: &api.AgentWeights{Passing: 5000}})
	f.put(api.AgentServiceRegistration{ID: "node-address", Name: "api", Port: 81}) // the node's address is used
	p, err := New(testOptions(f.addr()))
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, p.Watch(t.Context()))
	if ev.Err != nil || ids(ev.Instances) != "api-0 node-address" {
		t.Fatalf("got %q (err %v), want api-0 node-address", ids(ev.Instances), ev.Err)
	}
	if u := ev.Instances[1].URL.String(); u != "http://127.0.0.1:81" {
		t.Errorf("node-address: URL %s, want the node's address http://127.0.0.1:81", u)
	}
}

// TestRegistrar_Registration checks what is sent to the agent: the check of
// the options with DeregisterCriticalServiceAfter, the weight, the Meta with
// the scheme of an https instance.
func TestRegistrar_Registration(t *testing.T) {
	f := newFakeConsul(t, "")
	opts := testOptions(f.addr())
	opts.Check, opts.HealthPath, opts.CheckInterval, opts.DeregisterCriticalAfter = CheckHTTP, "/healthz", time.Hour, 90*time.Second
	r, err := NewRegistrar(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	in := testInstance(3)
	in.URL = &url.URL{Scheme: "https", Host: "10.1.2.3:8443"}
	if err := r.Register(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	regs := f.registrations()
	if len(regs) != 1 {
		t.Fatalf("%d registrations, want 1", len(regs))
	}
	reg := regs[0]
	c := reg.Check
	if c == nil || c.HTTP != "https://10.1.2.3:8443/healthz" || c.Interval != "1h0m0s" || c.DeregisterCriticalServiceAfter != "1m30s" || c.Status != api.HealthPassing {
		t.Errorf("check %+v, want an HTTP check of https://10.1.2.3:8443/healthz every 1h, deregistered after 1m30s critical", c)
	}
	if reg.Address != "10.1.2.3" || reg.Port != 8443 || reg.Weights.Passing != 4 || reg.Meta[metaScheme] != "https" || reg.Meta["version"] != "v1" {
		t.Errorf("registration %+v", reg)
	}
	p, _ := New(testOptions(f.addr()))
	ev := next(t, p.Watch(t.Context()))
	if len(ev.Instances) != 1 || !ev.Instances[0].Equal(in) {
		t.Errorf("provider delivers %+v, want %+v", ev.Instances, in)
	}
}

// TestRegistrar_KeepsTTLAndReregisters: the TTL check is renewed in the
// background, so the instance stays passing beyond its TTL; an agent that
// lost the registration gets it again; after Close the TTL runs out.
func TestRegistrar_KeepsTTLAndReregisters(t *testing.T) {
	f := newFakeConsul(t, "")
	opts := testOptions(f.addr())
	opts.CheckTTL = time.Second
	r, err := NewRegistrar(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(t.Context(), testInstance(0)); err != nil {
		t.Fatal(err)
	}
	// Past three TTLs, renewals must have come (else the check is critical).
	p, _ := New(testOptions(f.addr()))
	ch := p.Watch(t.Context())
	until(t, ch, "api-0")
	passingFor := time.Now().Add(3 * time.Second)
	for time.Now().Before(passingFor) {
		if st, _, _ := f.status("api-0"); st != api.HealthPassing {
			t.Fatalf("check %s before three TTLs were over: the TTL is not renewed", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.forget()
	until(t, ch, "")
	until(t, ch, "api-0") // registered again by the keeper
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	until(t, ch, "") // the TTL ran out: critical, not passing
	if _, _, ok := f.status("api-0"); !ok {
		t.Error("Close deregistered the instance; it must leave it to its TTL")
	}
}

// TestRegistrar_HTTPCheckFollowsTheInstance: with an HTTP check the agent's
// probes decide; SetHealth(false) puts the service in maintenance on top.
func TestRegistrar_HTTPCheckFollowsTheInstance(t *testing.T) {
	f := newFakeConsul(t, "")
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	opts := testOptions(f.addr())
	opts.Check, opts.CheckInterval = CheckHTTP, 50*time.Millisecond
	r, err := NewRegistrar(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	in := testInstance(0)
	in.URL, _ = url.Parse(srv.URL)
	if err := r.Register(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	p, _ := New(testOptions(f.addr()))
	ch := p.Watch(t.Context())
	until(t, ch, "api-0")
	failing.Store(true)
	until(t, ch, "")
	failing.Store(false)
	until(t, ch, "api-0")
	if err := r.SetHealth(t.Context(), "api-0", false); err != nil {
		t.Fatal(err)
	}
	until(t, ch, "")
	if _, maint, _ := f.status("api-0"); !maint {
		t.Error("SetHealth(false) with an HTTP check did not enable maintenance mode")
	}
	if err := r.SetHealth(t.Context(), "api-0", true); err != nil {
		t.Fatal(err)
	}
	until(t, ch, "api-0")
}

func TestRegistrar_RefusesBadInstances(t *testing.T) {
	f := newFakeConsul(t, "")
	r, err := NewRegistrar(testOptions(f.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for name, in := range map[string]discovery.Instance{
		"slash":     {ID: "a/b", URL: testInstance(0).URL},
		"no url":    {ID: "x"},
		"own meta":  {ID: "x", URL: testInstance(0).URL, Meta: map[string]string{metaDraining: "true"}},
		"meta char": {ID: "x", URL: testInstance(0).URL, Meta: map[string]string{"a.b": "1"}},
	} {
		var invalid *discovery.InvalidInstanceError
		if err := r.Register(t.Context(), in); err == nil || !asInvalid(err, &invalid) {
			t.Errorf("%s: Register = %v, want an InvalidInstanceError", name, err)
		}
	}
	if len(f.registrations()) != 0 {
		t.Error("an invalid instance reached the agent")
	}
}

func asInvalid(err error, target **discovery.InvalidInstanceError) bool {
	e, ok := err.(*discovery.InvalidInstanceError)
	*target = e
	return ok
}

func TestOptions_Validate(t *testing.T) {
	for _, o := range []Options{
		{Service: ""},
		{Service: "api", Address: "nohost"},
		{Service: "api", Check: "tcp"},
		{Service: "api", HealthPath: "health"},
		{Service: "api", CheckTTL: time.Millisecond},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", o)
		}
	}
	if err := (Options{Service: "api", Address: "https://consul.internal:8501"}).Validate(); err != nil {
		t.Errorf("https address refused: %v", err)
	}
}

func TestWatchKey(t *testing.T) {
	f := newFakeConsul(t, "tok")
	opts := Options{Address: f.addr(), Token: "tok", WaitTime: 2 * time.Second, RetryMax: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := WatchKey(ctx, opts, "config/api")
	if err != nil {
		t.Fatal(err)
	}
	read := func() KeyEvent {
		t.Helper()
		select {
		case ev := <-ch:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no key event within 10s")
		}
		return KeyEvent{}
	}
	if ev := read(); ev.Err != nil || ev.Exists {
		t.Fatalf("first event %+v, want the key absent", ev)
	}
	f.putKey("config/api", `{"feature": true}`)
	if ev := read(); !ev.Exists || string(ev.Value) != `{"feature": true}` {
		t.Fatalf("after put: %+v", ev)
	}
	f.putKey("config/other", "x") // the index moves, the key does not: no event
	f.putKey("config/api", "v2")
	if ev := read(); string(ev.Value) != "v2" {
		t.Fatalf("after change: %+v (an unchanged value must not be sent)", ev)
	}
	if v, ok, err := ReadKey(t.Context(), opts, "config/api"); err != nil || !ok || string(v) != "v2" {
		t.Errorf("ReadKey = %q %v %v", v, ok, err)
	}
	f.fail(true)
	if ev := read(); ev.Err == nil {
		t.Fatalf("during an outage: %+v, want an error", ev)
	}
	f.fail(false)
	if ev := read(); string(ev.Value) != "v2" {
		t.Fatalf("after the outage: %+v, want v2 again", ev)
	}
	f.deleteKey("config/api")
	if ev := read(); ev.Exists {
		t.Fatalf("after delete: %+v", ev)
	}
	cancel()
	for range ch {
	}
	if _, err := WatchKey(t.Context(), opts, "/leading"); err == nil {
		t.Error("a key with a leading / was accepted")
	}
}
