package dns

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	miekg "github.com/miekg/dns"
)

// FuzzResolve feeds arbitrary DNS responses (as the wire bytes a server could
// send) to both record types: resolution must not panic, and whatever it
// returns must be well-formed instances.
func FuzzResolve(f *testing.F) {
	for _, records := range [][]string{
		{"api.test. 60 IN A 10.0.0.1", "api.test. 60 IN AAAA fd00::1"},
		{"api.test. 60 IN CNAME b.test.", "b.test. 60 IN A 10.0.0.2"},
		{"api.test. 60 IN SRV 10 5 9001 a.test.", "api.test. 60 IN SRV 20 0 9002 b.test.", "a.test. 60 IN A 10.0.0.1"},
	} {
		m := new(miekg.Msg)
		m.SetQuestion("api.test.", miekg.TypeA)
		for _, r := range records {
			rr, err := miekg.NewRR(r)
			if err != nil {
				f.Fatal(err)
			}
			if rr.Header().Rrtype == miekg.TypeSRV || rr.Header().Name == "api.test." {
				m.Answer = append(m.Answer, rr)
			} else {
				m.Extra = append(m.Extra, rr)
			}
		}
		wire, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
	}

	f.Fuzz(func(t *testing.T, wire []byte) {
		resp := new(miekg.Msg)
		if resp.Unpack(wire) != nil {
			return
		}
		for _, rt := range []string{RecordA, RecordSRV} {
			p, err := New(Options{Name: "api.test", RecordType: rt, Port: 8080, Resolver: "127.0.0.1:53"})
			if err != nil {
				t.Fatal(err)
			}
			p.exchange = func(context.Context, *miekg.Msg, string) (*miekg.Msg, error) { return resp.Copy(), nil }
			instances, err := p.Resolve(t.Context())
			if err != nil {
				continue
			}
			seen := make(map[string]bool)
			for n, in := range instances {
				ap, perr := netip.ParseAddrPort(in.URL.Host)
				if perr != nil || ap.Port() == 0 || in.ID != in.URL.String() || in.Weight < 1 || seen[in.ID] ||
					(n > 0 && strings.Compare(instances[n-1].ID, in.ID) >= 0) {
					t.Fatalf("%s: bad instance %d %+v among %d", rt, n, in, len(instances))
				}
				seen[in.ID] = true
			}
		}
	})
}
