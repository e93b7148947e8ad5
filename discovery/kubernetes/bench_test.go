package kubernetes

import (
	"fmt"
	"slices"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/proxy"
)

// fleetOf returns a watch holding n endpoints in 20 slices, already
// delivered to a proxy, and two versions of every slice that differ in one
// endpoint (ready, or gone), to alternate between.
func fleetOf(tb testing.TB, n int) (w *watch, ch <-chan discovery.Event, px *proxy.Proxy, versions [20][2]*discoveryv1.EndpointSlice, stop func()) {
	tb.Helper()
	prov := &Provider{opts: Options{Namespace: "shop", Service: "api", PortName: "http", Scheme: "http", Logger: quiet}}
	f, ch := discovery.NewFeed()
	w = &watch{p: prov, f: f, slices: map[string]*slice{}, isSynced: true}
	per := n / 20
	for s := range 20 {
		var eps []endpoint
		for e := range per {
			eps = append(eps, endpoint{addr: fmt.Sprintf("10.%d.%d.%d", s, e/250, e%250+1), ready: true, serving: true, pod: fmt.Sprintf("api-%d-%d", s, e)})
		}
		a := endpointSlice("shop", fmt.Sprintf("api-%02d", s), "api", map[string]int32{"http": 8080}, eps...)
		b := a.DeepCopy()
		b.Endpoints[0].Conditions.Ready = ptr(false)
		b.Endpoints[0].Conditions.Serving = ptr(false)
		versions[s] = [2]*discoveryv1.EndpointSlice{a, b}
		w.update(a)
	}
	px, err := proxy.New(proxy.Options{Logger: quiet}) // no active checks: the update alone is measured
	if err != nil {
		tb.Fatal(err)
	}
	px.Update((<-ch).Instances)
	return w, ch, px, versions, func() { f.Close(); px.Close() }
}

// update applies one slice update and the proxy's update from it, as
// Watch's goroutine and proxy.Watch do.
func update(w *watch, ch <-chan discovery.Event, px *proxy.Proxy, s *discoveryv1.EndpointSlice) {
	w.update(s)
	px.Update((<-ch).Instances)
}

// BenchmarkUpdate_1000In20Slices is the cost of one EndpointSlice update
// (one endpoint of 1,000 changes) from the informer's handler through the
// provider's merge, the feed, and the proxy's Update. bench/discovery.sh
// reports it.
func BenchmarkUpdate_1000In20Slices(b *testing.B) {
	w, ch, px, versions, stop := fleetOf(b, 1000)
	defer stop()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		update(w, ch, px, versions[i%20][(i/20+1)%2])
	}
}

// TestUpdate_AllocationsPerUnchangedInstance checks the target of
// bench/discovery.sh without timing: how the allocations of one update grow
// with the number of unchanged instances, in the provider (none) and in the
// proxy (whose rebuilt lookup maps grow with the set; docs/performance.md).
func TestUpdate_AllocationsPerUnchangedInstance(t *testing.T) {
	measure := func(n int) (provider, proxyUpdate float64) {
		w, ch, px, versions, stop := fleetOf(t, n)
		defer stop()
		i := 0
		provider = testing.AllocsPerRun(40, func() {
			w.update(versions[i%20][(i/20+1)%2])
			<-ch
			i++
		})
		// Slice 0 is in either version now: put it in the first (an event,
		// or none when it already was), then alternate.
		w.update(versions[0][0])
		select {
		case <-ch:
		default:
		}
		w.update(versions[0][1])
		a := (<-ch).Instances
		w.update(versions[0][0])
		b := (<-ch).Instances
		i = 0
		proxyUpdate = testing.AllocsPerRun(40, func() {
			if i%2 == 0 {
				px.Update(a)
			} else {
				px.Update(b)
			}
			i++
		})
		return provider, proxyUpdate
	}
	p1, x1 := measure(1000)
	p4, x4 := measure(4000)
	t.Logf("allocations per update: provider %.0f with 1,000 instances, %.0f with 4,000; proxy.Update %.0f and %.0f", p1, p4, x1, x4)
	if p4 != p1 {
		t.Errorf("the provider allocates %.0f times per update with 1,000 instances and %.0f with 4,000: unchanged instances allocate", p1, p4)
	}
	// The proxy rebuilds its lookup maps on every update: their groups grow
	// with the set (a few hundredths of an allocation per instance), which
	// this bounds well below one allocation per unchanged instance.
	if per := (x4 - x1) / 3000; per > 0.1 {
		t.Errorf("proxy.Update allocates %.2f more times per additional unchanged instance", per)
	}
}

// BenchmarkProxyUpdate_1000 is the proxy's part alone: proxy.Update with
// 1,000 instances of which one changed since the last update.
func BenchmarkProxyUpdate_1000(b *testing.B) {
	w, ch, px, versions, stop := fleetOf(b, 1000)
	defer stop()
	w.update(versions[0][1])
	sets := [2][]discovery.Instance{(<-ch).Instances, nil}
	w.update(versions[0][0])
	sets[1] = (<-ch).Instances
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		px.Update(sets[i%2])
	}
}

// BenchmarkProviderUpdate_1000In20Slices is the provider's part alone: one
// slice update merged into the set of 1,000 and handed to the feed.
func BenchmarkProviderUpdate_1000In20Slices(b *testing.B) {
	w, ch, _, versions, stop := fleetOf(b, 1000)
	defer stop()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w.update(versions[i%20][(i/20+1)%2])
		<-ch
	}
}

// BenchmarkSliceToRouted measures the time from an EndpointSlice write (an
// endpoint turning ready, then not) to a real proxy routing (or no longer
// routing) to it, through the informer on client-go's FAKE clientset (no API
// server runs here: the API server's and the network's share is not in it);
// bench/discovery.sh reports the p99s (target: 100ms).
func BenchmarkSliceToRouted(b *testing.B) {
	c := newCluster(b)
	p, err := New(Options{Namespace: "shop", Service: "api", Port: 8080, Client: c, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	px, err := proxy.New(proxy.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer px.Close()
	go px.Watch(b.Context(), p)
	base := endpoint{addr: "10.1.0.1", ready: true, serving: true, pod: "api-base"}
	c.put(b, endpointSlice("shop", "api-bench", "api", map[string]int32{"http": 8080}, base))
	waitRouting(b, px, "http://10.1.0.1:8080", true)
	var up, down []time.Duration
	b.ResetTimer()
	for i := range b.N {
		e := endpoint{addr: fmt.Sprintf("10.2.%d.%d", i/250%250, i%250+1), ready: true, serving: true, pod: fmt.Sprintf("api-%d", i)}
		id := "http://" + e.addr + ":8080"
		began := time.Now()
		c.put(b, endpointSlice("shop", "api-bench", "api", map[string]int32{"http": 8080}, base, e))
		waitRouting(b, px, id, true)
		up = append(up, time.Since(began))
		began = time.Now()
		c.put(b, endpointSlice("shop", "api-bench", "api", map[string]int32{"http": 8080}, base))
		waitRouting(b, px, id, false)
		down = append(down, time.Since(began))
	}
	b.ReportMetric(p99ms(up), "p99-register-ms")
	b.ReportMetric(p99ms(down), "p99-deregister-ms")
}

func waitRouting(b *testing.B, px *proxy.Proxy, id string, want bool) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		routed := false
		for _, u := range px.Status() {
			routed = routed || (u.ID == id && !u.Draining)
		}
		if routed == want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s routed=%v after 10s", id, routed)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func p99ms(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return float64(s[min(len(s)-1, len(s)*99/100)]) / float64(time.Millisecond)
}
