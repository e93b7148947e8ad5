package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/eventstore"
)

// collector records what a subscription's handler got.
type collector struct {
	mu   sync.Mutex
	evs  []eventstore.RecordedEvent
	fail func(e eventstore.RecordedEvent) error
}

func (c *collector) handle(_ context.Context, e eventstore.RecordedEvent) error {
	if c.fail != nil {
		if err := c.fail(e); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.evs = append(c.evs, e)
	c.mu.Unlock()
	return nil
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.evs)
}

func (c *collector) positions() []eventstore.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return positions(c.evs)
}

// fast are subscription options that retry at once, on the wall clock (the suite's
// clock only stamps events).
func fast() eventstore.SubscribeOptions {
	return eventstore.SubscribeOptions{Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, BatchSize: 7,
		CheckpointEvery: 5, Clock: eventstore.SystemClock{}, DrainTimeout: 10 * time.Second, Logger: quiet}
}

func subscribe(t testing.TB, s eventstore.Store, name string, c *collector, o eventstore.SubscribeOptions) *eventstore.Subscription {
	t.Helper()
	sub, err := eventstore.Subscribe(context.Background(), s, name, c.handle, o)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", name, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// contiguous checks that ps is from, from+1, … to with nothing missing or repeated.
func contiguous(t testing.TB, ps []eventstore.Position, from, to eventstore.Position) {
	t.Helper()
	if len(ps) != int(to-from+1) {
		t.Fatalf("got %d events (%v…), want positions %d to %d", len(ps), head(ps), from, to)
	}
	for i, p := range ps {
		if p != from+eventstore.Position(i) {
			t.Fatalf("event %d at position %d, want %d: an event was missed or repeated", i, p, from+eventstore.Position(i))
		}
	}
}

func head(ps []eventstore.Position) []eventstore.Position {
	if len(ps) > 12 {
		return ps[:12]
	}
	return ps
}

// testSubscribeCatchUpLive: history first, then live events appended by another handle
// while the subscription is catching up; every event once, in order.
func testSubscribeCatchUpLive(t *testing.T, h *harness) {
	s, writer := h.store(), h.store()
	for i := range 10 {
		mustAppend(t, writer, fmt.Sprintf("hist-%d", i%3), eventstore.Any, numbered("H", 5, 5*i)...)
	}
	c := &collector{}
	sub := subscribe(t, s, "catchup", c, fast())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			if _, err := writer.Append(context.Background(), fmt.Sprintf("live-%d", i%4), eventstore.Any, numbered("L", 1+i%2, i)...); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	total := eventstore.Position(50 + 75)
	h.eventually("the subscription to handle every event", func() bool { return c.len() >= int(total) })
	// One more after it caught up: delivered live.
	mustAppend(t, writer, "live-late", eventstore.Any, ev("L", nil))
	h.eventually("the live event", func() bool { return c.len() >= int(total)+1 })
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	contiguous(t, c.positions(), 1, total+1)
	if sub.Position() != total+1 || sub.Checkpoint() != total+1 {
		t.Errorf("position %d checkpoint %d, want %d", sub.Position(), sub.Checkpoint(), total+1)
	}
	if cp, err := writer.Checkpoint(h.ctx(), "catchup"); err != nil || cp != total+1 {
		t.Errorf("stored checkpoint %d, %v; want %d", cp, err, total+1)
	}
}

// testSubscribeResume: a named subscription resumes after its checkpoint; a volatile one
// starts at its From.
func testSubscribeResume(t *testing.T, h *harness) {
	s := h.store()
	mustAppend(t, s, "r", eventstore.Any, numbered("E", 20, 0)...)
	c1 := &collector{}
	sub := subscribe(t, s, "resume", c1, fast())
	h.eventually("20 events", func() bool { return c1.len() >= 20 })
	sub.Close()
	mustAppend(t, s, "r", eventstore.Any, numbered("E", 5, 20)...)
	c2 := &collector{}
	sub2 := subscribe(t, h.store(), "resume", c2, fast())
	h.eventually("the 5 new events", func() bool { return c2.len() >= 5 })
	sub2.Close()
	contiguous(t, c2.positions(), 21, 25)
	// A checkpoint saved by hand moves where it resumes (a re-play).
	if err := s.SaveCheckpoint(h.ctx(), "resume", 22); err != nil {
		t.Fatal(err)
	}
	c3 := &collector{}
	sub3 := subscribe(t, s, "resume", c3, fast())
	h.eventually("3 events after the checkpoint", func() bool { return c3.len() >= 3 })
	sub3.Close()
	contiguous(t, c3.positions(), 23, 25)
	// Volatile: from a position, saving nothing.
	o := fast()
	o.From = 24
	c4 := &collector{}
	sub4 := subscribe(t, s, "", c4, o)
	h.eventually("2 events", func() bool { return c4.len() >= 2 })
	sub4.Close()
	contiguous(t, c4.positions(), 24, 25)
	list, _ := s.ListCheckpoints(h.ctx())
	if len(list) != 1 {
		t.Errorf("checkpoints %+v: a volatile subscription saved one", list)
	}
}

func testSubscribeFilter(t *testing.T, h *harness) {
	s := h.store()
	for i := range 30 {
		mustAppend(t, s, fmt.Sprintf("order-%d", i%3), eventstore.Any, ev("Placed", map[string]int{"n": i}))
		mustAppend(t, s, fmt.Sprintf("cart-%d", i%3), eventstore.Any, ev("Added", map[string]int{"n": i}))
	}
	o := fast()
	o.Filter = eventstore.Filter{StreamPrefixes: []string{"order-"}}
	c := &collector{}
	sub := subscribe(t, s, "orders", c, o)
	h.eventually("30 order events", func() bool { return c.len() >= 30 })
	h.eventually("the checkpoint to pass the last cart event", func() bool { return sub.Position() == 60 })
	sub.Close()
	for _, e := range c.evs {
		if e.Type != "Placed" {
			t.Fatalf("filter let %s/%s through", e.Stream, e.Type)
		}
	}
	if cp, _ := s.Checkpoint(h.ctx(), "orders"); cp != 60 {
		t.Errorf("checkpoint %d, want 60 (past the events the filter passed over)", cp)
	}
	// FromEnd: only events appended after it started.
	o = fast()
	o.From = eventstore.FromEnd
	o.Filter = eventstore.Filter{Types: []string{"Added"}}
	c2 := &collector{}
	sub2 := subscribe(t, s, "new-carts", c2, o)
	mustAppend(t, s, "order-9", eventstore.Any, ev("Placed", nil))
	mustAppend(t, s, "cart-9", eventstore.Any, ev("Added", nil))
	h.eventually("the new cart event", func() bool { return c2.len() >= 1 })
	sub2.Close()
	if ps := c2.positions(); len(ps) != 1 || ps[0] != 62 {
		t.Errorf("FromEnd subscription got %v, want [62]", ps)
	}
}

// quiet drops the logs of the suite's subscriptions, whose failures are on purpose.
var quiet = slog.New(slog.DiscardHandler)

var errFlaky = errors.New("flaky handler")

func testSubscribeHandlerFails(t *testing.T, h *harness) {
	s := h.store()
	mustAppend(t, s, "f", eventstore.Any, numbered("E", 10, 0)...)
	// Fails twice on position 4, then succeeds: delivered once, in order.
	var mu sync.Mutex
	tries := map[eventstore.Position]int{}
	c := &collector{fail: func(e eventstore.RecordedEvent) error {
		mu.Lock()
		defer mu.Unlock()
		tries[e.Position]++
		if e.Position == 4 && tries[4] <= 2 {
			return errFlaky
		}
		return nil
	}}
	sub := subscribe(t, s, "flaky", c, fast())
	h.eventually("10 events", func() bool { return c.len() >= 10 })
	sub.Close()
	contiguous(t, c.positions(), 1, 10)
	// Fails for ever on position 7 (and panics on 8, were it reached): the subscription
	// stops with a *HandlerError after MaxAttempts, its checkpoint at 6.
	o := fast()
	o.MaxAttempts = 3
	c2 := &collector{fail: func(e eventstore.RecordedEvent) error {
		if e.Position == 7 {
			return errFlaky
		}
		if e.Position == 8 {
			panic("not reached")
		}
		return nil
	}}
	sub2 := subscribe(t, s, "broken", c2, o)
	select {
	case <-sub2.Done():
	case <-time.After(h.Wait):
		t.Fatal("the subscription did not stop on a handler that keeps failing")
	}
	var he *eventstore.HandlerError
	if err := sub2.Err(); !errors.As(err, &he) || he.Position != 7 || he.Attempts != 3 || !errors.Is(err, errFlaky) {
		t.Fatalf("Err() = %v, want a *HandlerError at position 7 after 3 attempts", err)
	}
	if err := sub2.Close(); !errors.As(err, &he) {
		t.Errorf("Close() = %v, want the HandlerError", err)
	}
	if cp, _ := s.Checkpoint(h.ctx(), "broken"); cp != 6 {
		t.Errorf("checkpoint %d, want 6", cp)
	}
	contiguous(t, c2.positions(), 1, 6)
	// A panicking handler is an error, not a crash; fixed, it resumes at the failed event.
	var c3Tries atomic.Int32
	c3 := &collector{fail: func(e eventstore.RecordedEvent) error {
		if e.Position == 7 && c3Tries.Add(1) == 1 {
			panic("boom")
		}
		return nil
	}}
	sub3 := subscribe(t, s, "broken", c3, o)
	h.eventually("4 events", func() bool { return c3.len() >= 4 })
	sub3.Close()
	contiguous(t, c3.positions(), 7, 10)
}

// testGroupLeases drives Rebalance, CommitLease and LeaveGroup directly.
func testGroupLeases(t *testing.T, h *harness) {
	s, other := h.store(), h.store()
	ctx := h.ctx()
	now := h.clock.Now()
	req := func(member string, at time.Time) eventstore.LeaseRequest {
		return eventstore.LeaseRequest{Group: "g", Member: member, Partitions: 4, Now: at, TTL: 10 * time.Second}
	}
	parts := func(ls []eventstore.Lease) []int {
		var out []int
		for _, l := range ls {
			out = append(out, l.Partition)
		}
		return out
	}
	la, err := s.Rebalance(ctx, req("a", now))
	if err != nil || !equalInts(parts(la), []int{0, 1, 2, 3}) {
		t.Fatalf("first member: %v, %v", parts(la), err)
	}
	if err := s.CommitLease(ctx, "g", "a", 2, 17); err != nil {
		t.Fatal(err)
	}
	// b joins: all partitions are held, so it gets none until a gives some up.
	lb, err := other.Rebalance(ctx, req("b", now.Add(time.Second)))
	if err != nil || len(lb) != 0 {
		t.Fatalf("second member while all are held: %v, %v", parts(lb), err)
	}
	la, _ = s.Rebalance(ctx, req("a", now.Add(2*time.Second)))
	if !equalInts(parts(la), []int{0, 1}) {
		t.Fatalf("first member after the second joined: %v, want [0 1]", parts(la))
	}
	lb, _ = other.Rebalance(ctx, req("b", now.Add(3*time.Second)))
	if !equalInts(parts(lb), []int{2, 3}) || lb[0].Checkpoint != 17 {
		t.Fatalf("second member: %+v, want partitions 2 and 3 with 2's checkpoint 17", lb)
	}
	if err := s.CommitLease(ctx, "g", "a", 2, 20); !errors.Is(err, eventstore.ErrLeaseLost) {
		t.Errorf("commit of a partition given up: %v, want ErrLeaseLost", err)
	}
	if err := other.CommitLease(ctx, "g", "b", 3, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rebalance(ctx, eventstore.LeaseRequest{Group: "g", Member: "c", Partitions: 5, Now: now, TTL: time.Second}); !errors.Is(err, eventstore.ErrGroupMismatch) {
		t.Errorf("another partition count: %v, want ErrGroupMismatch", err)
	}
	if _, err := s.Rebalance(ctx, eventstore.LeaseRequest{Group: "", Member: "c", Partitions: 1, Now: now, TTL: time.Second}); err == nil {
		t.Error("a group without a name was accepted")
	}
	// b stops heartbeating: after its TTL a takes its partitions, with their checkpoints.
	la, _ = s.Rebalance(ctx, req("a", now.Add(20*time.Second)))
	if !equalInts(parts(la), []int{0, 1, 2, 3}) || la[3].Checkpoint != 9 {
		t.Fatalf("after b expired: %+v", la)
	}
	if err := other.CommitLease(ctx, "g", "b", 3, 10); !errors.Is(err, eventstore.ErrLeaseLost) {
		t.Errorf("commit by an expired member: %v", err)
	}
	groups, err := other.ListGroups(ctx)
	if err != nil || len(groups) != 1 || len(groups[0].Partitions) != 4 || groups[0].Partitions[2].Owner != "a" || groups[0].Partitions[2].Checkpoint != 17 {
		t.Fatalf("ListGroups = %+v, %v", groups, err)
	}
	if err := s.LeaveGroup(ctx, "g", "a"); err != nil {
		t.Fatal(err)
	}
	groups, _ = other.ListGroups(ctx)
	for _, p := range groups[0].Partitions {
		if p.Owner != "" {
			t.Errorf("partition %d still owned by %q after LeaveGroup", p.Partition, p.Owner)
		}
	}
	// A member that left is replaced at once, without waiting for a TTL.
	lb, _ = other.Rebalance(ctx, req("b", now.Add(21*time.Second)))
	if len(lb) != 4 || lb[3].Checkpoint != 9 {
		t.Fatalf("after a left: %+v", lb)
	}
}

// testSubscribeGroup: two members share a group's events, each event to one member in the
// steady state, every event handled, each stream's events in order.
func testSubscribeGroup(t *testing.T, h *harness) {
	s1, s2, writer := h.store(), h.store(), h.store()
	streams := 8
	for i := range 40 {
		mustAppend(t, writer, fmt.Sprintf("g-%d", i%streams), eventstore.Any, ev("E", map[string]int{"n": i}))
	}
	opts := func(member string) eventstore.GroupOptions {
		return eventstore.GroupOptions{SubscribeOptions: fast(), Member: member, Partitions: 4,
			Heartbeat: 20 * time.Millisecond, LeaseTTL: 5 * time.Second}
	}
	c1, c2 := &collector{}, &collector{}
	g1, err := eventstore.SubscribeGroup(context.Background(), s1, "workers", c1.handle, opts("m1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g1.Close() })
	h.eventually("the first member to handle the history", func() bool { return c1.len() >= 40 })
	g2, err := eventstore.SubscribeGroup(context.Background(), s2, "workers", c2.handle, opts("m2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g2.Close() })
	h.eventually("both members to own partitions", func() bool {
		gs, err := writer.ListGroups(context.Background())
		if err != nil || len(gs) != 1 {
			return false
		}
		owners := map[string]int{}
		for _, p := range gs[0].Partitions {
			owners[p.Owner]++
		}
		return owners["m1"] == 2 && owners["m2"] == 2
	})
	for i := 40; i < 120; i++ {
		mustAppend(t, writer, fmt.Sprintf("g-%d", i%streams), eventstore.Any, ev("E", map[string]int{"n": i}))
	}
	seen := func() map[eventstore.Position]int {
		m := map[eventstore.Position]int{}
		for _, c := range []*collector{c1, c2} {
			for _, p := range c.positions() {
				m[p]++
			}
		}
		return m
	}
	h.eventually("every event handled", func() bool { return len(seen()) == 120 })
	if c2.len() == 0 {
		t.Fatal("the second member handled nothing")
	}
	// Each stream's events are handled in order by each member.
	for _, c := range []*collector{c1, c2} {
		last := map[string]int64{}
		c.mu.Lock()
		for _, e := range c.evs {
			if e.Version <= last[e.Stream] {
				t.Errorf("stream %s: version %d after %d", e.Stream, e.Version, last[e.Stream])
			}
			last[e.Stream] = e.Version
		}
		c.mu.Unlock()
	}
	// m1 leaves: m2 takes over every partition at once and handles what follows.
	if err := g1.Close(); err != nil {
		t.Fatal(err)
	}
	before := c2.len()
	for i := 120; i < 160; i++ {
		mustAppend(t, writer, fmt.Sprintf("g-%d", i%streams), eventstore.Any, ev("E", map[string]int{"n": i}))
	}
	h.eventually("the remaining member to handle every new event", func() bool {
		n := 0
		for _, p := range c2.positions()[before:] {
			if p > 120 {
				n++
			}
		}
		return n == 40
	})
	for p, n := range seen() {
		if n > 1 && p > 120 {
			t.Errorf("position %d handled %d times after a clean hand-over", p, n)
		}
	}
}
