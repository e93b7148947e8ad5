package discoverytest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Cutter is a TCP forwarder on 127.0.0.1 between a provider and its registry,
// whose connection the test can cut and restore: what
// [RegistrarSubject.Cut] needs for registries reached over TCP. While cut, it
// closes every connection it carries and every new one at once, as a
// registry that went away would.
type Cutter struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewCutter forwards a new port of 127.0.0.1 to target (host:port) until the
// test ends.
func NewCutter(t testing.TB, target string) *Cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cutter{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(c.close)
	return c
}

// Addr is the forwarder's host:port, where the provider should connect.
func (c *Cutter) Addr() string { return c.ln.Addr().String() }

// Cut closes every forwarded connection and refuses new ones until the
// returned function is called.
func (c *Cutter) Cut() (restore func()) {
	c.mu.Lock()
	c.cut = true
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.cut = false
		c.mu.Unlock()
	}
}

func (c *Cutter) accept() {
	defer c.wg.Done()
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.cut {
			c.mu.Unlock()
			in.Close()
			continue
		}
		c.mu.Unlock()
		out, err := net.Dial("tcp", c.target)
		if err != nil {
			in.Close()
			continue
		}
		c.mu.Lock()
		c.conns[in], c.conns[out] = struct{}{}, struct{}{}
		c.mu.Unlock()
		c.wg.Add(2)
		go c.pipe(in, out)
		go c.pipe(out, in)
	}
}

// pipe copies src to dst until either closes. The suite's goroutine checks
// ignore it: the connections it carries belong to the provider's client.
func (c *Cutter) pipe(dst, src net.Conn) {
	defer c.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	c.mu.Lock()
	delete(c.conns, dst)
	delete(c.conns, src)
	c.mu.Unlock()
}

func (c *Cutter) close() {
	c.ln.Close()
	c.mu.Lock()
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}
