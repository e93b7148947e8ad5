package discovery

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Set is a [Provider] whose membership is changed in code: the local fleet
// adds an instance once it is ready and removes it when it stops. Every
// change is delivered to all current watchers. The zero value is an empty Set
// ready to use; a Set must not be copied after first use. All methods are safe
// for concurrent use.
//
// A Set is also a [Registrar] for code that wants the registrar contract
// without a registry (tests, a single process): Register is Add, SetHealth
// hides an instance from watchers while it is unhealthy, Drain marks it
// Draining, Deregister is Remove.
//
// Add and Replace take copies of the instances given (including URL and
// Meta), so the caller may reuse them. They fill in ID from URL when it is
// empty and raise a Weight below 1 to 1. An instance without a URL is a
// programming error and makes them panic.
type Set struct {
	mu      sync.Mutex
	members map[string]Instance
	down    map[string]bool // members reported unhealthy: not delivered
	feeds   map[*Feed]struct{}
}

var (
	_ Provider  = (*Set)(nil)
	_ Registrar = (*Set)(nil)
)

// NewSet returns a Set holding instances. A later instance replaces an earlier
// one with the same ID.
func NewSet(instances ...Instance) *Set {
	s := new(Set)
	s.Replace(instances)
	return s
}

// Add adds instances to the set, replacing members with the same ID.
func (s *Set) Add(instances ...Instance) {
	in := prepare(instances)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members == nil {
		s.members = make(map[string]Instance, len(in))
	}
	for _, i := range in {
		s.members[i.ID] = i
		delete(s.down, i.ID)
	}
	s.publish()
}

// Remove removes the instance with the given ID and reports whether it was a
// member.
func (s *Set) Remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.members[id]; !ok {
		return false
	}
	delete(s.members, id)
	delete(s.down, id)
	s.publish()
	return true
}

// Replace makes instances the set's complete membership. A later instance
// replaces an earlier one with the same ID.
func (s *Set) Replace(instances []Instance) {
	in := prepare(instances)
	members := make(map[string]Instance, len(in))
	for _, i := range in {
		members[i.ID] = i
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = members
	s.down = nil
	s.publish()
}

// Register implements [Registrar]: it is Add, after checking the instance
// with [CheckInstance].
func (s *Set) Register(_ context.Context, in Instance) error {
	if err := CheckInstance(in); err != nil {
		return err
	}
	in.Draining = false
	s.Add(in)
	return nil
}

// SetHealth implements [Registrar]: an unhealthy member is not delivered to
// watchers (nor returned by Instances) until it is healthy again.
func (s *Set) SetHealth(_ context.Context, id string, healthy bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.members[id]; !ok {
		return ErrNotRegistered
	}
	if healthy == !s.down[id] {
		return nil
	}
	if healthy {
		delete(s.down, id)
	} else {
		if s.down == nil {
			s.down = make(map[string]bool)
		}
		s.down[id] = true
	}
	s.publish()
	return nil
}

// Drain implements [Registrar]: the member is delivered with Draining set.
func (s *Set) Drain(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.members[id]
	if !ok {
		return ErrNotRegistered
	}
	if !in.Draining {
		in.Draining = true
		s.members[id] = in
		s.publish()
	}
	return nil
}

// Deregister implements [Registrar]: it is Remove.
func (s *Set) Deregister(_ context.Context, id string) error {
	s.Remove(id)
	return nil
}

// Close implements [Registrar]; a Set has nothing to release.
func (s *Set) Close() error { return nil }

// Instances returns the current members sorted by ID. The slice is the
// caller's; URL and Meta are shared and must not be modified.
func (s *Set) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot()
}

// Watch implements [Provider]. Each call adds a watcher that gets the current
// members at once and every change after it, until ctx is done.
func (s *Set) Watch(ctx context.Context) <-chan Event {
	f, ch := NewFeed()
	s.mu.Lock()
	if s.feeds == nil {
		s.feeds = make(map[*Feed]struct{})
	}
	s.feeds[f] = struct{}{}
	f.Send(Event{Instances: s.snapshot()})
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		delete(s.feeds, f)
		s.mu.Unlock()
		f.Close()
	})
	return ch
}

// publish sends the membership to every watcher. s.mu must be held, so that
// watchers see changes in the order they were made.
func (s *Set) publish() {
	if len(s.feeds) == 0 {
		return
	}
	ev := Event{Instances: s.snapshot()}
	for f := range s.feeds {
		f.Send(ev)
	}
}

// snapshot returns the healthy members sorted by ID. s.mu must be held.
func (s *Set) snapshot() []Instance {
	all := slices.SortedFunc(maps.Values(s.members), byID)
	if len(s.down) == 0 {
		return all
	}
	return slices.DeleteFunc(all, func(i Instance) bool { return s.down[i.ID] })
}

// prepare copies instances and fills in their defaults; see [Set].
func prepare(instances []Instance) []Instance {
	out := make([]Instance, len(instances))
	for n, i := range instances {
		if i.URL == nil {
			panic(fmt.Sprintf("discovery: instance %d (ID %q) has no URL", n, i.ID))
		}
		u := *i.URL
		i.URL = &u
		if i.ID == "" {
			i.ID = u.String()
		}
		i.Weight = max(i.Weight, 1)
		i.Meta = maps.Clone(i.Meta)
		out[n] = i
	}
	return out
}
