package discovery_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/discovery/discoverytest"
)

func TestSet_RegistrarConformance(t *testing.T) {
	discoverytest.ExerciseRegistrar(t, func(t *testing.T) discoverytest.RegistrarSubject {
		s := discovery.NewSet()
		return discoverytest.RegistrarSubject{
			Provider: s, Registrar: s,
			Instance: func(i int) discovery.Instance {
				in := inst(9100 + i)
				in.ID = "api-" + string(rune('a'+i))
				in.Meta = map[string]string{"zone": "z1"}
				return in
			},
		}
	})
}

func TestTracker_Status(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	s := discovery.NewSet(inst(1))
	tr := discovery.Track("test source", s, clock)
	if st := tr.Status(); st.Synced || st.Source != "test source" {
		t.Fatalf("before any watch: %+v", st)
	}
	ch, _ := watch(t, tr)
	expectIDs(t, ch, inst(1).ID)
	st := tr.Status()
	if !st.Synced || st.Instances != 1 || !st.Changed.Equal(now) || st.Error != "" {
		t.Fatalf("after the first set: %+v", st)
	}
	first := now
	advance(time.Minute)
	if err := s.Drain(t.Context(), inst(1).ID); err != nil {
		t.Fatal(err)
	}
	next(t, ch)
	if st := tr.Status(); st.Draining != 1 || st.Instances != 1 || !st.Changed.After(first) {
		t.Fatalf("after a drain: %+v", st)
	}
}

func TestTracker_ErrorKeepsLastSet(t *testing.T) {
	p := &scripted{events: make(chan discovery.Event, 4)}
	tr := discovery.Track("scripted", p, nil)
	ch, _ := watch(t, tr)
	p.events <- discovery.Event{Instances: []discovery.Instance{inst(1), inst(2)}}
	expectIDs(t, ch, inst(1).ID, inst(2).ID)
	boom := errors.New("registry unreachable")
	p.events <- discovery.Event{Err: boom}
	expectErr(t, ch, boom)
	st := tr.Status()
	if st.Instances != 2 || st.Error != boom.Error() || st.ErrorSince.IsZero() {
		t.Fatalf("after an error: %+v, want the last good set of 2 and the error", st)
	}
	p.events <- discovery.Event{Instances: []discovery.Instance{inst(1), inst(2)}}
	expectIDs(t, ch, inst(1).ID, inst(2).ID) // recovery is delivered even unchanged
	if st := tr.Status(); st.Error != "" || !st.ErrorSince.IsZero() {
		t.Fatalf("after recovery: %+v", st)
	}
}

// scripted is a provider whose one watch delivers what the test sends.
type scripted struct{ events chan discovery.Event }

func (p *scripted) Watch(ctx context.Context) <-chan discovery.Event {
	f, ch := discovery.NewFeed()
	go func() {
		defer f.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-p.events:
				f.Send(ev)
			}
		}
	}()
	return ch
}

func TestNewProvider_UnknownAndUnlinkedMethods(t *testing.T) {
	cfg := testConfig(t, "etcd")
	_, err := discovery.NewProvider(cfg, discovery.BackendOptions{})
	if err == nil || !strings.Contains(err.Error(), "discovery/etcd") {
		t.Fatalf("unlinked etcd: %v, want a hint to import discovery/etcd", err)
	}
	cfg.Scaling.ServiceDiscovery.Method = "zookeeper"
	if _, err := discovery.NewProvider(cfg, discovery.BackendOptions{}); err == nil {
		t.Fatal("unknown method: no error")
	}
	cfg.Scaling.ServiceDiscovery.Method = "static"
	if _, err := discovery.NewRegistrar(cfg, discovery.BackendOptions{}); !errors.Is(err, discovery.ErrNoRegistry) {
		t.Fatalf("static registrar: %v, want ErrNoRegistry", err)
	}
	p, err := discovery.NewProvider(cfg, discovery.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); !strings.HasPrefix(st.Source, "static") {
		t.Fatalf("source %q", st.Source)
	}
}

func testConfig(t *testing.T, method string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("name: api\nscaling:\n  service_discovery:\n    method: "+method+"\n    static:\n      instances: [{url: \"http://127.0.0.1:9001\"}]\n  instances:\n    shutdown: {drain_timeout: 10ms}\n"), "shoal.yml", config.Options{NoDotEnv: true, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// recorder is a Registrar that records the calls made to it.
type recorder struct {
	*discovery.Set
	mu    sync.Mutex
	calls []string
	fail  int // Register fails this many times first
}

func (r *recorder) record(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *recorder) Register(ctx context.Context, in discovery.Instance) error {
	r.mu.Lock()
	fail := r.fail > 0
	r.fail--
	r.mu.Unlock()
	if fail {
		r.record("register-failed")
		return errors.New("registry unreachable")
	}
	r.record("register " + in.ID)
	return r.Set.Register(ctx, in)
}
func (r *recorder) SetHealth(ctx context.Context, id string, ok bool) error {
	if ok {
		r.record("healthy")
	} else {
		r.record("unhealthy")
	}
	return r.Set.SetHealth(ctx, id, ok)
}
func (r *recorder) Drain(ctx context.Context, id string) error {
	r.record("drain")
	return r.Set.Drain(ctx, id)
}
func (r *recorder) Deregister(ctx context.Context, id string) error {
	r.record("deregister")
	return r.Set.Deregister(ctx, id)
}
func (r *recorder) Close() error { r.record("close"); return nil }

func (r *recorder) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.calls, ", ")
}

// health is a HealthReporter the test switches.
type health struct {
	mu       sync.Mutex
	ok       bool
	draining bool
}

func (h *health) Ready() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok && !h.draining, ""
}
func (h *health) SetDraining(d bool) { h.mu.Lock(); h.draining = d; h.mu.Unlock() }

func TestRegisterSelf(t *testing.T) {
	cfg := testConfig(t, "static")
	cfg.Scaling.ServiceDiscovery.HealthCheck.Interval = config.Duration(5 * time.Millisecond)
	rec := &recorder{Set: discovery.NewSet(), fail: 2}
	h := &health{ok: true}
	ctx, cancel := context.WithCancel(t.Context())
	ch, _ := watch(t, rec.Set)
	expectIDs(t, ch)
	self, err := discovery.RegisterSelf(ctx, cfg, discovery.WithRegistrar(rec), discovery.WithID("api-7"),
		discovery.WithAddress("10.1.2.3", 8080), discovery.WithHealth(h), discovery.WithoutSignals(),
		discovery.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	<-self.Registered()
	ev := next(t, ch)
	if len(ev.Instances) != 1 || ev.Instances[0].URL.String() != "http://10.1.2.3:8080" || ev.Instances[0].ID != "api-7" {
		t.Fatalf("registered %+v", ev.Instances)
	}
	h.mu.Lock()
	h.ok = false
	h.mu.Unlock()
	expectIDs(t, ch) // unhealthy: not delivered
	h.mu.Lock()
	h.ok = true
	h.mu.Unlock()
	expectIDs(t, ch, "api-7")

	cancel() // leave: drain, wait drain_timeout, deregister
	select {
	case <-self.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("not done 10s after the context was cancelled")
	}
	if err := self.Leave(t.Context()); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	want := "register-failed, register-failed, register api-7, unhealthy, healthy, drain, deregister, close"
	if got := rec.log(); got != want {
		t.Fatalf("calls:\n got  %s\n want %s", got, want)
	}
	if !h.draining {
		t.Error("the health reporter was not told to drain")
	}
}

func TestRegisterSelf_Refuses(t *testing.T) {
	cfg := testConfig(t, "static")
	if _, err := discovery.RegisterSelf(t.Context(), cfg, discovery.WithAddress("10.0.0.1", 80)); !errors.Is(err, discovery.ErrNoRegistry) {
		t.Fatalf("static: %v, want ErrNoRegistry", err)
	}
	var invalid *discovery.InvalidInstanceError
	_, err := discovery.RegisterSelf(t.Context(), cfg, discovery.WithRegistrar(discovery.NewSet()), discovery.WithScheme("ftp"),
		discovery.WithAddress("10.0.0.1", 80), discovery.WithoutSignals())
	if !errors.As(err, &invalid) {
		t.Fatalf("ftp scheme: %v, want *InvalidInstanceError", err)
	}
}

func TestSameURL(t *testing.T) {
	a := &url.URL{Scheme: "http", Host: "10.0.0.1:80"}
	b := &url.URL{Scheme: "http", Host: "10.0.0.1:80"}
	c := &url.URL{Scheme: "http", Host: "10.0.0.1:80", Path: "/x"}
	if !discovery.SameURL(a, b) || discovery.SameURL(a, c) || discovery.SameURL(a, nil) || !discovery.SameURL(nil, nil) {
		t.Fatal("SameURL disagrees with String()")
	}
	if n := testing.AllocsPerRun(100, func() { discovery.SameURL(a, b) }); n != 0 {
		t.Fatalf("SameURL allocates %v times", n)
	}
}

func TestLocalIP(t *testing.T) {
	t.Setenv("POD_IP", "10.9.8.7")
	if ip, err := discovery.LocalIP(); err != nil || ip.String() != "10.9.8.7" {
		t.Fatalf("with POD_IP: %v %v", ip, err)
	}
	t.Setenv("POD_IP", "")
	ip, err := discovery.LocalIP()
	if err == nil && (!ip.IsGlobalUnicast() || ip.IsLoopback()) {
		t.Fatalf("LocalIP = %v, not a global unicast address", ip)
	}
}
