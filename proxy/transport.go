package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-sh/shoal/balancer"
	"github.com/shoal-sh/shoal/resilience"
)

// newUpstreamTransport returns the transport to instances: shoal's own HTTP/1.1 client
// (h1client.go), or for h2c an http.Transport speaking HTTP/2 without TLS, sized for a proxy:
// many idle connections per instance (Go's default keeps 2) and no transparent compression
// (the client negotiates encoding with the instance, not with us).
func newUpstreamTransport(h2c bool) http.RoundTripper {
	if !h2c {
		return newH1Client()
	}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	return &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		Protocols:           &protos,
	}
}

func newCheckTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
}

// proxyError is a failure the client is told about as a JSON error.
type proxyError struct {
	status   int
	code     string
	msg      string
	instance string
	err      error
	client   bool // the client's own doing (its body): never held against an instance
}

func (e *proxyError) Error() string { return e.msg }
func (e *proxyError) Unwrap() error { return e.err }

// failurePenalty is the latency reported to the balancer for a failed attempt.
const failurePenalty = time.Second

var (
	errTimeout    = errors.New("overall timeout")
	errTryTimeout = errors.New("per-try timeout")
)

// roundTripper is the ReverseProxy's transport: it picks an upstream per attempt and retries.
type roundTripper struct{ p *Proxy }

func idempotent(r *http.Request) bool {
	_, hasKey := r.Header["Idempotency-Key"]
	return idempotentMethod(r.Method) || hasKey
}

// dialFailed reports whether err happened before the request left: nothing reached the
// instance, so any request may be retried.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// clientBody is a streamed request body as it comes from the client. It notes whether the
// transport read from it, and remembers the first error reading it: a failure on the client's
// side (a malformed chunk, a cut-off upload, a body too slow or too large) must never be taken
// for the instance's, or a client could open every breaker by sending broken bodies.
type clientBody struct {
	io.ReadCloser
	touched atomic.Bool
	failed  atomic.Pointer[error]
}

func (b *clientBody) Read(p []byte) (int, error) {
	b.touched.Store(true)
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.failed.CompareAndSwap(nil, &err)
	}
	return n, err
}

// failure returns the error that reading the body met, or nil.
func (b *clientBody) failure() error {
	if b == nil {
		return nil
	}
	if e := b.failed.Load(); e != nil {
		return *e
	}
	return nil
}

func (rt roundTripper) RoundTrip(out *http.Request) (*http.Response, error) {
	p := rt.p
	st, _ := out.Context().Value(stateKey{}).(*reqState)
	if st == nil {
		st = &reqState{}
	}
	p.budget.Deposit()

	// Overall timeout until the response headers arrive; a streaming body may then take as
	// long as it needs.
	ctx, cancel := context.WithCancelCause(out.Context())
	overall := time.AfterFunc(p.opts.Retry.Timeout, func() { cancel(errTimeout) })
	defer overall.Stop()

	// The body: buffered for replay when its size is known and small enough, streamed otherwise
	// (then a retry is possible only while nothing of it was sent).
	var buffered []byte
	var streamed *clientBody
	hasBody := out.Body != nil && out.Body != http.NoBody
	if hasBody {
		if out.ContentLength >= 0 && out.ContentLength <= p.opts.Retry.MaxBodyBytes && p.opts.Retry.Attempts > 1 {
			b, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				return nil, clientBodyProblem(err)
			}
			buffered = b
		} else {
			streamed = &clientBody{ReadCloser: out.Body}
		}
	}
	replayable := !hasBody || buffered != nil
	mayRetryResponse := replayable && (idempotent(out) || p.opts.Retry.NonIdempotent)

	var lastErr error
	tried := st.tried[:0]
	for attempt := 0; attempt < p.opts.Retry.Attempts; attempt++ {
		if attempt > 0 {
			if !p.budget.Withdraw() {
				p.metrics.retries.WithLabelValues("budget_exhausted").Inc()
				break
			}
			if err := p.retry.Sleep(ctx, p.retry.Backoff(attempt-1)); err != nil {
				break
			}
			st.retries++
		}
		u, ticket, err := p.pickAllowed(st, &tried)
		if err != nil {
			if lastErr == nil {
				return nil, err
			}
			break
		}

		req := out
		if attempt > 0 {
			cp := *out
			u2 := *out.URL
			cp.URL = &u2
			req = &cp
		}
		req.URL.Scheme, req.URL.Host = u.url.Scheme, u.url.Host
		switch {
		case buffered != nil:
			req.Body = io.NopCloser(bytes.NewReader(buffered))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buffered)), nil }
		case streamed != nil:
			req.Body = streamed
		}
		hedge := mayRetryResponse && p.hedging() && attempt+1 < p.opts.Retry.Attempts
		tryCtx := ctx
		var tryTimer *time.Timer
		var tryCancel context.CancelCauseFunc
		stopTry := func() {} // frees tryCtx once the attempt, and its answer's body, are done
		if p.opts.Retry.TryTimeout > 0 || hedge {
			tryCtx, tryCancel = context.WithCancelCause(ctx)
			stopTry = func() { tryCancel(nil) }
		}
		if p.opts.Retry.TryTimeout > 0 {
			tryTimer = time.AfterFunc(p.opts.Retry.TryTimeout, func() { tryCancel(errTryTimeout) })
		}
		req = req.WithContext(tryCtx)

		u.backend.Acquire()
		var hop trace.Span
		if p.tracer != nil {
			hop = p.tracer.hop(req.Context(), propagation.HeaderCarrier(req.Header), req.Method, u)
		}
		start := time.Now()
		u.beginWait(start)
		var resp *http.Response
		if hedge {
			var side hedgeSide
			var hedged bool
			side, resp, err, hedged = p.roundTripHedged(out, req, tryCancel, st, &tried, hedgeSide{u: u, ticket: ticket, sent: start}, buffered)
			if hedged {
				attempt++ // the hedge took an attempt
			}
			u, ticket, start = side.u, side.ticket, side.sent
		} else {
			resp, err = p.transport.RoundTrip(req)
			now := time.Now()
			p.endWait(u, now, err == nil, now.Sub(start))
		}
		if tryTimer != nil {
			tryTimer.Stop()
		}

		if hop != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			endHop(hop, status, err)
		}
		latency := time.Since(start)

		if err != nil {
			stopTry()
			// A fast failure must not look like a fast instance to p2c_ewma.
			u.backend.Release(max(latency, failurePenalty))
			if berr := streamed.failure(); berr != nil {
				// The client's body failed, not the instance: nothing is held against it.
				if u.breaker != nil {
					u.breaker.Release(ticket)
				}
				return nil, clientBodyProblem(berr) // counted as the proxy's answer, not the instance's
			}
			if out.Context().Err() != nil {
				// The client went away: not the instance's fault, but it was this instance's
				// request (counted as 499 for it).
				if u.breaker != nil {
					u.breaker.Release(ticket)
				}
				st.chosen = u
				return nil, err
			}
			if errors.Is(context.Cause(ctx), errTimeout) {
				if u.breaker != nil {
					u.breaker.Record(ticket, false)
				}
				return nil, p.overallTimeout(u, err)
			}
			if u.breaker != nil {
				u.breaker.Record(ticket, false)
			}
			pe, reason := p.attemptFailed(u, err, errors.Is(context.Cause(tryCtx), errTryTimeout))
			lastErr = pe
			// Nothing reached the instance: any request may go elsewhere. Otherwise only one that
			// is safe to repeat and whose body can be sent again.
			nothingSent := dialFailed(err) && (streamed == nil || !streamed.touched.Load())
			if !nothingSent && !mayRetryResponse {
				break
			}
			p.metrics.retries.WithLabelValues(reason).Inc()
			continue
		}

		if p.answered(u, ticket, resp.StatusCode) && mayRetryResponse && attempt+1 < p.opts.Retry.Attempts {
			// Keep the connection reusable: read a little of the body, then drop it.
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
			resp.Body.Close()
			stopTry()
			lastErr = p.droppedForRetry(u, resp.StatusCode, latency)
			continue
		}
		st.chosen = u
		// In flight until the body is done, so least_connections sees streams and WebSockets.
		if resp.StatusCode == http.StatusSwitchingProtocols {
			if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
				resp.Body = &releasingRWC{ReadWriteCloser: rwc, b: u.backend, latency: latency, stop: stopTry}
				return resp, nil
			}
		}
		resp.Body = &releasingBody{ReadCloser: resp.Body, b: u.backend, latency: latency, p: p, u: u, ctx: out.Context(), stop: stopTry}
		return resp, nil
	}
	if lastErr == nil {
		lastErr = errNoUpstream
	}
	return nil, lastErr
}

// answered records an instance's answer with its breaker and passive health, and reports
// whether the answer says the instance is failing (502, 503, 504: worth a retry elsewhere).
func (p *Proxy) answered(u *upstream, ticket resilience.Ticket, status int) (gateway bool) {
	gateway = status == http.StatusBadGateway || status == http.StatusServiceUnavailable ||
		status == http.StatusGatewayTimeout
	if u.breaker != nil {
		u.breaker.Record(ticket, !gateway)
	}
	if gateway {
		p.passiveFailure(u, fmt.Sprintf("answered %d", status))
	}
	return gateway
}

// droppedForRetry ends an attempt whose failing answer is dropped for a retry elsewhere, and
// returns the error the client gets if no retry succeeds.
func (p *Proxy) droppedForRetry(u *upstream, status int, latency time.Duration) *proxyError {
	u.backend.Release(max(latency, failurePenalty))
	p.metrics.retries.WithLabelValues(fmt.Sprintf("status_%d", status)).Inc()
	return &proxyError{status: status, code: "upstream_error", instance: u.id,
		msg: fmt.Sprintf("instance %s answered %d", u.id, status)}
}

// overallTimeout is the error of a request that no instance answered within the overall
// timeout; u is the instance tried last (nil if none).
func (p *Proxy) overallTimeout(u *upstream, err error) *proxyError {
	pe := &proxyError{status: http.StatusGatewayTimeout, code: "timeout", err: err,
		msg: fmt.Sprintf("no instance answered within %s (scaling.load_balancer.retry.timeout)", p.opts.Retry.Timeout)}
	if u != nil {
		pe.instance = u.id
	}
	return pe
}

// attemptFailed counts a failed attempt against u (passive health) and returns the error the
// client gets if no retry succeeds, and the retry reason for metrics.
func (p *Proxy) attemptFailed(u *upstream, err error, tryTimedOut bool) (*proxyError, string) {
	p.passiveFailure(u, err.Error())
	if tryTimedOut {
		return &proxyError{status: http.StatusGatewayTimeout, code: "timeout", instance: u.id, err: err,
			msg: fmt.Sprintf("instance %s (%s) did not answer within %s (scaling.load_balancer.retry.try_timeout)",
				u.id, u.url.Host, p.opts.Retry.TryTimeout)}, "try_timeout"
	}
	return &proxyError{status: http.StatusBadGateway, code: "upstream_unreachable", instance: u.id, err: err,
		msg: fmt.Sprintf("instance %s (%s) failed: %v", u.id, u.url.Host, err)}, "connection_error"
}

// pickAllowed picks an untried upstream whose breaker lets a call through.
func (p *Proxy) pickAllowed(st *reqState, tried *[]*balancer.Backend) (*upstream, resilience.Ticket, error) {
	open := 0
	for {
		u := p.pick(st, *tried)
		if u == nil {
			switch {
			case open > 0:
				return nil, resilience.Ticket{}, &proxyError{status: http.StatusServiceUnavailable, code: "circuit_open",
					msg: fmt.Sprintf("the circuit breaker of every instance tried (%d) is open; they are given another chance after %s (scaling.load_balancer.circuit_breaker.recovery_timeout)",
						open, p.opts.Breaker.RecoveryTimeout)}
			case len(*tried) == 0 && p.pool.Load().nAll == 0:
				return nil, resilience.Ticket{}, &proxyError{status: http.StatusServiceUnavailable, code: "no_instances",
					msg: "no instance of the service is registered with the proxy", err: errNoUpstream}
			default:
				return nil, resilience.Ticket{}, &proxyError{status: http.StatusServiceUnavailable, code: "no_instances",
					msg: "every instance has been tried", err: errNoUpstream}
			}
		}
		*tried = append(*tried, u.backend)
		if u.breaker == nil {
			return u, resilience.Ticket{}, nil
		}
		t, err := u.breaker.Allow()
		if err == nil {
			return u, t, nil
		}
		open++
	}
}

// clientBodyProblem is the answer to a request whose body could not be read from the client:
// too large (413), too slow (408), cut off by the client (499: nobody is left to answer), or
// malformed (400). None of these is the instance's fault.
func clientBodyProblem(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &proxyError{status: http.StatusRequestEntityTooLarge, code: "body_too_large", err: err, client: true,
			msg: fmt.Sprintf("the request body is larger than %d bytes (server.max_body_bytes)", mbe.Limit)}
	case isTimeout(err):
		return &proxyError{status: http.StatusRequestTimeout, code: "body_timeout", err: err, client: true,
			msg: "the request body came too slowly (server.read_body_timeout, server.min_body_rate); send it at once, or raise those limits"}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return &proxyError{status: statusClientClosed, code: "client_closed", err: err, client: true,
			msg: "the client closed its connection before sending the whole request body"}
	}
	return &proxyError{status: http.StatusBadRequest, code: "body_malformed", err: err, client: true,
		msg: fmt.Sprintf("the request body could not be read: %v; check its Transfer-Encoding or Content-Length", err)}
}

// statusClientClosed is nginx's 499: the client went away before it was answered.
const statusClientClosed = 499

// releasingBody marks the request done for the balancer when the response body is closed, and
// holds an answer the instance cut short against it (passive health): a valid head followed by
// a broken body is a failing instance even while its health checks pass.
type releasingBody struct {
	io.ReadCloser
	b       *balancer.Backend
	latency time.Duration
	done    atomic.Bool
	p       *Proxy
	u       *upstream
	ctx     context.Context // the client's request: when it ended, a read error is the client's doing
	failed  atomic.Bool
	stop    func() // when set, called once the body is closed
}

func (r *releasingBody) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	if err != nil && err != io.EOF && r.p != nil && r.ctx.Err() == nil && r.failed.CompareAndSwap(false, true) {
		r.p.truncated(r.u, err)
	}
	return n, err
}

func (r *releasingBody) Close() error {
	err := r.ReadCloser.Close()
	if r.done.CompareAndSwap(false, true) {
		if r.b != nil {
			r.b.Release(r.latency)
		}
		if r.stop != nil {
			r.stop()
		}
	}
	return err
}

type releasingRWC struct {
	io.ReadWriteCloser
	b       *balancer.Backend
	latency time.Duration
	done    atomic.Bool
	stop    func()
}

func (r *releasingRWC) Close() error {
	err := r.ReadWriteCloser.Close()
	if r.done.CompareAndSwap(false, true) {
		r.b.Release(r.latency)
		r.stop()
	}
	return err
}
