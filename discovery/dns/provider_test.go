package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/discovery/discoverytest"
)

// setup starts a fake DNS server and a provider of opts querying it every
// 20ms (unless opts say otherwise).
func setup(t *testing.T, opts Options) (*Provider, *fakeDNS) {
	t.Helper()
	srv := newFakeDNS(t, false)
	opts.Resolver = srv.addr
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = 20 * time.Millisecond
	}
	if opts.Port == 0 {
		opts.Port = 8080
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, srv
}

// watch watches p until the test ends.
func watch(t *testing.T, p *Provider) (<-chan discovery.Event, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return p.Watch(ctx), cancel
}

// next returns the next event of ch.
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

// describe prints a set as "URL/weight/hostname ..." for comparisons.
func describe(set []discovery.Instance) string {
	parts := make([]string, len(set))
	for n, i := range set {
		if i.ID != i.URL.String() {
			return fmt.Sprintf("instance ID %q is not its URL %s", i.ID, i.URL)
		}
		parts[n] = fmt.Sprintf("%s/%d/%s", i.URL, i.Weight, i.Meta[MetaHostname])
	}
	return strings.Join(parts, " ")
}

// expect checks that the next event is a set described as want.
func expect(t *testing.T, ch <-chan discovery.Event, want string) {
	t.Helper()
	ev := next(t, ch)
	if ev.Err != nil {
		t.Fatalf("got error %v, want %s", ev.Err, want)
	}
	if got := describe(ev.Instances); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// expectQueryError checks that the next event is a *QueryError and returns it.
func expectQueryError(t *testing.T, ch <-chan discovery.Event) *QueryError {
	t.Helper()
	ev := next(t, ch)
	var qe *QueryError
	if !errors.As(ev.Err, &qe) {
		t.Fatalf("got %v (instances %s), want a *QueryError", ev.Err, describe(ev.Instances))
	}
	return qe
}

func TestProvider_Conformance(t *testing.T) {
	t.Run("A", func(t *testing.T) {
		discoverytest.Exercise(t, func(t *testing.T) discoverytest.Subject {
			p, srv := setup(t, Options{Name: "api.test", Port: 8080})
			return discoverytest.Subject{
				Provider: p,
				Instance: func(i int) discovery.Instance {
					u := &url.URL{Scheme: "http", Host: fmt.Sprintf("10.0.0.%d:8080", i+1)}
					return discovery.Instance{ID: u.String(), URL: u, Weight: 1, Meta: map[string]string{MetaHostname: "api.test"}}
				},
				Apply: func(t *testing.T, instances []discovery.Instance) {
					var records []string
					for _, in := range instances {
						records = append(records, "api.test. 60 IN A "+in.URL.Hostname())
					}
					srv.set(t, records...)
				},
				Refreshed: func(t *testing.T) { srv.refreshed(t, miekg.TypeA) },
				Fail:      func(*testing.T) { srv.setMode(servfail) },
			}
		})
	})
	t.Run("SRV", func(t *testing.T) {
		discoverytest.Exercise(t, func(t *testing.T) discoverytest.Subject {
			p, srv := setup(t, Options{Name: "_http._tcp.api.test", RecordType: RecordSRV})
			srv.configure(func(s *fakeDNS) { s.glue = true })
			return discoverytest.Subject{
				Provider: p,
				Instance: func(i int) discovery.Instance {
					u := &url.URL{Scheme: "http", Host: fmt.Sprintf("10.0.1.%d:%d", i+1, 9000+i)}
					return discovery.Instance{ID: u.String(), URL: u, Weight: i + 1,
						Meta: map[string]string{MetaHostname: fmt.Sprintf("node%d.test", i)}}
				},
				Apply: func(t *testing.T, instances []discovery.Instance) {
					var records []string
					for _, in := range instances {
						host := in.Meta[MetaHostname]
						records = append(records,
							fmt.Sprintf("_http._tcp.api.test. 60 IN SRV 10 %d %s %s.", in.Weight, in.URL.Port(), host),
							fmt.Sprintf("%s. 60 IN A %s", host, in.URL.Hostname()))
					}
					srv.set(t, records...)
				},
				Refreshed: func(t *testing.T) { srv.refreshed(t, miekg.TypeSRV) },
				Fail:      func(*testing.T) { srv.setMode(servfail) },
			}
		})
	})
}

func TestProvider_Watch(t *testing.T) {
	t.Parallel()

	t.Run("ARecords", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, Options{Name: "api.test", Port: 8080})
		srv.set(t,
			"api.test. 60 IN A 10.0.0.2",
			"api.test. 60 IN A 10.0.0.1",
			"api.test. 60 IN AAAA fd00::1",
			"api.test. 60 IN A 10.0.0.1", // duplicate
			"api.test. 60 IN TXT \"ignored\"",
			"other.test. 60 IN A 10.9.9.9",
		)
		ch, _ := watch(t, p)
		expect(t, ch, "http://10.0.0.1:8080/1/api.test http://10.0.0.2:8080/1/api.test http://[fd00::1]:8080/1/api.test")

		// A record added.
		srv.set(t, "api.test. 60 IN A 10.0.0.1", "api.test. 60 IN A 10.0.0.2", "api.test. 60 IN AAAA fd00::1", "api.test. 60 IN A 10.0.0.3")
		expect(t, ch, "http://10.0.0.1:8080/1/api.test http://10.0.0.2:8080/1/api.test http://10.0.0.3:8080/1/api.test http://[fd00::1]:8080/1/api.test")
		// Records removed.
		srv.set(t, "api.test. 60 IN A 10.0.0.3")
		expect(t, ch, "http://10.0.0.3:8080/1/api.test")
		// The name vanishes: NXDOMAIN is an empty set.
		srv.set(t)
		expect(t, ch, "")
	})

	t.Run("SRVRecords", func(t *testing.T) {
		t.Parallel()
		records := []string{
			"_api._tcp.test. 60 IN SRV 10 5 9001 a.test.",
			"_api._tcp.test. 60 IN SRV 10 0 9002 b.test.",    // weight 0 counts as 1
			"_api._tcp.test. 60 IN SRV 10 3 9002 B.test.",    // same target and port: the larger weight
			"_api._tcp.test. 60 IN SRV 10 1 0 a.test.",       // port 0: skipped
			"_api._tcp.test. 60 IN SRV 10 1 9009 gone.test.", // no addresses: skipped
			"_api._tcp.test. 60 IN SRV 20 9 9003 c.test.",    // backup priority: not used
			"a.test. 60 IN A 10.0.1.1",
			"b.test. 60 IN A 10.0.1.2",
			"b.test. 60 IN AAAA fd00::2",
			"c.test. 60 IN A 10.0.1.3",
		}
		want := "http://10.0.1.1:9001/5/a.test http://10.0.1.2:9002/3/b.test http://[fd00::2]:9002/3/b.test"
		for _, glue := range []bool{true, false} {
			t.Run(fmt.Sprintf("Glue=%v", glue), func(t *testing.T) {
				t.Parallel()
				p, srv := setup(t, Options{Name: "_api._tcp.test", RecordType: RecordSRV})
				srv.configure(func(s *fakeDNS) { s.glue = glue })
				srv.set(t, records...)
				got, err := p.Resolve(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if describe(got) != want {
					t.Fatalf("got  %s\nwant %s", describe(got), want)
				}
				// Targets are asked for only when the response has no glue for
				// them (gone.test has none either way).
				wantA := 3
				if glue {
					wantA = 1
				}
				if n := srv.count(miekg.TypeA); n != wantA {
					t.Errorf("%d A queries, want %d", n, wantA)
				}
			})
		}

		t.Run("Changes", func(t *testing.T) {
			t.Parallel()
			p, srv := setup(t, Options{Name: "_api._tcp.test", RecordType: RecordSRV})
			srv.set(t, "_api._tcp.test. 60 IN SRV 10 5 9001 a.test.", "a.test. 60 IN A 10.0.1.1")
			ch, _ := watch(t, p)
			expect(t, ch, "http://10.0.1.1:9001/5/a.test")
			srv.set(t, "_api._tcp.test. 60 IN SRV 10 5 9001 a.test.", "_api._tcp.test. 60 IN SRV 10 2 9002 b.test.",
				"a.test. 60 IN A 10.0.1.1", "b.test. 60 IN A 10.0.1.2")
			expect(t, ch, "http://10.0.1.1:9001/5/a.test http://10.0.1.2:9002/2/b.test")
			srv.set(t, "_api._tcp.test. 60 IN SRV 10 7 9002 b.test.", "b.test. 60 IN A 10.0.1.2") // weight changed
			expect(t, ch, "http://10.0.1.2:9002/7/b.test")
			srv.set(t, "_api._tcp.test. 60 IN SRV 0 0 0 .") // service decidedly not available
			expect(t, ch, "")
		})
	})

	t.Run("ServerFailureThenRecovery", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, Options{Name: "api.test", Port: 8080})
		srv.set(t, "api.test. 60 IN A 10.0.0.1")
		ch, _ := watch(t, p)
		expect(t, ch, "http://10.0.0.1:8080/1/api.test")

		srv.setMode(servfail)
		qe := expectQueryError(t, ch)
		if qe.Rcode != miekg.RcodeServerFailure || qe.Err != nil || qe.Name != "api.test." || qe.Server != srv.addr {
			t.Fatalf("got %#v", qe)
		}
		if want := "dns: A api.test. at " + srv.addr + ": server answered SERVFAIL"; qe.Error() != want {
			t.Fatalf("Error() = %q, want %q", qe.Error(), want)
		}
		srv.setMode(answer)
		for { // further errors may be pending; then the same set again
			if ev := next(t, ch); ev.Err == nil {
				if describe(ev.Instances) != "http://10.0.0.1:8080/1/api.test" {
					t.Fatalf("after recovery got %s", describe(ev.Instances))
				}
				break
			}
		}
	})

	t.Run("NoAnswer", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, Options{Name: "api.test", Port: 8080, Timeout: 100 * time.Millisecond})
		srv.set(t, "api.test. 60 IN A 10.0.0.1")
		ch, _ := watch(t, p)
		expect(t, ch, "http://10.0.0.1:8080/1/api.test")
		srv.setMode(drop)
		if qe := expectQueryError(t, ch); qe.Err == nil {
			t.Fatalf("got %v, want a timeout", qe)
		}
	})

	t.Run("FirstResolutionFails", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, Options{Name: "api.test", Port: 8080})
		srv.setMode(servfail)
		ch, _ := watch(t, p)
		expectQueryError(t, ch)
		srv.set(t, "api.test. 60 IN A 10.0.0.1")
		for {
			if ev := next(t, ch); ev.Err == nil {
				if describe(ev.Instances) != "http://10.0.0.1:8080/1/api.test" {
					t.Fatalf("got %s", describe(ev.Instances))
				}
				break
			}
		}
	})

	t.Run("CancelDuringQuery", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, Options{Name: "api.test", Port: 8080, Timeout: time.Minute})
		srv.setMode(drop)
		ch, cancel := watch(t, p)
		srv.waitQueries(t, miekg.TypeA, 1)
		cancel()
		select {
		case _, ok := <-ch:
			if ok {
				t.Fatal("event after cancel from a server that never answers")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("channel not closed within 5s of cancel; the query was not abandoned")
		}
	})

	t.Run("Scheme", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, Options{Name: "api.test", Port: 8443, Scheme: "https"})
		srv.set(t, "api.test. 60 IN A 10.0.0.1")
		ch, _ := watch(t, p)
		expect(t, ch, "https://10.0.0.1:8443/1/api.test")
	})
}

func TestProvider_Resolve(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name    string
		records []string
		noChase bool
		want    string
	}{
		{"NXDOMAIN", []string{"other.test. 60 IN A 10.0.0.1"}, false, ""},
		{"NODATA", []string{"api.test. 60 IN TXT \"no addresses\""}, false, ""},
		{"CNAME", []string{"api.test. 60 IN CNAME real.test.", "real.test. 60 IN A 10.0.0.1"}, false, "http://10.0.0.1:8080/1/api.test"},
		{"CNAMEChain", []string{"api.test. 60 IN CNAME a.test.", "a.test. 60 IN CNAME b.test.", "b.test. 60 IN A 10.0.0.2"}, false, "http://10.0.0.2:8080/1/api.test"},
		{"CNAMEAskedFor", []string{"api.test. 60 IN CNAME real.test.", "real.test. 60 IN A 10.0.0.1"}, true, "http://10.0.0.1:8080/1/api.test"},
		{"CNAMEToNothing", []string{"api.test. 60 IN CNAME gone.test."}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, srv := setup(t, Options{Name: "api.test", Port: 8080})
			srv.configure(func(s *fakeDNS) { s.noChase = tc.noChase })
			srv.set(t, tc.records...)
			got, err := p.Resolve(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if describe(got) != tc.want {
				t.Fatalf("got %q, want %q", describe(got), tc.want)
			}
		})
	}

	t.Run("CNAMELoop", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, Options{Name: "api.test", Port: 8080})
		srv.configure(func(s *fakeDNS) { s.noChase = true })
		srv.set(t, "api.test. 60 IN CNAME b.test.", "b.test. 60 IN CNAME api.test.")
		_, err := p.Resolve(t.Context())
		if !errors.Is(err, errCNAMELoop) {
			t.Fatalf("got %v, want a CNAME loop", err)
		}
	})

	t.Run("TruncatedRetriesOverTCP", func(t *testing.T) {
		t.Parallel()
		srv := newFakeDNS(t, true)
		srv.configure(func(s *fakeDNS) { s.truncate = true })
		srv.set(t, "api.test. 60 IN A 10.0.0.1")
		p, err := New(Options{Name: "api.test", Port: 8080, Resolver: srv.addr})
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Resolve(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if describe(got) != "http://10.0.0.1:8080/1/api.test" {
			t.Fatalf("got %s", describe(got))
		}
		srv.configure(func(s *fakeDNS) {
			if s.tcp != 2 { // A and AAAA
				t.Errorf("%d queries over TCP, want 2", s.tcp)
			}
		})
	})

	t.Run("ServerUnreachable", func(t *testing.T) {
		t.Parallel()
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		pc.Close() // nobody listens there now
		p, err := New(Options{Name: "api.test", Port: 8080, Resolver: addr, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Resolve(t.Context())
		var qe *QueryError
		if !errors.As(err, &qe) || qe.Err == nil || qe.Server != addr || qe.Type != "A" {
			t.Fatalf("got %#v, want a *QueryError for the A query to %s", err, addr)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		t.Parallel()
		p, srv := setup(t, Options{Name: "api.test", Port: 8080})
		srv.set(t, "api.test. 60 IN A 10.0.0.1")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := p.Resolve(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}

func TestNew_ResolvConf(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 10.0.0.53\nnameserver fd00::53\nsearch svc.test test\noptions ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.conf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, file, resolver, lookup string
		servers, names               []string
	}{
		{"SearchList", conf, "", "api", []string{"10.0.0.53:53", "[fd00::53]:53"}, []string{"api.svc.test.", "api.test.", "api."}},
		{"EnoughDots", conf, "", "a.b.c", []string{"10.0.0.53:53", "[fd00::53]:53"}, []string{"a.b.c.", "a.b.c.svc.test.", "a.b.c.test."}},
		{"FullyQualified", conf, "", "api.test.", []string{"10.0.0.53:53", "[fd00::53]:53"}, []string{"api.test."}},
		{"NoServers", empty, "", "api", []string{"127.0.0.1:53"}, []string{"api."}},
		{"NoFile", filepath.Join(dir, "missing"), "", "api", []string{"127.0.0.1:53"}, []string{"api."}},
		{"Resolver", conf, "10.1.1.1:5353", "api", []string{"10.1.1.1:5353"}, []string{"api."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := newProvider(Options{Name: tc.lookup, Port: 80, Resolver: tc.resolver}, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.servers, tc.servers) || !slices.Equal(p.names, tc.names) {
				t.Fatalf("servers %v names %v, want %v %v", p.servers, p.names, tc.servers, tc.names)
			}
		})
	}

	t.Run("SearchFindsFirstNameWithRecords", func(t *testing.T) {
		t.Parallel()
		p, err := newProvider(Options{Name: "api", Port: 80}, conf)
		if err != nil {
			t.Fatal(err)
		}
		srv := newFakeDNS(t, false)
		p.servers = []string{srv.addr}
		srv.set(t, "api.test. 60 IN A 10.0.0.2", "api. 60 IN A 10.0.0.3")
		got, err := p.Resolve(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if describe(got) != "http://10.0.0.2:80/1/api.test" {
			t.Fatalf("got %s", describe(got))
		}
	})

	t.Run("FallsBackToNextServer", func(t *testing.T) {
		t.Parallel()
		p, err := newProvider(Options{Name: "api.test", Port: 80}, conf)
		if err != nil {
			t.Fatal(err)
		}
		bad, good := newFakeDNS(t, false), newFakeDNS(t, false)
		bad.setMode(servfail)
		good.set(t, "api.test. 60 IN A 10.0.0.1")
		p.servers = []string{bad.addr, good.addr}
		got, err := p.Resolve(t.Context())
		if err != nil || describe(got) != "http://10.0.0.1:80/1/api.test" {
			t.Fatalf("got %s, %v", describe(got), err)
		}
		good.setMode(servfail)
		_, err = p.Resolve(t.Context())
		for _, s := range []string{bad.addr, good.addr} {
			if err == nil || !strings.Contains(err.Error(), s+": server answered SERVFAIL") {
				t.Fatalf("got %v, want SERVFAIL from %s", err, s)
			}
		}
	})
}
