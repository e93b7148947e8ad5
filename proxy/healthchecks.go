package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// startChecker runs the active health check of u until it is stopped or the proxy closes.
func (p *Proxy) startChecker(u *upstream) {
	if p.opts.HealthCheck.Path == "" || p.closed {
		return // (p.mu is held: Close cannot be waiting for goroutines started after it)
	}
	u.mu.Lock()
	if u.stopCheck != nil {
		u.mu.Unlock()
		return
	}
	stop := make(chan struct{})
	u.stopCheck = stop
	u.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.opts.HealthCheck.Interval)
		defer t.Stop()
		for {
			p.checkOnce(u)
			select {
			case <-t.C:
			case <-stop:
				return
			case <-p.ctx.Done():
				return
			}
		}
	}()
}

func (p *Proxy) stopChecker(u *upstream) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopCheck != nil {
		close(u.stopCheck)
		u.stopCheck = nil
	}
}

// checkOnce probes u and moves it in or out of rotation when a threshold is crossed.
func (p *Proxy) checkOnce(u *upstream) {
	hc := p.opts.HealthCheck
	ctx, cancel := context.WithTimeout(p.ctx, hc.Timeout)
	defer cancel()
	began := time.Now()
	err := p.probe(ctx, u)
	if p.ctx.Err() != nil {
		return
	}
	u.mu.Lock()
	u.lastCheck = p.clock.Now()
	changed := false
	if err == nil {
		defer p.checkPassed(u, began) // after u.mu is released
		u.fails = 0
		u.passes++
		if !u.healthy.Load() && u.passes >= hc.HealthyThreshold {
			u.healthy.Store(true)
			changed = true
		}
	} else {
		u.passes = 0
		u.fails++
		u.lastErr = err.Error()
		if u.healthy.Load() && u.fails >= hc.UnhealthyThreshold {
			u.healthy.Store(false)
			changed = true
		}
	}
	u.mu.Unlock()
	if !changed {
		return
	}
	if err == nil {
		p.log.Info("instance is healthy again", "instance", u.id, "passes", hc.HealthyThreshold)
	} else {
		p.log.Warn("instance failed its health checks; taking it out of rotation", "instance", u.id,
			"failures", hc.UnhealthyThreshold, "err", err)
	}
	p.metrics.healthChanges.WithLabelValues(u.id, healthWord(err == nil)).Inc()
	p.rebuild()
}

func healthWord(ok bool) string {
	if ok {
		return "healthy"
	}
	return "unhealthy"
}

func (p *Proxy) probe(ctx context.Context, u *upstream) error {
	target := *u.url
	target.Path = p.opts.HealthCheck.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "shoal-health-check")
	resp, err := p.checker.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s answered %d", p.opts.HealthCheck.Path, resp.StatusCode)
	}
	return nil
}

// truncated counts an answer whose body the instance cut short against u: the client got a
// valid head and a broken body, which is the instance failing even if its health checks pass.
func (p *Proxy) truncated(u *upstream, err error) {
	p.metrics.truncated.WithLabelValues(u.id).Inc()
	p.log.Warn("an instance cut its answer short; counted against it (passive health)", "instance", u.id, "err", err)
	p.passiveFailure(u, "answer cut short: "+err.Error())
}

// passiveFailure counts a failed request against u; max_failures within failure_timeout
// eject it for failure_timeout.
func (p *Proxy) passiveFailure(u *upstream, reason string) {
	if p.opts.MaxFailures <= 0 {
		return
	}
	now := p.clock.Now()
	u.mu.Lock()
	u.lastErr = reason
	if now.Sub(u.windowStart) > p.opts.FailureTimeout {
		u.windowStart, u.windowFails = now, 0
	}
	u.windowFails++
	eject := u.windowFails >= p.opts.MaxFailures && !now.Before(u.ejectedUntil)
	if eject {
		u.ejectedUntil = now.Add(p.opts.FailureTimeout)
		u.ejections++
		u.windowFails = 0
	}
	u.mu.Unlock()
	if !eject {
		return
	}
	p.log.Warn("instance ejected after repeated failures", "instance", u.id, "failures", p.opts.MaxFailures,
		"for", p.opts.FailureTimeout.String(), "last_error", reason)
	p.metrics.ejections.WithLabelValues(u.id).Inc()
	p.rebuild()
	// Bring it back when the ejection ends (a rebuild re-reads ejectedUntil).
	time.AfterFunc(p.opts.FailureTimeout, func() {
		if p.ctx.Err() == nil {
			p.rebuild()
		}
	})
}
