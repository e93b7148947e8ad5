package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-sh/shoal/balancer"
	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/resilience"
)

// Proxy is shoal's load-balancing reverse proxy: an http.Handler that sends each request to
// one healthy upstream instance by the configured algorithm, retries failures on another
// instance within a budget, keeps a circuit breaker and passive health per instance, checks
// instances actively, and drains instances that leave.
type Proxy struct {
	opts    Options
	log     *slog.Logger
	clock   resilience.Clock
	metrics *metrics

	rp        *httputil.ReverseProxy
	transport http.RoundTripper // to upstreams, wrapped by Options.WrapTransport
	base      http.RoundTripper // the unwrapped transport, whose idle connections Close closes
	checker   *http.Client      // active health checks
	retry     *resilience.Retry
	budget    *resilience.Budget
	affinity  *balancer.Affinity
	tracer    *tracer // nil: not tracing (Options.Tracing)

	heads       headLatencies // waits for answer heads, fleet-wide (stalls.go)
	stallWaitNs atomic.Int64  // the current stall wait and hedge delay

	eligible balancer.Picker // healthy, not ejected, not draining
	fallback balancer.Picker // not draining: panic mode, when nothing is eligible

	mu        sync.Mutex // guards ups and closed, and serializes rebuilds
	ups       map[string]*upstream
	closed    bool // Close was called: no new background goroutines
	pool      atomic.Pointer[pool]
	panicking bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type stateKey struct{}

// reqState is what one request carries through the ReverseProxy into the transport.
type reqState struct {
	key     uint64
	pinned  string    // instance named by a valid affinity cookie (upstream.cookie)
	chosen  *upstream // the upstream that answered
	retries int
	tried   [8]*balancer.Backend
}

// New returns a Proxy with no upstreams; give it instances with Update or Watch. Close stops
// its background work.
func New(opts Options) (*Proxy, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	eligible, err := balancer.New(opts.Algorithm)
	if err != nil {
		return nil, err
	}
	fallback, _ := balancer.New(opts.Algorithm)
	retry, err := resilience.NewRetry(resilience.RetryConfig{
		MaxAttempts: opts.Retry.Attempts, BaseDelay: opts.Retry.Backoff, MaxDelay: opts.Retry.MaxBackoff,
		Clock: opts.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("retry settings: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		opts: opts, log: opts.Logger, clock: opts.Clock,
		transport: opts.Transport, retry: retry,
		budget:   resilience.NewBudget(opts.Retry.Budget, 10, 10*time.Second, opts.Clock),
		eligible: eligible, fallback: fallback,
		ups: map[string]*upstream{}, ctx: ctx, cancel: cancel,
		tracer: newTracer(opts.Tracing),
	}
	if p.transport == nil {
		p.transport = newUpstreamTransport(opts.H2C)
	}
	p.base = p.transport
	if opts.WrapTransport != nil {
		p.transport = opts.WrapTransport(p.transport)
	}
	p.checker = &http.Client{Transport: newCheckTransport(), Timeout: opts.HealthCheck.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if opts.SessionAffinity {
		p.affinity, err = balancer.NewAffinity(opts.AffinityKey, opts.AffinityCookie)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("session affinity: %w", err)
		}
	}
	p.metrics, err = newMetrics(opts.Registerer, p)
	if err != nil {
		cancel()
		return nil, err
	}
	p.pool.Store(&pool{byID: map[string]*upstream{}, byCookie: map[string]*upstream{}, byBack: map[*balancer.Backend]*upstream{}})
	p.stallWaitNs.Store(int64(p.computeStallWait()))
	if !opts.LatencyEjection.Disabled {
		p.wg.Add(1)
		go p.watchStalls()
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      roundTripper{p},
		FlushInterval:  100 * time.Millisecond, // streaming responses (unknown length, SSE) flush at once
		BufferPool:     bufferPool{},
		ErrorHandler:   p.errorHandler,
		ModifyResponse: p.modifyResponse,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// Close stops active health checks and background work. In-flight requests are not affected.
func (p *Proxy) Close() error {
	// Under p.mu, so that no Update or Drain starts a checker or drain goroutine once Close
	// waits for them (WaitGroup.Add must not race with Wait).
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	if t, ok := p.base.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	p.checker.CloseIdleConnections()
	return nil
}

// ServeHTTP proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if v := requestFraming(r.Context(), r.ProtoMajor); v != framingOK {
		w.Header().Set("Connection", "close")
		code, msg := v.problem()
		writeError(w, http.StatusBadRequest, code, msg)
		p.metrics.observe(r.Method, http.StatusBadRequest, "", time.Since(start))
		return
	}
	if !validHostHeader(r.Host) {
		writeError(w, http.StatusBadRequest, "bad_host",
			fmt.Sprintf("the Host header %s is not a host name or address with an optional port (RFC 9112 §3.2)", quoteShort(r.Host)))
		p.metrics.observe(r.Method, http.StatusBadRequest, "", time.Since(start))
		return
	}
	if max := p.opts.MaxBodyBytes; max > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > max {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
				bodyTooLarge(r.ContentLength, max))
			p.metrics.observe(r.Method, http.StatusRequestEntityTooLarge, "", time.Since(start))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}
	st := p.newReqState(r.RemoteAddr, r)
	sw := &statusWriter{ResponseWriter: w}
	ctx := r.Context()
	var span trace.Span
	if p.tracer != nil {
		ctx, span = p.tracer.server(ctx, propagation.HeaderCarrier(r.Header), r.Method, r.URL.Path, r.Host, clientIP(r.RemoteAddr))
	}
	p.rp.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, stateKey{}, st)))
	id := ""
	if st.chosen != nil {
		id = st.chosen.id
	}
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	if span != nil {
		endServer(span, status)
	}
	p.metrics.observe(r.Method, status, id, time.Since(start))
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	// The transport sets the upstream per attempt; this placeholder is never dialled.
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "upstream.shoal.invalid"
	pr.Out.Host = pr.In.Host // keep the client's Host, as the service expects
	if prior, ok := pr.In.Header["X-Forwarded-For"]; ok {
		pr.Out.Header["X-Forwarded-For"] = append([]string(nil), prior...)
	}
	pr.SetXForwarded()
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	if p.affinity == nil {
		return nil
	}
	st, _ := resp.Request.Context().Value(stateKey{}).(*reqState)
	if st != nil && st.chosen != nil && st.pinned != st.chosen.cookie {
		resp.Header.Add("Set-Cookie", (&http.Cookie{
			Name: p.affinity.Name(), Value: p.affinity.Sign(st.chosen.cookie), Path: "/",
			HttpOnly: true, SameSite: http.SameSiteLaxMode,
		}).String())
	}
	return nil
}

// newReqState starts the state of one request: the client's hash for ip_hash and the instance
// its affinity cookie pins it to, if the cookie is valid. Both serving paths use it.
func (p *Proxy) newReqState(remote string, r *http.Request) *reqState {
	st := &reqState{key: balancer.HashKey(clientIP(remote))}
	if p.affinity != nil {
		if c, err := r.Cookie(p.affinity.Name()); err == nil {
			st.pinned, _ = p.affinity.Verify(c.Value)
		}
	}
	return st
}

// bodyTooLarge says why a request with a declared body length is refused.
func bodyTooLarge(length, limit int64) string {
	return fmt.Sprintf("the request body is %d bytes; the limit is %d (server.max_body_bytes)", length, limit)
}

// clientIP returns the host part of a remote address without allocating.
func clientIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// Update makes instances the proxy's upstreams. Instances already known (by ID) keep their
// health, breaker and statistics; new ones start healthy and are checked at once; ones no
// longer listed, or listed as Draining, are drained: they get no new requests and their
// in-flight requests finish. An unchanged instance costs no allocation.
func (p *Proxy) Update(instances []discovery.Instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := make(map[string]bool, len(instances))
	for _, in := range instances {
		if in.Draining {
			continue // still registered but leaving: drained like an instance no longer listed
		}
		keep[in.ID] = true
		u, ok := p.ups[in.ID]
		if ok && discovery.SameURL(u.url, in.URL) && u.backend.Weight == max(in.Weight, 1) {
			if u.draining.Load() {
				u.draining.Store(false)
				p.log.Info("instance is back", "instance", u.id)
				p.startChecker(u)
			}
			continue
		}
		if ok {
			// Same ID, new address or weight: drain the old one, add the new one.
			p.startDrainLocked(u)
		}
		p.addLocked(in)
	}
	for id, u := range p.ups {
		if !keep[id] && !u.draining.Load() {
			p.startDrainLocked(u)
		}
	}
	p.rebuildLocked()
}

// Watch feeds the instances of provider to Update until ctx is done. A discovery error is
// logged and the last good set kept.
func (p *Proxy) Watch(ctx context.Context, provider discovery.Provider) {
	for ev := range provider.Watch(ctx) {
		if ev.Err != nil {
			p.log.Warn("service discovery failed; keeping the last known instances", "err", ev.Err)
			continue
		}
		p.Update(ev.Instances)
	}
}

func (p *Proxy) addLocked(in discovery.Instance) {
	u := &upstream{
		id: in.ID, cookie: cookieName(in.ID), url: in.URL, meta: in.Meta, added: p.clock.Now(),
		backend: balancer.NewBackend(in.ID, max(in.Weight, 1)),
	}
	u.healthy.Store(true)
	if bc := p.opts.Breaker; bc.Enabled {
		bc.OnStateChange = func(name string, from, to resilience.State) {
			level := slog.LevelInfo
			if to == resilience.StateOpen {
				level = slog.LevelWarn
			}
			p.log.Log(context.Background(), level, "circuit breaker changed state", "instance", name,
				"from", from.String(), "to", to.String())
			p.metrics.breakerChanges.WithLabelValues(name, to.String()).Inc()
		}
		b, err := resilience.NewBreaker(in.ID, bc)
		if err != nil {
			// Options were validated in New; a failure here is a programming error.
			p.log.Error("cannot create a circuit breaker; running without", "instance", in.ID, "err", err)
		} else {
			u.breaker = b
		}
	}
	p.ups[in.ID] = u
	p.log.Info("instance added", "instance", in.ID, "url", in.URL.Redacted(), "weight", u.backend.Weight)
	p.startChecker(u)
}

// Drain takes the instance out of rotation and waits until its in-flight requests have
// finished or ctx is done; then the instance is forgotten. It returns ctx's error if the wait
// was cut short, and nil for an unknown instance.
func (p *Proxy) Drain(ctx context.Context, id string) error {
	p.mu.Lock()
	u, ok := p.ups[id]
	if !ok {
		p.mu.Unlock()
		return nil
	}
	if !u.draining.Load() {
		p.startDrainLocked(u)
		p.rebuildLocked()
	}
	done := u.drained
	p.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("draining %s: %d requests still in flight: %w", id, u.backend.InFlight(), ctx.Err())
	}
}

func (p *Proxy) startDrainLocked(u *upstream) {
	u.draining.Store(true)
	p.stopChecker(u)
	u.mu.Lock()
	if u.drained == nil {
		u.drained = make(chan struct{})
	}
	drained := u.drained
	u.mu.Unlock()
	p.log.Info("draining instance", "instance", u.id, "in_flight", u.backend.InFlight())
	if p.closed {
		return // Close has stopped the background work; nothing will wait for this drain
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for u.backend.InFlight() > 0 && u.draining.Load() {
			select {
			case <-t.C:
			case <-p.ctx.Done():
				return
			}
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if !u.draining.Load() {
			return // it came back while draining
		}
		if p.ups[u.id] == u {
			delete(p.ups, u.id)
			p.rebuildLocked()
		}
		u.mu.Lock()
		select {
		case <-drained:
		default:
			close(drained)
		}
		u.mu.Unlock()
		p.log.Info("instance drained and removed", "instance", u.id)
	}()
}

// rebuild recomputes the pickers' sets from the upstreams' state.
func (p *Proxy) rebuild() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rebuildLocked()
}

func (p *Proxy) rebuildLocked() {
	now := p.clock.Now()
	ids := make([]string, 0, len(p.ups))
	for id := range p.ups {
		ids = append(ids, id)
	}
	sort.Strings(ids) // a stable order keeps round robin and hashing independent of map order
	pl := &pool{byID: make(map[string]*upstream, len(ids)), byCookie: make(map[string]*upstream, len(ids)),
		byBack: make(map[*balancer.Backend]*upstream, len(ids))}
	var eligible, all []*balancer.Backend
	for _, id := range ids {
		u := p.ups[id]
		pl.byID[id] = u
		pl.byCookie[u.cookie] = u
		pl.byBack[u.backend] = u
		if u.draining.Load() {
			continue
		}
		all = append(all, u.backend)
		if u.healthy.Load() && !u.ejected(now) {
			eligible = append(eligible, u.backend)
		}
	}
	pl.nElig, pl.nAll = len(eligible), len(all)
	p.eligible.Update(eligible)
	p.fallback.Update(all)
	p.pool.Store(pl)
	panicking := len(eligible) == 0 && len(all) > 0
	if panicking != p.panicking {
		p.panicking = panicking
		if panicking {
			p.log.Warn("every instance is unhealthy or ejected; serving from all of them until one recovers (panic mode)",
				"instances", len(all))
		} else {
			p.log.Info("healthy instances are back; panic mode over", "healthy", len(eligible))
		}
	}
	p.metrics.setPool(len(eligible), len(all), panicking)
}

// pick chooses the upstream for one attempt, skipping tried ones; nil when none is left.
func (p *Proxy) pick(st *reqState, tried []*balancer.Backend) *upstream {
	pl := p.pool.Load()
	if st.pinned != "" && len(tried) == 0 {
		if u := pl.byCookie[st.pinned]; u != nil && !u.draining.Load() && (pl.nElig == 0 || (u.healthy.Load() && !u.ejected(p.clock.Now()))) {
			return u
		}
	}
	var b *balancer.Backend
	if pl.nElig > 0 {
		b = p.eligible.Pick(st.key, tried)
	} else {
		b = p.fallback.Pick(st.key, tried)
	}
	if b == nil {
		return nil
	}
	return pl.byBack[b]
}

// Status returns every upstream's state, sorted by ID.
func (p *Proxy) Status() []UpstreamStatus {
	pl := p.pool.Load()
	now := p.clock.Now()
	out := make([]UpstreamStatus, 0, len(pl.byID))
	for _, u := range pl.byID {
		out = append(out, u.status(now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Panicking reports whether no instance is healthy and the proxy serves from all of them.
func (p *Proxy) Panicking() bool {
	pl := p.pool.Load()
	return pl.nElig == 0 && pl.nAll > 0
}

// statusWriter remembers the status code; Unwrap lets http.ResponseController reach the
// connection for flushes, hijacking (WebSocket) and deadlines.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var errNoUpstream = errors.New("no instance is registered")

// bufferPool lends 32 KiB copy buffers to the ReverseProxy.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(copyBuffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

var _ http.Handler = (*Proxy)(nil)
var _ prometheus.Collector = (*metrics)(nil)
