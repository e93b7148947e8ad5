package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoal-sh/shoal/database"
)

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "worker"
	}
	if len(h) > 40 {
		h = h[:40]
	}
	return h
}

// pool is a set of queues sharing a number of worker slots; queues are fetched from in order of
// their jobs.queues weight, highest first.
type pool struct {
	queues []string
	slots  int
	mu     sync.Mutex
	busy   int
	wakeCh chan struct{}
	slotCh chan struct{}
}

func (p *pool) free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.slots - p.busy
}

func (p *pool) take(n int) {
	p.mu.Lock()
	p.busy += n
	p.mu.Unlock()
}

func (p *pool) release() {
	p.mu.Lock()
	p.busy--
	p.mu.Unlock()
	signal(p.slotCh)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// active is a job this client is running.
type active struct {
	id       int64
	attempt  int
	seq      uint64
	cancel   context.CancelCauseFunc
	released bool // released by a hard stop: its later outcome is dropped
}

// runner2 is the started part of a client: fetchers, executors, completer, heartbeats, rescuer.
type runner2 struct {
	c        *Client
	pools    []*pool
	byQueue  map[string]*pool
	kinds    []string      // kinds fetched without limits
	limited  []*kind       // kinds with a concurrency or rate limit
	stopCh   chan struct{} // closed by Stop: fetch no more
	hardCtx  context.Context
	hardStop context.CancelCauseFunc
	bg       sync.WaitGroup // background loops
	jobsWG   sync.WaitGroup // executors
	recWG    sync.WaitGroup // executors recording an outcome
	fetchWG  sync.WaitGroup // fetch loops
	mu       sync.Mutex
	running  map[int64]*active
	seq      uint64
	doneCh   chan done
	complWG  sync.WaitGroup
	lastHB   time.Time
	schema   string
	stopOnce sync.Once
}

// Start runs the workers, the heartbeats, the rescuer and the schedules until Stop. It fails
// when no worker is registered and there is no schedule, or when the schema is missing.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.run != nil {
		return errors.New("jobs: Start called twice")
	}
	if len(c.kinds) == 0 {
		return errors.New("jobs: Start with no worker registered; call jobs.Register for each kind first")
	}
	if err := c.checkSchema(ctx); err != nil {
		return err
	}
	for _, s := range c.sched {
		if c.kinds[s.kind] == nil && !c.opts.AnyKind {
			return fmt.Errorf("%w %q: schedule %q enqueues it but no worker is registered; register it or set Options.AnyKind", ErrUnknownKind, s.kind, s.name)
		}
	}
	r := &runner2{c: c, byQueue: map[string]*pool{}, stopCh: make(chan struct{}), running: map[int64]*active{},
		doneCh: make(chan done, c.opts.CompleteBatch), lastHB: c.now()}
	r.hardCtx, r.hardStop = context.WithCancelCause(context.Background())
	for name, k := range c.kinds {
		if k.cfg.concurrency > 0 || k.cfg.rateN > 0 {
			if err := c.st.ensureLimit(ctx, name); err != nil {
				return fmt.Errorf("jobs: creating the limits of kind %s: %w", name, err)
			}
			r.limited = append(r.limited, k)
		} else {
			r.kinds = append(r.kinds, name)
		}
	}
	sort.Strings(r.kinds)
	sort.Slice(r.limited, func(i, j int) bool { return r.limited[i].name < r.limited[j].name })
	var shared []string
	for q := range c.cfg.Queues {
		if n, own := c.opts.QueueWorkers[q]; own {
			p := &pool{queues: []string{q}, slots: n, wakeCh: make(chan struct{}, 1), slotCh: make(chan struct{}, 1)}
			r.pools = append(r.pools, p)
			r.byQueue[q] = p
		} else {
			shared = append(shared, q)
		}
	}
	if len(shared) > 0 {
		sort.Slice(shared, func(i, j int) bool {
			wi, wj := c.cfg.Queues[shared[i]], c.cfg.Queues[shared[j]]
			if wi != wj {
				return wi > wj
			}
			return shared[i] < shared[j]
		})
		p := &pool{queues: shared, slots: c.cfg.Workers, wakeCh: make(chan struct{}, 1), slotCh: make(chan struct{}, 1)}
		r.pools = append(r.pools, p)
		for _, q := range shared {
			r.byQueue[q] = p
		}
	}
	if c.st.d == database.Postgres {
		if err := c.db.Pool().QueryRow(ctx, `SELECT current_schema()`).Scan(&r.schema); err != nil {
			return fmt.Errorf("jobs: reading the current schema: %w", database.Classify(err))
		}
		r.bg.Add(1)
		go r.listen()
	}
	r.complWG.Add(1)
	go r.completer()
	for _, p := range r.pools {
		r.fetchWG.Add(1)
		go r.fetchLoop(p)
	}
	r.bg.Add(2)
	go r.heartbeatLoop()
	go r.rescueLoop()
	if len(c.sched) > 0 {
		r.bg.Add(1)
		go r.scheduleLoop(c.sched)
	}
	c.run = r
	return nil
}

func (c *Client) checkSchema(ctx context.Context) error {
	var n int64
	if err := queryOne(ctx, c.st.reader(), `SELECT COUNT(*) FROM shoal_jobs WHERE id = 0`, nil, &n); err != nil {
		return fmt.Errorf("jobs: the jobs table is not there or not readable (%v); run Client.Migrate (shoal up does) first", err)
	}
	return nil
}

// Stop stops fetching, waits for running jobs until ctx is done (or Options.ShutdownTimeout
// when ctx has no deadline), then cancels their contexts with ErrShutdown and releases them so
// another worker runs them: nothing is lost. It records every finished job before returning.
func (c *Client) Stop(ctx context.Context) error {
	c.mu.Lock()
	r := c.run
	c.mu.Unlock()
	if r == nil {
		return nil
	}
	var err error
	r.stopOnce.Do(func() { err = r.stop(ctx) })
	return err
}

func (r *runner2) stop(ctx context.Context) error {
	close(r.stopCh)
	r.fetchWG.Wait() // no job starts after this
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.c.opts.ShutdownTimeout)
		defer cancel()
	}
	finished := make(chan struct{})
	go func() { r.jobsWG.Wait(); close(finished) }()
	var result error
	select {
	case <-finished:
	case <-ctx.Done():
		// Cancel what still runs, give handlers a moment to return, then release the rest.
		r.hardStop(ErrShutdown)
		select {
		case <-finished:
		case <-time.After(2 * time.Second):
		}
		result = r.releaseRemaining()
	}
	r.recWG.Wait()
	close(r.doneCh)
	r.complWG.Wait()
	r.hardStop(ErrShutdown)
	r.bg.Wait()
	return result
}

// releaseRemaining gives back the jobs whose handlers did not return after their context was
// cancelled; their outcome, if they ever return, is dropped (the DB fences it out anyway).
func (r *runner2) releaseRemaining() error {
	r.mu.Lock()
	var list []*active
	for _, a := range r.running {
		if !a.released {
			a.released = true
			list = append(list, a)
		}
	}
	r.mu.Unlock()
	var errs []error
	for _, a := range list {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := r.c.st.finish(ctx, r.c.id, r.c.now().UnixMilli(), outcome{id: a.id, attempt: a.attempt, runAt: r.c.now().UnixMilli(), release: true})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("releasing job %d: %w", a.id, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("jobs: stop: %w (those jobs will be rescued when their lease expires)", errors.Join(errs...))
	}
	return nil
}

func (r *runner2) stopped() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return false
	}
}

// wake tells the fetchers of the rows' queues that work is there now.
func (r *runner2) wake(rows []insertRow) {
	seen := map[string]bool{}
	for _, row := range rows {
		if row.notify && !seen[row.queue] {
			seen[row.queue] = true
			r.wakeQueue(row.queue)
		}
	}
}

func (r *runner2) wakeQueue(q string) {
	if p := r.byQueue[q]; p != nil {
		signal(p.wakeCh)
	}
}

func (r *runner2) fetchLoop(p *pool) {
	defer r.fetchWG.Done()
	poll := time.NewTicker(r.c.cfg.PollInterval.D())
	defer poll.Stop()
	need := true
	for {
		if r.stopped() {
			return
		}
		if need && p.free() > 0 {
			full, err := r.fetchOnce(p)
			if err != nil {
				r.c.log.Error("jobs: fetching jobs failed; retrying at the next poll", "queues", strings.Join(p.queues, ","), "err", err)
				need = false
			} else {
				need = full
			}
			select {
			case <-r.stopCh:
				return
			case <-time.After(r.c.opts.FetchCooldown):
			}
			continue
		}
		select {
		case <-r.stopCh:
			return
		case <-p.wakeCh:
			need = true
		case <-p.slotCh:
		case <-poll.C:
			need = true
		}
	}
}

// fetchOnce claims jobs for the pool's free slots and starts them. full reports that every
// slot asked for was filled (there may be more).
func (r *runner2) fetchOnce(p *pool) (full bool, err error) {
	want := p.free()
	if want <= 0 {
		return true, nil
	}
	left := want
	for _, q := range p.queues {
		if left == 0 {
			break
		}
		got, err := r.fetchQueue(q, left)
		if err != nil {
			return false, err
		}
		p.take(len(got))
		for i := range got {
			r.start(p, &got[i])
		}
		left -= len(got)
		for _, k := range r.limited {
			if left == 0 {
				break
			}
			got, err := r.fetchLimited(q, k, left)
			if err != nil {
				return false, err
			}
			p.take(len(got))
			for i := range got {
				r.start(p, &got[i])
			}
			left -= len(got)
		}
	}
	return left == 0, nil
}

func (r *runner2) fetchLimited(q string, k *kind, limit int) ([]fetched, error) {
	c := r.c
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := c.now()
	return c.st.fetchLimited(ctx, q, k.name, k.cfg, now.UnixMilli(), now.Add(c.opts.Lease).UnixMilli(), c.id, limit)
}

func (r *runner2) fetchQueue(q string, limit int) ([]fetched, error) {
	c := r.c
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := c.now()
	lease := now.Add(c.opts.Lease).UnixMilli()
	if c.st.d == database.MySQL {
		var got []fetched
		err := c.st.tx(ctx, func(rn runner) error {
			var e error
			got, e = c.st.fetch(ctx, rn, q, r.kinds, now.UnixMilli(), lease, c.id, limit)
			return e
		})
		return got, err
	}
	return c.st.fetch(ctx, c.st.writer(), q, r.kinds, now.UnixMilli(), lease, c.id, limit)
}

func (r *runner2) start(p *pool, f *fetched) {
	c := r.c
	ctx, cancel := context.WithCancelCause(r.hardCtx)
	r.mu.Lock()
	r.seq++
	a := &active{id: f.id, attempt: f.attempt, seq: r.seq, cancel: cancel}
	r.running[f.id] = a
	r.mu.Unlock()
	c.stats.started(f.kind, f.queue)
	r.jobsWG.Add(1)
	go func() {
		defer r.jobsWG.Done()
		defer p.release()
		defer cancel(nil)
		startedAt := time.Now()
		err := r.execute(ctx, f)
		c.stats.ran(f.kind, time.Since(startedAt))
		r.mu.Lock()
		released := a.released
		delete(r.running, f.id)
		if !released {
			r.recWG.Add(1)
		}
		r.mu.Unlock()
		if released {
			return
		}
		defer r.recWG.Done()
		r.record(ctx, f, err)
		if k := c.kinds[f.kind]; k != nil && k.cfg.concurrency > 0 {
			signal(p.wakeCh) // a limited slot is free: look again
		}
	}()
}

func (r *runner2) execute(ctx context.Context, f *fetched) (err error) {
	c := r.c
	c.mu.Lock()
	k := c.kinds[f.kind]
	c.mu.Unlock()
	if k == nil {
		return &decodeError{fmt.Errorf("%w %q on this client", ErrUnknownKind, f.kind)}
	}
	if f.timeoutMs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, msDur(f.timeoutMs), fmt.Errorf("jobs: the run timed out after %s", msDur(f.timeoutMs)))
		defer cancel()
	}
	defer func() {
		if p := recover(); p != nil {
			stack := string(debug.Stack())
			if len(stack) > 2000 {
				stack = stack[:2000]
			}
			err = fmt.Errorf("jobs: the handler panicked: %v\n%s", p, stack)
		}
	}()
	return k.work(ctx, f)
}

// record stores the outcome of a run.
func (r *runner2) record(ctx context.Context, f *fetched, err error) {
	c := r.c
	if err == nil {
		r.doneCh <- done{id: f.id, attempt: f.attempt, kind: f.kind}
		return
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, ErrLeaseLost) {
		c.stats.add(&c.stats.lost, f.kind)
		return // another worker owns the job now
	}
	now := c.now()
	o := outcome{id: f.id, attempt: f.attempt, err: err.Error(), runAt: now.UnixMilli()}
	var sz *snoozeError
	var ce *cancelError
	var de *decodeError
	switch {
	case errors.Is(cause, ErrShutdown) && ctx.Err() != nil:
		o.release, o.err = true, ""
	case errors.As(err, &sz):
		o.snooze, o.err, o.runAt = true, "", now.Add(sz.d).UnixMilli()
		o.state = StateAvailable
	case errors.As(err, &ce), errors.Is(cause, ErrJobCancelled):
		o.state = StateCancelled
	case errors.As(err, &de):
		o.state = StateDiscarded
	case f.attempt >= f.maxAttempts:
		o.state = StateDiscarded
	default:
		c.mu.Lock()
		k := c.kinds[f.kind]
		c.mu.Unlock()
		o.state = StateAvailable
		o.runAt = now.Add(c.backoff(k, f.attempt)).UnixMilli()
	}
	if errors.Is(cause, ErrJobCancelled) && o.err != "" && !strings.Contains(o.err, "cancel") {
		o.err = "cancelled while running: " + o.err
	}
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok, ferr := c.st.finish(wctx, c.id, now.UnixMilli(), o)
	if ferr != nil {
		c.log.Error("jobs: recording a job's outcome failed; it will be rescued when its lease expires", "id", f.id, "kind", f.kind, "err", ferr)
		return
	}
	if !ok {
		c.stats.add(&c.stats.lost, f.kind)
		return
	}
	switch {
	case o.release:
	case o.snooze:
		c.stats.add(&c.stats.snoozed, f.kind)
	case o.state == StateCancelled:
		c.stats.add(&c.stats.cancelled, f.kind)
	case o.state == StateDiscarded:
		c.stats.add(&c.stats.discarded, f.kind)
	default:
		c.stats.add(&c.stats.failed, f.kind)
	}
}

// completer records successes in batches.
func (r *runner2) completer() {
	defer r.complWG.Done()
	c := r.c
	batch := make([]done, 0, c.opts.CompleteBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// Up to 4 batches are recorded at once, so one slow statement does not hold up the others.
	inflight := make(chan struct{}, 4)
	var wg sync.WaitGroup
	defer wg.Wait()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		b := batch
		batch = make([]done, 0, c.opts.CompleteBatch)
		inflight <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			for try := 0; ; try++ {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				n, err := c.st.complete(ctx, c.id, c.now().UnixMilli(), b)
				cancel()
				if err == nil {
					c.stats.completedBatch(b, n)
					return
				}
				if try >= 4 {
					c.log.Error("jobs: recording completed jobs failed; they will be rescued and run again", "jobs", len(b), "err", err)
					return
				}
				time.Sleep(time.Duration(50<<try) * time.Millisecond)
			}
		}()
	}
	for {
		select {
		case d, ok := <-r.doneCh:
			if !ok {
				flush()
				return
			}
			if len(batch) == 0 {
				timer.Reset(c.opts.CompleteFlush)
			}
			batch = append(batch, d)
			if len(batch) >= c.opts.CompleteBatch {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

func (r *runner2) heartbeatLoop() {
	defer r.bg.Done()
	t := time.NewTicker(r.c.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-r.hardCtx.Done():
			return
		case <-t.C:
			r.heartbeat()
		}
	}
}

func (r *runner2) heartbeat() {
	c := r.c
	r.mu.Lock()
	seq := r.seq
	n := len(r.running)
	r.mu.Unlock()
	if n == 0 {
		r.lastHB = c.now()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Heartbeat*2)
	defer cancel()
	now := c.now()
	alive, err := c.st.heartbeat(ctx, c.id, now.Add(c.opts.Lease).UnixMilli())
	if err != nil {
		if c.now().Sub(r.lastHB) > c.opts.Lease {
			c.log.Error("jobs: heartbeats failed for longer than the lease; cancelling the running jobs", "err", err)
			r.mu.Lock()
			for _, a := range r.running {
				a.cancel(ErrLeaseLost)
			}
			r.mu.Unlock()
		} else {
			c.log.Warn("jobs: a heartbeat failed", "err", err)
		}
		return
	}
	r.lastHB = now
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, a := range r.running {
		h, ok := alive[id]
		if (!ok || h.attempt != a.attempt) && a.seq <= seq {
			a.cancel(ErrLeaseLost)
			continue
		}
		if ok && h.cancel {
			a.cancel(ErrJobCancelled)
		}
	}
}

func (r *runner2) rescueLoop() {
	defer r.bg.Done()
	c := r.c
	every := c.opts.Lease / 4
	if every > c.opts.Heartbeat {
		every = c.opts.Heartbeat
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.hardCtx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			now := c.now()
			ids, err := c.st.rescue(ctx, now.UnixMilli(), now.Add(-c.cfg.RescueAfter.D()).UnixMilli())
			cancel()
			if err != nil {
				c.log.Warn("jobs: rescuing expired jobs failed", "err", err)
				continue
			}
			if len(ids) > 0 {
				c.stats.rescuedN(int64(len(ids)))
				for _, p := range r.pools {
					signal(p.wakeCh)
				}
			}
		}
	}
}

// listen wakes fetchers on NOTIFY shoal_jobs and cancels running jobs on NOTIFY
// shoal_jobs_cancel (PostgreSQL). It reconnects after an error; polling covers the gap.
func (r *runner2) listen() {
	defer r.bg.Done()
	c := r.c
	for {
		err := r.listenOnce()
		if r.hardCtx.Err() != nil {
			return
		}
		c.log.Warn("jobs: LISTEN connection lost; polling until it is back", "err", err)
		select {
		case <-r.hardCtx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (r *runner2) listenOnce() error {
	ctx := r.hardCtx
	conn, err := r.c.db.Pool().Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() {
		// The connection has LISTENs registered: close it rather than hand it back.
		_ = conn.Conn().Close(context.Background())
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, `LISTEN shoal_jobs; LISTEN shoal_jobs_cancel`); err != nil {
		return err
	}
	prefix := r.schema + ":"
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		payload, ok := strings.CutPrefix(n.Payload, prefix)
		if !ok {
			continue
		}
		switch n.Channel {
		case "shoal_jobs":
			r.wakeQueue(payload)
		case "shoal_jobs_cancel":
			id, err := strconv.ParseInt(payload, 10, 64)
			if err != nil {
				continue
			}
			r.mu.Lock()
			if a := r.running[id]; a != nil {
				a.cancel(ErrJobCancelled)
			}
			r.mu.Unlock()
		}
	}
}
