package dns

import (
	"net"
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
	tcp      int           // queries over TCP
	notify   chan struct{} // closed and replaced on every query
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
	s := &fakeDNS{queries: make(map[uint16]int), notify: make(chan struct{})}
	var servers []*miekg.Server
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		servers = []*miekg.Server{{PacketConn: pc, Handler: s}}
		if tcp {
			l, err := net.Listen("tcp", pc.LocalAddr().String())
			if err != nil && attempt < 10 {
				pc.Close() // the TCP port is taken: try another
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			servers = append(servers, &miekg.Server{Listener: l, Handler: s})
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
