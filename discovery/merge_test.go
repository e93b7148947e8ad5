package discovery_test

import (
	"context"
	"errors"
	"testing"

	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/discovery/discoverytest"
)

func TestMerge_Conformance(t *testing.T) {
	discoverytest.Exercise(t, func(t *testing.T) discoverytest.Subject {
		s := discovery.NewSet()
		return discoverytest.Subject{
			Provider: discovery.Merge(s, discovery.NewSet()),
			Instance: func(i int) discovery.Instance { return inst(9000 + i) },
			Apply:    func(_ *testing.T, instances []discovery.Instance) { s.Replace(instances) },
		}
	})
}

func TestMerge_Watch(t *testing.T) {
	t.Parallel()

	t.Run("Union", func(t *testing.T) {
		t.Parallel()
		fleet, static := discovery.NewSet(inst(1)), discovery.NewSet(inst(2))
		ch, _ := watch(t, discovery.Merge(fleet, static))
		expectIDs(t, ch, inst(1).ID, inst(2).ID)
		fleet.Add(inst(3))
		expectIDs(t, ch, inst(1).ID, inst(2).ID, inst(3).ID)
		static.Remove(inst(2).ID)
		expectIDs(t, ch, inst(1).ID, inst(3).ID)
	})

	t.Run("FirstProviderWinsOnSameID", func(t *testing.T) {
		t.Parallel()
		heavy := inst(1)
		heavy.Weight = 9
		ch, _ := watch(t, discovery.Merge(discovery.NewSet(heavy), discovery.NewSet(inst(1))))
		ev := next(t, ch)
		if len(ev.Instances) != 1 || ev.Instances[0].Weight != 9 {
			t.Fatalf("got %+v, want the first provider's instance", ev)
		}
	})

	t.Run("WaitsForEveryProvider", func(t *testing.T) {
		t.Parallel()
		slow := &manual{ch: make(chan discovery.Event)}
		ch, _ := watch(t, discovery.Merge(discovery.NewSet(inst(1)), slow))
		boom := errors.New("boom")
		slow.ch <- discovery.Event{Err: boom}
		expectIDs(t, ch, inst(1).ID) // the union of what is known, then the error
		expectErr(t, ch, boom)
		slow.ch <- discovery.Event{Instances: []discovery.Instance{inst(2)}}
		expectIDs(t, ch, inst(1).ID, inst(2).ID)
		slow.ch <- discovery.Event{Err: boom}
		expectErr(t, ch, boom)
		close(slow.ch) // closed early: its last set stays
	})

	t.Run("None", func(t *testing.T) {
		t.Parallel()
		ch, cancel := watch(t, discovery.Merge())
		expectIDs(t, ch)
		cancel()
		expectClosed(t, ch)
	})

	t.Run("ClosesAfterEveryProvider", func(t *testing.T) {
		t.Parallel()
		slow := &manual{ch: make(chan discovery.Event)}
		ch, cancel := watch(t, discovery.Merge(slow))
		slow.ch <- discovery.Event{}
		expectIDs(t, ch)
		cancel()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatal("closed while a provider's channel is open")
			}
		default:
		}
		close(slow.ch)
		expectClosed(t, ch)
	})
}

// manual is a Provider whose one channel the test drives (and closes).
type manual struct {
	ch chan discovery.Event
}

func (m *manual) Watch(context.Context) <-chan discovery.Event { return m.ch }
