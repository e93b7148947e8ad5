package eventstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/eventstore"
)

func jsonEqual(a []byte, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

func equalInts[T ~int64 | ~int](a, b []T) bool { return slices.Equal(a, b) }

func positions(evs []eventstore.RecordedEvent) []eventstore.Position {
	var out []eventstore.Position
	for _, e := range evs {
		out = append(out, e.Position)
	}
	return out
}

func testReadAll(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	if sl, err := s.ReadAll(ctx, eventstore.ReadAllOptions{}); err != nil || len(sl.Events) != 0 || sl.Head != 0 || sl.Next != 1 {
		t.Fatalf("empty store: %+v, %v", sl, err)
	}
	for i := range 5 {
		mustAppend(t, s, "a", eventstore.Any, numbered("A", 2, 2*i)...)
		mustAppend(t, s, "b", eventstore.Any, numbered("B", 1, i)...)
	}
	// 15 events: a a b a a b …
	sl, err := s.ReadAll(ctx, eventstore.ReadAllOptions{From: 4, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got := positions(sl.Events); !equalInts(got, []eventstore.Position{4, 5, 6, 7, 8}) || sl.Next != 9 || sl.Head != 15 {
		t.Fatalf("ReadAll from 4 limit 5 = %v next %d head %d", got, sl.Next, sl.Head)
	}
	sl, _ = s.ReadAll(ctx, eventstore.ReadAllOptions{From: 14})
	if got := positions(sl.Events); !equalInts(got, []eventstore.Position{14, 15}) || sl.Next != 16 {
		t.Fatalf("ReadAll from 14 = %v next %d", got, sl.Next)
	}
	sl, _ = s.ReadAll(ctx, eventstore.ReadAllOptions{From: 16})
	if len(sl.Events) != 0 || sl.Next != 16 || sl.Head != 15 {
		t.Fatalf("ReadAll past the head = %+v", sl)
	}
	sl, _ = s.ReadAll(ctx, eventstore.ReadAllOptions{Backward: true, Limit: 3})
	if got := positions(sl.Events); !equalInts(got, []eventstore.Position{15, 14, 13}) || sl.Next != 12 {
		t.Fatalf("ReadAll backward = %v next %d", got, sl.Next)
	}
	sl, _ = s.ReadAll(ctx, eventstore.ReadAllOptions{Backward: true, From: 2})
	if got := positions(sl.Events); !equalInts(got, []eventstore.Position{2, 1}) || sl.Next != 0 {
		t.Fatalf("ReadAll backward from 2 = %v next %d", got, sl.Next)
	}
	all := readAll(t, s, eventstore.Filter{})
	if len(all) != 15 {
		t.Fatalf("read %d events, want 15", len(all))
	}
	for i, e := range all {
		if e.Position != eventstore.Position(i+1) {
			t.Fatalf("event %d at position %d: the global order has a hole", i, e.Position)
		}
	}
	// Stream versions follow the global order.
	last := map[string]int64{}
	for _, e := range all {
		if e.Version != last[e.Stream]+1 {
			t.Fatalf("stream %s: version %d after %d", e.Stream, e.Version, last[e.Stream])
		}
		last[e.Stream] = e.Version
	}
	if sl, err := s.ReadAll(ctx, eventstore.ReadAllOptions{Limit: 1 << 30}); err != nil || len(sl.Events) != 15 {
		t.Fatalf("a huge limit: %d events, %v", len(sl.Events), err)
	}
}

func testReadAllFilters(t *testing.T, h *harness) {
	s := h.store()
	for i := range 20 {
		mustAppend(t, s, "account-"+string(rune('a'+i%4)), eventstore.Any, ev("Deposited", map[string]int{"n": i}))
		mustAppend(t, s, "user-"+string(rune('a'+i%3)), eventstore.Any, ev("Renamed", map[string]int{"n": i}))
		if i%5 == 0 {
			mustAppend(t, s, "account-x", eventstore.Any, ev("Closed", map[string]int{"n": i}))
		}
	}
	count := func(f eventstore.Filter) int {
		t.Helper()
		evs := readAll(t, s, f)
		for _, e := range evs {
			if !f.Match(e.Stream, e.Type) {
				t.Fatalf("filter %+v returned %s/%s", f, e.Stream, e.Type)
			}
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Position <= evs[i-1].Position {
				t.Fatalf("filtered read out of order: %d after %d", evs[i].Position, evs[i-1].Position)
			}
		}
		return len(evs)
	}
	checks := []struct {
		f    eventstore.Filter
		want int
	}{
		{eventstore.Filter{StreamPrefixes: []string{"account-"}}, 24},
		{eventstore.Filter{StreamPrefixes: []string{"user-", "account-x"}}, 24},
		{eventstore.Filter{Types: []string{"Closed"}}, 4},
		{eventstore.Filter{Types: []string{"Closed", "Renamed"}}, 24},
		{eventstore.Filter{StreamPrefixes: []string{"account-"}, Types: []string{"Deposited"}}, 20},
		{eventstore.Filter{StreamPrefixes: []string{"acc%"}}, 0}, // prefixes are not patterns
		{eventstore.Filter{StreamPrefixes: []string{"account-_"}}, 0},
		{eventstore.Filter{Types: []string{"Nothing"}}, 0},
	}
	for _, c := range checks {
		if got := count(c.f); got != c.want {
			t.Errorf("filter %+v: %d events, want %d", c.f, got, c.want)
		}
	}
	// A filtered page moves Next past what it passed over.
	sl, err := s.ReadAll(h.ctx(), eventstore.ReadAllOptions{Limit: 2, Filter: eventstore.Filter{Types: []string{"Closed"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sl.Events) != 2 || sl.Next != sl.Events[1].Position+1 {
		t.Fatalf("filtered page: %v next %d", positions(sl.Events), sl.Next)
	}
	sl, _ = s.ReadAll(h.ctx(), eventstore.ReadAllOptions{From: sl.Next, Limit: 10, Filter: eventstore.Filter{Types: []string{"Closed"}}})
	if len(sl.Events) != 2 || sl.Next != sl.Head+1 {
		t.Fatalf("second filtered page: %v next %d head %d", positions(sl.Events), sl.Next, sl.Head)
	}
}

// testConcurrentOneStream: writers race on one stream with exact expected versions; every
// refusal is a conflict, and the stream's versions are contiguous with no duplicates.
func testConcurrentOneStream(t *testing.T, h *harness) {
	const writers, each = 8, 40
	ConcurrentOneStream(t, h.store, writers, each)
}

// ConcurrentOneStream runs writers goroutines, each appending each events one at a time to
// one stream with Exact expectations and retrying conflicts (each on a handle of its own
// from open), then checks that the stream has writers*each events at versions 1… with no
// duplicate and no hole, every refusal having been a *ConflictError. Backends run it with
// larger counts in their own race tests.
func ConcurrentOneStream(t testing.TB, open func() eventstore.Store, writers, each int) (conflicts int) {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		s := open()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ver, _, err := s.StreamVersion(ctx, "race")
			if err != nil {
				errs <- err
				return
			}
			for i := 0; i < each; {
				e := ev("W", map[string]int{"w": w, "i": i})
				r, err := s.Append(ctx, "race", eventstore.Exact(ver), e)
				var ce *eventstore.ConflictError
				switch {
				case err == nil:
					ver = r.LastVersion
					i++
				case errors.As(err, &ce):
					if ce.Actual <= ver {
						errs <- errors.New("a conflict reported an actual version not ahead of the expected one")
						return
					}
					ver = ce.Actual
					mu.Lock()
					conflicts++
					mu.Unlock()
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := open()
	evs, err := s.ReadStream(ctx, "race", eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != writers*each {
		t.Fatalf("stream has %d events, want %d", len(evs), writers*each)
	}
	seen := map[string]bool{}
	for i, e := range evs {
		if e.Version != int64(i+1) {
			t.Fatalf("event %d has version %d: versions are not contiguous", i, e.Version)
		}
		if i > 0 && e.Position <= evs[i-1].Position {
			t.Fatalf("version %d at position %d after %d", e.Version, e.Position, evs[i-1].Position)
		}
		k := string(e.Data)
		if seen[k] {
			t.Fatalf("event %s stored twice", k)
		}
		seen[k] = true
	}
	return conflicts
}

func testConcurrentTailAll(t *testing.T, h *harness) {
	ConcurrentTailAll(t, h.store, 4, 60)
}

// ConcurrentTailAll runs writers goroutines, each appending each events (in batches of 1 to
// 3) to a stream of its own, while a reader tails the global order from the start. It
// checks that the reader saw positions strictly increasing with no hole — so no event
// appeared late, behind a position already read (the gap race) — and every event once.
func ConcurrentTailAll(t testing.TB, open func() eventstore.Store, writers, each int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	total := writers * each
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		s := open()
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "writer-" + string(rune('a'+w))
			for i := 0; i < each; {
				n := min(1+i%3, each-i)
				if _, err := s.Append(ctx, name, eventstore.Any, numbered("W", n, i)...); err != nil {
					errs <- err
					return
				}
				i += n
			}
		}()
	}
	reader := open()
	seen := make(map[eventstore.Position]bool, total)
	next := eventstore.Position(1)
	perStream := map[string]int64{}
	func() {
		for len(seen) < total {
			sl, err := reader.ReadAll(ctx, eventstore.ReadAllOptions{From: next, Limit: 97})
			if err != nil {
				errs <- err
				return
			}
			for _, e := range sl.Events {
				if e.Position != next {
					errs <- errors.New("tail of $all: position " + itoa(int64(e.Position)) + " after " + itoa(int64(next-1)) + ": a gap or an event out of order")
					return
				}
				if seen[e.Position] {
					errs <- errors.New("position seen twice")
					return
				}
				if e.Version != perStream[e.Stream]+1 {
					errs <- errors.New("stream " + e.Stream + " version " + itoa(e.Version) + " after " + itoa(perStream[e.Stream]))
					return
				}
				perStream[e.Stream] = e.Version
				seen[e.Position] = true
				next++
			}
			if len(sl.Events) == 0 {
				if err := reader.WaitForAppend(ctx, next-1); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Nothing turns up later behind the tail.
	sl, err := reader.ReadAll(ctx, eventstore.ReadAllOptions{From: 1, Limit: eventstore.MaxReadLimit})
	if err != nil {
		t.Fatal(err)
	}
	if sl.Head != eventstore.Position(total) {
		t.Fatalf("head %d, want %d", sl.Head, total)
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func testWaitForAppend(t *testing.T, h *harness) {
	s, other := h.store(), h.store()
	ctx := h.ctx()
	// Returns at once when the head is already past.
	mustAppend(t, s, "w", eventstore.Any, ev("A", nil))
	if err := s.WaitForAppend(ctx, 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WaitForAppend(ctx, 1) }()
	mustAppend(t, other, "w", eventstore.Any, ev("A", nil)) // another handle's append wakes it
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(h.Wait):
		t.Fatal("WaitForAppend did not return after an append by another handle")
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- s.WaitForAppend(cctx, 2) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitForAppend after cancel: %v", err)
	}
}

func testTimes(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	t0 := h.clock.Now()
	mustAppend(t, s, "t", eventstore.NoStream, ev("A", nil))
	h.clock.Advance(time.Minute)
	mustAppend(t, s, "t", eventstore.Any, ev("B", nil), ev("C", nil))
	h.clock.Advance(time.Minute)
	mustAppend(t, s, "t", eventstore.Any, ev("D", nil))
	// A clock that goes backwards does not make times go backwards.
	h.clock.Set(t0.Add(-time.Hour))
	mustAppend(t, s, "u", eventstore.Any, ev("E", nil))
	evs := readAll(t, s, eventstore.Filter{})
	want := []time.Time{t0, t0.Add(time.Minute), t0.Add(time.Minute), t0.Add(2 * time.Minute), t0.Add(2 * time.Minute)}
	for i, e := range evs {
		if !e.Time.Equal(want[i]) {
			t.Errorf("event %d (%s) time %v, want %v", i, e.Type, e.Time, want[i])
		}
	}
	at := []struct {
		t    time.Time
		want int64
	}{
		{t0.Add(-time.Second), 0}, {t0, 1}, {t0.Add(30 * time.Second), 1}, {t0.Add(time.Minute), 3},
		{t0.Add(90 * time.Second), 3}, {t0.Add(time.Hour), 4},
	}
	for _, c := range at {
		if v, err := s.VersionAt(ctx, "t", c.t); err != nil || v != c.want {
			t.Errorf("VersionAt(%v) = %d, %v; want %d", c.t.Sub(t0), v, err, c.want)
		}
	}
	if v, err := s.VersionAt(ctx, "missing", t0.Add(time.Hour)); err != nil || v != 0 {
		t.Errorf("VersionAt(missing) = %d, %v", v, err)
	}
}

func testCheckpoints(t *testing.T, h *harness) {
	s, other := h.store(), h.store()
	ctx := h.ctx()
	if p, err := s.Checkpoint(ctx, "sub"); err != nil || p != 0 {
		t.Fatalf("Checkpoint of a new name = %d, %v", p, err)
	}
	for _, p := range []eventstore.Position{5, 3, 12} {
		if err := s.SaveCheckpoint(ctx, "sub", p); err != nil {
			t.Fatal(err)
		}
		if got, err := other.Checkpoint(ctx, "sub"); err != nil || got != p {
			t.Fatalf("Checkpoint = %d, %v; want %d", got, err, p)
		}
	}
	if err := s.SaveCheckpoint(ctx, "another", 1); err != nil {
		t.Fatal(err)
	}
	list, err := other.ListCheckpoints(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "another" || list[1].Name != "sub" || list[1].Position != 12 || list[1].Updated.IsZero() {
		t.Fatalf("ListCheckpoints = %+v, %v", list, err)
	}
	if err := s.SaveCheckpoint(ctx, "", 1); err == nil {
		t.Error("a checkpoint without a name was saved")
	}
}

func testSnapshots(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	if _, err := s.LoadSnapshot(ctx, "acc", "state", 0); !errors.Is(err, eventstore.ErrNoSnapshot) {
		t.Fatalf("LoadSnapshot of nothing: %v", err)
	}
	for v := int64(1); v <= 5; v++ {
		if err := s.SaveSnapshot(ctx, eventstore.Snapshot{Stream: "acc", Version: v * 10, Type: "state", Data: []byte(`{"v":` + itoa(v*10) + `}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveSnapshot(ctx, eventstore.Snapshot{Stream: "acc", Version: 35, Type: "state.v2", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	load := func(typ string, max int64) int64 {
		t.Helper()
		sn, err := s.LoadSnapshot(ctx, "acc", typ, max)
		if errors.Is(err, eventstore.ErrNoSnapshot) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		if sn.Stream != "acc" || sn.Type != typ || sn.Time.IsZero() || typ == "state" && !jsonEqual(sn.Data, `{"v":`+itoa(sn.Version)+`}`) {
			t.Fatalf("snapshot %+v", sn)
		}
		return sn.Version
	}
	for _, c := range []struct {
		typ  string
		max  int64
		want int64
	}{{"state", 0, 50}, {"state", 45, 40}, {"state", 30, 30}, {"state", 29, 0}, {"state.v2", 0, 35}, {"state.v2", 34, 0}, {"other", 0, 0}} {
		if got := load(c.typ, c.max); got != c.want {
			t.Errorf("LoadSnapshot(%s, ≤%d) = version %d, want %d", c.typ, c.max, got, c.want)
		}
	}
	// Replacing a version's snapshot.
	if err := s.SaveSnapshot(ctx, eventstore.Snapshot{Stream: "acc", Version: 50, Type: "state", Data: []byte(`{"v":50,"again":true}`)}); err != nil {
		t.Fatal(err)
	}
	if sn, _ := s.LoadSnapshot(ctx, "acc", "state", 0); !jsonEqual(sn.Data, `{"v":50,"again":true}`) {
		t.Errorf("replaced snapshot reads %s", sn.Data)
	}
	for _, bad := range []eventstore.Snapshot{
		{Stream: "", Version: 1, Type: "s", Data: []byte(`{}`)},
		{Stream: "a", Version: 0, Type: "s", Data: []byte(`{}`)},
		{Stream: "a", Version: 1, Type: "", Data: []byte(`{}`)},
		{Stream: "a", Version: 1, Type: "s", Data: []byte(`{`)},
	} {
		if err := s.SaveSnapshot(ctx, bad); err == nil {
			t.Errorf("bad snapshot %+v saved", bad)
		}
	}
}
