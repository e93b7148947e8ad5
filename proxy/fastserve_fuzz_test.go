package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// FuzzServeConn feeds arbitrary bytes to the HTTP/1.1 serving loop as a client connection:
// whatever arrives, the proxy answers or closes, and never panics or hangs.
func FuzzServeConn(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add([]byte("GET http://[::1 HTTP/1.1\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 30\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a b@evil\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1"))
	f.Add([]byte("GET /a?b HTTP/1.1\r\nHost: x\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n" +
		"TraceState: a=1,b=2\r\nbaggage: k=v;p=1\r\ntraceparent: junk\r\n\r\n"))
	// Two proxies, both without instances (every request gets a 503): one traced, one not; the
	// input's length picks.
	var servers [2]*fastServer
	for i := range servers {
		opts := Options{Logger: slog.New(slog.DiscardHandler)}
		if i == 1 {
			tp := sdktrace.NewTracerProvider() // spans are made and sampled, then dropped
			defer tp.Shutdown(context.Background())
			opts.Tracing = &Tracing{Provider: tp}
		}
		p, err := New(opts)
		if err != nil {
			f.Fatal(err)
		}
		defer p.Close()
		servers[i] = newFastServer(p, ServerOptions{MaxHeaderBytes: 4096, ReadHeaderTimeout: time.Second, IdleTimeout: time.Second,
			DrainTimeout: time.Second})
		defer servers[i].h2.Close()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		s := servers[len(data)%2]
		s.wg.Add(1)
		done := make(chan struct{})
		go func() {
			s.serveConn(context.Background(), newSysConn(server)) // as serveFast's accept loop does
			close(done)
		}()
		client.Write(data)
		client.(*net.TCPConn).CloseWrite() // the whole input has been sent
		client.SetDeadline(time.Now().Add(3 * time.Second))
		io.Copy(io.Discard, client)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("the serving loop did not end for input %q", data)
		}
	})
}

// FuzzInstanceAnswers has an instance answer with arbitrary bytes (then close its connection):
// whatever it sends, the client gets an answer or a closed connection, and the proxy neither
// panics nor hangs. Both the raw lane and the standard path read instances' answers.
func FuzzInstanceAnswers(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\nContent-Length: 2\n\nok"))
	f.Add([]byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\nConnection: close\r\n\r\nno"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"))
	answer := make(chan []byte, 1)
	be := rawBackend(f, func(c net.Conn, _ *http.Request) bool {
		select {
		case a := <-answer:
			c.Write(a)
		default:
		}
		return false
	})
	h := startProxyWith(f, noHealth(Options{Retry: Retry{Attempts: 1, TryTimeout: 2 * time.Second}}),
		ServerOptions{DrainTimeout: time.Second}, be)
	f.Fuzz(func(t *testing.T, data []byte) {
		answer <- data
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(8 * time.Second))
		io.WriteString(c, "GET /fuzz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("the proxy neither answered nor closed for instance answer %q: %v", data, err)
		}
		select {
		case <-answer: // the instance was never asked (a pooled connection served it): drop it
		default:
		}
	})
}

// FuzzNoSmuggling sends arbitrary bytes through the proxy to a lenient instance (net/http's
// request parser, as most services use): the instance must never see more requests than the
// client gets answers. A request the proxy framed differently from the instance — a body taken
// for a request (whitespace before a colon, Transfer-Encoding on HTTP/1.0, both lengths) — would
// reach the instance without an answer of its own.
func FuzzNoSmuggling(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 34\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n22\r\nGET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	var seen atomic.Int64 // whole requests, their bodies read to the end: a broken body is no request
	var badName atomic.Value
	be := connBackend(f, "lenient", func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			for k := range req.Header {
				if strings.ContainsAny(k, " \t") {
					badName.Store(k) // net/http keeps such a name as it came: the proxy let it through
				}
			}
			seen.Add(1)
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"); err != nil {
				return
			}
		}
	})
	h := startProxyWith(f, noHealth(Options{Retry: Retry{Attempts: 1}, LatencyEjection: LatencyEjection{Disabled: true}}),
		ServerOptions{DrainTimeout: time.Second, MaxHeaderBytes: 4096, ReadHeaderTimeout: time.Second, IdleTimeout: time.Second,
			ReadBodyTimeout: time.Second}, be)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := seen.Load()
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		br := bufio.NewReader(c)
		answers := 0
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				break
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 200 {
				answers++
			}
		}
		h.p.base.(interface{ CloseIdleConnections() }).CloseIdleConnections() // the instance reads no more from this input
		time.Sleep(time.Millisecond)
		if n := seen.Load() - before; n > int64(answers) {
			t.Fatalf("the instance saw %d requests, the client got %d answers, for %q", n, answers, data)
		}
		if k := badName.Load(); k != nil {
			t.Fatalf("the instance got a header named %q, for %q", k, data)
		}
	})
}
