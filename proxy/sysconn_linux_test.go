package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns a sysConn and the other end of a real loopback TCP connection.
func tcpPair(t *testing.T) (*sysConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	sc, ok := newSysConn(c).(*sysConn)
	if !ok {
		t.Fatalf("newSysConn(%T) did not wrap it", c)
	}
	t.Cleanup(func() { sc.Close(); peer.Close() })
	return sc, peer.(*net.TCPConn)
}

func TestSysConn_ReadWriteEOF(t *testing.T) {
	sc, peer := tcpPair(t)
	if _, err := sc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
	go peer.Write([]byte("pong"))
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if n, err := sc.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
	peer.Close()
	if n, err := sc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the peer closed: %d, %v; want 0, io.EOF", n, err)
	}
}

// A write larger than the socket buffers goes out in pieces, waiting for the reader.
func TestSysConn_LargeWriteWaitsForTheReader(t *testing.T) {
	sc, peer := tcpPair(t)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the buffers fill first
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	n, err := sc.Write(want)
	if err != nil || n != len(want) {
		t.Fatalf("write: %d, %v", n, err)
	}
	sc.CloseWrite()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the reader got %d bytes, not the %d written", len(b), len(want))
	}
}

func TestSysConn_DeadlineAndClose(t *testing.T) {
	sc, _ := tcpPair(t)
	sc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := sc.Read(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v; want a timeout", err)
	}
	sc.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := sc.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	sc.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v; want net.ErrClosed", err)
	}
}

// A reset is reported as net.Conn reports it: an *net.OpError that errors.Is matches.
func TestSysConn_ResetIsAnOpError(t *testing.T) {
	sc, peer := tcpPair(t)
	peer.SetLinger(0)
	peer.Close() // sends a reset
	time.Sleep(10 * time.Millisecond)
	_, err := sc.Read(make([]byte, 8))
	var oe *net.OpError
	if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read after a reset: %v; want a read OpError for ECONNRESET", err)
	}
}

func TestSysConn_SendOnRead(t *testing.T) {
	sc, peer := tcpPair(t)
	go func() {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(peer, buf); err == nil && string(buf) == "hello" {
			peer.Write([]byte("world"))
		}
	}()
	sc.sendOnRead([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "world" {
		t.Fatalf("read %q, %v; want the answer to the request sent first", buf, err)
	}
	if sc.send != nil {
		t.Fatal("the request is still pending after the read")
	}
}

// A request too large for the socket buffers is finished by Write before the answer is read.
func TestSysConn_SendOnReadLargeRequest(t *testing.T) {
	sc, peer := tcpPair(t)
	req := bytes.Repeat([]byte("x"), 32<<20)
	go func() {
		time.Sleep(50 * time.Millisecond)
		if _, err := io.CopyN(io.Discard, peer, int64(len(req))); err == nil {
			peer.Write([]byte("ok"))
		}
	}()
	sc.sendOnRead(req)
	buf := make([]byte, 2)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// A peer that had closed the connection answers the request with a reset, which wakes the
// wait: the caller sees a failure it can retry, not a hang.
func TestSysConn_SendOnReadToAClosedPeer(t *testing.T) {
	sc, peer := tcpPair(t)
	peer.Close()
	time.Sleep(20 * time.Millisecond) // its FIN arrives while the connection is idle
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	sc.sendOnRead([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	_, err := sc.Read(make([]byte, 64))
	if err == nil || os.IsTimeout(err) {
		t.Fatalf("read after sending to a closed peer: %v; want EOF or a reset", err)
	}
	if !errors.Is(staleIf(err), errStaleConn) {
		t.Fatalf("%v is not taken for a stale connection", err)
	}
}

// A deadline that has passed fails the read before anything is sent.
func TestSysConn_SendOnReadPastDeadline(t *testing.T) {
	sc, peer := tcpPair(t)
	sc.SetDeadline(time.Now().Add(-time.Second))
	sc.sendOnRead([]byte("hello"))
	if _, err := sc.Read(make([]byte, 8)); !os.IsTimeout(err) {
		t.Fatalf("read: %v; want a timeout", err)
	}
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := peer.Read(make([]byte, 8)); n != 0 {
		t.Fatalf("the peer received %d bytes of a request that should not have been sent", n)
	}
}

func TestNewSysConn_OnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if c := newSysConn(a); c != a {
		t.Fatalf("newSysConn wrapped a %T", a)
	}
}
