package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// The raw lane: the HTTP/1.1 serving loop's path for ordinary requests.
//
// A request whose head is simple (rawhead.go) and whose body, if any, has a Content-Length small
// enough to keep for replay is forwarded as bytes: its head is copied to the instance with the
// hop-by-hop headers left out and X-Forwarded-* set, the instance's answer head is read the same
// way, and the answer goes back to the client as it came, minus its hop-by-hop headers. No
// http.Request, header map, context or timer is made per request; timeouts are connection
// deadlines. The policy is the same as the standard path's (transport.go): the balancer, the
// circuit breaker, the retry budget and backoff, passive health, per-try and overall timeouts,
// retries on connection failures and on 502/503/504 for idempotent requests, and the same JSON
// errors. Anything else — chunked or large bodies, Expect, upgrades, HTTP/1.0, answers without a
// length (streams), informational answers, unusual bytes — takes the standard path, which also
// covers answers whose head the raw reader leaves to net/http.

// rawBodyMax is the largest request body the raw lane keeps (for replay); larger ones take the
// standard path, which streams them.
const rawBodyMax = 64 << 10

// rawLane returns the proxy's own HTTP/1.1 client when the raw lane may be used: the transport
// is not wrapped or replaced (tracing wraps it).
func (p *Proxy) rawLane() *h1Client {
	c, _ := p.transport.(*h1Client)
	return c
}

// rawEligible reports whether a parsed request may take the raw lane.
func (s *fastServer) rawEligible(h *rawHead) bool {
	cl := h.contentLength
	if cl <= 0 {
		return true
	}
	o := &s.p.opts
	return cl <= rawBodyMax && cl <= o.Retry.MaxBodyBytes && o.Retry.Attempts > 1 &&
		(o.MaxBodyBytes <= 0 || cl <= o.MaxBodyBytes)
}

// serveRaw forwards the request whose head is head (parsed into fc.req) and answers it. It
// returns whether the connection may carry another request. start is when its head was
// found.
func (s *fastServer) serveRaw(fc *fastConn, head []byte, start time.Time) bool {
	p := s.p
	h := &fc.req
	meth := methodName(h.method)
	keep := !h.close
	mayRetry := idempotentMethod(meth) || h.idempotencyKey || p.opts.Retry.NonIdempotent
	headRequest := meth == http.MethodHead
	var sctx context.Context // the request's span, when tracing
	if p.tracer != nil {
		var span trace.Span
		path, _, _ := bytes.Cut(h.target, []byte("?"))
		sctx, span = p.tracer.server(fc.ctx, rawCarrier{h}, meth, string(path), string(h.host), fc.clientIP)
		fc.status = 0
		defer func() { endServer(span, fc.status) }()
		for i := 0; i < h.n; i++ { // each attempt sends its own trace context instead
			if hd := &h.headers[i]; !hd.drop && slices.ContainsFunc(traceHeaders, func(n string) bool { return asciiEqualFold(hd.name, n) }) {
				hd.drop = true
				h.dropped++
			}
		}
	}

	// The request to the instance: the head with hop-by-hop and forwarding headers replaced,
	// then the body. Built before the client's buffer moves on: head points into it.
	out := append(fc.out[:0], head[:len(h.method)+1+len(h.target)]...)
	targetEnd := len(out)
	out = append(out, " HTTP/1.1\r\n"...)
	if h.dropped == 0 {
		out = append(out, h.block...) // the usual case: every line as it came, in one copy
	} else {
		for i := 0; i < h.n; i++ {
			if hd := &h.headers[i]; !hd.drop {
				out = append(out, hd.line...)
			}
		}
	}
	out = append(out, "X-Forwarded-For: "...)
	for i := 0; i < h.n; i++ { // the client's own list first, then the client
		if hd := &h.headers[i]; hd.drop && asciiEqualFold(hd.name, "x-forwarded-for") {
			out = append(append(out, hd.value...), ", "...)
		}
	}
	out = append(out, fc.clientIP...)
	out = append(out, "\r\nX-Forwarded-Host: "...)
	out = append(out, h.host...)
	out = append(out, "\r\nX-Forwarded-Proto: http\r\n\r\n"...)
	headEnd := len(out) - 2 // where the empty line starts: trace context goes in front of it
	pinned := ""            // the instance a valid affinity cookie names
	if p.affinity != nil {
		if v := cookieValue(h, p.affinity.Name()); v != nil {
			pinned, _ = p.affinity.Verify(string(v))
		}
	}
	// From here on head and h's slices may be overwritten: the body is read through the buffer.
	cl := max(h.contentLength, 0)
	fc.br.Discard(len(head))
	if cl > int64(fc.br.Buffered()) {
		// The rest of the body must come at server.min_body_rate after server.read_body_timeout.
		fc.rdl.set(fc.c.SetReadDeadline, s.bodyDeadline(time.Now(), cl), 0)
	}
	if cl > 0 {
		n := len(out)
		out = slices.Grow(out, int(cl))[:n+int(cl)]
		if _, err := io.ReadFull(fc.br, out[n:]); err != nil {
			fc.out = out[:0]
			var pe *proxyError
			errors.As(clientBodyProblem(err), &pe)
			if pe.status != statusClientClosed {
				s.writeError(fc, pe.status, pe.code, pe.msg, "", true)
			}
			fc.status = pe.status
			p.metrics.observe(meth, pe.status, "", time.Since(start))
			return false
		}
	}
	fc.out = out[:0] // keep the grown buffer for the next request

	p.budget.Deposit()
	deadline := start.Add(p.opts.Retry.Timeout)
	st := &fc.st
	st.key, st.pinned, st.chosen, st.retries = fc.key, pinned, nil, 0
	tried := st.tried[:0]
	var lastErr error
	var last *upstream // the instance tried last
	fc.watch.arm()
	defer fc.watch.disarm()
	for attempt := 0; attempt < p.opts.Retry.Attempts; attempt++ {
		if attempt > 0 {
			if !p.budget.Withdraw() {
				p.metrics.retries.WithLabelValues("budget_exhausted").Inc()
				break
			}
			if err := p.retry.Sleep(fc.ctx, p.retry.Backoff(attempt-1)); err != nil {
				break
			}
			if !time.Now().Before(deadline) {
				lastErr = p.overallTimeout(last, nil)
				break
			}
			st.retries++
		}
		u, ticket, err := p.pickAllowed(st, &tried)
		if err != nil {
			if lastErr == nil {
				lastErr = err
			}
			break
		}
		last = u
		u.backend.Acquire()
		sent := start // nothing happened since, but for the parsing
		if attempt > 0 || cl > 0 {
			sent = time.Now()
		}
		req := out
		var hop trace.Span
		if sctx != nil {
			lc := &lineCarrier{b: append(fc.traced[:0], out[:headEnd]...)}
			hop = p.tracer.hop(sctx, lc, meth, u)
			fc.traced = append(lc.b, out[headEnd:]...)
			req = fc.traced
		}
		a := rawAttempt{ctx: fc.ctx, up: &fc.watch.up, h: &fc.resp}
		if mayRetry && p.hedging() && attempt+1 < p.opts.Retry.Attempts {
			a.hedge = sent.Add(p.stallWait())
		}
		u.beginWait(sent)
		r, err := s.rawExchange(a, u, req, sent, deadline, headRequest, mayRetry)
		if errors.Is(err, errHedgePoint) {
			// No answer within the stall wait: the same request goes to another instance too.
			attempt++
			u, ticket, sent, r, err = s.rawHedge(fc, st, &tried, u, ticket, sent, r, req, deadline, headRequest)
			last = u
		} else {
			now := time.Now()
			p.endWait(u, now, err == nil, now.Sub(sent))
		}
		if hop != nil {
			endHop(hop, r.status, err)
		}
		latency := time.Since(sent)
		if err != nil {
			u.backend.Release(max(latency, failurePenalty)) // a fast failure must not look fast
			if fc.ctx.Err() != nil {
				if u.breaker != nil {
					u.breaker.Release(ticket) // the client left: not the instance's fault
				}
				fc.status = 499
				p.metrics.observe(meth, 499, u.id, time.Since(start))
				return false
			}
			if u.breaker != nil {
				u.breaker.Record(ticket, false)
			}
			if !time.Now().Before(deadline) {
				lastErr = p.overallTimeout(u, err)
				break
			}
			pe, reason := p.attemptFailed(u, err, errors.Is(err, errTryTimeout))
			lastErr = pe
			if !r.nothingSent && !mayRetry {
				break
			}
			p.metrics.retries.WithLabelValues(reason).Inc()
			continue
		}
		if p.answered(u, ticket, r.status) && mayRetry && attempt+1 < p.opts.Retry.Attempts {
			r.discard()
			lastErr = p.droppedForRetry(u, r.status, latency)
			continue
		}
		fc.watch.disarm() // the answer is here: the client may hang up now without cancelling anything
		setCookie := ""
		if p.affinity != nil && u.cookie != st.pinned {
			setCookie = (&http.Cookie{Name: p.affinity.Name(), Value: p.affinity.Sign(u.cookie), Path: "/",
				HttpOnly: true, SameSite: http.SameSiteLaxMode}).String()
		}
		fc.status = r.status
		keep = s.rawRelay(fc, u, &r, keep, meth, out[:targetEnd], setCookie)
		u.backend.Release(latency)
		p.metrics.observeInstance(u, meth, r.status, time.Since(start))
		return keep
	}
	if fc.ctx.Err() != nil {
		fc.status = 499
		p.metrics.observe(meth, 499, "", time.Since(start)) // the client left while a retry waited
		return false
	}
	if lastErr == nil {
		lastErr = errNoUpstream
	}
	return s.failRequest(fc, lastErr, meth, string(out[len(h.method)+1:targetEnd]), "", start, keep)
}

// rawResult is an instance's answer to a raw-lane request, its head read.
type rawResult struct {
	pc     *h1Conn
	c      *h1Client
	h      *rawHead // what the head was parsed into
	status int
	head   []byte         // the head, in pc's buffer; nil when resp holds the answer
	resp   *http.Response // an answer net/http parsed (not simple); nil otherwise
	body   int64          // bytes of body after head
	keep   bool           // the connection may be pooled after the body
	// nothingSent marks a failure before the request left (dial): any request may be retried.
	nothingSent bool
}

// rawAttempt is what one raw-lane exchange with an instance works with: the connection's own
// for the first attempt, fresh ones for a hedge running beside it (hedge.go).
type rawAttempt struct {
	ctx   context.Context         // the request's: done when the client left
	up    *atomic.Pointer[h1Conn] // where the instance connection is published, to be woken
	h     *rawHead                // where the answer head is parsed
	hedge time.Time               // when to stop waiting for a head and hedge; zero: never
}

// errHedgePoint says an attempt waited its hedge delay without an answer head: the request was
// sent and the connection is kept (rawResult.pc), so the wait may go on beside a hedge.
var errHedgePoint = errors.New("no answer within the stall wait")

// rawExchange sends req on a pooled connection to u and reads the answer's head. A request
// that may be sent twice (replayable) is sent again on a fresh connection when a reused one
// turns out closed; one that may not gets a reused connection only after a check that the
// instance has not closed it.
func (s *fastServer) rawExchange(a rawAttempt, u *upstream, req []byte, now, deadline time.Time, headRequest, replayable bool) (rawResult, error) {
	c := s.raw
	tryDeadline := s.tryDeadline(now, deadline)
	for {
		pc, reused, err := c.getUntil(a.ctx, u.url.Host, now, tryDeadline, !replayable)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && tryDeadline.Before(deadline) {
				err = errors.Join(errTryTimeout, err)
			}
			return rawResult{nothingSent: true}, err
		}
		waitUntil := tryDeadline
		if !a.hedge.IsZero() && a.hedge.Before(tryDeadline) {
			waitUntil = a.hedge
		}
		pc.dl.set(pc.SetDeadline, waitUntil, deadlineSlack(waitUntil.Sub(now)))
		a.up.Store(pc)
		r, err := s.rawRead(pc, req, a.h, headRequest)
		if a.up.Swap(nil) != pc {
			r.keep = false // the client left and the watch set pc's deadline: never pool it
			if err != nil && a.ctx.Err() != nil {
				pc.Close()
				return rawResult{}, err
			}
		}
		if err == nil {
			return r, nil
		}
		if waitUntil.Before(tryDeadline) && errors.Is(err, os.ErrDeadlineExceeded) && a.ctx.Err() == nil {
			return r, errHedgePoint // sent, no head yet: r.pc stays open
		}
		pc.Close()
		if reused && replayable && errors.Is(err, errStaleConn) && a.ctx.Err() == nil {
			now = time.Now()
			continue // most likely the instance had closed the idle connection
		}
		return rawResult{}, s.tryTimedOut(err, tryDeadline, deadline)
	}
}

// tryDeadline is when an attempt begun at now must have its answer head.
func (s *fastServer) tryDeadline(now, deadline time.Time) time.Time {
	if t := s.p.opts.Retry.TryTimeout; t > 0 {
		if d := now.Add(t); d.Before(deadline) {
			return d
		}
	}
	return deadline
}

// tryTimedOut marks a deadline error as the per-try timeout when that came first.
func (s *fastServer) tryTimedOut(err error, tryDeadline, deadline time.Time) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && tryDeadline.Before(deadline) && !time.Now().Before(tryDeadline) {
		return errors.Join(errTryTimeout, err)
	}
	return err
}

// rawRead writes req on pc and reads the answer's head.
func (s *fastServer) rawRead(pc *h1Conn, req []byte, h *rawHead, headRequest bool) (rawResult, error) {
	r := rawResult{pc: pc, c: s.raw, h: h}
	if sc, ok := pc.Conn.(*sysConn); ok && pc.br.Buffered() == 0 {
		sc.sendOnRead(req) // the read below sends it, then waits for the answer without trying first
	} else if _, err := pc.Write(req); err != nil {
		return r, staleIf(err)
	}
	return s.rawReadHead(r, headRequest)
}

// rawReadHead reads the answer head of a request sent on r.pc. A deadline leaves the connection
// as it was, so the head may be waited for again.
func (s *fastServer) rawReadHead(r rawResult, headRequest bool) (rawResult, error) {
	pc, h := r.pc, r.h
	pc.limit.budget = maxResponseHead
	defer func() { pc.limit.budget = -1 }()
	head, err := peekHeadErr(pc.br)
	if head != nil {
		if h.parseResponse(head) {
			noBody := headRequest || h.status == http.StatusNoContent || h.status == http.StatusNotModified
			if h.contentLength >= 0 || noBody {
				r.status, r.head, r.keep = h.status, head, !h.close
				if !noBody {
					r.body = h.contentLength
				}
				return r, nil
			}
		}
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		return r, err
	}
	// Not simple, too large for the buffer, or the connection failed: net/http reads it (and
	// reports the failure in its words).
	method := http.MethodGet
	if headRequest {
		method = http.MethodHead
	}
	for {
		resp, err := http.ReadResponse(pc.br, &http.Request{Method: method})
		if err != nil {
			return r, staleIf(err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return r, errors.New("the instance switched protocols for a request that did not ask to")
			}
			continue // 100 Continue, 103 Early Hints: the final answer follows
		}
		r.status, r.resp, r.keep = resp.StatusCode, resp, !resp.Close
		return r, nil
	}
}

// discard drops an answer that will not be relayed, keeping the connection when that is cheap.
func (r *rawResult) discard() {
	switch {
	case r.resp != nil:
		_, _ = io.CopyN(io.Discard, r.resp.Body, 4<<10)
		r.keep = r.keep && r.bodyDone(r.resp.Body)
		r.resp.Body.Close()
	case r.body <= 4<<10:
		_, err := r.pc.br.Discard(len(r.head) + int(r.body))
		r.keep = r.keep && err == nil
	default:
		r.keep = false
	}
	r.release()
}

func (r *rawResult) bodyDone(b io.Reader) bool {
	var one [1]byte
	n, err := b.Read(one[:])
	return n == 0 && err == io.EOF
}

// release returns the connection to the pool, or closes it.
func (r *rawResult) release() {
	pc := r.pc
	if !r.keep || pc.br.Buffered() > 0 {
		pc.Close()
		return
	}
	r.c.put(pc) // with its deadline: the next request sets its own
}

// rawRelay writes the answer to the client and returns whether the client connection may carry
// another request. target is the request's target, for the standard path's logs.
func (s *fastServer) rawRelay(fc *fastConn, u *upstream, r *rawResult, keep bool, meth string, target []byte, setCookie string) bool {
	keep = keep && !s.draining.Load()
	if r.resp != nil {
		resp := r.resp
		r.pc.dl.set(r.pc.SetDeadline, time.Time{}, 0) // the body may take as long as it needs, as on the standard path
		resp.Body = &releasingBody{ReadCloser: &h1Body{rc: resp.Body, pc: r.pc, c: r.c, stop: func() bool { return true }, keep: r.keep},
			p: s.p, u: u, ctx: fc.ctx} // no backend: the raw lane releases it itself
		if setCookie != "" {
			resp.Header.Add("Set-Cookie", setCookie)
		}
		req := &http.Request{Method: meth, ProtoMajor: 1, ProtoMinor: 1}
		return s.writeResponse(fc, req, resp, keep)
	}
	h := r.h // what rawRead parsed r.head into
	bw := fc.bw
	if h.dropped == 0 {
		bw.Write(r.head[:len(r.head)-2]) // the usual case: the head as it came, in one copy
	} else {
		bw.Write(h.statusLine)
		bw.WriteString("\r\n")
		for i := 0; i < h.n; i++ {
			if hd := &h.headers[i]; !hd.drop {
				bw.Write(hd.line)
			}
		}
	}
	if setCookie != "" {
		bw.WriteString("Set-Cookie: ")
		bw.WriteString(setCookie)
		bw.WriteString("\r\n")
	}
	if !keep {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	r.pc.br.Discard(len(r.head))
	if r.body > 0 && r.body <= int64(r.pc.br.Buffered()) {
		b, _ := r.pc.br.Peek(int(r.body)) // the usual case: the whole body came with the head
		bw.Write(b)
		r.pc.br.Discard(len(b))
	} else if r.body > 0 {
		r.pc.dl.set(r.pc.SetDeadline, time.Time{}, 0) // the body may take as long as it needs, as on the standard path
		from := errReader{r: r.pc.br}
		if n, err := io.CopyN(bw, &from, r.body); err != nil {
			if n < r.body {
				r.keep = false
			}
			keep = false
			if from.err != nil && fc.ctx.Err() == nil {
				// The instance, not the client, ended the body early.
				s.p.truncated(u, fmt.Errorf("%s: %d of %d bytes of body, then %w", target, n, r.body, from.err))
			}
		}
	}
	if err := bw.Flush(); err != nil {
		keep = false
	}
	r.release()
	return keep
}

// errReader remembers the error its reader returned, so a copy can tell a failed read from a
// failed write.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && e.err == nil {
		e.err = err
		if err == io.EOF {
			e.err = io.ErrUnexpectedEOF // CopyN reads only what the head announced: EOF is early
		}
	}
	return n, err
}

// cookieValue returns the value of the first cookie called name in the request's Cookie
// headers, or nil.
func cookieValue(h *rawHead, name string) []byte {
	for i := 0; i < h.n; i++ {
		hd := &h.headers[i]
		if !asciiEqualFold(hd.name, "cookie") {
			continue
		}
		for v := hd.value; len(v) > 0; {
			pair := v
			if j := bytes.IndexByte(v, ';'); j >= 0 {
				pair, v = v[:j], v[j+1:]
			} else {
				v = nil
			}
			pair = trimOWS(pair)
			if len(pair) > len(name) && pair[len(name)] == '=' && string(pair[:len(name)]) == name {
				return pair[len(name)+1:]
			}
		}
	}
	return nil
}

// methodName returns the method as one of the method label's values, without allocating;
// "OTHER" for the rest.
func methodName(b []byte) string {
	for _, l := range methodLabels[:len(methodLabels)-1] {
		if string(b) == l {
			return l
		}
	}
	return "OTHER"
}

func idempotentMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
