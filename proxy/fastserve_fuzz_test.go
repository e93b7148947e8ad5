package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
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
	p, err := New(Options{Logger: slog.New(slog.DiscardHandler)}) // no instances: every request gets a 503
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	s := newFastServer(p, ServerOptions{MaxHeaderBytes: 4096, ReadHeaderTimeout: time.Second, IdleTimeout: time.Second,
		DrainTimeout: time.Second})
	defer s.h2.Close()
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
		s.wg.Add(1)
		done := make(chan struct{})
		go func() {
			s.serveConn(context.Background(), server)
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
