package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// h1Client is the proxy's HTTP/1.1 transport to instances. It writes the request and reads the
// response on the calling goroutine over pooled keep-alive connections.
//
// Written by hand because http.Transport runs two goroutines per connection (readLoop and
// writeLoop) and hands every request and response between them and the caller over channels;
// under load those hand-offs were the largest part of the proxy's own CPU after the kernel's
// (docs/performance.md). Parsing stays the standard library's: http.Request.Write and
// http.ReadResponse. h2c upstreams keep http.Transport.
type h1Client struct {
	dialer      *net.Dialer
	maxIdle     int           // idle connections kept per host
	idleTimeout time.Duration // idle connections older than this are closed

	mu   sync.Mutex
	idle map[string][]*h1Conn
}

type h1Conn struct {
	net.Conn
	limit    limitedConn // what br reads through: bounds a response head
	br       *bufio.Reader
	bw       *bufio.Writer
	host     string
	idleFrom time.Time
	dl       lazyDeadline // the raw lane's deadline (rawlane.go); the standard path clears it
}

func newH1Client() *h1Client {
	return &h1Client{
		dialer:      &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		maxIdle:     1024,
		idleTimeout: 90 * time.Second,
		idle:        map[string][]*h1Conn{},
	}
}

// CloseIdleConnections closes every pooled connection.
func (c *h1Client) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle = map[string][]*h1Conn{}
	c.mu.Unlock()
	for _, conns := range idle {
		for _, pc := range conns {
			pc.Close()
		}
	}
}

// getUntil returns a pooled connection to host, or dials one (with a deadline unless zero).
// now is the time of the call, to tell idle connections that are too old.
// With checked, a pooled connection is first checked for a close by the instance: a request
// that must not be sent twice cannot be retried when a reused connection turns out stale.
func (c *h1Client) getUntil(ctx context.Context, host string, now, deadline time.Time, checked bool) (pc *h1Conn, reused bool, err error) {
	c.mu.Lock()
	for conns := c.idle[host]; len(conns) > 0; conns = c.idle[host] {
		pc = conns[len(conns)-1]
		c.idle[host] = conns[:len(conns)-1]
		if now.Sub(pc.idleFrom) < c.idleTimeout {
			if checked {
				c.mu.Unlock()
				if !pc.peerGone() {
					return pc, true, nil
				}
				pc.Close()
				c.mu.Lock()
				continue
			}
			c.mu.Unlock()
			return pc, true, nil
		}
		pc.Close()
	}
	c.mu.Unlock()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	conn, err := c.dialer.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, false, err
	}
	conn = newSysConn(conn)
	pc = &h1Conn{Conn: conn, bw: bufio.NewWriterSize(conn, 16<<10), host: host}
	pc.limit.Conn = conn
	pc.br = bufio.NewReaderSize(&pc.limit, 16<<10)
	return pc, false, nil
}

// peerGone reports whether the instance closed or reset the idle connection, or sent bytes
// nobody asked for: one non-blocking peek at the socket.
func (pc *h1Conn) peerGone() bool {
	sc, ok := pc.Conn.(syscall.Conn)
	if !ok || !canPeek {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	err = raw.Read(func(fd uintptr) bool {
		n, err := peekSocket(fd)
		gone = n > 0 || (n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN && err != syscall.EINTR)
		return true
	})
	return gone || err != nil
}

// maxResponseHead bounds the status line and headers of a response, as http.Transport's
// MaxResponseHeaderBytes does.
const maxResponseHead = 1 << 20

var errHeadTooLarge = errors.New("the message head is larger than allowed")

// limitedConn fails reads past a budget while one is set (during a response head).
type limitedConn struct {
	net.Conn
	budget int64 // < 0: no limit
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.budget >= 0 {
		if l.budget == 0 {
			return 0, errHeadTooLarge
		}
		if int64(len(p)) > l.budget {
			p = p[:l.budget]
		}
	}
	n, err := l.Conn.Read(p)
	if l.budget >= 0 {
		l.budget -= int64(n)
	}
	return n, err
}

func (c *h1Client) put(pc *h1Conn) {
	pc.idleFrom = time.Now()
	c.mu.Lock()
	if len(c.idle[pc.host]) < c.maxIdle {
		c.idle[pc.host] = append(c.idle[pc.host], pc)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	pc.Close()
}

// errStaleConn marks a failure on a reused keep-alive connection that the instance had
// already closed: nothing was processed, so the request is sent again on a new connection.
var errStaleConn = errors.New("keep-alive connection closed by the instance")

// RoundTrip sends req to req.URL.Host over HTTP/1.1.
func (c *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// Sent again on a fresh connection when a reused one turns out closed, if that is safe: the
	// instance may have read the request before closing.
	replayable := (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil) && idempotent(req)
	for {
		pc, reused, err := c.getUntil(ctx, req.URL.Host, time.Now(), time.Time{}, !replayable)
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		resp, err := c.exchange(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		if reused && errors.Is(err, errStaleConn) && replayable && ctx.Err() == nil {
			if req.GetBody != nil {
				if req.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
			}
			continue // once per stale connection; a fresh dial is never stale
		}
		return nil, err
	}
}

// exchange writes req on pc and reads the response head. The connection belongs to the
// returned body until it is read to the end or closed.
func (c *h1Client) exchange(ctx context.Context, pc *h1Conn, req *http.Request) (*http.Response, error) {
	pc.dl.set(pc.SetDeadline, time.Time{}, 0) // a deadline the raw lane left; here the context rules
	// Cancelling the request (client gone, timeout) unblocks any read or write on pc.
	stop := context.AfterFunc(ctx, func() { pc.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	// Request.Write hides an error reading the body behind an unexported type; keep it, so a
	// body over the limit stays an *http.MaxBytesError for the caller.
	var bodyErr error
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &bodyErrRecorder{ReadCloser: req.Body, err: &bodyErr}
	}
	if err := req.Write(pc.bw); err != nil {
		if bodyErr != nil {
			return fail(bodyErr)
		}
		return fail(staleIf(err))
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(staleIf(err))
	}
	for {
		pc.limit.budget = maxResponseHead
		resp, err := http.ReadResponse(pc.br, req)
		pc.limit.budget = -1
		if err != nil {
			return fail(staleIf(err))
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // 100 Continue, 103 Early Hints: the final answer follows
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// The connection is the upgraded stream now (WebSocket); it is never pooled.
			resp.Body = &upgradedConn{h1Conn: pc, stop: stop}
			return resp, nil
		}
		keep := !resp.Close && !req.Close
		if resp.Body == http.NoBody {
			c.release(pc, stop, keep)
			return resp, nil
		}
		resp.Body = &h1Body{rc: resp.Body, pc: pc, c: c, stop: stop, keep: keep}
		return resp, nil
	}
}

// staleIf classifies an error on a connection that was idle in the pool: the instance closed
// it (EOF, reset, broken pipe) before reading our request.
func staleIf(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return errors.Join(errStaleConn, err)
	}
	return err
}

// release returns pc to the pool unless it cannot be reused.
func (c *h1Client) release(pc *h1Conn, stop func() bool, keep bool) {
	if !stop() || !keep || pc.br.Buffered() > 0 {
		pc.Close() // cancelled (deadline set), closing, or bytes we did not ask for
		return
	}
	c.put(pc)
}

// h1Body hands the connection back to the pool once the body has been read to its end.
type h1Body struct {
	rc   io.ReadCloser
	pc   *h1Conn
	c    *h1Client
	stop func() bool
	keep bool
	done bool
	eof  bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF // a body read to its end stays at its end
	}
	if b.done {
		return 0, errors.New("read on a closed response body")
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
		b.finish()
	} else if err != nil {
		b.keep = false
		b.finish()
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.eof {
		b.keep = false // the rest of the body is still on the wire
	}
	b.finish()
	return nil
}

func (b *h1Body) finish() {
	if b.done {
		return
	}
	b.done = true
	b.rc.Close()
	b.c.release(b.pc, b.stop, b.keep)
}

// upgradedConn is the body of a 101 response: the raw connection, readable and writable.
type upgradedConn struct {
	*h1Conn
	stop func() bool
	once sync.Once
}

func (u *upgradedConn) Read(p []byte) (int, error) {
	if u.br.Buffered() > 0 {
		return u.br.Read(p)
	}
	return u.h1Conn.Conn.Read(p)
}

func (u *upgradedConn) Write(p []byte) (int, error) { return u.h1Conn.Conn.Write(p) }

func (u *upgradedConn) Close() error {
	var err error
	u.once.Do(func() {
		u.stop()
		err = u.h1Conn.Conn.Close()
	})
	return err
}

// bodyErrRecorder remembers the first error reading a request body.
type bodyErrRecorder struct {
	io.ReadCloser
	err *error
}

func (b *bodyErrRecorder) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && *b.err == nil {
		*b.err = err
	}
	return n, err
}
