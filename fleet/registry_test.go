package fleet

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
)

// recordingRegistrar is a registry in memory (discovery.Set, which implements the
// Registrar contract) that records the calls it gets, in order.
type recordingRegistrar struct {
	*discovery.Set
	mu    sync.Mutex
	calls []call
}

type call struct {
	op, id string
	at     time.Time
}

func (r *recordingRegistrar) record(op, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{op, id, time.Now()})
}

func (r *recordingRegistrar) Register(ctx context.Context, in discovery.Instance) error {
	r.record("register", in.ID)
	return r.Set.Register(ctx, in)
}

func (r *recordingRegistrar) Drain(ctx context.Context, id string) error {
	r.record("drain", id)
	return r.Set.Drain(ctx, id)
}

func (r *recordingRegistrar) Deregister(ctx context.Context, id string) error {
	r.record("deregister", id)
	return r.Set.Deregister(ctx, id)
}

func (r *recordingRegistrar) of(id string) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if c.id == id {
			out = append(out, c)
		}
	}
	return out
}

// TestFleet_RegistersWithTheRegistrar: ready instances are registered at the advertised
// address; scaling down drains the victim in the registry, waits drain_timeout, then
// deregisters it; Stop does the same for the rest.
func TestFleet_RegistersWithTheRegistrar(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1, 3)
	drain := 600 * time.Millisecond
	cfg.Scaling.Instances.Shutdown.DrainTimeout = config.Duration(drain)
	reg := &recordingRegistrar{Set: discovery.NewSet()}
	tracker := discovery.Track("test source", discovery.NewSet(), nil)
	h := start(t, cfg, []string{quickstart}, func(o *Options) {
		o.Registrar, o.Registry, o.AdvertiseHost, o.Discovery = reg, "test registry", "10.9.8.7", tracker
	})
	if err := h.f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.f.Scale(context.Background(), 2, "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both instances registered", func() bool { return len(reg.Instances()) == 2 })
	for _, in := range reg.Instances() {
		if in.URL.Hostname() != "10.9.8.7" || in.URL.Port() == "" {
			t.Errorf("registered %s at %s, want the advertised host 10.9.8.7", in.ID, in.URL)
		}
	}
	st := h.f.Status(context.Background())
	if st.Registry != "test registry" || st.Discovery == nil || st.Discovery.Source != "test source" {
		t.Errorf("status registry %q, discovery %+v", st.Registry, st.Discovery)
	}
	if _, err := h.f.Scale(context.Background(), 1, "test"); err != nil {
		t.Fatal(err)
	}
	victim := "qs-2"
	calls := reg.of(victim)
	if len(calls) != 3 || calls[0].op != "register" || calls[1].op != "drain" || calls[2].op != "deregister" {
		t.Fatalf("registry calls for %s: %+v, want register, drain, deregister", victim, calls)
	}
	if waited := calls[2].at.Sub(calls[1].at); waited < drain {
		t.Errorf("deregistered %s after draining it in the registry, want drain_timeout %s in between", waited, drain)
	}
	if err := h.f.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left := reg.Instances(); len(left) != 0 {
		t.Errorf("after Stop the registry still has %v", left)
	}
	if c := reg.of("qs-1"); len(c) != 3 || c[1].op != "drain" || c[2].op != "deregister" {
		t.Errorf("registry calls for qs-1 at Stop: %+v", c)
	}
}
