package discovery_test

import (
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/discovery/discoverytest"
)

func TestSet_Conformance(t *testing.T) {
	discoverytest.Exercise(t, func(t *testing.T) discoverytest.Subject {
		s := discovery.NewSet()
		return discoverytest.Subject{
			Provider: s,
			Instance: func(i int) discovery.Instance {
				in := inst(9000 + i)
				in.Weight = i%3 + 1
				in.Meta = map[string]string{"version": "v1"}
				return in
			},
			Apply: func(_ *testing.T, instances []discovery.Instance) { s.Replace(instances) },
		}
	})
}

func TestSet_Add(t *testing.T) {
	t.Parallel()

	t.Run("FillsDefaultsAndCopies", func(t *testing.T) {
		t.Parallel()
		u := &url.URL{Scheme: "http", Host: "10.0.0.1:80"}
		meta := map[string]string{"version": "v1"}
		var s discovery.Set // the zero value is ready to use
		s.Add(discovery.Instance{URL: u, Weight: -3, Meta: meta})
		u.Host = "changed:1"
		meta["version"] = "changed"

		got := s.Instances()
		want := discovery.Instance{ID: "http://10.0.0.1:80", URL: &url.URL{Scheme: "http", Host: "10.0.0.1:80"},
			Weight: 1, Meta: map[string]string{"version": "v1"}}
		if len(got) != 1 || !got[0].Equal(want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})

	t.Run("ReplacesSameID", func(t *testing.T) {
		t.Parallel()
		s := discovery.NewSet(inst(1), inst(2))
		changed := inst(2)
		changed.Weight = 7
		s.Add(changed, inst(3))
		got := s.Instances()
		if !slices.Equal(ids(got), []string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"}) || got[1].Weight != 7 {
			t.Fatalf("got %+v", got)
		}
	})

	t.Run("PanicsWithoutURL", func(t *testing.T) {
		t.Parallel()
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		new(discovery.Set).Add(discovery.Instance{ID: "x"})
	})
}

func TestSet_Remove(t *testing.T) {
	t.Parallel()
	s := discovery.NewSet(inst(1), inst(2))
	ch, _ := watch(t, s)
	expectIDs(t, ch, "http://127.0.0.1:1", "http://127.0.0.1:2")

	if !s.Remove("http://127.0.0.1:1") {
		t.Fatal("Remove of a member returned false")
	}
	if s.Remove("http://127.0.0.1:1") {
		t.Fatal("Remove of a non-member returned true")
	}
	expectIDs(t, ch, "http://127.0.0.1:2")
	s.Add(inst(3))
	// Only one event: the failed Remove changed nothing.
	expectIDs(t, ch, "http://127.0.0.1:2", "http://127.0.0.1:3")
}

func TestSet_Replace(t *testing.T) {
	t.Parallel()
	s := discovery.NewSet(inst(1), inst(2))
	ch, _ := watch(t, s)
	expectIDs(t, ch, "http://127.0.0.1:1", "http://127.0.0.1:2")

	s.Replace([]discovery.Instance{inst(2), inst(1)}) // same set, other order
	s.Replace([]discovery.Instance{inst(3), inst(2)})
	expectIDs(t, ch, "http://127.0.0.1:2", "http://127.0.0.1:3")
	s.Replace(nil)
	expectIDs(t, ch)
	if got := s.Instances(); len(got) != 0 {
		t.Fatalf("Instances after Replace(nil) = %v", ids(got))
	}
}

// TestSet_Concurrent changes a watched set from several goroutines; the race
// detector checks the locking, and the watcher must end with the final set.
func TestSet_Concurrent(t *testing.T) {
	t.Parallel()
	s := discovery.NewSet()
	ch, _ := watch(t, s)
	expectIDs(t, ch)

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				in := inst(1000*g + i)
				s.Add(in)
				_ = s.Instances()
				if i%2 == 0 {
					s.Remove(in.ID)
				}
			}
		})
	}
	wg.Wait()
	want := ids(s.Instances())
	if len(want) != 4*25 {
		t.Fatalf("set has %d members, want 100", len(want))
	}
	for {
		ev := next(t, ch)
		if slices.Equal(ids(ev.Instances), want) {
			break
		}
	}
}
