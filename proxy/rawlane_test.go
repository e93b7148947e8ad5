package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sendRaw sends raw request bytes to addr and returns the response read by net/http.
func sendRaw(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// The raw lane forwards the head as bytes: hop-by-hop headers must still go, in both
// directions, and the forwarding headers must be the proxy's.
func TestRawLane_HopByHopAndForwarding(t *testing.T) {
	t.Parallel()
	var got *http.Request
	echo := startBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(r.Context())
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("X-Answer", "yes")
		fmt.Fprint(w, "hello")
	})
	h := startProxy(t, noHealth(Options{}), echo)
	resp, body := sendRaw(t, h.addr, "GET /a/b?q=%20x HTTP/1.1\r\n"+
		"host: shop.example\r\n"+
		"Connection: keep-alive\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"TE: trailers\r\n"+
		"Proxy-Authorization: Basic c2VjcmV0\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"X-Forwarded-For: 203.0.113.7\r\n"+
		"X-Forwarded-For: 198.51.100.2\r\n"+
		"X-Forwarded-Host: evil.example\r\n"+
		"X-Forwarded-Proto: https\r\n"+
		"X-Custom:  spaced value \t\r\n"+
		"\r\n")
	if resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}
	if got.Host != "shop.example" || got.RequestURI != "/a/b?q=%20x" {
		t.Errorf("instance saw Host %q, target %q", got.Host, got.RequestURI)
	}
	for _, hop := range []string{"Connection", "Keep-Alive", "Te", "Proxy-Authorization", "Proxy-Connection"} {
		if v, ok := got.Header[hop]; ok {
			t.Errorf("hop-by-hop %s reached the instance: %q", hop, v)
		}
	}
	want := map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 198.51.100.2, 127.0.0.1",
		"X-Forwarded-Host":  "shop.example",
		"X-Forwarded-Proto": "http",
		"X-Custom":          "spaced value",
	}
	for k, v := range want {
		if g := strings.Join(got.Header.Values(k), " | "); g != v {
			t.Errorf("instance saw %s = %q, want %q", k, g, v)
		}
	}
	for _, hop := range []string{"Keep-Alive", "Proxy-Authenticate"} {
		if v, ok := resp.Header[hop]; ok {
			t.Errorf("hop-by-hop %s reached the client: %q", hop, v)
		}
	}
	if resp.Header.Get("X-Answer") != "yes" || resp.Close {
		t.Errorf("answer headers %v, close %v", resp.Header, resp.Close)
	}
}

// A client asking to close gets "Connection: close" and the connection ends after the answer.
func TestRawLane_ClientCloseIsHonoured(t *testing.T) {
	t.Parallel()
	h := startProxy(t, noHealth(Options{}), startBackend(t, "a", nil))
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	all, err := io.ReadAll(c) // ends only if the proxy closes
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(all, []byte("\r\nConnection: close\r\n")) || !bytes.HasSuffix(all, []byte("\r\n\r\na")) {
		t.Errorf("answer %q", all)
	}
}

// Pipelined requests with bodies are answered in order on one connection.
func TestRawLane_PipelinedWithBodies(t *testing.T) {
	t.Parallel()
	echo := startBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	h := startProxy(t, noHealth(Options{}), echo)
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
		"PUT /two HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"+
		"GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"POST /one hello", "PUT /two ", "GET /three "} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("answer %q, want %q", b, want)
		}
	}
}

// rawBackend serves each request on a connection with serve, which writes whatever answer it
// likes to c (answers net/http's server would never write) and says whether to go on reading
// requests; the connection is closed when it returns false.
func rawBackend(t testing.TB, serve func(c net.Conn, req *http.Request) bool) *backend {
	t.Helper()
	return connBackend(t, "raw", func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if !serve(c, req) {
				return
			}
		}
	})
}

// connBackend is an instance that hands each connection to handle, and closes it after.
func connBackend(t testing.TB, id string, handle func(c net.Conn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return &backend{id: id, addr: ln.Addr().String(), hosts: map[string]int{}}
}

// cannedAnswers adapts answer, which gives the bytes for a path and whether to close after
// them, to rawBackend.
func cannedAnswers(answer func(path string) (string, bool)) func(net.Conn, *http.Request) bool {
	return func(c net.Conn, req *http.Request) bool {
		a, closeAfter := answer(req.URL.Path)
		_, err := io.WriteString(c, a)
		return err == nil && !closeAfter
	}
}

// Answers outside the raw lane's simple subset reach the client intact through the standard
// parser: early hints, chunked and close-delimited bodies, a head larger than the read buffer,
// a body larger than the buffer.
func TestRawLane_UnusualAnswersFallBack(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 40<<10)
	bigHeader := strings.Repeat("v", 20<<10)
	be := rawBackend(t, cannedAnswers(func(path string) (string, bool) {
		switch path {
		case "/hints":
			return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
				"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone", false
		case "/chunked":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", false
		case "/eof":
			return "HTTP/1.1 200 OK\r\n\r\nuntil the end", true
		case "/bighead":
			return "HTTP/1.1 200 OK\r\nX-Big: " + bigHeader + "\r\nContent-Length: 2\r\n\r\nok", false
		case "/bigbody":
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big), false
		case "/nocontent":
			return "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", false
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false
	}))
	h := startProxy(t, noHealth(Options{}), be)
	cases := []struct{ path, body string }{
		{"/hints", "done"}, {"/chunked", "abcde"}, {"/eof", "until the end"},
		{"/bighead", "ok"}, {"/bigbody", big}, {"/nocontent", ""}, {"/hints", "done"},
	}
	for _, tc := range cases {
		body, resp := get(t, h.url+tc.path)
		if resp.StatusCode/100 != 2 || body != tc.body {
			t.Errorf("%s: %d, body of %d bytes %.40q, want %.40q", tc.path, resp.StatusCode, len(body), body, tc.body)
		}
		if tc.path == "/bighead" && len(resp.Header.Get("X-Big")) != len(bigHeader) {
			t.Errorf("%s: X-Big header of %d bytes", tc.path, len(resp.Header.Get("X-Big")))
		}
	}
}

// An instance that answers with a status line or header the raw reader does not accept is
// still relayed when net/http accepts it, and refused with a 502 when it does not.
func TestRawLane_MalformedAnswers(t *testing.T) {
	t.Parallel()
	be := rawBackend(t, cannedAnswers(func(path string) (string, bool) {
		switch path {
		case "/lf":
			return "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false // bare LF line ends
		case "/split":
			return "HTTP/1.1 200 OK\r\nX-A: a\rX-Injected: b\r\nContent-Length: 2\r\n\r\nok", false
		}
		return "garbage\r\n\r\n", true
	}))
	h := startProxy(t, noHealth(Options{Retry: Retry{Attempts: 1}}), be)
	if body, resp := get(t, h.url+"/lf"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("/lf: %d %q", resp.StatusCode, body)
	}
	if _, resp := get(t, h.url+"/split"); resp.Header.Get("X-Injected") != "" {
		t.Errorf("/split: a bare CR split a header: %v", resp.Header)
	}
	if body, resp := get(t, h.url+"/bad"); resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "upstream_unreachable") {
		t.Errorf("/bad: %d %s", resp.StatusCode, body)
	}
}

// fuzzHead finds the head in data as the serving loop does, with peekHead, and checks that it
// ends at its first empty line (after a CRLF or bare LF line end).
func fuzzHead(t *testing.T, data []byte) []byte {
	head := peekHead(bufio.NewReaderSize(bytes.NewReader(data), 16<<10))
	if head == nil {
		return nil
	}
	body := head[:len(head)-1]                  // without the empty line's LF
	body = bytes.TrimSuffix(body, []byte("\r")) // … and its CR
	if !bytes.HasSuffix(body, []byte("\n")) || bytes.Contains(body[:len(body)-1], []byte("\n\n")) ||
		bytes.Contains(body[:len(body)-1], []byte("\n\r\n")) {
		t.Fatalf("peekHead returned %q, which does not end at its first empty line", head)
	}
	return head
}

// FuzzRawRequestHead checks the raw reader against net/http's: whatever it accepts, net/http
// accepts too and reads the same method, target, host, length and headers.
func FuzzRawRequestHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST /a?b=%41 HTTP/1.1\r\nHost: a.example:8080\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"))
	f.Add([]byte("GET /x HTTP/1.1\r\nHost: [::1]:80\r\nX-Forwarded-For: 1.2.3.4\r\nTE: trailers\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nX:\ty \r\nContent-Length: 00\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h rawHead
		head := fuzzHead(t, data)
		if head == nil || !h.parseRequest(head) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("raw reader accepted %q; net/http refused it: %v", head, err)
		}
		if req.Method != string(h.method) || req.RequestURI != string(h.target) || !req.ProtoAtLeast(1, 1) {
			t.Fatalf("%q: net/http read %s %s %s", head, req.Method, req.RequestURI, req.Proto)
		}
		if h.contentLength >= 0 && req.ContentLength != h.contentLength {
			t.Fatalf("%q: length %d, net/http %d", head, h.contentLength, req.ContentLength)
		}
		if req.Close != h.close {
			t.Fatalf("%q: close %v, net/http %v", head, h.close, req.Close)
		}
		n := 0
		for _, vs := range req.Header {
			n += len(vs)
		}
		if req.Header.Get("Host") == "" && req.Host != "" {
			n++ // net/http moves Host out of the map
		}
		if n != h.n {
			t.Fatalf("%q: %d header lines, net/http %d", head, h.n, n)
		}
		var lines []byte
		for _, hd := range h.headers[:h.n] {
			if !bytes.HasPrefix(hd.line, hd.name) || !bytes.HasSuffix(hd.line, []byte("\r\n")) ||
				!bytes.Contains(hd.line, hd.value) {
				t.Fatalf("%q: header line %q does not hold %q: %q", head, hd.line, hd.name, hd.value)
			}
			lines = append(lines, hd.line...)
		}
		if !bytes.Equal(lines, h.block) {
			t.Fatalf("%q: header block %q, lines %q", head, h.block, lines)
		}
		for _, hd := range h.headers[:h.n] {
			name := http.CanonicalHeaderKey(string(hd.name))
			if name == "Host" {
				if req.Host != string(hd.value) {
					t.Fatalf("%q: host %q, net/http %q", head, hd.value, req.Host)
				}
				continue
			}
			found := false
			for _, v := range req.Header[name] {
				found = found || v == string(hd.value)
			}
			if !found {
				t.Fatalf("%q: header %s: %q not among net/http's %q", head, name, hd.value, req.Header[name])
			}
		}
	})
}

// FuzzRawResponseHead does the same for answer heads.
func FuzzRawResponseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 204\r\nConnection: keep-alive, close\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nKeep-Alive: timeout=5\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var h rawHead
		head := fuzzHead(t, data)
		if head == nil || !h.parseResponse(head) {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), &http.Request{Method: http.MethodHead})
		if err != nil {
			t.Fatalf("raw reader accepted %q; net/http refused it: %v", head, err)
		}
		if resp.StatusCode != h.status {
			t.Fatalf("%q: status %d, net/http %d", head, h.status, resp.StatusCode)
		}
		if h.contentLength >= 0 && resp.ContentLength != h.contentLength {
			t.Fatalf("%q: length %d, net/http %d", head, h.contentLength, resp.ContentLength)
		}
		if resp.Close != h.close {
			t.Fatalf("%q: close %v, net/http %v", head, h.close, resp.Close)
		}
	})
}

func TestCookieValue(t *testing.T) {
	t.Parallel()
	for head, want := range map[string]string{
		"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; shoal_affinity=v.1; b=2\r\n\r\n":          "v.1",
		"GET / HTTP/1.1\r\nHost: x\r\nCookie: shoal_affinity2=no;shoal_affinity=yes\r\n\r\n": "yes",
		"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: shoal_affinity=second\r\n\r\n":  "second",
		"GET / HTTP/1.1\r\nHost: x\r\nCookie: xshoal_affinity=no\r\n\r\n":                    "",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n":                                                  "",
	} {
		var h rawHead
		if !h.parseRequest([]byte(head)) {
			t.Fatalf("not simple: %q", head)
		}
		if got := string(cookieValue(&h, "shoal_affinity")); got != want {
			t.Errorf("%q: cookie %q, want %q", head, got, want)
		}
	}
}

// A head larger than the connection's usual 16 KiB buffer is read into a larger one, up to
// the limit: it is served (and the connection goes on serving), checked for smuggling, and
// refused with 431 past the limit.
func TestRawLane_LargeHeadsGrowTheBuffer(t *testing.T) {
	t.Parallel()
	var seen atomic.Int64
	be := startBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			seen.Store(int64(len(r.Header.Get("X-Big"))))
		}
		io.Copy(io.Discard, r.Body)
	})
	h := startProxyWith(t, noHealth(Options{}), ServerOptions{DrainTimeout: time.Second, MaxHeaderBytes: 64 << 10}, be)

	big := strings.Repeat("b", 30<<10)
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: "+big+"\r\n\r\n"+
		"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"+
		"POST /smuggle HTTP/1.1\r\nHost: x\r\nX-Big: "+big+"\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	br := bufio.NewReader(c)
	var codes []int
	for i := 0; i < 3; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		codes = append(codes, resp.StatusCode)
		if i == 0 && seen.Load() != int64(len(big)) {
			t.Errorf("the instance saw X-Big of %d bytes, want %d", seen.Load(), len(big))
		}
	}
	if fmt.Sprint(codes) != "[200 200 400]" {
		t.Errorf("answers %v, want [200 200 400]", codes)
	}
	huge := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("h", 100<<10) + "\r\n\r\n"
	if got := rawRequest(t, h.addr, huge); !strings.HasPrefix(got, "431") {
		t.Errorf("a 100 KiB head: got %q, want 431", got)
	}
}

// A POST on a pooled keep-alive connection that the instance reads and then drops is not sent
// again: the instance may have acted on it. An instance that closed the idle connection
// before the POST came costs nothing: the proxy sees the close and uses a fresh connection.
func TestProxy_POSTOnReusedConnectionNotReplayed(t *testing.T) {
	t.Parallel()
	// With one attempt the body is streamed (standard path); with retries it is kept (raw lane).
	for _, attempts := range []int{1, 3} {
		t.Run(fmt.Sprintf("attempts=%d", attempts), func(t *testing.T) { testPOSTOnReusedConnection(t, attempts) })
	}
}

func testPOSTOnReusedConnection(t *testing.T, attempts int) {
	var posts atomic.Int64
	dropper := startBackend(t, "dropper", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return // GETs warm the pool
		}
		io.ReadAll(r.Body)
		posts.Add(1)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
	h := startProxy(t, noHealth(Options{Retry: Retry{Attempts: attempts}}), dropper)
	get(t, h.url+"/warm")
	resp, err := client.Post(h.url+"/orders", "application/json", strings.NewReader(`{"item":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || posts.Load() != 1 {
		t.Fatalf("status %d, the instance got the POST %d times; want 502 and exactly once", resp.StatusCode, posts.Load())
	}

	// An instance that closes each connection after answering a GET, without saying so (as one
	// with a short keep-alive timeout does): the pooled connection is closed under the pool.
	var got atomic.Int64
	closed := make(chan struct{}, 1)
	short := rawBackend(t, func(c net.Conn, req *http.Request) bool {
		if req.Method == http.MethodPost {
			got.Add(1)
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		if req.Method == http.MethodGet {
			c.Close()
			closed <- struct{}{}
			return false
		}
		return true
	})
	h2 := startProxy(t, noHealth(Options{Retry: Retry{Attempts: attempts}}), short)
	for i := 0; i < 3; i++ {
		get(t, h2.url+"/warm")
		<-closed // the instance has closed the connection the proxy pooled
		// Loopback delivers the close at once, unless the kernel defers its softirq under load.
		time.Sleep(50 * time.Millisecond)
		resp, err := client.Post(h2.url+"/orders", "application/json", strings.NewReader(`{"item":1}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST after the instance closed its idle connection: %d", resp.StatusCode)
		}
	}
	if got.Load() != 3 {
		t.Errorf("the instance got %d POSTs, want 3", got.Load())
	}
}

// The affinity cookie is read before the body: a body that refills the read buffer must not
// change which instance the client is pinned to.
func TestRawLane_AffinityWithALargeBody(t *testing.T) {
	t.Parallel()
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	h := startProxy(t, noHealth(Options{SessionAffinity: true}), a, b, c)
	_, first := get(t, h.url+"/")
	cookie := first.Cookies()
	pinned := first.Header.Get("X-Backend")
	if len(cookie) != 1 || pinned == "" {
		t.Fatalf("no affinity cookie or instance: %v", first.Header)
	}
	body := strings.Repeat("x", 40<<10)
	for i := 0; i < 6; i++ {
		req, _ := http.NewRequest("PUT", h.url+"/", strings.NewReader(body))
		req.AddCookie(cookie[0])
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Backend"); got != pinned || resp.StatusCode != 200 {
			t.Fatalf("PUT %d with a 40 KiB body: status %d from %s, want %s", i, resp.StatusCode, got, pinned)
		}
	}
}

// A GET sent on a pooled connection that the instance had closed (sendOnRead writes it, the
// instance's kernel answers with a reset) is sent again on a new connection: the client sees
// nothing, and the instance gets each GET once.
func TestRawLane_GETOnAClosedPooledConnection(t *testing.T) {
	t.Parallel()
	var gets atomic.Int64
	closed := make(chan struct{}, 1)
	short := rawBackend(t, func(c net.Conn, req *http.Request) bool {
		gets.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close() // without saying so, as an instance with a short keep-alive timeout does
		closed <- struct{}{}
		return false
	})
	h := startProxy(t, noHealth(Options{}), short)
	for i := 0; i < 5; i++ {
		body, resp := get(t, h.url+"/x")
		if resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("GET %d after the instance closed its idle connection: %d %q", i, resp.StatusCode, body)
		}
		<-closed
		time.Sleep(20 * time.Millisecond) // the close reaches the pooled connection
	}
	if n := gets.Load(); n != 5 {
		t.Errorf("the instance got %d GETs, want 5", n)
	}
}
