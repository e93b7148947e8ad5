package discovery

import (
	"context"
	"sync"
	"time"
)

// SourceStatus is what a [Tracker] has seen of its provider: where the
// instance set comes from, when it last changed, and the source's error while
// the last good set stays in use.
type SourceStatus struct {
	// Source describes where the set comes from, e.g. "etcd 127.0.0.1:2379
	// /shoal/services/api".
	Source string `json:"source"`
	// Instances is the number of instances in the last good set, draining
	// ones included; Draining counts those.
	Instances int `json:"instances"`
	Draining  int `json:"draining"`
	// Synced is false until the first set has arrived.
	Synced bool `json:"synced"`
	// Changed is when the last good set last changed (the first set counts
	// as a change); zero before it.
	Changed time.Time `json:"changed"`
	// Error is the source's latest error while it lasts: empty once a set
	// arrives after it. The last good set stays in use meanwhile.
	Error string `json:"error,omitempty"`
	// ErrorSince is when the current run of errors began; zero without one.
	ErrorSince time.Time `json:"error_since,omitzero"`
}

// Tracker passes on the events of a provider while recording a
// [SourceStatus], for `shoal scaling status`. Watch it like the provider it
// wraps; Status is safe to call at any time, from any goroutine.
type Tracker struct {
	source string
	p      Provider
	now    func() time.Time

	mu sync.Mutex
	st SourceStatus
}

var _ Provider = (*Tracker)(nil)

// Track returns a Tracker of p described as source. now is the clock; nil
// means time.Now.
func Track(source string, p Provider, now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{source: source, p: p, now: now, st: SourceStatus{Source: source}}
}

// Watch implements [Provider]: it watches the wrapped provider and records
// every event before passing it on with the same delivery guarantees.
func (t *Tracker) Watch(ctx context.Context) <-chan Event {
	f, out := NewFeed()
	in := t.p.Watch(ctx)
	go func() {
		defer f.Close()
		var last []Instance
		synced := false
		for ev := range in {
			t.record(ev, &last, &synced)
			f.Send(ev)
		}
	}()
	return out
}

// record updates the status from ev; last and synced are the watch's own
// view, so that several watches of one Tracker agree.
func (t *Tracker) record(ev Event, last *[]Instance, synced *bool) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Err != nil {
		t.st.Error = ev.Err.Error()
		if t.st.ErrorSince.IsZero() {
			t.st.ErrorSince = now
		}
		return
	}
	t.st.Error, t.st.ErrorSince = "", time.Time{}
	set := normalize(ev.Instances)
	if *synced && equalSets(*last, set) {
		return
	}
	*last, *synced = set, true
	draining := 0
	for _, i := range set {
		if i.Draining {
			draining++
		}
	}
	t.st.Instances, t.st.Draining, t.st.Synced, t.st.Changed = len(set), draining, true, now
}

// Status returns what the Tracker has seen so far.
func (t *Tracker) Status() SourceStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}
