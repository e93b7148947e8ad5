package dns

import (
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	miekg "github.com/miekg/dns"
)

// fakeDNS is a real DNS server on 127.0.0.1 serving records the test
// changes. It answers authoritatively: NXDOMAIN for names it has no records
// for, NODATA for names without records of the type asked.
type fakeDNS struct {
	addr string // host:port, UDP (and TCP when started with tcp)

	mu       sync.Mutex
	records  []miekg.RR
	mode     mode
	glue     bool // add the addresses of SRV targets to the additional section
	noChase  bool // answer CNAMEs without the records of their targets
	truncate bool // answer UDP queries with an empty truncated response
	queries  map[uint16]int
	tcp      int               // queries over TCP
	notify   chan struct{}     // closed and replaced on every query
	tsig     map[string]string // TSIG keys updates must be signed with; nil: updates unsigned
	updates  int               // updates applied
}

// mode is how fakeDNS answers.
type mode int

const (
	answer   mode = iota // normally
	servfail             // SERVFAIL to everything
	drop                 // not at all
)

// newFakeDNS starts a server on a random UDP port of 127.0.0.1 (and the same
// TCP port when tcp is set) that stops when the test ends.
func newFakeDNS(t *testing.T, tcp bool) *fakeDNS {
	t.Helper()
	return newFakeDNSWith(t, tcp, nil)
}

// newFakeDNSWith is newFakeDNS accepting RFC 2136 updates signed with one of
// the TSIG keys of tsig (name → base64 secret), or unsigned ones when tsig is
// nil.
func newFakeDNSWith(t *testing.T, tcp bool, tsig map[string]string) *fakeDNS {
	t.Helper()
	s := &fakeDNS{queries: make(map[uint16]int), notify: make(chan struct{}), tsig: tsig}
	var servers []*miekg.Server
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		servers = []*miekg.Server{{PacketConn: pc, Handler: s, TsigSecret: tsig, MsgAcceptFunc: acceptUpdates}}
		if tcp {
			l, err := net.Listen("tcp", pc.LocalAddr().String())
			if err != nil && attempt < 10 {
				pc.Close() // the TCP port is taken: try another
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			servers = append(servers, &miekg.Server{Listener: l, Handler: s, TsigSecret: tsig, MsgAcceptFunc: acceptUpdates})
		}
		s.addr = pc.LocalAddr().String()
		break
	}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		errc := make(chan error, 1)
		go func() { errc <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := srv.Shutdown(); err != nil {
				t.Error(err)
			}
			<-errc
		})
	}
	return s
}

// set replaces all records with the given ones, in zone file syntax, and
// makes the server answer normally.
func (s *fakeDNS) set(t *testing.T, records ...string) {
	t.Helper()
	rrs := make([]miekg.RR, len(records))
	for n, r := range records {
		rr, err := miekg.NewRR(r)
		if err != nil {
			t.Fatal(err)
		}
		rrs[n] = rr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records, s.mode = rrs, answer
}

// setMode makes the server answer normally, fail, or drop queries.
func (s *fakeDNS) setMode(m mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

// configure changes the server's behaviour under its lock.
func (s *fakeDNS) configure(f func(s *fakeDNS)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// count returns how many queries of type qtype the server has received.
func (s *fakeDNS) count(qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[qtype]
}

// waitQueries waits until the server has received n queries of type qtype.
func (s *fakeDNS) waitQueries(t *testing.T, qtype uint16, n int) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		got, notify := s.queries[qtype], s.notify
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-notify:
		case <-timeout.C:
			t.Fatalf("%d %s queries after 10s, want %d", got, miekg.TypeToString[qtype], n)
		}
	}
}

// refreshed waits until a provider polling the server with queries of type
// qtype first has completed a resolution that started after the call: the
// resolution after it has begun.
func (s *fakeDNS) refreshed(t *testing.T, qtype uint16) {
	t.Helper()
	s.waitQueries(t, qtype, s.count(qtype)+2)
}

// ServeDNS implements miekg.Handler.
func (s *fakeDNS) ServeDNS(w miekg.ResponseWriter, req *miekg.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Opcode == miekg.OpcodeUpdate {
		s.update(w, req)
		return
	}
	q := req.Question[0]
	s.queries[q.Qtype]++
	_, overTCP := w.RemoteAddr().(*net.TCPAddr)
	if overTCP {
		s.tcp++
	}
	close(s.notify)
	s.notify = make(chan struct{})

	resp := new(miekg.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	switch {
	case s.mode == drop:
		return
	case s.mode == servfail:
		resp.Rcode = miekg.RcodeServerFailure
	case s.truncate && !overTCP:
		resp.Truncated = true
	default:
		s.answer(resp, q.Name, q.Qtype)
	}
	_ = w.WriteMsg(resp)
}

// answer fills resp with the records of name (following CNAMEs) of type qtype.
func (s *fakeDNS) answer(resp *miekg.Msg, name string, qtype uint16) {
	exists := false
	for hops := 0; hops < 10; hops++ {
		var cname string
		for _, rr := range s.records {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) {
				continue
			}
			exists = true
			switch {
			case h.Rrtype == qtype:
				resp.Answer = append(resp.Answer, rr)
			case h.Rrtype == miekg.TypeCNAME:
				resp.Answer = append(resp.Answer, rr)
				cname = rr.(*miekg.CNAME).Target
			}
		}
		if cname == "" || s.noChase {
			break
		}
		name = cname
	}
	if !exists {
		resp.Rcode = miekg.RcodeNameError
	}
	if s.glue {
		for _, rr := range resp.Answer {
			if srv, ok := rr.(*miekg.SRV); ok {
				for _, a := range s.records {
					if t := a.Header().Rrtype; strings.EqualFold(a.Header().Name, srv.Target) && (t == miekg.TypeA || t == miekg.TypeAAAA) {
						resp.Extra = append(resp.Extra, a)
					}
				}
			}
		}
	}
}

// update applies an RFC 2136 update (zone section, no prerequisites, the
// update section's adds and deletes) to the records, as a primary server
// does: NOTAUTH for a bad or missing signature when keys are configured.
// It answers whatever the mode, which concerns queries.
func (s *fakeDNS) update(w miekg.ResponseWriter, req *miekg.Msg) {
	resp := new(miekg.Msg)
	resp.SetReply(req)
	signed := req.IsTsig()
	switch {
	case s.tsig != nil && (signed == nil || w.TsigStatus() != nil):
		resp.Rcode = miekg.RcodeNotAuth
		_ = w.WriteMsg(resp)
		return
	case len(req.Question) != 1 || req.Question[0].Qtype != miekg.TypeSOA:
		resp.Rcode = miekg.RcodeFormatError
	default:
		zone := req.Question[0].Name
		for _, rr := range req.Ns {
			if !miekg.IsSubDomain(zone, rr.Header().Name) {
				resp.Rcode = miekg.RcodeNotZone
			}
		}
		if resp.Rcode == miekg.RcodeSuccess {
			for _, rr := range req.Ns {
				s.apply(rr)
			}
			s.updates++
		}
	}
	if signed != nil {
		resp.SetTsig(signed.Hdr.Name, signed.Algorithm, 300, time.Now().Unix())
	}
	_ = w.WriteMsg(resp)
}

// apply is one record of an update section (RFC 2136 §2.5).
func (s *fakeDNS) apply(rr miekg.RR) {
	h := rr.Header()
	switch h.Class {
	case miekg.ClassINET: // add, unless a duplicate
		for _, have := range s.records {
			if miekg.IsDuplicate(have, rr) {
				return
			}
		}
		s.records = append(s.records, rr)
	case miekg.ClassNONE: // delete this record
		c := miekg.Copy(rr)
		c.Header().Class, c.Header().Ttl = miekg.ClassINET, 0
		s.records = slices.DeleteFunc(s.records, func(have miekg.RR) bool {
			x := miekg.Copy(have)
			x.Header().Ttl = 0
			return miekg.IsDuplicate(x, c)
		})
	case miekg.ClassANY: // delete the name's records (of the type)
		s.records = slices.DeleteFunc(s.records, func(have miekg.RR) bool {
			return strings.EqualFold(have.Header().Name, h.Name) && (h.Rrtype == miekg.TypeANY || have.Header().Rrtype == h.Rrtype)
		})
	}
}

// acceptUpdates is miekg/dns's default acceptance, with UPDATE messages
// (which it refuses with NOTIMP) let through.
func acceptUpdates(dh miekg.Header) miekg.MsgAcceptAction {
	if int(dh.Bits>>11)&0xF == miekg.OpcodeUpdate {
		return miekg.MsgAccept
	}
	return miekg.DefaultMsgAcceptFunc(dh)
}
