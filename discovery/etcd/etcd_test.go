package etcd

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-sh/shoal/discovery"
)

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
		out = append(out, in.ID)
	}
	return strings.Join(out, " ")
}

func TestProvider_SkipsMalformedKeys(t *testing.T) {
	srv := server(t)
	opts := testOptions(srv.Endpoint())
	c := direct(t, srv.Endpoint())
	good := instance(0)
	for key, value := range map[string]string{
		opts.dir() + good.ID:       string(encode(good, true, false)),
		opts.dir() + "not-json":    "{oops",
		opts.dir() + "ftp":         `{"url": "ftp://10.0.0.9:21", "healthy": true}`,
		opts.dir() + "with-path":   `{"url": "http://10.0.0.9:80/api", "healthy": true}`,
		opts.dir() + "heavy":       `{"url": "http://10.0.0.9:80", "weight": 5000, "healthy": true}`,
		opts.dir() + "nested/deep": string(encode(instance(1), true, false)),
		opts.dir() + "sick":        string(encode(instance(2), false, false)),
	} {
		if _, err := c.Put(t.Context(), key, value); err != nil {
			t.Fatal(err)
		}
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ch := p.Watch(t.Context())
	ev := next(t, ch)
	if ev.Err != nil || ids(ev.Instances) != good.ID {
		t.Fatalf("got %q (err %v), want only %s", ids(ev.Instances), ev.Err, good.ID)
	}
	// A malformed key that becomes well-formed is picked up.
	if _, err := c.Put(t.Context(), opts.dir()+"not-json", string(encode(instance(3), true, false))); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ids(ev.Instances) != "api-0 not-json" {
		t.Fatalf("got %q, want api-0 not-json", ids(ev.Instances))
	}
}

func TestProvider_UnreachableAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	opts := testOptions(addr)
	opts.DialTimeout = 200 * time.Millisecond
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, p.Watch(t.Context()))
	if ev.Err == nil || !strings.Contains(ev.Err.Error(), addr) {
		t.Fatalf("got %+v, want an error naming %s", ev, addr)
	}
}

func TestOptions_Validate(t *testing.T) {
	err := Options{Endpoints: []string{"nowhere"}, Prefix: "shoal/", Service: "a/b", LeaseTTL: time.Second}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Endpoints", "Prefix", "Service", "LeaseTTL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not name %s", err, want)
		}
	}
	if err := (Options{Service: "api"}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestRegistrar_RegistersAgainWhenTheLeaseIsLost(t *testing.T) {
	srv := server(t)
	opts := testOptions(srv.Endpoint())
	r, err := NewRegistrar(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Register(t.Context(), instance(0)); err != nil {
		t.Fatal(err)
	}
	var invalid *discovery.InvalidInstanceError
	bad := instance(1)
	bad.ID = "a/b"
	if err := r.Register(t.Context(), bad); !errors.As(err, &invalid) {
		t.Fatalf("ID with /: %v, want *InvalidInstanceError", err)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ch := p.Watch(t.Context())
	if ev := next(t, ch); ids(ev.Instances) != "api-0" {
		t.Fatalf("got %q", ids(ev.Instances))
	}
	// etcd loses the lease (as when it is revoked by an operator, or
	// expired during an outage): the key goes, and the registrar puts it
	// back on a new lease.
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	c := direct(t, srv.Endpoint())
	if _, err := c.Revoke(t.Context(), lease); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ids(ev.Instances) != "" {
		t.Fatalf("after the revocation got %q, want none", ids(ev.Instances))
	}
	if ev := next(t, ch); ids(ev.Instances) != "api-0" {
		t.Fatalf("after the new lease got %q, want api-0", ids(ev.Instances))
	}
	resp, err := c.Get(t.Context(), opts.dir()+"api-0")
	if err != nil || len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) == lease {
		t.Fatalf("key %v (err %v): want it on a new lease", resp, err)
	}
}

func TestWatch_CompactedRevisionMeansReadAgain(t *testing.T) {
	srv := server(t)
	opts := testOptions(srv.Endpoint())
	c := direct(t, srv.Endpoint())
	first, err := c.Put(t.Context(), opts.dir()+"api-0", string(encode(instance(0), true, false)))
	if err != nil {
		t.Fatal(err)
	}
	last, err := c.Put(t.Context(), opts.dir()+"api-1", string(encode(instance(1), true, false)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(t.Context(), last.Header.Revision); err != nil {
		t.Fatal(err)
	}
	p, _ := New(opts)
	f, ch := discovery.NewFeed()
	defer f.Close()
	w := watch{p: p, c: c, f: f, set: map[string]discovery.Instance{}, skipped: map[string]int64{}}
	// A watch resuming after the first put cannot: etcd compacted it away.
	if err := w.follow(t.Context(), first.Header.Revision-1); !errors.Is(err, errCompacted) {
		t.Fatalf("follow from a compacted revision: %v, want errCompacted", err)
	}
	if _, err := w.read(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ids(ev.Instances) != "api-0 api-1" {
		t.Fatalf("read again: %q", ids(ev.Instances))
	}
}
