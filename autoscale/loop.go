package autoscale

import (
	"context"
	"fmt"
	"time"
)

// Source observes what an evaluation needs. Observe is called once per tick, never
// concurrently with itself; it returns the instances of the target and their metrics averaged
// over the window ending at now.
type Source interface {
	Observe(ctx context.Context, now time.Time, window time.Duration) (Input, error)
}

// Scaler is what the autoscaler scales (its target). Scale asks for to instances and returns when the
// target accepted the change (a Deployment) or made it (the local fleet); reason is the
// decision's reason, for the target's own events.
type Scaler interface {
	Scale(ctx context.Context, to int, reason string) error
}

// Run evaluates at every tick until ctx is done: it observes src, decides, scales tgt when the
// decision says so, and passes every decision (including "no change" and the evaluations whose
// metrics could not be read) to onDecision when it is not nil. Ticks carry the evaluation's
// time, so a test or a simulation drives Run with its own clock.
func (a *Autoscaler) Run(ctx context.Context, ticks <-chan time.Time, src Source, tgt Scaler, onDecision func(Decision)) {
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticks:
			d := a.Evaluate(ctx, now, src, tgt)
			if onDecision != nil && ctx.Err() == nil {
				onDecision(d)
			}
		}
	}
}

// Evaluate runs one evaluation at now: observe, decide, scale. An observation that fails is
// logged as a decision without change that says why.
func (a *Autoscaler) Evaluate(ctx context.Context, now time.Time, src Source, tgt Scaler) Decision {
	in, err := src.Observe(ctx, now, a.s.Interval)
	if err != nil {
		d := Decision{Time: now, Change: ChangeNone, Reason: fmt.Sprintf("no change: the metrics could not be read: %v", err), Error: err.Error()}
		a.log.Add(d)
		return d
	}
	in.Time = now
	return a.Step(ctx, in, tgt.Scale)
}
