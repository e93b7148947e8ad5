package etcd

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/discovery/discoverytest"
	"github.com/shoal-sh/shoal/internal/etcdtest"
)

var (
	serverOnce sync.Once
	shared     *etcdtest.Server
)

// server returns the etcd server the package's tests share; each test uses
// a prefix of its own. It runs until the test binary exits.
func server(t *testing.T) *etcdtest.Server {
	t.Helper()
	serverOnce.Do(func() { shared = etcdtest.StartShared(t) })
	if shared == nil {
		t.Fatal("etcd did not start")
	}
	return shared
}

// prefix returns a key prefix no other test uses.
func prefix() string { return "/shoal-test/" + strings.ToLower(rand.Text()[:10]) }

// quiet is a logger that drops everything.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testOptions returns options for the shared server (or endpoint) with a
// fresh prefix and short timers.
func testOptions(endpoint string) Options {
	return Options{Endpoints: []string{endpoint}, Prefix: prefix(), Service: "api", LeaseTTL: 2 * time.Second,
		DialTimeout: 2 * time.Second, ProbeInterval: 100 * time.Millisecond, Logger: quiet}
}

// direct returns a client of the shared server for the test to write with.
func direct(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := newClient(Options{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// Connect now, so that the connection's goroutines exist before the
	// conformance suite takes note of the running ones.
	if _, err := c.Get(t.Context(), "/"); err != nil {
		t.Fatal(err)
	}
	return c
}

// instance is the i-th test instance, as a provider reports it.
func instance(i int) discovery.Instance {
	return discovery.Instance{
		ID:     fmt.Sprintf("api-%d", i),
		URL:    &url.URL{Scheme: "http", Host: fmt.Sprintf("10.0.0.%d:8080", i+1)},
		Weight: i%3 + 1,
		Meta:   map[string]string{"zone": fmt.Sprintf("z%d", i%2)},
	}
}

func TestProvider_Conformance(t *testing.T) {
	srv := server(t)
	discoverytest.Exercise(t, func(t *testing.T) discoverytest.Subject {
		cut := discoverytest.NewCutter(t, srv.Endpoint())
		opts := testOptions(cut.Addr())
		p, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		c := direct(t, srv.Endpoint())
		var restore func()
		return discoverytest.Subject{
			Provider: p,
			Instance: instance,
			Apply: func(t *testing.T, instances []discovery.Instance) {
				if restore != nil {
					restore()
					restore = nil
				}
				resp, err := c.Get(t.Context(), opts.dir(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
				if err != nil {
					t.Fatal(err)
				}
				keep := map[string]bool{}
				var ops []clientv3.Op
				for _, in := range instances {
					keep[opts.dir()+in.ID] = true
					ops = append(ops, clientv3.OpPut(opts.dir()+in.ID, string(encode(in, true, false))))
				}
				for _, kv := range resp.Kvs {
					if !keep[string(kv.Key)] {
						ops = append(ops, clientv3.OpDelete(string(kv.Key)))
					}
				}
				if _, err := c.Txn(t.Context()).Then(ops...).Commit(); err != nil {
					t.Fatal(err)
				}
			},
			Fail: func(*testing.T) { restore = cut.Cut() },
		}
	})
}

func TestRegistrar_Conformance(t *testing.T) {
	srv := server(t)
	discoverytest.ExerciseRegistrar(t, func(t *testing.T) discoverytest.RegistrarSubject {
		cut := discoverytest.NewCutter(t, srv.Endpoint())
		opts := testOptions(cut.Addr())
		p, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		ropts := opts
		ropts.Endpoints = []string{srv.Endpoint()}
		r, err := NewRegistrar(ropts)
		if err != nil {
			t.Fatal(err)
		}
		c := direct(t, srv.Endpoint())
		return discoverytest.RegistrarSubject{
			Provider: p, Registrar: r, Instance: instance,
			Cut: func(t *testing.T) func() {
				restore := cut.Cut()
				return func() {
					// Compact past the changes made while cut, so that the provider
					// cannot resume its watch and must read the keys again.
					resp, err := c.Get(context.Background(), "/")
					if err == nil {
						_, err = c.Compact(context.Background(), resp.Header.Revision)
					}
					if err != nil {
						t.Error(err)
					}
					restore()
				}
			},
		}
	})
}
