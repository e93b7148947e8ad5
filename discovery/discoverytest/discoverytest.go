// Package discoverytest is the conformance suite for implementations of
// [discovery.Provider] and [discovery.Registrar]: every backend runs
// [Exercise] (watching) and [ExerciseRegistrar] (registering) against
// itself, as watermill's backends run its pubsub tests.
package discoverytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-sh/shoal/discovery"
)

// Timeout bounds every wait of the suite for an event or for a channel to
// close. It is generous because the suite runs under the race detector on
// loaded machines; a conforming provider is normally far quicker.
var Timeout = 10 * time.Second

// Subject is a provider under test together with the handles that let
// [Exercise] change what its source holds.
type Subject struct {
	// Provider under test. Its source may hold anything at first: Exercise
	// calls Apply before every Watch.
	Provider discovery.Provider
	// Instance returns the i-th (i >= 0) of a series of distinct instances the
	// source can hold, exactly as the provider reports them (ID, URL, Weight
	// and Meta). Exercise uses i < 8. Required.
	Instance func(i int) discovery.Instance
	// Apply makes the source hold exactly instances (all made by Instance),
	// replacing what it held, and ends a failure begun by Fail. Required.
	Apply func(t *testing.T, instances []discovery.Instance)
	// Refreshed blocks until the provider has read its source completely at
	// least once after Refreshed was called, for a provider that polls; nil
	// when the provider learns of every change while Apply runs (such as
	// [discovery.Set]). Exercise calls it to give a provider the chance to
	// resend an unchanged set, which it must not take.
	Refreshed func(t *testing.T)
	// Fail makes the source fail (so that the provider reports an error)
	// until the next Apply; nil when the source cannot fail.
	Fail func(t *testing.T)
}

// Exercise runs the conformance suite against providers made by newSubject,
// which is called once per subtest, with the subtest's t (register cleanups
// with t.Cleanup). It checks that the first event is the current set, that
// changes arrive, that an unchanged set is not resent, that a slow consumer
// gets the latest set, that several watchers are independent, that errors are
// reported and recovery resends the set, and that the channel closes when the
// context is done, whether or not it is read, without leaving goroutines
// behind.
//
// The goroutine check compares against the goroutines running after
// newSubject returned, so a test calling Exercise must not run in parallel
// with other tests of its package (do not call t.Parallel in it).
func Exercise(t *testing.T, newSubject func(t *testing.T) Subject) {
	t.Helper()
	run := func(name string, test func(t *testing.T, s Subject)) {
		t.Run(name, func(t *testing.T) {
			s := newSubject(t)
			if s.Provider == nil || s.Instance == nil || s.Apply == nil {
				t.Fatal("discoverytest: Subject needs Provider, Instance and Apply")
			}
			leaks := goleak.IgnoreCurrent()
			test(t, s)
			if !t.Failed() {
				verifyNoLeaks(t, leaks)
			}
		})
	}

	run("FirstEventIsCurrentSet", func(t *testing.T, s Subject) {
		a := pick(s, 0, 1, 2)
		s.Apply(t, a)
		w := watch(t, s)
		w.expect(t, a)
		w.stop(t)
	})

	run("ChangesArrive", func(t *testing.T, s Subject) {
		s.Apply(t, pick(s, 0, 1))
		w := watch(t, s)
		w.expect(t, pick(s, 0, 1))
		for _, set := range [][]discovery.Instance{
			pick(s, 0, 1, 2), // added
			pick(s, 1, 2),    // removed
			pick(s, 3),       // replaced
			nil,              // empty
			pick(s, 4, 5),    // back from empty
		} {
			s.Apply(t, set)
			w.expect(t, set)
		}
		w.stop(t)
	})

	run("UnchangedSetIsNotResent", func(t *testing.T, s Subject) {
		a, b := pick(s, 0, 1), pick(s, 0, 1, 2)
		s.Apply(t, a)
		w := watch(t, s)
		w.expect(t, a)
		for range 3 {
			s.Apply(t, a)
			refreshed(t, s)
		}
		// Events arrive in order: had a been resent, it would come before b.
		s.Apply(t, b)
		w.expect(t, b)
		w.stop(t)
	})

	run("SlowConsumerGetsLatestSet", func(t *testing.T, s Subject) {
		s.Apply(t, pick(s, 0))
		w := watch(t, s)
		w.expect(t, pick(s, 0))
		// Nobody reads while the set changes three times. Apply must not
		// block, and the reader then gets the latest set, possibly after some
		// of the intermediate ones (a provider that passes sets on through
		// goroutines may not have seen the latest yet), in order, each once.
		burst := [][]discovery.Instance{pick(s, 1), pick(s, 2), pick(s, 3)}
		for _, set := range burst {
			s.Apply(t, set)
			refreshed(t, s)
		}
		for i := 0; ; i++ {
			ev := w.next(t)
			if ev.Err != nil {
				t.Fatalf("got error %v", ev.Err)
			}
			for i < len(burst) && !equal(ev.Instances, burst[i]) {
				i++
			}
			if i == len(burst) {
				t.Fatalf("got %s, want the sets applied later than the last one read: %s", format(ev.Instances), formatSets(burst))
			}
			if i == len(burst)-1 {
				break
			}
		}
		s.Apply(t, pick(s, 4))
		w.expect(t, pick(s, 4))
		w.stop(t)
	})

	run("WatchersAreIndependent", func(t *testing.T, s Subject) {
		a, b, c := pick(s, 0), pick(s, 0, 1), pick(s, 1)
		s.Apply(t, a)
		w1, w2 := watch(t, s), watch(t, s)
		w1.expect(t, a)
		w2.expect(t, a)
		s.Apply(t, b)
		w1.expect(t, b)
		w2.expect(t, b)
		w1.stop(t)
		s.Apply(t, c)
		w2.expect(t, c)
		w3 := watch(t, s)
		w3.expect(t, c)
		w2.stop(t)
		w3.stop(t)
	})

	run("ClosesWhenNotRead", func(t *testing.T, s Subject) {
		s.Apply(t, pick(s, 0))
		w := watch(t, s)
		refreshed(t, s)
		w.stop(t)
	})

	run("ClosesWhenContextAlreadyDone", func(t *testing.T, s Subject) {
		s.Apply(t, pick(s, 0))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		w := &watcher{ch: s.Provider.Watch(ctx), cancel: cancel}
		w.stop(t)
	})

	run("ErrorThenRecovery", func(t *testing.T, s Subject) {
		if s.Fail == nil {
			t.Skip("the source cannot fail")
		}
		a := pick(s, 0, 1)
		s.Apply(t, a)
		w := watch(t, s)
		w.expect(t, a)
		s.Fail(t)
		if ev := w.next(t); ev.Err == nil {
			t.Fatalf("after Fail got %s, want an error", format(ev.Instances))
		}
		// Recovery to the same set resends it; more errors may come first.
		s.Apply(t, a)
		w.expectSkippingErrors(t, a)
		w.stop(t)
	})
}

// verifyNoLeaks is goleak.VerifyNone with patience: a client's goroutines
// may take seconds to end on a loaded machine, longer than goleak's own
// retries wait.
func verifyNoLeaks(t *testing.T, opts ...goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Error(err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pick returns the instances with the given indexes.
func pick(s Subject, idx ...int) []discovery.Instance {
	out := make([]discovery.Instance, len(idx))
	for n, i := range idx {
		out[n] = s.Instance(i)
	}
	return out
}

func refreshed(t *testing.T, s Subject) {
	t.Helper()
	if s.Refreshed != nil {
		s.Refreshed(t)
	}
}

// watcher is one Watch call under test.
type watcher struct {
	ch     <-chan discovery.Event
	cancel context.CancelFunc
}

func watch(t *testing.T, s Subject) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return &watcher{ch: s.Provider.Watch(ctx), cancel: cancel}
}

// next returns the next event.
func (w *watcher) next(t *testing.T) discovery.Event {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case ev, ok := <-w.ch:
		if !ok {
			t.Fatal("channel closed before its context was done")
		}
		return ev
	case <-timer.C:
		t.Fatalf("no event within %s", Timeout)
	}
	panic("unreachable")
}

// expect checks that the next event is the set want.
func (w *watcher) expect(t *testing.T, want []discovery.Instance) {
	t.Helper()
	ev := w.next(t)
	if ev.Err != nil {
		t.Fatalf("got error %v, want %s", ev.Err, format(want))
	}
	check(t, ev.Instances, want)
}

// expectSkippingErrors checks that the next event that is not an error is
// the set want.
func (w *watcher) expectSkippingErrors(t *testing.T, want []discovery.Instance) {
	t.Helper()
	for {
		if ev := w.next(t); ev.Err == nil {
			check(t, ev.Instances, want)
			return
		}
	}
}

// stop cancels the watch and checks that the channel closes; events still
// pending may be drained first.
func (w *watcher) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-w.ch:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("channel not closed within %s after its context was done", Timeout)
		}
	}
}

// check compares a delivered set with the expected one.
func check(t *testing.T, got, want []discovery.Instance) {
	t.Helper()
	if !equal(got, want) {
		t.Fatalf("got %s, want %s", format(got), format(want))
	}
}

// equal reports whether a delivered set is want: the same instances, sorted
// by ID as the contract says.
func equal(got, want []discovery.Instance) bool {
	want = slices.SortedFunc(slices.Values(want), func(a, b discovery.Instance) int {
		return strings.Compare(a.ID, b.ID)
	})
	return slices.EqualFunc(got, want, discovery.Instance.Equal)
}

// formatSets prints sets for a failure message.
func formatSets(sets [][]discovery.Instance) string {
	parts := make([]string, len(sets))
	for n, set := range sets {
		parts[n] = format(set)
	}
	return strings.Join(parts, ", ")
}

// format prints a set for a failure message.
func format(set []discovery.Instance) string {
	if len(set) == 0 {
		return "an empty set"
	}
	parts := make([]string, len(set))
	for n, i := range set {
		u := "<nil>"
		if i.URL != nil {
			u = i.URL.String()
		}
		parts[n] = fmt.Sprintf("{ID %q URL %s Weight %d Meta %v Draining %v}", i.ID, u, i.Weight, i.Meta, i.Draining)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// RegistrarSubject is a registry under test: a [discovery.Registrar] that
// writes to it and a [discovery.Provider] that reads it.
type RegistrarSubject struct {
	// Provider reads the registry. The registry is empty at first.
	Provider discovery.Provider
	// Registrar writes to it. [ExerciseRegistrar] closes it at the end of each
	// subtest, before checking for leaked goroutines.
	Registrar discovery.Registrar
	// Instance returns the i-th (i >= 0) of a series of distinct instances to
	// register, exactly as the provider reports them once registered (ID,
	// URL, Weight and Meta, any keys the backend adds included; Draining
	// false). ExerciseRegistrar uses i < 8. Required.
	Instance func(i int) discovery.Instance
	// DrainRemoves says the registry cannot mark an instance draining (DNS),
	// so that after Drain the provider no longer delivers it; otherwise it
	// delivers it with Draining set.
	DrainRemoves bool
	// Refreshed is as in [Subject]: nil when the provider learns of every
	// change by itself, else a wait for one complete read of the registry.
	Refreshed func(t *testing.T)
	// Cut breaks the provider's connection to the registry, leaving the
	// registrar's, until restore is called; nil when that cannot be done.
	// While cut the provider must report an error and must not deliver a
	// set (it keeps the last good one); after restore it must deliver the
	// registry's current set, changes made meanwhile included.
	Cut func(t *testing.T) (restore func())
}

// ExerciseRegistrar runs the registrar cases of the conformance suite
// against registries made by newSubject, called once per subtest: the initial
// set, an instance added, removed, its health changing, drained and
// deregistered, the contract's errors, and — when the subject can Cut — a
// registry outage that keeps the last set and a recovery that catches up
// with every change made meanwhile. The same rules as for [Exercise] apply
// to goroutines and t.Parallel.
func ExerciseRegistrar(t *testing.T, newSubject func(t *testing.T) RegistrarSubject) {
	t.Helper()
	run := func(name string, test func(t *testing.T, s RegistrarSubject)) {
		t.Run(name, func(t *testing.T) {
			s := newSubject(t)
			if s.Provider == nil || s.Registrar == nil || s.Instance == nil {
				t.Fatal("discoverytest: RegistrarSubject needs Provider, Registrar and Instance")
			}
			leaks := goleak.IgnoreCurrent()
			test(t, s)
			if err := s.Registrar.Close(); err != nil {
				t.Errorf("Registrar.Close: %v", err)
			}
			if !t.Failed() {
				verifyNoLeaks(t, leaks, goleak.IgnoreAnyFunction("github.com/shoal-sh/shoal/discovery/discoverytest.(*Cutter).pipe"))
			}
		})
	}
	register := func(t *testing.T, s RegistrarSubject, idx ...int) {
		t.Helper()
		for _, i := range idx {
			if err := s.Registrar.Register(t.Context(), s.Instance(i)); err != nil {
				t.Fatalf("Register(%s): %v", s.Instance(i).ID, err)
			}
		}
	}
	draining := func(in discovery.Instance) discovery.Instance {
		in.Draining = true
		return in
	}

	run("InitialSet", func(t *testing.T, s RegistrarSubject) {
		register(t, s, 0, 1)
		w := watch(t, s.asSubject())
		w.expectEventually(t, pick(s.asSubject(), 0, 1))
		w.stop(t)
	})

	run("AddAndRemove", func(t *testing.T, s RegistrarSubject) {
		w := watch(t, s.asSubject())
		w.expectEventually(t, nil)
		register(t, s, 0)
		w.expect(t, pick(s.asSubject(), 0))
		register(t, s, 1)
		w.expect(t, pick(s.asSubject(), 0, 1))
		if err := s.Registrar.Deregister(t.Context(), s.Instance(0).ID); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		w.expect(t, pick(s.asSubject(), 1))
		if err := s.Registrar.Deregister(t.Context(), s.Instance(0).ID); err != nil {
			t.Fatalf("Deregister of an instance no longer registered: %v, want nil", err)
		}
		if err := s.Registrar.Deregister(t.Context(), "never-registered"); err != nil {
			t.Fatalf("Deregister of an unknown ID: %v, want nil", err)
		}
		register(t, s, 2)
		w.expect(t, pick(s.asSubject(), 1, 2))
		w.stop(t)
	})

	run("HealthChange", func(t *testing.T, s RegistrarSubject) {
		register(t, s, 0, 1)
		w := watch(t, s.asSubject())
		w.expectEventually(t, pick(s.asSubject(), 0, 1))
		if err := s.Registrar.SetHealth(t.Context(), s.Instance(0).ID, false); err != nil {
			t.Fatalf("SetHealth(false): %v", err)
		}
		w.expect(t, pick(s.asSubject(), 1))
		// Reporting the same health again changes nothing.
		if err := s.Registrar.SetHealth(t.Context(), s.Instance(0).ID, false); err != nil {
			t.Fatalf("SetHealth(false) again: %v", err)
		}
		refreshed(t, s.asSubject())
		if err := s.Registrar.SetHealth(t.Context(), s.Instance(0).ID, true); err != nil {
			t.Fatalf("SetHealth(true): %v", err)
		}
		w.expect(t, pick(s.asSubject(), 0, 1))
		if err := s.Registrar.SetHealth(t.Context(), "never-registered", true); !errors.Is(err, discovery.ErrNotRegistered) {
			t.Fatalf("SetHealth of an unknown ID: %v, want ErrNotRegistered", err)
		}
		w.stop(t)
	})

	run("DrainThenDeregister", func(t *testing.T, s RegistrarSubject) {
		register(t, s, 0, 1)
		w := watch(t, s.asSubject())
		w.expectEventually(t, pick(s.asSubject(), 0, 1))
		if err := s.Registrar.Drain(t.Context(), s.Instance(0).ID); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		afterDrain := []discovery.Instance{draining(s.Instance(0)), s.Instance(1)}
		if s.DrainRemoves {
			afterDrain = pick(s.asSubject(), 1)
		}
		w.expect(t, afterDrain)
		// Health reports do not end a drain.
		if err := s.Registrar.SetHealth(t.Context(), s.Instance(0).ID, true); err != nil {
			t.Fatalf("SetHealth(true) while draining: %v", err)
		}
		refreshed(t, s.asSubject())
		if err := s.Registrar.Deregister(t.Context(), s.Instance(0).ID); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		if !s.DrainRemoves {
			w.expect(t, pick(s.asSubject(), 1))
		}
		// Nothing else came: had the drained instance come back, it would
		// show before this set.
		register(t, s, 2)
		w.expect(t, pick(s.asSubject(), 1, 2))
		if err := s.Registrar.Drain(t.Context(), "never-registered"); !errors.Is(err, discovery.ErrNotRegistered) {
			t.Fatalf("Drain of an unknown ID: %v, want ErrNotRegistered", err)
		}
		w.stop(t)
	})

	run("RegisterAgainEndsDrain", func(t *testing.T, s RegistrarSubject) {
		register(t, s, 0)
		w := watch(t, s.asSubject())
		w.expectEventually(t, pick(s.asSubject(), 0))
		if err := s.Registrar.Drain(t.Context(), s.Instance(0).ID); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		if s.DrainRemoves {
			w.expect(t, nil)
		} else {
			w.expect(t, []discovery.Instance{draining(s.Instance(0))})
		}
		register(t, s, 0)
		w.expect(t, pick(s.asSubject(), 0))
		w.stop(t)
	})

	run("InvalidInstance", func(t *testing.T, s RegistrarSubject) {
		for name, in := range map[string]discovery.Instance{
			"NoID":  {URL: s.Instance(0).URL},
			"NoURL": {ID: "no-url"},
		} {
			var invalid *discovery.InvalidInstanceError
			if err := s.Registrar.Register(t.Context(), in); !errors.As(err, &invalid) {
				t.Errorf("%s: Register = %v, want an *InvalidInstanceError", name, err)
			}
		}
		if err := s.Registrar.SetHealth(t.Context(), "no-url", true); !errors.Is(err, discovery.ErrNotRegistered) {
			t.Errorf("SetHealth after a refused Register: %v, want ErrNotRegistered", err)
		}
	})

	run("OutageKeepsLastSetAndRecoveryCatchesUp", func(t *testing.T, s RegistrarSubject) {
		if s.Cut == nil {
			t.Skip("the provider's connection cannot be cut")
		}
		register(t, s, 0, 1, 2)
		w := watch(t, s.asSubject())
		w.expectEventually(t, pick(s.asSubject(), 0, 1, 2))
		restore := s.Cut(t)
		if ev := w.next(t); ev.Err == nil {
			restore()
			t.Fatalf("while cut got %s, want an error (and the last good set kept)", format(ev.Instances))
		}
		// Changes the provider cannot see yet: it must catch up with all of
		// them, as a watch resumed after a disconnect must.
		register(t, s, 3)
		if err := s.Registrar.Deregister(t.Context(), s.Instance(1).ID); err != nil {
			restore()
			t.Fatalf("Deregister: %v", err)
		}
		if err := s.Registrar.SetHealth(t.Context(), s.Instance(2).ID, false); err != nil {
			restore()
			t.Fatalf("SetHealth: %v", err)
		}
		for pending := true; pending; {
			select {
			case ev, ok := <-w.ch:
				if !ok {
					restore()
					t.Fatal("channel closed while cut")
				}
				if ev.Err == nil {
					restore()
					t.Fatalf("while cut got %s, want only errors", format(ev.Instances))
				}
			default:
				pending = false
			}
		}
		restore()
		w.expectEventually(t, pick(s.asSubject(), 0, 3))
		register(t, s, 4)
		w.expect(t, pick(s.asSubject(), 0, 3, 4))
		w.stop(t)
	})
}

// asSubject adapts s to the helpers shared with [Exercise].
func (s RegistrarSubject) asSubject() Subject {
	return Subject{Provider: s.Provider, Instance: s.Instance, Refreshed: s.Refreshed}
}

// expectEventually reads events until one is the set want, skipping errors
// and other sets (intermediate states a provider may pass through).
func (w *watcher) expectEventually(t *testing.T, want []discovery.Instance) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	var last discovery.Event
	for time.Now().Before(deadline) {
		timer := time.NewTimer(time.Until(deadline))
		select {
		case ev, ok := <-w.ch:
			timer.Stop()
			if !ok {
				t.Fatal("channel closed before its context was done")
			}
			if ev.Err == nil && equal(ev.Instances, want) {
				return
			}
			last = ev
		case <-timer.C:
		}
	}
	if last.Err != nil {
		t.Fatalf("no event with %s within %s; the last was the error %v", format(want), Timeout, last.Err)
	}
	t.Fatalf("no event with %s within %s; the last was %s", format(want), Timeout, format(last.Instances))
}
