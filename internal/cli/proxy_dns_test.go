package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// srvServer is a real DNS server (miekg/dns) on loopback UDP that answers SRV queries for
// one name with the targets the test sets.
type srvServer struct {
	mu      sync.Mutex
	targets map[string]int // target host → port; each resolves to 127.0.0.1
	srv     *dns.Server
	addr    string
}

func startSRV(t *testing.T, name string) *srvServer {
	t.Helper()
	s := &srvServer{targets: map[string]int{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = pc.LocalAddr().String()
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, q := range req.Question {
			switch {
			case q.Qtype == dns.TypeSRV && q.Name == name:
				for host, port := range s.targets {
					m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1},
						Priority: 10, Weight: 1, Port: uint16(port), Target: host})
					m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: host, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
						A: net.ParseIP("127.0.0.1")})
				}
			case q.Qtype == dns.TypeA:
				if _, ok := s.targets[q.Name]; ok {
					m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
						A: net.ParseIP("127.0.0.1")})
				}
			}
		}
		w.WriteMsg(m)
	})
	s.srv = &dns.Server{PacketConn: pc, Handler: mux}
	go s.srv.ActivateAndServe()
	t.Cleanup(func() { s.srv.Shutdown() })
	return s
}

func (s *srvServer) set(targets map[string]int) {
	s.mu.Lock()
	s.targets = targets
	s.mu.Unlock()
}

// TestProxyCommand_DNSDiscovery runs `shoal proxy` over SRV records from a real DNS server:
// instances the records name get traffic, and a record removed takes its instance out.
func TestProxyCommand_DNSDiscovery(t *testing.T) {
	t.Parallel()
	ports := map[string]int{}
	for _, id := range []string{"one", "two"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, id) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		ports[id] = ln.Addr().(*net.TCPAddr).Port
	}
	const name = "_http._tcp.shop.test."
	dnsSrv := startSRV(t, name)
	dnsSrv.set(map[string]int{"one.shop.test.": ports["one"], "two.shop.test.": ports["two"]})

	listen := freeAddr(t)
	cfg := fmt.Sprintf(`name: shop
scaling:
  service_discovery:
    method: dns
    health_check: {endpoint: "/"}
    dns: {name: %q, record_type: SRV, resolver: %q, refresh_interval: 50ms}
  instances: {shutdown: {drain_timeout: 2s}}
`, name, dnsSrv.addr)
	path := filepath.Join(t.TempDir(), "shoal.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) (string, bool) { return "", false }}
	done := make(chan int, 1)
	go func() {
		done <- a.run(ctx, []string{"proxy", "-f", path, "--listen", listen, "--metrics-listen", freeAddr(t)})
	}()
	defer func() {
		cancel()
		if code := <-done; code != ExitOK {
			t.Errorf("exit %d: %s", code, errb.String())
		}
	}()

	served := func() map[string]int {
		seen := map[string]int{}
		for i := 0; i < 20; i++ {
			resp, err := http.Get("http://" + listen + "/")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen[string(b)+":"+strconv.Itoa(resp.StatusCode)]++
		}
		return seen
	}
	deadline := time.Now().Add(10 * time.Second)
	for s := served(); s["one:200"] != 10 || s["two:200"] != 10; s = served() {
		if time.Now().After(deadline) {
			t.Fatalf("both SRV targets should share the traffic: %v\n%s", s, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	dnsSrv.set(map[string]int{"two.shop.test.": ports["two"]})
	deadline = time.Now().Add(10 * time.Second)
	for s := served(); s["two:200"] != 20; s = served() {
		if time.Now().After(deadline) {
			t.Fatalf("a removed SRV record must take its instance out: %v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
