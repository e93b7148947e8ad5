package proxy

import (
	"fmt"
	"math/bits"
	"sort"
	"sync/atomic"
	"time"
)

// Latency-aware ejection: an instance that stops answering is out of rotation within about a
// second, long before its health checks notice.
//
// A hung instance does not fail: a SIGSTOPped or deadlocked process still has its connections
// accepted by the kernel and its requests taken into socket buffers, so nothing errors until a
// timeout; its health checks fail only after unhealthy_threshold × interval (13 s with the
// quickstart's settings), and until then round robin keeps handing it its share of the traffic,
// until every client connection waits on it.
//
// So the proxy watches how long instances take to send the head of an answer. Every attempt
// that reached an instance and got a head adds its wait to a fleet-wide sliding histogram
// (headLatencies). Every stallTick, an instance is stalled when at least two requests wait on it
// and none of its requests has been answered for stallWait = max(MinWait, Factor × p99 of the
// fleet's waits): that is, everything in flight to it is far older than its peers' answers
// take. A stalled instance gets no new requests until it answers one (a late head, or a passed
// active health check); a stall lasts at most FailureTimeout otherwise. At most half of the
// instances are ever stalled at once, never the last one answering: when everything is slow,
// that is the service, not one instance, and ejecting would only concentrate the load.
//
// Requests already waiting on a stalled instance are rescued by hedging (hedge.go): an
// idempotent request that waited stallWait without a head is sent to another instance too, and
// the first answer wins.

// LatencyEjection configures latency-aware ejection and hedging.
type LatencyEjection struct {
	// Disabled turns both off.
	Disabled bool
	// Factor times the fleet's p99 wait for an answer's head is how long requests may wait on
	// one instance, none answered, before it is taken out of rotation. Defaults to 8.
	Factor float64
	// MinWait is the least that wait may be. Defaults to 1s.
	MinWait time.Duration
	// NoHedge keeps ejection but turns hedging off.
	NoHedge bool
}

const (
	stallTick        = 100 * time.Millisecond
	latencyGenPeriod = 5 * time.Second // the histogram spans the last 5 to 10 seconds
)

// headLatencies is a sliding histogram of waits for answer heads: two generations of
// log-linear buckets (four per power of two of microseconds), the older one cleared and made
// current every latencyGenPeriod. Observing is one atomic add.
type headLatencies struct {
	gen     atomic.Int32
	buckets [2][latencyBuckets]atomic.Uint64
}

const latencyBuckets = 4 * 40

func latencyBucket(d time.Duration) int {
	us := uint64(max(d, 0) / time.Microsecond)
	if us < 4 {
		return int(us)
	}
	e := bits.Len64(us) - 1 // us is in [2^e, 2^(e+1))
	sub := (us >> (e - 2)) & 3
	return min(4*(e-1)+int(sub), latencyBuckets-1)
}

// bucketUpper is the largest wait that falls into bucket i.
func bucketUpper(i int) time.Duration {
	if i < 4 {
		return time.Duration(i+1) * time.Microsecond
	}
	e := i/4 + 1
	sub := uint64(i % 4)
	return time.Duration((uint64(4)+sub+1)<<(e-2)) * time.Microsecond
}

func (h *headLatencies) observe(d time.Duration) {
	h.buckets[h.gen.Load()&1][latencyBucket(d)].Add(1)
}

// rotate makes the older generation current, cleared.
func (h *headLatencies) rotate() {
	next := (h.gen.Load() + 1) & 1
	for i := range h.buckets[next] {
		h.buckets[next][i].Store(0)
	}
	h.gen.Store(next)
}

// quantile returns the q-quantile of both generations, and how many waits it is made of.
func (h *headLatencies) quantile(q float64) (time.Duration, uint64) {
	var counts [latencyBuckets]uint64
	var total uint64
	for g := range h.buckets {
		for i := range h.buckets[g] {
			c := h.buckets[g][i].Load()
			counts[i] += c
			total += c
		}
	}
	if total == 0 {
		return 0, 0
	}
	rank := uint64(q * float64(total))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen > rank {
			return bucketUpper(i), total
		}
	}
	return bucketUpper(latencyBuckets - 1), total
}

// beginWait notes a request sent to u whose answer head has yet to come.
func (u *upstream) beginWait(at time.Time) {
	if u.awaiting.Add(1) == 1 {
		u.awaitSince.Store(at.UnixNano())
	}
}

// endWait notes the end of a wait begun by beginWait; answered says a head came, waited after
// how long.
func (p *Proxy) endWait(u *upstream, at time.Time, answered bool, waited time.Duration) {
	u.awaiting.Add(-1)
	if !answered {
		return
	}
	u.lastHead.Store(at.UnixNano())
	p.heads.observe(waited)
	if u.stalled.Load() {
		p.unstall(u, "it answered again")
	}
}

// stallWait is how long requests may wait on one instance, none answered, before it is
// stalled; hedging waits as long before it sends a request elsewhere.
func (p *Proxy) stallWait() time.Duration {
	return time.Duration(p.stallWaitNs.Load())
}

func (p *Proxy) computeStallWait() time.Duration {
	le := p.opts.LatencyEjection
	p99, _ := p.heads.quantile(0.99)
	return max(le.MinWait, time.Duration(le.Factor*float64(p99)))
}

// watchStalls runs the stall check every stallTick until the proxy closes.
func (p *Proxy) watchStalls() {
	defer p.wg.Done()
	t := time.NewTicker(stallTick)
	defer t.Stop()
	rotated := time.Now()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			if now.Sub(rotated) >= latencyGenPeriod {
				p.heads.rotate()
				rotated = now
			}
			p.stallWaitNs.Store(int64(p.computeStallWait()))
			p.checkStalls(now)
		}
	}
}

// checkStalls stalls the instances that stopped answering, within the limits above.
func (p *Proxy) checkStalls(now time.Time) {
	pl := p.pool.Load()
	wait := p.stallWait()
	var candidates []*upstream
	answering, stalled, active := 0, 0, 0
	for _, u := range pl.byID {
		if u.draining.Load() {
			continue
		}
		active++
		if u.stalled.Load() {
			stalled++
			continue
		}
		since := max(u.lastHead.Load(), u.awaitSince.Load())
		if n := u.awaiting.Load(); n >= 2 && now.UnixNano()-since > int64(wait) {
			candidates = append(candidates, u)
			continue
		}
		if u.healthy.Load() {
			answering++
		}
	}
	if len(candidates) == 0 {
		return
	}
	// The longest silent first, while at most half are stalled and one still answers.
	sort.Slice(candidates, func(i, j int) bool {
		return max(candidates[i].lastHead.Load(), candidates[i].awaitSince.Load()) <
			max(candidates[j].lastHead.Load(), candidates[j].awaitSince.Load())
	})
	for _, u := range candidates {
		if answering == 0 || stalled+1 > active/2 {
			if !u.stallHeld.Swap(true) {
				p.log.Warn("an instance has stopped answering, but is kept in rotation: too few others answer",
					"instance", u.id, "waiting", u.awaiting.Load(), "answering", answering, "stalled", stalled)
			}
			continue
		}
		u.stallHeld.Store(false)
		stalled++
		p.stall(u, now, wait)
	}
}

func (p *Proxy) stall(u *upstream, now time.Time, wait time.Duration) {
	silent := time.Duration(now.UnixNano() - max(u.lastHead.Load(), u.awaitSince.Load())).Round(time.Millisecond)
	reason := fmt.Sprintf("stalled: %d requests waiting, none answered for %s (over %s, latency_ejection)", u.awaiting.Load(), silent, wait.Round(time.Millisecond))
	p.mu.Lock()
	if p.ups[u.id] != u || u.draining.Load() {
		p.mu.Unlock()
		return
	}
	u.stalled.Store(true)
	u.mu.Lock()
	u.lastErr = reason
	u.stalledAt = now
	// A health check that passes ends a stall only after a hold that doubles with each stall in a
	// row: an instance whose health endpoint answers while its requests hang would otherwise
	// come back at every check.
	if now.Sub(u.stallEnded) > p.opts.FailureTimeout {
		u.stallStreak = 0
	}
	u.stallStreak++
	u.stallHold = min(p.opts.FailureTimeout, p.opts.LatencyEjection.MinWait<<min(u.stallStreak-1, 20))
	u.mu.Unlock()
	p.rebuildLocked()
	p.mu.Unlock()
	p.log.Warn("instance stopped answering; no new requests go to it until it answers again", "instance", u.id, "reason", reason)
	p.metrics.stalls.WithLabelValues(u.id).Inc()
	// Without an answer or a passed health check, the stall ends like a passive ejection.
	time.AfterFunc(p.opts.FailureTimeout, func() {
		if p.ctx.Err() == nil {
			p.unstallIf(u, now, "failure_timeout passed")
		}
	})
}

func (p *Proxy) unstall(u *upstream, why string) {
	if !u.stalled.CompareAndSwap(true, false) {
		return
	}
	u.mu.Lock()
	u.stallEnded = time.Now()
	u.mu.Unlock()
	p.log.Info("a stalled instance is back in rotation", "instance", u.id, "because", why)
	p.rebuild()
}

// checkPassed ends u's stall after an active health check begun at began passed, if the stall
// began before the check and has lasted its hold.
func (p *Proxy) checkPassed(u *upstream, began time.Time) {
	if !u.stalled.Load() {
		return
	}
	u.mu.Lock()
	ok := u.stalledAt.Before(began) && time.Since(u.stalledAt) >= u.stallHold
	since := u.stalledAt
	u.mu.Unlock()
	if ok {
		p.unstallIf(u, since, "it passed a health check")
	}
}

// unstallIf ends the stall that began at since, if it is still that one.
func (p *Proxy) unstallIf(u *upstream, since time.Time, why string) {
	u.mu.Lock()
	same := u.stalledAt.Equal(since)
	u.mu.Unlock()
	if same {
		p.unstall(u, why)
	}
}
