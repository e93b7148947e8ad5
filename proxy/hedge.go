package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/shoal-sh/shoal/balancer"
	"github.com/shoal-sh/shoal/resilience"
)

// Hedging: an idempotent request that waited the stall wait (stalls.go) without an answer head
// is sent to a second instance as well, and the first answer wins; the other attempt is cut off.
// This is what rescues the requests already waiting on an instance that hung: the stall check
// stops new ones going there, and each waiting one gets its answer from a peer after about a
// second instead of after the try timeout. Only requests that may be sent twice are hedged —
// idempotent methods, an Idempotency-Key, or retry.non_idempotent — with a body kept for replay,
// and each hedge is a retry: it takes an attempt and is paid from the retry budget, so hedging
// never adds more than the budget's share of load, however slow the fleet gets.
//
// Hand-written because no Go proxy or HTTP client library hedges (Envoy does, with
// hedge_on_per_try_timeout; this is that policy, with the delay taken from the fleet's latency).

// hedging reports whether requests may be hedged.
func (p *Proxy) hedging() bool {
	le := p.opts.LatencyEjection
	return !le.Disabled && !le.NoHedge
}

// errHedgeLost is the cause given to an attempt cut off because the other one answered first.
var errHedgeLost = errors.New("another attempt answered first")

// hedgeOutcome is how one attempt of a hedged pair ended.
type hedgeOutcome struct {
	hedge bool // the second attempt
	r     rawResult
	resp  *http.Response
	err   error
	at    time.Time
}

// hedgeSide is one attempt of a hedged pair: its instance, breaker ticket and when it was sent.
type hedgeSide struct {
	u      *upstream
	ticket resilience.Ticket
	sent   time.Time
}

// lose settles an attempt whose answer is not used: it answered after the other one, was cut
// off, or was abandoned with its client. Nothing is held against the instance.
func (p *Proxy) lose(side hedgeSide, o hedgeOutcome) {
	switch {
	case o.err == nil && o.resp != nil:
		o.resp.Body.Close()
	case o.err == nil && o.r.pc != nil:
		o.r.pc.Close() // an answer not read to its end
	}
	if side.u.breaker != nil {
		side.u.breaker.Release(side.ticket)
	}
	p.endWait(side.u, o.at, o.err == nil, o.at.Sub(side.sent))
	side.u.backend.Release(o.at.Sub(side.sent))
}

// failed settles an attempt that failed on its own while its pair went on: it counts against
// its instance as any failed attempt does.
func (p *Proxy) failed(side hedgeSide, o hedgeOutcome, tryTimedOut bool) {
	p.endWait(side.u, o.at, false, 0)
	side.u.backend.Release(max(o.at.Sub(side.sent), failurePenalty))
	if side.u.breaker != nil {
		side.u.breaker.Record(side.ticket, false)
	}
	p.attemptFailed(side.u, o.err, tryTimedOut)
}

// pickHedge picks the instance for a hedge and pays for it from the retry budget; false when
// there is none to send it to, or no budget.
func (p *Proxy) pickHedge(st *reqState, tried *[]*balancer.Backend) (hedgeSide, bool) {
	u, t, err := p.pickAllowed(st, tried)
	if err != nil {
		return hedgeSide{}, false
	}
	if !p.budget.Withdraw() {
		if u.breaker != nil {
			u.breaker.Release(t)
		}
		*tried = (*tried)[:len(*tried)-1] // a later retry may still go there
		p.metrics.retries.WithLabelValues("budget_exhausted").Inc()
		return hedgeSide{}, false
	}
	st.retries++
	p.metrics.retries.WithLabelValues("hedge").Inc()
	u.backend.Acquire()
	now := time.Now()
	u.beginWait(now)
	return hedgeSide{u: u, ticket: t, sent: now}, true
}

// rawHedge goes on waiting for the answer to the raw-lane request r1 sent to first, which has
// waited the stall wait, and sends the same request to a second instance; it returns the
// attempt whose answer came first, or the last failure when both failed. Everything about the
// other attempt is settled here; the returned one is left to the caller as a single attempt
// would be, but for its wait (beginWait/endWait), which is settled too.
func (s *fastServer) rawHedge(fc *fastConn, st *reqState, tried *[]*balancer.Backend, u1 *upstream, t1 resilience.Ticket, sent1 time.Time,
	r1 rawResult, req []byte, deadline time.Time, headRequest bool) (*upstream, resilience.Ticket, time.Time, rawResult, error) {
	p := s.p
	first := hedgeSide{u: u1, ticket: t1, sent: sent1}
	try1 := s.tryDeadline(sent1, deadline)
	resume := func(up *atomic.Pointer[h1Conn]) (rawResult, error) {
		r1.pc.dl.set(r1.pc.SetDeadline, try1, 0)
		up.Store(r1.pc)
		r, err := s.rawReadHead(r1, headRequest)
		if up.Swap(nil) != r1.pc {
			r.keep = false // woken: never pool it
		}
		if err != nil {
			r1.pc.Close()
			return rawResult{}, s.tryTimedOut(err, try1, deadline)
		}
		return r, nil
	}
	second, ok := p.pickHedge(st, tried)
	if !ok {
		p.metrics.hedges.WithLabelValues("not_sent").Inc()
		r, err := resume(&fc.watch.up)
		now := time.Now()
		p.endWait(u1, now, err == nil, now.Sub(sent1))
		return u1, t1, sent1, r, err
	}

	results := make(chan hedgeOutcome, 2)
	var up1, up2 atomic.Pointer[h1Conn]
	hctx, hcancel := context.WithCancel(fc.ctx)
	defer hcancel()
	go func() {
		r, err := resume(&up1)
		results <- hedgeOutcome{r: r, err: err, at: time.Now()}
	}()
	go func() {
		a := rawAttempt{ctx: hctx, up: &up2, h: new(rawHead)}
		r, err := s.rawExchange(a, second.u, req, second.sent, deadline, headRequest, true)
		results <- hedgeOutcome{hedge: true, r: r, err: err, at: time.Now()}
	}()
	wake := func(up *atomic.Pointer[h1Conn]) {
		if pc := up.Swap(nil); pc != nil {
			pc.SetDeadline(time.Unix(1, 0))
		}
	}
	cutOff := func(hedge bool) {
		if hedge {
			hcancel()
			wake(&up2)
		} else {
			wake(&up1)
		}
	}
	sideOf := func(o hedgeOutcome) hedgeSide {
		if o.hedge {
			return second
		}
		return first
	}

	// The client leaving cuts both attempts off, so no wait below outlasts it.
	stopWatch := context.AfterFunc(fc.ctx, func() {
		cutOff(false)
		cutOff(true)
	})
	defer stopWatch()
	a := <-results
	if a.err == nil && fc.ctx.Err() == nil {
		cutOff(!a.hedge)
		b := <-results
		p.lose(sideOf(b), b)
		win := sideOf(a)
		p.endWait(win.u, a.at, true, a.at.Sub(win.sent))
		p.metrics.hedges.WithLabelValues(winner(a.hedge)).Inc()
		return win.u, win.ticket, win.sent, a.r, nil
	}
	// gone settles both attempts of a client that left: neither is anyone's failure. The first is
	// returned for the caller to settle as a request whose client left (499).
	gone := func(a, b hedgeOutcome) (*upstream, resilience.Ticket, time.Time, rawResult, error) {
		for _, o := range []hedgeOutcome{a, b} {
			if o.hedge {
				p.lose(second, o)
				continue
			}
			p.endWait(u1, o.at, false, 0)
			if o.err == nil {
				o.r.pc.Close()
			}
		}
		return u1, t1, sent1, rawResult{}, fc.ctx.Err()
	}
	if fc.ctx.Err() != nil {
		return gone(a, <-results)
	}
	// a failed on its own: it counts against its instance; the other may still answer.
	b := <-results
	if fc.ctx.Err() != nil {
		return gone(a, b)
	}
	p.failed(sideOf(a), a, errors.Is(a.err, errTryTimeout))
	side := sideOf(b)
	p.endWait(side.u, b.at, b.err == nil, b.at.Sub(side.sent))
	if b.err == nil {
		p.metrics.hedges.WithLabelValues(winner(b.hedge)).Inc()
	} else {
		p.metrics.hedges.WithLabelValues("both_failed").Inc()
	}
	return side.u, side.ticket, side.sent, b.r, b.err
}

// roundTripHedged is the standard path's attempt when the request may be hedged: req (to
// first) is sent at once and, when no answer head came within the stall wait, a copy goes to a
// second instance; the first answer wins. As rawHedge, it settles the other attempt and the
// waits of both; cancel cuts off req.
func (p *Proxy) roundTripHedged(out, req *http.Request, cancel context.CancelCauseFunc, st *reqState, tried *[]*balancer.Backend,
	first hedgeSide, buffered []byte) (_ hedgeSide, _ *http.Response, _ error, hedged bool) {
	results := make(chan hedgeOutcome, 2)
	go func() {
		resp, err := p.transport.RoundTrip(req)
		results <- hedgeOutcome{resp: resp, err: err, at: time.Now()}
	}()
	timer := time.NewTimer(p.stallWait())
	var a hedgeOutcome
	select {
	case a = <-results:
		timer.Stop()
		p.endWait(first.u, a.at, a.err == nil, a.at.Sub(first.sent))
		return first, a.resp, a.err, false
	case <-timer.C:
	}
	second, ok := p.pickHedge(st, tried)
	if !ok {
		p.metrics.hedges.WithLabelValues("not_sent").Inc()
		a = <-results
		p.endWait(first.u, a.at, a.err == nil, a.at.Sub(first.sent))
		return first, a.resp, a.err, false
	}
	hctx, hcancel := context.WithCancelCause(req.Context())
	defer hcancel(nil)
	cp := *out
	u2 := *out.URL
	cp.URL = &u2
	cp.URL.Scheme, cp.URL.Host = second.u.url.Scheme, second.u.url.Host
	cp.Header = out.Header.Clone()
	if buffered != nil {
		cp.Body = io.NopCloser(bytes.NewReader(buffered))
		cp.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buffered)), nil }
	}
	hreq := cp.WithContext(hctx)
	if t := p.opts.Retry.TryTimeout; t > 0 {
		tt := time.AfterFunc(t, func() { hcancel(errTryTimeout) })
		defer tt.Stop()
	}
	go func() {
		resp, err := p.transport.RoundTrip(hreq)
		results <- hedgeOutcome{hedge: true, resp: resp, err: err, at: time.Now()}
	}()
	sideOf := func(o hedgeOutcome) hedgeSide {
		if o.hedge {
			return second
		}
		return first
	}
	cutOff := func(hedge bool) {
		if hedge {
			hcancel(errHedgeLost)
		} else {
			cancel(errHedgeLost)
		}
	}
	a = <-results
	if a.err == nil {
		cutOff(!a.hedge)
		b := <-results
		p.lose(sideOf(b), b)
		win := sideOf(a)
		p.endWait(win.u, a.at, true, a.at.Sub(win.sent))
		p.metrics.hedges.WithLabelValues(winner(a.hedge)).Inc()
		return win, a.resp, nil, true
	}
	if out.Context().Err() != nil {
		// The client left: as in rawHedge, the first is returned, the second settled here.
		cutOff(true)
		cutOff(false)
		b := <-results
		for _, o := range []hedgeOutcome{a, b} {
			if o.hedge {
				p.lose(second, o)
				continue
			}
			p.endWait(first.u, o.at, false, 0)
			if o.err == nil {
				o.resp.Body.Close()
			}
		}
		return first, nil, out.Context().Err(), true
	}
	b := <-results
	ctxOf := req.Context()
	if a.hedge {
		ctxOf = hctx
	}
	p.failed(sideOf(a), a, errors.Is(context.Cause(ctxOf), errTryTimeout))
	side := sideOf(b)
	p.endWait(side.u, b.at, b.err == nil, b.at.Sub(side.sent))
	if b.err == nil {
		p.metrics.hedges.WithLabelValues(winner(b.hedge)).Inc()
	} else {
		p.metrics.hedges.WithLabelValues("both_failed").Inc()
	}
	return side, b.resp, b.err, true
}

// winner names the outcome of a hedged pair one of whose attempts answered.
func winner(hedge bool) string {
	if hedge {
		return "hedge_won"
	}
	return "primary_won"
}
