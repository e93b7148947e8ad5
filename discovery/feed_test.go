package discovery_test

import (
	"errors"
	"testing"

	"github.com/shoal-sh/shoal/discovery"
)

// setup returns a feed closed at the end of the test.
func setup(t *testing.T) (*discovery.Feed, <-chan discovery.Event) {
	t.Helper()
	f, ch := discovery.NewFeed()
	t.Cleanup(f.Close)
	return f, ch
}

func TestFeed_Send(t *testing.T) {
	t.Parallel()
	a, b, c := inst(1), inst(2), inst(3)

	t.Run("SortsByID", func(t *testing.T) {
		t.Parallel()
		f, ch := setup(t)
		in := []discovery.Instance{c, a, b}
		f.Send(discovery.Event{Instances: in})
		expectIDs(t, ch, a.ID, b.ID, c.ID)
		if in[0].ID != c.ID {
			t.Fatal("Send modified the caller's slice")
		}
	})

	t.Run("UnchangedSetIsNotResent", func(t *testing.T) {
		t.Parallel()
		f, ch := setup(t)
		f.Send(discovery.Event{Instances: []discovery.Instance{a, b}})
		expectIDs(t, ch, a.ID, b.ID)
		f.Send(discovery.Event{Instances: []discovery.Instance{b, a}})
		f.Send(discovery.Event{Instances: []discovery.Instance{a, b, c}})
		expectIDs(t, ch, a.ID, b.ID, c.ID)
	})

	t.Run("ChangedWeightIsAChange", func(t *testing.T) {
		t.Parallel()
		f, ch := setup(t)
		f.Send(discovery.Event{Instances: []discovery.Instance{a}})
		expectIDs(t, ch, a.ID)
		heavy := a
		heavy.Weight = 5
		f.Send(discovery.Event{Instances: []discovery.Instance{heavy}})
		if ev := next(t, ch); len(ev.Instances) != 1 || ev.Instances[0].Weight != 5 {
			t.Fatalf("got %+v, want weight 5", ev)
		}
	})

	t.Run("LatestWins", func(t *testing.T) {
		t.Parallel()
		f, ch := setup(t)
		f.Send(discovery.Event{Instances: []discovery.Instance{a}})
		expectIDs(t, ch, a.ID)
		f.Send(discovery.Event{Instances: []discovery.Instance{b}})
		f.Send(discovery.Event{Instances: []discovery.Instance{c}})
		expectIDs(t, ch, c.ID)
	})

	t.Run("SetReplacedByTheOneAlreadyReadIsNotResent", func(t *testing.T) {
		t.Parallel()
		f, ch := setup(t)
		f.Send(discovery.Event{Instances: []discovery.Instance{a}})
		expectIDs(t, ch, a.ID)
		f.Send(discovery.Event{Instances: []discovery.Instance{b}})
		f.Send(discovery.Event{Instances: []discovery.Instance{a}})
		f.Send(discovery.Event{Instances: []discovery.Instance{c}})
		expectIDs(t, ch, c.ID)
	})

	t.Run("ErrorThenRecovery", func(t *testing.T) {
		t.Parallel()
		f, ch := setup(t)
		boom := errors.New("boom")
		f.Send(discovery.Event{Instances: []discovery.Instance{a}})
		expectIDs(t, ch, a.ID)
		f.Send(discovery.Event{Err: boom, Instances: []discovery.Instance{b}}) // Instances ignored
		expectErr(t, ch, boom)
		f.Send(discovery.Event{Err: boom})
		expectErr(t, ch, boom) // every failure is reported
		f.Send(discovery.Event{Instances: []discovery.Instance{a}})
		expectIDs(t, ch, a.ID) // unchanged, but resent: the source recovered
		f.Send(discovery.Event{Instances: []discovery.Instance{a}})
		f.Send(discovery.Event{Instances: []discovery.Instance{b}})
		expectIDs(t, ch, b.ID)
	})

	t.Run("UnreadSetComesBeforeError", func(t *testing.T) {
		t.Parallel()
		f, ch := setup(t)
		boom := errors.New("boom")
		f.Send(discovery.Event{Instances: []discovery.Instance{a}})
		expectIDs(t, ch, a.ID)
		f.Send(discovery.Event{Instances: []discovery.Instance{b}})
		f.Send(discovery.Event{Err: errors.New("older")})
		f.Send(discovery.Event{Err: boom})
		expectIDs(t, ch, b.ID)
		expectErr(t, ch, boom)
	})

	t.Run("ErrorFirst", func(t *testing.T) {
		t.Parallel()
		f, ch := setup(t)
		boom := errors.New("boom")
		f.Send(discovery.Event{Err: boom})
		expectErr(t, ch, boom)
		f.Send(discovery.Event{})
		expectIDs(t, ch) // an empty set is a set
	})

	t.Run("ErrorRecoveredBeforeReadIsSkipped", func(t *testing.T) {
		t.Parallel()
		f, ch := setup(t)
		f.Send(discovery.Event{Instances: []discovery.Instance{a}})
		expectIDs(t, ch, a.ID)
		f.Send(discovery.Event{Err: errors.New("blip")})
		f.Send(discovery.Event{Instances: []discovery.Instance{a}})
		f.Send(discovery.Event{Instances: []discovery.Instance{b}})
		expectIDs(t, ch, b.ID)
	})
}

// TestFeed_SendNeverBlocks sends many states nobody reads; the watcher then
// reads only what takes it to the latest state.
func TestFeed_SendNeverBlocks(t *testing.T) {
	t.Parallel()
	f, ch := setup(t)
	boom := errors.New("boom")
	for i := range 100 {
		f.Send(discovery.Event{Instances: []discovery.Instance{inst(i)}})
		f.Send(discovery.Event{Err: boom})
	}
	expectIDs(t, ch, inst(99).ID)
	expectErr(t, ch, boom)
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %+v", ev)
	default:
	}
}

func TestFeed_Close(t *testing.T) {
	t.Parallel()

	t.Run("WithUnreadEvent", func(t *testing.T) {
		t.Parallel()
		f, ch := discovery.NewFeed()
		f.Send(discovery.Event{Instances: []discovery.Instance{inst(1)}})
		f.Close()
		f.Close() // harmless
		f.Send(discovery.Event{Instances: []discovery.Instance{inst(2)}})
		if _, ok := <-ch; ok {
			t.Fatal("event after Close")
		}
	})

	t.Run("WhileReading", func(t *testing.T) {
		t.Parallel()
		f, ch := discovery.NewFeed()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range ch {
			}
		}()
		f.Send(discovery.Event{})
		f.Close()
		<-done
	})
}
