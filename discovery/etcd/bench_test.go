package etcd

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/internal/etcdtest"
	"github.com/shoal-sh/shoal/proxy"
)

// BenchmarkRegisterToRouted measures, per iteration, the time from Register
// to a real proxy routing to the instance, and from Deregister to the proxy
// no longer routing to it, over the etcd watch; bench/discovery.sh reports the
// p99s (target: 100ms).
func BenchmarkRegisterToRouted(b *testing.B) {
	srv := etcdtestShared(b)
	opts := testOptions(srv.Endpoint())
	p, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewRegistrar(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	px, err := proxy.New(proxy.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer px.Close()
	ctx := b.Context()
	go px.Watch(ctx, p)
	var reg, dereg []time.Duration
	b.ResetTimer()
	for i := range b.N {
		in := instance(i % 8)
		in.ID = fmt.Sprintf("bench-%d", i)
		began := time.Now()
		if err := r.Register(ctx, in); err != nil {
			b.Fatal(err)
		}
		waitRouting(b, px, in.ID, true)
		reg = append(reg, time.Since(began))
		began = time.Now()
		if err := r.Deregister(ctx, in.ID); err != nil {
			b.Fatal(err)
		}
		waitRouting(b, px, in.ID, false)
		dereg = append(dereg, time.Since(began))
	}
	b.ReportMetric(p99(reg), "p99-register-ms")
	b.ReportMetric(p99(dereg), "p99-deregister-ms")
}

func etcdtestShared(b *testing.B) *etcdtest.Server {
	b.Helper()
	serverOnce.Do(func() { shared = etcdtest.StartShared(b) })
	if shared == nil {
		b.Fatal("etcd did not start")
	}
	return shared
}

// waitRouting polls the proxy until it routes (or no longer routes) to id.
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

// p99 returns the 99th percentile of ds in milliseconds.
func p99(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*99/100)]) / float64(time.Millisecond)
}
