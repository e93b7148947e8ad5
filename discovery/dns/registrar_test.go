package dns

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/discovery/discoverytest"
)

const (
	testKey    = "shoal-key."
	testSecret = "c2hvYWwtdGVzdC1zZWNyZXQtMzItYnl0ZXMtbG9uZyE=" // base64
)

// updatable starts a DNS server (a real one, miekg/dns's, on 127.0.0.1) that
// accepts updates signed with testKey, a provider of opts polling it, and a
// registrar updating it.
func updatable(t *testing.T, opts Options) (*Provider, *Registrar, *fakeDNS) {
	t.Helper()
	srv := newFakeDNSWith(t, false, map[string]string{testKey: testSecret})
	opts.Resolver = srv.addr
	opts.RefreshInterval = 20 * time.Millisecond
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRegistrar(opts, UpdateOptions{Server: srv.addr, Zone: "test", TTL: time.Minute,
		TSIGKey: testKey, TSIGSecret: testSecret, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return p, r, srv
}

func TestRegistrar_Conformance(t *testing.T) {
	t.Run("A", func(t *testing.T) {
		discoverytest.ExerciseRegistrar(t, func(t *testing.T) discoverytest.RegistrarSubject {
			p, r, srv := updatable(t, Options{Name: "api.test", Port: 8080})
			return discoverytest.RegistrarSubject{
				Provider: p, Registrar: r, DrainRemoves: true,
				Instance: func(i int) discovery.Instance {
					u := &url.URL{Scheme: "http", Host: fmt.Sprintf("10.0.0.%d:8080", i+1)}
					return discovery.Instance{ID: u.String(), URL: u, Weight: 1, Meta: map[string]string{MetaHostname: "api.test"}}
				},
				Refreshed: func(t *testing.T) { srv.refreshed(t, miekg.TypeA) },
				Cut: func(*testing.T) func() {
					srv.setMode(servfail) // queries fail; updates still apply
					return func() { srv.setMode(answer) }
				},
			}
		})
	})
	t.Run("SRV", func(t *testing.T) {
		discoverytest.ExerciseRegistrar(t, func(t *testing.T) discoverytest.RegistrarSubject {
			p, r, srv := updatable(t, Options{Name: "_http._tcp.api.test", RecordType: RecordSRV})
			return discoverytest.RegistrarSubject{
				Provider: p, Registrar: r, DrainRemoves: true,
				Instance: func(i int) discovery.Instance {
					u := &url.URL{Scheme: "http", Host: fmt.Sprintf("10.0.1.%d:%d", i+1, 9000+i)}
					return discovery.Instance{ID: u.String(), URL: u, Weight: i + 1,
						Meta: map[string]string{MetaHostname: fmt.Sprintf("10-0-1-%d-%d.test", i+1, 9000+i)}}
				},
				Refreshed: func(t *testing.T) { srv.refreshed(t, miekg.TypeSRV) },
				Cut: func(*testing.T) func() {
					srv.setMode(servfail)
					return func() { srv.setMode(answer) }
				},
			}
		})
	})
}

func TestRegistrar_Refusals(t *testing.T) {
	srv := newFakeDNSWith(t, false, map[string]string{testKey: testSecret})
	opts := Options{Name: "api.test", Port: 8080, Resolver: srv.addr}
	wrong, err := NewRegistrar(opts, UpdateOptions{Server: srv.addr, TSIGKey: testKey,
		TSIGSecret: "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	u, _ := url.Parse("http://10.0.0.1:8080")
	err = wrong.Register(t.Context(), discovery.Instance{ID: u.String(), URL: u})
	if err == nil || !strings.Contains(err.Error(), "tsig") && !strings.Contains(err.Error(), "TSIG") {
		t.Errorf("a wrongly signed update: %v, want an error about TSIG", err)
	} else if strings.Contains(err.Error(), "d3Jvbmc") {
		t.Errorf("the error shows the secret: %v", err)
	}
	unsigned, _ := NewRegistrar(opts, UpdateOptions{Server: srv.addr, Logger: quiet})
	defer unsigned.Close()
	if err := unsigned.Register(t.Context(), discovery.Instance{ID: u.String(), URL: u}); err == nil || !strings.Contains(err.Error(), "NOTAUTH") {
		t.Errorf("an unsigned update: %v, want NOTAUTH", err)
	}
	srv.configure(func(s *fakeDNS) {
		if s.updates != 0 || len(s.records) != 0 {
			t.Errorf("refused updates were applied: %d, records %v", s.updates, s.records)
		}
	})
	good, _ := NewRegistrar(opts, UpdateOptions{Server: srv.addr, TSIGKey: testKey, TSIGSecret: testSecret, Logger: quiet})
	defer good.Close()
	other, _ := url.Parse("http://10.0.0.2:9999")
	var invalid *discovery.InvalidInstanceError
	for name, in := range map[string]discovery.Instance{
		"other port": {ID: "a", URL: other},
		"host name":  {ID: "b", URL: &url.URL{Scheme: "http", Host: "api.internal:8080"}},
		"weight":     {ID: "c", URL: u, Weight: 3},
	} {
		if err := good.Register(t.Context(), in); err == nil || !errorsAs(err, &invalid) {
			t.Errorf("%s: %v, want an InvalidInstanceError", name, err)
		}
	}
	for name, uo := range map[string]UpdateOptions{
		"no server": {},
		"zone":      {Server: srv.addr, Zone: "other.example"},
		"algorithm": {Server: srv.addr, TSIGAlgorithm: "md5"},
		"secret":    {Server: srv.addr, TSIGKey: testKey, TSIGSecret: "not base64!"},
		"ttl":       {Server: srv.addr, TTL: time.Millisecond},
	} {
		if _, err := NewRegistrar(opts, uo); err == nil {
			t.Errorf("%s: NewRegistrar accepted %+v", name, uo)
		}
	}
}

func errorsAs(err error, target **discovery.InvalidInstanceError) bool {
	e, ok := err.(*discovery.InvalidInstanceError)
	*target = e
	return ok
}

// TestProvider_HonoursTTL: with a refresh interval of an hour, records with
// a TTL of 1s are resolved again when it runs out, and a change shows.
func TestProvider_HonoursTTL(t *testing.T) {
	p, srv := setup(t, Options{Name: "api.test", Port: 8080, RefreshInterval: time.Hour})
	srv.set(t, "api.test. 1 IN A 10.0.0.1")
	ch, _ := watch(t, p)
	expect(t, ch, "http://10.0.0.1:8080/1/api.test")
	srv.set(t, "api.test. 1 IN A 10.0.0.2")
	expect(t, ch, "http://10.0.0.2:8080/1/api.test")
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
