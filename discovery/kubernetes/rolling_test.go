package kubernetes

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/proxy"
)

// pod is a real HTTP server on its own loopback address, all pods on the same
// port, as pods of one Deployment are.
type pod struct {
	name, addr string
	srv        *http.Server
	done       chan struct{}
}

func startPod(t *testing.T, name, ip string, port int) *pod {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Skipf("cannot listen on %s:%d (%v); the loopback range 127.0.0.0/8 is needed", ip, port, err)
	}
	p := &pod{name: name, addr: ip, done: make(chan struct{})}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, name)
	})}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	t.Cleanup(func() { p.srv.Close(); <-p.done })
	return p
}

// stop shuts the pod down gracefully, as the kubelet's SIGTERM would.
func (p *pod) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		t.Errorf("%s did not shut down: %v", p.name, err)
	}
}

// TestRollingUpdate_UnderProxyLoad replaces three pods one at a time, as a
// Deployment's rolling update does — the new pod's endpoint appears not
// ready, becomes ready; the old one's turns terminating (still serving) and
// then the pod stops and its endpoint goes — while a real shoal proxy serves
// a steady load over the provider. No request may fail.
func TestRollingUpdate_UnderProxyLoad(t *testing.T) {
	c := newCluster(t)
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	prov, err := New(Options{Namespace: "shop", Service: "api", Port: port, Client: c, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]int32{"http": int32(port)}

	var old, fresh []*pod
	for i := range 3 {
		old = append(old, startPod(t, fmt.Sprintf("old-%d", i), fmt.Sprintf("127.0.0.%d", 2+i), port))
		fresh = append(fresh, startPod(t, fmt.Sprintf("new-%d", i), fmt.Sprintf("127.0.0.%d", 5+i), port))
	}
	eps := map[string]endpoint{}
	write := func() {
		var list []endpoint
		for _, e := range eps {
			list = append(list, e)
		}
		c.put(t, endpointSlice("shop", "api-9f8x2", "api", ports, list...))
	}
	for _, p := range old {
		eps[p.name] = endpoint{addr: p.addr, ready: true, serving: true, pod: p.name}
	}
	write()

	px, err := proxy.New(proxy.Options{
		HealthCheck: proxy.HealthCheck{Path: "/", Interval: 200 * time.Millisecond, Timeout: time.Second},
		MaxFailures: 3, FailureTimeout: 5 * time.Second, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Go(func() { _ = px.Serve(ctx, pln, proxy.ServerOptions{DrainTimeout: time.Second}) })
	bg.Go(func() { px.Watch(ctx, prov) })
	defer func() { cancel(); bg.Wait(); px.Close() }()

	url := func(p *pod) string { return "http://" + net.JoinHostPort(p.addr, strconv.Itoa(port)) }
	routed := func(want ...*pod) {
		t.Helper()
		var ids []string
		for _, p := range want {
			ids = append(ids, url(p))
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			var got []string
			for _, u := range px.Status() {
				if !u.Draining {
					got = append(got, u.ID)
				}
			}
			if strings.Join(got, " ") == strings.Join(ids, " ") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the proxy routes to %v, want %v", got, ids)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	gone := func(p *pod) { // not routed, and its in-flight requests finished
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			still := false
			for _, u := range px.Status() {
				still = still || u.ID == url(p)
			}
			if !still {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still in the proxy after 30s", p.name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	routed(old...)

	var okN, failN atomic.Int64
	var firstErr atomic.Value
	answered := sync.Map{}
	lctx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for range 4 {
		load.Go(func() {
			for n := 0; lctx.Err() == nil && n < 1_000_000; n++ {
				resp, err := client.Get("http://" + pln.Addr().String() + "/")
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						okN.Add(1)
						answered.Store(string(body), true)
						continue
					}
					err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
				}
				failN.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		})
	}

	// settle lets the load run a while in each state of the update.
	settle := func() {
		for target := okN.Load() + 50; okN.Load() < target && failN.Load() == 0; {
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 3 {
		n, o := fresh[i], old[i]
		eps[n.name] = endpoint{addr: n.addr, pod: n.name} // scheduled, not ready
		write()
		settle()
		eps[n.name] = endpoint{addr: n.addr, ready: true, serving: true, pod: n.name}
		write()
		settle()
		eps[o.name] = endpoint{addr: o.addr, serving: true, terminating: true, pod: o.name} // deleted, still serving
		write()
		settle()
		gone(o)
		o.stop(t)
		delete(eps, o.name)
		write()
		settle()
	}
	routed(fresh...)
	for _, p := range fresh {
		deadline := time.Now().Add(30 * time.Second)
		for _, ok := answered.Load(p.name); !ok; _, ok = answered.Load(p.name) {
			if time.Now().After(deadline) {
				t.Fatalf("%s answered nothing", p.name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	stopLoad()
	load.Wait()
	t.Logf("%d requests answered, %d failed", okN.Load(), failN.Load())
	if failN.Load() > 0 {
		t.Fatalf("%d requests failed during the rolling update; the first: %v", failN.Load(), firstErr.Load())
	}
}
