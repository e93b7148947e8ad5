package database

import (
	"context"
	"database/sql/driver"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// A database/sql pool waits for a free connection for as long as the caller's context lets it;
// there is no hook to bound that wait. So each call made through DB's methods carries a
// guardCtx: until a driver method sees it (the moment database/sql hands a connection over),
// its Done channel also closes after acquire_timeout; from then on it is the caller's context
// unchanged. The timer and the watch on the parent exist only while waiting, so nothing stays
// registered with a long-lived parent context once the connection is acquired, and no
// wrapper around rows or statements is needed to release anything. pgxpool's acquires get the
// same guard through its acquire tracer.
//
// Arming costs a timer, which was most of the guard's cost per call, so it is armed lazily:
// both pools check the context once without blocking (the first Done) and call Done again only
// to wait (database/sql's connection request, puddle's semaphore). The first Done is answered
// with the caller's channel, the second arms the timer. Were a pool to wait on the channel of
// its first Done, the wait would be bounded by the caller's context alone, as without the
// guard; the pool-limit tests of databasetest would show it.
//
// The driver connections are wrapped (guardConn) only to say "acquired"; every call is passed
// through, and optional interfaces the driver lacks answer as database/sql's defaults would.

const (
	guardWaiting int32 = iota
	guardAcquired
	guardExpired
)

type guardKey struct{}

type guardCtx struct {
	context.Context // the caller's
	timeout         time.Duration
	metrics         *poolMetrics
	start           time.Time
	state           atomic.Int32
	doneCalls       atomic.Int32

	mu       sync.Mutex
	waitDone chan struct{} // made by the first Done while waiting
	timer    *time.Timer
	stop     func() bool // stops the watch on the parent
}

// guard returns ctx wrapped so that waiting for a connection of p ends after its acquire
// timeout, or ctx itself when p has none.
func (p *sqlPool) guard(ctx context.Context) (context.Context, *guardCtx) {
	if p.acquireTimeout <= 0 {
		return ctx, nil
	}
	g := newGuard(ctx, p.acquireTimeout, p.metrics)
	return g, g
}

func newGuard(ctx context.Context, timeout time.Duration, m *poolMetrics) *guardCtx {
	return &guardCtx{Context: ctx, timeout: timeout, metrics: m, start: time.Now()}
}

func (g *guardCtx) Value(key any) any {
	if key == (guardKey{}) {
		return g
	}
	return g.Context.Value(key)
}

func (g *guardCtx) Done() <-chan struct{} {
	if g.state.Load() == guardAcquired {
		return g.Context.Done()
	}
	if g.doneCalls.Add(1) == 1 {
		return g.Context.Done() // the pool's non-blocking check before it looks for a connection
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.state.Load() {
	case guardAcquired:
		return g.Context.Done()
	case guardExpired:
		if g.waitDone == nil {
			g.waitDone = make(chan struct{})
			close(g.waitDone)
		}
		return g.waitDone
	}
	if g.waitDone == nil {
		g.waitDone = make(chan struct{})
		left := g.timeout - time.Since(g.start)
		g.timer = time.AfterFunc(max(left, 0), g.expire)
		if g.Context.Done() != nil {
			g.stop = context.AfterFunc(g.Context, g.parentDone)
		}
	}
	return g.waitDone
}

func (g *guardCtx) Err() error {
	switch g.state.Load() {
	case guardExpired:
		if err := g.Context.Err(); err != nil {
			return err
		}
		return context.DeadlineExceeded
	}
	return g.Context.Err()
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (g *guardCtx) expire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state.CompareAndSwap(guardWaiting, guardExpired) {
		close(g.waitDone)
		if g.stop != nil {
			g.stop()
		}
		g.metrics.acquireTimeouts.Add(1)
	}
}

func (g *guardCtx) parentDone() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state.Load() == guardWaiting && !isClosed(g.waitDone) {
		close(g.waitDone)
	}
}

// acquired marks the end of the wait: a driver method was called with this context.
func (g *guardCtx) acquired() {
	if g.state.Load() != guardWaiting {
		return
	}
	g.mu.Lock()
	if !g.state.CompareAndSwap(guardWaiting, guardAcquired) {
		g.mu.Unlock()
		return
	}
	g.disarm()
	g.mu.Unlock()
	g.metrics.observeAcquire(time.Since(g.start))
}

// done ends the guard after the call returned, whatever happened.
func (g *guardCtx) done() {
	if g == nil || g.state.Load() == guardAcquired {
		return
	}
	g.mu.Lock()
	g.disarm()
	g.mu.Unlock()
}

func (g *guardCtx) disarm() {
	if g.timer != nil {
		g.timer.Stop()
	}
	if g.stop != nil {
		g.stop()
	}
}

// timedOut reports whether the call failed because no connection became free in time (rather
// than because the caller's context ended).
func (g *guardCtx) timedOut() bool {
	return g != nil && g.state.Load() == guardExpired && g.Context.Err() == nil
}

func markAcquired(ctx context.Context) {
	if g, ok := ctx.Value(guardKey{}).(*guardCtx); ok {
		g.acquired()
	}
}

// guardConnector wraps a driver.Connector so its connections report acquisition.
type guardConnector struct{ driver.Connector }

func (c guardConnector) Connect(ctx context.Context) (driver.Conn, error) {
	markAcquired(ctx) // database/sql dials only when the pool has room: the wait is over
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: conn}, nil
}

func (c guardConnector) Close() error {
	if cl, ok := c.Connector.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

type guardConn struct{ driver.Conn }

var (
	_ driver.ConnBeginTx        = (*guardConn)(nil)
	_ driver.ConnPrepareContext = (*guardConn)(nil)
	_ driver.ExecerContext      = (*guardConn)(nil)
	_ driver.QueryerContext     = (*guardConn)(nil)
	_ driver.Pinger             = (*guardConn)(nil)
	_ driver.SessionResetter    = (*guardConn)(nil)
	_ driver.Validator          = (*guardConn)(nil)
	_ driver.NamedValueChecker  = (*guardConn)(nil)
)

func (c *guardConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	markAcquired(ctx)
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return c.Conn.Begin() //nolint:staticcheck // the driver has nothing newer
}

func (c *guardConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	markAcquired(ctx)
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.Conn.Prepare(query)
}

func (c *guardConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	markAcquired(ctx)
	if e, ok := c.Conn.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *guardConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	markAcquired(ctx)
	if q, ok := c.Conn.(driver.QueryerContext); ok {
		return q.QueryContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *guardConn) Ping(ctx context.Context) error {
	markAcquired(ctx)
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *guardConn) ResetSession(ctx context.Context) error {
	markAcquired(ctx)
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *guardConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *guardConn) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := c.Conn.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// Unwrap returns the driver's connection, for (*sql.Conn).Raw users:
//
//	conn.Raw(func(c any) error { pc := c.(interface{ Unwrap() driver.Conn }).Unwrap().(*stdlib.Conn); … })
func (c *guardConn) Unwrap() driver.Conn { return c.Conn }
