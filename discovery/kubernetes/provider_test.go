package kubernetes

import (
	"context"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/klog/v2"

	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/discovery/discoverytest"
)

func TestMain(m *testing.M) {
	if os.Getenv("KLOG") == "" {
		klog.SetOutput(io.Discard) // the informer's retries, expected in the failure tests
		klog.LogToStderr(false)
	}
	// client-go's reflector relists after a failure with its own backoff
	// (0.8s doubling, jittered up to 2x): recovery may take longer than the
	// suite's default wait.
	discoverytest.Timeout = 40 * time.Second
	goleak.VerifyTestMain(m)
	os.Exit(0)
}

// instance is the i-th test instance as the provider reports it.
func instance(i int) discovery.Instance {
	u := &url.URL{Scheme: "http", Host: addr(i) + ":8080"}
	return discovery.Instance{ID: u.String(), URL: u, Weight: 1, Meta: map[string]string{"pod": podName(i)}}
}

func podName(i int) string { return "api-" + string(rune('a'+i)) }

// index returns i for instance(i).
func index(in discovery.Instance) int {
	h := strings.TrimSuffix(strings.TrimPrefix(in.URL.Host, "10.0.0."), ":8080")
	n := 0
	for _, c := range h {
		n = n*10 + int(c-'0')
	}
	return n - 1
}

func ports() map[string]int32 { return map[string]int32{"metrics": 9090, "http": 8080} }

func TestProvider_Conformance(t *testing.T) {
	discoverytest.Exercise(t, func(t *testing.T) discoverytest.Subject {
		c := newCluster(t)
		return discoverytest.Subject{
			Provider: newProvider(t, c),
			Instance: instance,
			Apply: func(t *testing.T, instances []discovery.Instance) {
				c.recover()
				// One slice, written at once, so that no intermediate set shows
				// (merging across slices is TestProvider_NamedPortAndConditions').
				var eps []endpoint
				for _, in := range instances {
					i := index(in)
					eps = append(eps, endpoint{addr: addr(i), ready: true, serving: true, pod: podName(i)})
				}
				c.put(t, endpointSlice("shop", "api-x7k2p", "api", ports(), eps...))
			},
			Fail: func(*testing.T) { c.fail() },
		}
	})
}

// kubelet plays the part of the kubelet and the EndpointSlice controller for
// the registrar cases: Kubernetes has no registrar of shoal's (a pod's
// readiness is its registration), so these cases check that the provider
// turns what those write into the registrar contract.
type kubelet struct {
	c      *cluster
	t      *testing.T
	mu     sync.Mutex
	eps    map[string]endpoint // by instance ID
	closed bool
}

func (k *kubelet) write() {
	var eps []endpoint
	for _, e := range k.eps {
		eps = append(eps, e)
	}
	k.c.put(k.t, endpointSlice("shop", "api-abc12", "api", ports(), eps...))
}

func (k *kubelet) Register(_ context.Context, in discovery.Instance) error {
	if err := discovery.CheckInstance(in); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	i := index(in)
	k.eps[in.ID] = endpoint{addr: addr(i), ready: true, serving: true, pod: podName(i)}
	k.write()
	return nil
}

func (k *kubelet) SetHealth(_ context.Context, id string, healthy bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.eps[id]
	if !ok {
		return discovery.ErrNotRegistered
	}
	if !e.terminating {
		e.ready, e.serving = healthy, healthy // a failing readiness probe
	}
	k.eps[id] = e
	k.write()
	return nil
}

func (k *kubelet) Drain(_ context.Context, id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.eps[id]
	if !ok {
		return discovery.ErrNotRegistered
	}
	e.ready, e.serving, e.terminating = false, true, true // the pod is deleted, still serving
	k.eps[id] = e
	k.write()
	return nil
}

func (k *kubelet) Deregister(_ context.Context, id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.eps[id]; ok {
		delete(k.eps, id)
		k.write()
	}
	return nil
}

func (k *kubelet) Close() error { return nil }

func TestProvider_RegistrarConformance(t *testing.T) {
	discoverytest.ExerciseRegistrar(t, func(t *testing.T) discoverytest.RegistrarSubject {
		c := newCluster(t)
		return discoverytest.RegistrarSubject{
			Provider:  newProvider(t, c),
			Registrar: &kubelet{c: c, t: t, eps: map[string]endpoint{}},
			Instance:  instance,
			Cut: func(t *testing.T) func() {
				c.fail()
				return c.recover
			},
		}
	})
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

func describe(set []discovery.Instance) string {
	var parts []string
	for _, in := range set {
		s := in.URL.String()
		if in.Draining {
			s += "(draining)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestProvider_FiltersOtherServicesItself(t *testing.T) {
	c := newCluster(t)
	// The fake's watches ignore the label selector: slices of other
	// services and namespaces reach the informer, and must not count.
	c.put(t, endpointSlice("shop", "api-1", "api", ports(), endpoint{addr: addr(0), ready: true, serving: true}))
	ch := newProvider(t, c).Watch(t.Context())
	if got := describe(next(t, ch).Instances); got != "http://10.0.0.1:8080" {
		t.Fatalf("first set %q", got)
	}
	c.put(t, endpointSlice("shop", "web-1", "web", ports(), endpoint{addr: addr(5), ready: true, serving: true}))
	c.put(t, endpointSlice("other", "api-1", "api", ports(), endpoint{addr: addr(6), ready: true, serving: true}))
	c.put(t, endpointSlice("shop", "api-2", "api", ports(), endpoint{addr: addr(1), ready: true, serving: true}))
	if got := describe(next(t, ch).Instances); got != "http://10.0.0.1:8080 http://10.0.0.2:8080" {
		t.Fatalf("after slices of other services: %q", got)
	}
	// A slice relabelled to another service leaves.
	moved := endpointSlice("shop", "api-2", "web", ports(), endpoint{addr: addr(1), ready: true, serving: true})
	c.put(t, moved)
	if got := describe(next(t, ch).Instances); got != "http://10.0.0.1:8080" {
		t.Fatalf("after relabelling: %q", got)
	}
}

func TestProvider_NamedPortAndConditions(t *testing.T) {
	c := newCluster(t)
	ch := newProvider(t, c).Watch(t.Context())
	if got := describe(next(t, ch).Instances); got != "" {
		t.Fatalf("first set %q", got)
	}
	// "http" is the second port: it is used, not the first.
	c.put(t, endpointSlice("shop", "api-1", "api", map[string]int32{"metrics": 9090, "http": 3000},
		endpoint{addr: addr(0), ready: true, serving: true},
		endpoint{addr: addr(1), ready: false, serving: true, terminating: true},
		endpoint{addr: addr(2), ready: false, serving: false, terminating: true},
		endpoint{addr: addr(3), ready: false, serving: false}))
	if got := describe(next(t, ch).Instances); got != "http://10.0.0.1:3000 http://10.0.0.2:3000(draining)" {
		t.Fatalf("got %q", got)
	}
	// No port named http: the one numbered service_discovery.port (8080).
	c.put(t, endpointSlice("shop", "api-2", "api", map[string]int32{"web": 8080}, endpoint{addr: addr(4), ready: true, serving: true}))
	if got := describe(next(t, ch).Instances); got != "http://10.0.0.1:3000 http://10.0.0.2:3000(draining) http://10.0.0.5:8080" {
		t.Fatalf("got %q", got)
	}
	// Neither: the slice adds nothing (and a warning is logged).
	c.put(t, endpointSlice("shop", "api-3", "api", map[string]int32{"grpc": 9000}, endpoint{addr: addr(5), ready: true, serving: true}))
	c.drop(t, "shop", "api-2")
	if got := describe(next(t, ch).Instances); got != "http://10.0.0.1:3000 http://10.0.0.2:3000(draining)" {
		t.Fatalf("got %q", got)
	}
	// The same address in two slices (a hand-over): one instance, not draining.
	c.put(t, endpointSlice("shop", "api-4", "api", map[string]int32{"http": 3000}, endpoint{addr: addr(1), ready: true, serving: true}))
	if got := describe(next(t, ch).Instances); got != "http://10.0.0.1:3000 http://10.0.0.2:3000" {
		t.Fatalf("got %q", got)
	}
}

func TestProvider_UnreachableAtStart(t *testing.T) {
	c := newCluster(t)
	c.fail()
	ch := newProvider(t, c).Watch(t.Context())
	if ev := next(t, ch); ev.Err == nil || !strings.Contains(ev.Err.Error(), "shop/api") {
		t.Fatalf("got %+v, want an error naming shop/api", ev)
	}
	c.recover()
	c.put(t, endpointSlice("shop", "api-1", "api", ports(), endpoint{addr: addr(0), ready: true, serving: true}))
	for {
		ev := next(t, ch)
		if ev.Err == nil {
			if got := describe(ev.Instances); got != "http://10.0.0.1:8080" {
				t.Fatalf("after recovery: %q", got)
			}
			return
		}
	}
}

func TestNew_Refuses(t *testing.T) {
	if _, err := New(Options{Client: newCluster(t)}); err == nil || !strings.Contains(err.Error(), "Service") {
		t.Fatalf("no service: %v", err)
	}
	t.Setenv("KUBECONFIG", "/nonexistent/kubeconfig")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := New(Options{Service: "api"}); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Fatalf("no cluster, no kubeconfig: %v", err)
	}
}
