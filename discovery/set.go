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
// Add and Replace take copies of the instances given (including URL and
// Meta), so the caller may reuse them. They fill in ID from URL when it is
// empty and raise a Weight below 1 to 1. An instance without a URL is a
// programming error and makes them panic.
type Set struct {
	mu      sync.Mutex
	members map[string]Instance
	feeds   map[*Feed]struct{}
}

var _ Provider = (*Set)(nil)

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
	s.publish()
}

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

// snapshot returns the members sorted by ID. s.mu must be held.
func (s *Set) snapshot() []Instance {
	return slices.SortedFunc(maps.Values(s.members), byID)
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
