package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/shoal-sh/shoal/balancer"
)

// The HTTP/1.1 serving path.
//
// Written by hand because net/http's server, with httputil.ReverseProxy on top, spent most of
// the proxy's own CPU: a background read goroutine per request, the ResponseWriter machinery,
// and the request clone and header copies of ReverseProxy. This loop reads each request with
// http.ReadRequest, forwards it through the same retrying transport, and writes the answer
// with http.Response.Write — the standard library's parsers and framing, driven from one
// goroutine per client connection. On bench/proxy.sh it took the proxy from 21.7k to 30.4k
// requests per second and from 42 to 29 µs of CPU per request (docs/performance.md).
//
// HTTP/2 without TLS (prior knowledge, as gRPC clients speak it) is handed to an http.Server
// speaking only unencrypted HTTP/2, through an in-process listener, with the Proxy as handler;
// tracing middleware, when set, uses the net/http server path (serveStd), because it wraps an
// http.Handler.

// hopHeaders are removed from requests and responses that cross the proxy (RFC 9110 §7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHop deletes hop-by-hop headers and the ones Connection names. An upgrade keeps its
// Connection: Upgrade and Upgrade headers.
func removeHop(h http.Header, keepUpgrade bool) {
	upgrade := h.Get("Upgrade")
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
	if keepUpgrade && upgrade != "" {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", upgrade)
	}
}

// fastServer runs the HTTP/1.1 loop over a listener.
type fastServer struct {
	p   *Proxy
	so  ServerOptions
	h2  *http.Server  // serves the h2c connections handed to h2ln; its Shutdown drains them
	h2l *connListener // where serveConn hands h2c connections
	raw *h1Client     // the upstream client of the raw lane; nil when it is off (rawlane.go)

	mu       sync.Mutex
	conns    map[*fastConn]struct{}
	draining atomic.Bool
	wg       sync.WaitGroup
}

type fastConn struct {
	// ctx is the context of the connection's requests; cancel ends it when the client hangs up
	// while a request waits (clientWatch).
	ctx    context.Context
	cancel context.CancelFunc
	watch  *clientWatch
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	active atomic.Bool  // handling a request (not idle between requests)
	rdl    lazyDeadline // the read deadline of c, moved only when it must

	// For the raw lane (rawlane.go), reused from request to request.
	req      rawHead
	resp     rawHead
	out      []byte
	st       reqState
	key      uint64 // the client's hash for ip_hash
	clientIP string
	status   int    // the status of the answer to the current request, for its span
	traced   []byte // the raw lane's request to the instance with this attempt's trace context
}

func newFastServer(p *Proxy, so ServerOptions) *fastServer {
	s := &fastServer{p: p, so: so, conns: map[*fastConn]struct{}{}, h2l: newConnListener(), raw: p.rawLane()}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	s.h2 = &http.Server{Handler: p, Protocols: &protos, MaxHeaderBytes: so.MaxHeaderBytes, IdleTimeout: so.IdleTimeout,
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}
	go s.h2.Serve(s.h2l)
	return s
}

func (p *Proxy) serveFast(ctx context.Context, ln net.Listener, so ServerOptions) error {
	s := newFastServer(p, so)
	defer s.h2.Close()
	errc := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			s.wg.Add(1)
			// Requests outlive the shutdown signal: they finish during the drain.
			go s.serveConn(context.WithoutCancel(ctx), newSysConn(c))
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy listener: %w", err)
	case <-ctx.Done():
	}
	ln.Close()
	p.log.Info("draining: no new connections; waiting for in-flight requests", "timeout", so.DrainTimeout.String())
	s.draining.Store(true)
	dctx, cancel := context.WithTimeout(context.Background(), so.DrainTimeout)
	defer cancel()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.h2.Shutdown(dctx) // GOAWAY to h2c connections; their streams finish
	}()
	// Wake the idle connections: they close; busy ones close after their current answer.
	s.mu.Lock()
	for fc := range s.conns {
		if !fc.active.Load() {
			fc.c.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-dctx.Done():
		s.mu.Lock()
		for fc := range s.conns {
			fc.c.Close()
		}
		s.mu.Unlock()
		<-done
		return fmt.Errorf("drain timeout %s passed with requests still in flight; they were cut off", so.DrainTimeout)
	}
}

var h2Preface = []byte("PRI * HTTP/2.0\r\n")

func (s *fastServer) serveConn(ctx context.Context, c net.Conn) {
	defer s.wg.Done()
	p := s.p
	p.metrics.connections.Inc()
	defer p.metrics.connections.Dec()
	fc := &fastConn{c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 16<<10)}
	fc.ctx, fc.cancel = context.WithCancel(ctx)
	fc.clientIP = clientIP(c.RemoteAddr().String())
	fc.key = balancer.HashKey(fc.clientIP)
	fc.watch = newClientWatch(fc)
	s.mu.Lock()
	s.conns[fc] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, fc)
		s.mu.Unlock()
	}()

	hijacked := false
	defer func() {
		fc.watch.close()
		if !hijacked {
			fc.cancel() // an upgraded stream lives on with its request's context
			c.Close()
		}
	}()
	for first := true; ; first = false {
		if s.draining.Load() {
			return
		}
		fc.rdl.set(fc.c.SetReadDeadline, time.Now().Add(s.so.IdleTimeout), deadlineSlack(s.so.IdleTimeout))
		if _, err := fc.br.Peek(1); err != nil {
			return // closed, idle timeout, or woken for a drain
		}
		if first && s.h2Preface(fc) {
			hijacked = true
			s.serveH2C(ctx, fc)
			return
		}
		fc.active.Store(true)
		keep, upgraded := s.serveRequest(fc)
		fc.active.Store(false)
		if upgraded {
			hijacked = true
			return
		}
		if !keep {
			return
		}
	}
}

// h2Preface reports whether the connection starts with HTTP/2's client preface. It waits for
// more bytes only while those that came could still be the preface, and then only for the
// header timeout: a short HTTP/1 head ("GET / HTTP/1") must not wait the idle timeout.
func (s *fastServer) h2Preface(fc *fastConn) bool {
	b, _ := fc.br.Peek(fc.br.Buffered())
	if len(b) >= len(h2Preface) {
		return bytes.Equal(b[:len(h2Preface)], h2Preface)
	}
	if !bytes.HasPrefix(h2Preface, b) {
		return false
	}
	fc.rdl.set(fc.c.SetReadDeadline, time.Now().Add(s.so.ReadHeaderTimeout), 0)
	b, _ = fc.br.Peek(len(h2Preface))
	return bytes.Equal(b, h2Preface)
}

// serveH2C hands a prior-knowledge HTTP/2 connection to the h2c server, replaying what was read.
func (s *fastServer) serveH2C(ctx context.Context, fc *fastConn) {
	fc.c.SetReadDeadline(time.Time{})
	buffered, _ := fc.br.Peek(fc.br.Buffered())
	conn := &replayConn{Conn: fc.c, r: io.MultiReader(bytes.NewReader(append([]byte(nil), buffered...)), fc.c)}
	if !s.h2l.hand(conn) {
		conn.Close() // shutting down
	}
}

// connListener is a net.Listener fed in process: serveConn hands it the connections that turn
// out to speak HTTP/2, for an http.Server to serve.
type connListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener() *connListener {
	return &connListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) hand(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// clientHead returns the head of the client's next request, still in fc.br, reading on under
// the header timeout as needed; nil when the connection failed or closed first, or, with
// tooLarge, when the head is over the limit (server.max_header_bytes and 4 KiB for the request
// line). A head larger than the usual buffer moves the connection to a buffer of the limit's
// size.
func (s *fastServer) clientHead(fc *fastConn) (head []byte, tooLarge bool) {
	limit := s.so.MaxHeaderBytes + 4096
	b, _ := fc.br.Peek(fc.br.Buffered())
	if end, _ := headEnd(b, 0); end > 0 {
		return b[:end], end > limit // the usual case: the whole head came in the first read
	}
	// The rest of the head has yet to come: it must come within the header timeout.
	fc.rdl.set(fc.c.SetReadDeadline, time.Now().Add(s.so.ReadHeaderTimeout), 0)
	for {
		if head = peekHead(fc.br); head != nil {
			return head, len(head) > limit
		}
		if fc.br.Buffered() < fc.br.Size() {
			return nil, false // the connection failed or closed
		}
		if fc.br.Size() >= limit {
			return nil, true
		}
		buffered, _ := fc.br.Peek(fc.br.Buffered())
		fc.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), fc.c), limit)
	}
}

// headVerdict returns the framing verdict on a request head, by the rules framingConn follows
// on a raw stream.
func headVerdict(head []byte) framingVerdict {
	var c framingConn
	c.feed(head)
	return c.next()
}

// replayConn is a connection whose first bytes were already read into a buffer.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (r *replayConn) Read(p []byte) (int, error) { return r.r.Read(p) }

// serveRequest reads, forwards and answers one request. keep says whether the connection may
// carry another; upgraded that it now belongs to an upgraded stream.
func (s *fastServer) serveRequest(fc *fastConn) (keep, upgraded bool) {
	p := s.p
	head, tooLarge := s.clientHead(fc)
	start := time.Now() // latencies count from a whole head
	switch {
	case tooLarge:
		s.writeError(fc, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large",
			fmt.Sprintf("the request headers are larger than %d bytes", s.so.MaxHeaderBytes), "", true)
		p.metrics.observe("OTHER", http.StatusRequestHeaderFieldsTooLarge, "", time.Since(start))
		return false, false
	case head == nil:
		return false, false // the client left or never finished its headers
	case s.raw != nil && fc.req.parseRequest(head) && s.rawEligible(&fc.req):
		return s.serveRaw(fc, head, start), false
	}
	// The standard path parses the same head again, from the buffer. net/http is lenient about
	// framing where a proxy must not be (smuggling.go); the raw head shows what it hides.
	verdict := headVerdict(head)
	req, err := http.ReadRequest(fc.br)
	fc.rdl.set(fc.c.SetReadDeadline, time.Time{}, 0)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isTimeout(err) {
			return false, false // the client left or never finished its headers
		}
		s.writeError(fc, http.StatusBadRequest, "bad_request", "the request is not valid HTTP/1.1: "+err.Error(), "", true)
		p.metrics.observe("OTHER", http.StatusBadRequest, "", time.Since(start))
		return false, false
	}
	keep = !req.Close
	switch {
	case req.ProtoAtLeast(1, 1) && len(req.Header["Host"]) == 0 && req.Host == "":
		s.writeError(fc, http.StatusBadRequest, "missing_host", "an HTTP/1.1 request needs a Host header", "", true)
		p.metrics.observe(req.Method, http.StatusBadRequest, "", time.Since(start))
		return false, false
	case !validHostHeader(req.Host):
		s.writeError(fc, http.StatusBadRequest, "bad_host",
			fmt.Sprintf("the Host header %s is not a host name or address with an optional port (RFC 9112 §3.2)", quoteShort(req.Host)), "", true)
		p.metrics.observe(req.Method, http.StatusBadRequest, "", time.Since(start))
		return false, false
	case req.Method == http.MethodConnect:
		s.writeError(fc, http.StatusMethodNotAllowed, "connect_not_supported",
			"shoal is a reverse proxy for one service; it does not tunnel CONNECT", "", true)
		p.metrics.observe(req.Method, http.StatusMethodNotAllowed, "", time.Since(start))
		return false, false
	}
	if verdict != framingOK {
		code, msg := verdict.problem()
		s.writeError(fc, http.StatusBadRequest, code, msg, "", true)
		p.metrics.observe(req.Method, http.StatusBadRequest, "", time.Since(start))
		return false, false
	}
	// The transport reads (and closes) the body it is given; the connection's own body is kept
	// apart so that what the transport left unread can be drained, within limits, before the
	// connection carries the next request.
	raw := req.Body
	if raw != http.NoBody {
		var body io.ReadCloser = io.NopCloser(&paceBody{r: raw, fc: fc, s: s})
		if max := p.opts.MaxBodyBytes; max > 0 {
			if req.ContentLength > max {
				s.writeError(fc, http.StatusRequestEntityTooLarge, "body_too_large",
					bodyTooLarge(req.ContentLength, max), "", true)
				p.metrics.observe(req.Method, http.StatusRequestEntityTooLarge, "", time.Since(start))
				return false, false
			}
			body = http.MaxBytesReader(nil, body, max)
		}
		req.Body = body
	}
	if req.Body != http.NoBody && strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		// We read the body before forwarding (for replay), so the client must be told to send it.
		io.WriteString(fc.bw, "HTTP/1.1 100 Continue\r\n\r\n")
		fc.bw.Flush()
	}
	req.Header.Del("Expect")

	// The outbound request: this request, turned from server-side into client-side.
	in := req
	isUpgrade := req.Header.Get("Upgrade") != "" && headerHasToken(req.Header, "Connection", "upgrade")
	remote := fc.c.RemoteAddr().String()
	st := p.newReqState(remote, req)
	out := req.WithContext(context.WithValue(fc.ctx, stateKey{}, st))
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "http", in.Host
	removeHop(out.Header, isUpgrade)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // no Go default User-Agent upstream
	}
	setForwarded(out.Header, remote, in.Host)
	if p.tracer != nil {
		ctx, span := p.tracer.server(out.Context(), propagation.HeaderCarrier(in.Header), in.Method, in.URL.Path, in.Host, fc.clientIP)
		out = out.WithContext(ctx)
		fc.status = 0
		defer func() { endServer(span, fc.status) }()
	}

	fc.watch.arm()
	resp, err := roundTripper{p}.RoundTrip(out)
	fc.watch.disarm()
	keep = keep && drainBody(raw)
	id := ""
	if st.chosen != nil {
		id = st.chosen.id
	}
	if err != nil && fc.ctx.Err() != nil {
		// The client left while its request waited: nobody to answer (nginx logs this as 499).
		fc.status = 499
		p.metrics.observe(req.Method, 499, id, time.Since(start))
		return false, false
	}
	if err != nil {
		return s.failRequest(fc, err, req.Method, req.URL.Path, id, start, keep), false
	}
	fc.status = resp.StatusCode
	if resp.StatusCode == http.StatusSwitchingProtocols {
		s.upgrade(fc, resp)
		p.metrics.observe(req.Method, resp.StatusCode, id, time.Since(start))
		return false, true
	}
	keep = s.writeResponse(fc, req, resp, keep)
	p.metrics.observe(req.Method, resp.StatusCode, id, time.Since(start))
	return keep, false
}

// failRequest answers a request that could not be relayed with the proxy's JSON error, and
// returns whether the connection may carry another request.
func (s *fastServer) failRequest(fc *fastConn, err error, method, path, id string, start time.Time, keep bool) bool {
	p := s.p
	var pe *proxyError
	if !errors.As(err, &pe) {
		pe = &proxyError{status: http.StatusBadGateway, code: "upstream_error", msg: "the request could not be relayed: " + err.Error()}
	}
	if pe.status == statusClientClosed {
		fc.status = pe.status // the client hung up before its body was in: nobody to answer
		p.metrics.observe(method, pe.status, id, time.Since(start))
		return false
	}
	if pe.client {
		p.log.Debug("request refused: the client's body", "status", pe.status, "error", pe.code, "method", method, "path", path, "detail", pe.msg)
	} else if pe.status >= 500 {
		p.log.Warn("proxy error", "status", pe.status, "error", pe.code, "instance", pe.instance, "method", method,
			"path", path, "detail", pe.msg)
	}
	keep = keep && !s.draining.Load() && !pe.client
	fc.status = pe.status
	s.writeError(fc, pe.status, pe.code, pe.msg, pe.instance, !keep)
	p.metrics.observe(method, pe.status, id, time.Since(start))
	return keep
}

// writeResponse writes an instance's answer to req to the client and returns whether the
// connection may carry another request.
func (s *fastServer) writeResponse(fc *fastConn, req *http.Request, resp *http.Response, keep bool) bool {
	p := s.p
	removeHop(resp.Header, false)
	p.modifyResponse(resp)
	// A body the instance ends by closing its connection (no length, not chunked) is passed on
	// the same way, so the client's connection closes after it too.
	closeDelimited := resp.ContentLength < 0 && resp.Body != http.NoBody && !isChunked(resp.TransferEncoding)
	if s.draining.Load() || !keep || closeDelimited {
		resp.Close, keep = true, false
	} else {
		resp.Close = false
	}
	// Streaming answers (unknown length, server-sent events) reach the client chunk by chunk.
	var w io.Writer = fc.bw
	if resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		w = flushWriter{fc.bw}
	}
	resp.ProtoMajor, resp.ProtoMinor = 1, 1
	if !req.ProtoAtLeast(1, 1) {
		// An HTTP/1.0 client knows no chunked encoding: a body of unknown length ends with the
		// connection instead.
		resp.ProtoMinor = 0
		if resp.ContentLength < 0 {
			resp.TransferEncoding, resp.Trailer = nil, nil
			resp.Close, keep = true, false
		}
	}
	werr := resp.Write(w)
	resp.Body.Close()
	if err := fc.bw.Flush(); err != nil || werr != nil {
		keep = false
	}
	return keep
}

// clientWatchDelay is how long a request waits for its answer before the proxy starts watching
// for its client leaving.
const clientWatchDelay = 250 * time.Millisecond

// clientWatch cancels the requests of a client that closes its connection while a request
// waits for the instance — what net/http's background read did for every request, here only
// for requests still waiting after clientWatchDelay. It peeks at the socket (MSG_PEEK), so the
// bytes of a pipelined next request stay unread; any byte at all ends the watch without
// cancelling. One per connection, with a reusable timer, so a request pays no allocation for it.
type clientWatch struct {
	fc    *fastConn
	raw   syscall.RawConn // nil when the connection has no file descriptor: no watching
	timer *time.Timer
	up    atomic.Pointer[h1Conn] // the raw lane's instance connection, woken when the client leaves
	mu    sync.Mutex             // held by a running watch, so disarm can wait for it
	state atomic.Int32           // 0 armed, 1 watching, 2 disarmed
}

func newClientWatch(fc *fastConn) *clientWatch {
	w := &clientWatch{fc: fc}
	w.state.Store(2)
	if sc, ok := fc.c.(syscall.Conn); ok && canPeek {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
			w.timer = time.AfterFunc(time.Hour, w.fire)
			w.timer.Stop()
		}
	}
	return w
}

// arm starts the delay before watching, for a request about to be forwarded.
func (w *clientWatch) arm() {
	if w.raw == nil || w.fc.br.Buffered() > 0 {
		return // pipelined bytes are waiting: the client has not left
	}
	w.state.Store(0)
	w.timer.Reset(clientWatchDelay)
}

func (w *clientWatch) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.state.CompareAndSwap(0, 1) {
		return // disarmed before the delay ran out
	}
	gone := false
	w.raw.Read(func(fd uintptr) bool {
		n, err := peekSocket(fd)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
			return false // nothing yet: wait until the socket is readable
		case err == nil && n == 0, err != nil:
			gone = true // an orderly close or a reset
		}
		return true // n > 0: the client sent more (pipelining); stop watching
	})
	if gone {
		w.fc.cancel()
		if pc := w.up.Swap(nil); pc != nil {
			pc.SetDeadline(time.Unix(1, 0))
		}
	}
}

// disarm ends the watch; the connection may be read again when it returns.
func (w *clientWatch) disarm() {
	if w.raw == nil {
		return
	}
	w.timer.Stop()
	if w.state.Swap(2) != 1 {
		return // never started watching
	}
	w.fc.c.SetReadDeadline(time.Unix(1, 0)) // wakes the watch's wait
	w.mu.Lock()                             // waits for it to end
	w.fc.rdl.set(w.fc.c.SetReadDeadline, time.Time{}, -1)
	w.mu.Unlock()
}

func (w *clientWatch) close() {
	if w.timer != nil {
		w.disarm()
	}
}

// upgrade writes the 101 answer and joins the client's connection to the instance's.
func (s *fastServer) upgrade(fc *fastConn, resp *http.Response) {
	up, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return
	}
	fmt.Fprintf(fc.bw, "HTTP/1.1 101 %s\r\n", http.StatusText(http.StatusSwitchingProtocols))
	resp.Header.Write(fc.bw)
	io.WriteString(fc.bw, "\r\n")
	if err := fc.bw.Flush(); err != nil {
		up.Close()
		fc.c.Close()
		return
	}
	go func() {
		defer fc.c.Close()
		defer up.Close()
		done := make(chan struct{}, 2)
		go func() { io.Copy(up, fc.br); done <- struct{}{} }() // fc.br holds bytes already read
		go func() { io.Copy(fc.c, up); done <- struct{}{} }()
		<-done // when one side ends, close both
	}()
}

// writeError answers with the proxy's JSON error.
func (s *fastServer) writeError(fc *fastConn, status int, code, msg, instance string, close bool) {
	body := errorJSON(errorBody{Error: code, Message: msg, Instance: instance, Status: status})
	resp := &http.Response{StatusCode: status, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
		ContentLength: int64(len(body)), Body: io.NopCloser(bytes.NewReader(body)), Close: close}
	errorHeaders(resp.Header, status, code)
	resp.Write(fc.bw)
	fc.bw.Flush()
}

// paceBody enforces server.read_body_timeout and server.min_body_rate on a request body read
// from the client: after n bytes, the client may have kept the proxy waiting at most
// read_body_timeout + n/min_body_rate in all. Only time spent waiting in Read counts, so an
// instance that reads the body slowly (back-pressure) does not use up the client's allowance. A
// client that sends a byte every few seconds ends with a 408 instead of holding its connection
// (and the instance's) forever.
type paceBody struct {
	r      io.Reader
	fc     *fastConn
	s      *fastServer
	n      int64
	waited time.Duration
}

func (b *paceBody) Read(p []byte) (int, error) {
	now := time.Now()
	allowed := b.s.bodyAllowance(b.n) - b.waited
	b.fc.rdl.set(b.fc.c.SetReadDeadline, now.Add(allowed), deadlineSlack(b.s.so.ReadBodyTimeout))
	n, err := b.r.Read(p)
	b.n += int64(n)
	b.waited += time.Since(now)
	return n, err
}

// bodyAllowance is how long, in all, a client may keep the proxy waiting for a body of which
// n bytes have come: server.read_body_timeout plus n at server.min_body_rate.
func (s *fastServer) bodyAllowance(n int64) time.Duration {
	d := s.so.ReadBodyTimeout
	if s.so.MinBodyRate > 0 {
		d += time.Duration(min(float64(n)/float64(s.so.MinBodyRate), 24*3600) * float64(time.Second))
	}
	return d
}

// bodyDeadline is the deadline for the rest of a body of cl bytes read at once from now.
func (s *fastServer) bodyDeadline(now time.Time, cl int64) time.Time {
	return now.Add(s.bodyAllowance(cl))
}

// drainBody reads what is left of a request body so the connection can carry the next
// request; it gives up (false: close the connection) past 256 KiB or on an error.
func drainBody(b io.ReadCloser) bool {
	if b == nil || b == http.NoBody {
		return true
	}
	n, err := io.CopyN(io.Discard, b, 256<<10)
	return n < 256<<10 && err == io.EOF
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isChunked(te []string) bool { return len(te) > 0 && te[len(te)-1] == "chunked" }

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// setForwarded appends the client to X-Forwarded-For and sets X-Forwarded-Host and -Proto.
func setForwarded(h http.Header, remote, host string) {
	ip := clientIP(remote)
	if prior := h["X-Forwarded-For"]; len(prior) > 0 {
		h["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
	} else {
		h["X-Forwarded-For"] = []string{ip}
	}
	h["X-Forwarded-Host"] = []string{host}
	h["X-Forwarded-Proto"] = []string{"http"}
}

// flushWriter flushes after every write, for streaming answers.
type flushWriter struct{ bw *bufio.Writer }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.bw.Write(p)
	if err == nil {
		err = f.bw.Flush()
	}
	return n, err
}

// lazyDeadline remembers a connection's deadline and moves it only when it must. A deadline
// change is a runtime timer operation, and a busy keep-alive connection would otherwise pay
// several per request; with it, a connection under load pays about one per slack interval. A
// deadline kept may be up to slack earlier than the one asked for, never later.
type lazyDeadline struct{ at time.Time } // zero: no deadline

// set makes the deadline want (zero: none) through setter, unless the current one is at most
// slack earlier. A negative slack forces the call (the deadline was changed behind our back).
func (l *lazyDeadline) set(setter func(time.Time) error, want time.Time, slack time.Duration) {
	if slack >= 0 {
		switch {
		case want.IsZero() && l.at.IsZero():
			return
		case !want.IsZero() && !l.at.IsZero() && !l.at.After(want) && want.Sub(l.at) <= slack:
			return
		}
	}
	setter(want)
	l.at = want
}

// deadlineSlack is how much earlier than asked a deadline for timeout d may fire: an eighth of
// it, at most a second.
func deadlineSlack(d time.Duration) time.Duration { return min(d/8, time.Second) }
