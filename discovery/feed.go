package discovery

import (
	"slices"
	"sync"
)

// Feed delivers a source's successive states to one watcher with the
// [Provider] contract. The source calls [Feed.Send] with every set it reads
// (changed or not) and every error; the feed puts what the watcher has not
// seen yet on the channel returned by [NewFeed]:
//
//   - A set equal to the last set delivered is not sent again, unless an error
//     was delivered after it: then it is sent once more to signal recovery.
//   - Every error sent is delivered, unless a newer state replaces it before
//     the watcher reads it.
//   - Send never blocks and the feed starts no goroutine. The channel has room
//     for two events, and Send replaces what the watcher has not read yet
//     with what it needs to reach the source's latest state: normally one
//     set; a set followed by an error when an error follows a set the watcher
//     has not read, so that the last good set the watcher keeps is the
//     source's. A watcher that reads slowly thus receives the latest set, not
//     a backlog; a set replaced before it was read is skipped. Whatever
//     Send calls have returned when the watcher reads are reflected in what
//     it reads.
//   - Instances in a delivered event are sorted by ID. Each event has its own
//     slice; URL and Meta of its instances are shared and must not be modified.
//
// Close closes the channel and drops the events not yet read. Providers
// typically create one Feed per Watch call and close it when the watch
// context is done. A Feed's methods are safe for concurrent use.
type Feed struct {
	ch chan Event // capacity 2; sent to and drained only under mu

	mu     sync.Mutex
	closed bool
	queued []queued // what is in ch, in order

	// What the watcher has read, as far as the feed knows: the events
	// queued before the one at the head of ch.
	seen view

	// The source's latest state.
	set    []Instance // normalised; never modified once stored
	hasSet bool
	err    error  // nil once a set arrived after it
	errGen uint64 // counts errors sent, so that a repeated error is delivered again
}

// queued is an event in the channel and what the watcher has seen once it
// has read it.
type queued struct {
	ev    Event
	after view
}

// view is the state a watcher has been delivered.
type view struct {
	set    []Instance
	hasSet bool
	errGen uint64 // generation of the last error delivered
	inErr  bool   // an error was delivered after the last set
}

// NewFeed returns a feed and the channel its watcher reads. The caller must
// eventually call [Feed.Close].
func NewFeed() (*Feed, <-chan Event) {
	f := &Feed{ch: make(chan Event, 2)}
	return f, f.ch
}

// Send records the source's current state: ev.Instances as the complete set
// when ev.Err is nil, else the error ev.Err (ev.Instances is then ignored). It
// never blocks, and is a no-op after Close. The feed keeps its own copy of
// the slice, not of the instances' URL and Meta.
func (f *Feed) Send(ev Event) {
	var set []Instance
	if ev.Err == nil {
		set = normalize(ev.Instances)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	if ev.Err != nil {
		f.err = ev.Err
		f.errGen++
	} else {
		if f.hasSet && f.err == nil && equalSets(f.set, set) {
			return
		}
		f.set, f.hasSet, f.err = set, true, nil
	}

	// Take back what the watcher has not read; the rest it has read.
	unread := f.drain()
	if read := len(f.queued) - unread; read > 0 {
		f.seen = f.queued[read-1].after
	}
	f.queued = f.queued[:0]
	// Queue what takes the watcher from there to the latest state: at most a
	// set and an error, which fit in the channel.
	v := f.seen
	for len(f.queued) < cap(f.ch) {
		ev, after, ok := f.next(v)
		if !ok {
			break
		}
		f.ch <- ev
		f.queued = append(f.queued, queued{ev, after})
		v = after
	}
}

// Close closes the channel, dropping the events the watcher has not read.
// Calling Close more than once is harmless.
func (f *Feed) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	f.drain()
	f.queued = nil
	close(f.ch)
}

// drain empties the channel and returns how many events it took. f.mu must
// be held.
func (f *Feed) drain() int {
	for n := 0; ; n++ {
		select {
		case <-f.ch:
		default:
			return n
		}
	}
}

// next returns the event a watcher with view v should get next and its view
// after it; ok is false when v is up to date. f.mu must be held.
func (f *Feed) next(v view) (ev Event, after view, ok bool) {
	switch {
	case f.hasSet && (!v.hasSet || !equalSets(v.set, f.set)),
		f.hasSet && f.err == nil && v.inErr: // recovered
		return Event{Instances: slices.Clone(f.set)},
			view{set: f.set, hasSet: true, errGen: v.errGen}, true
	case f.err != nil && v.errGen != f.errGen:
		v.errGen, v.inErr = f.errGen, true
		return Event{Err: f.err}, v, true
	}
	return Event{}, v, false
}
