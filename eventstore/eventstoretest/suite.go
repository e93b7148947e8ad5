// Package eventstoretest is the conformance suite every event store backend passes: the
// memory store, SQLite and PostgreSQL run the same cases, so a program behaves the same on
// each.
//
//	func TestConformance(t *testing.T) {
//		eventstoretest.Run(t, func(t *testing.T) eventstoretest.Harness {
//			url := databasetest.SQLiteURL(t)
//			return eventstoretest.Harness{Open: func(t testing.TB, c eventstore.Clock) eventstore.Store { … }}
//		})
//	}
package eventstoretest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/eventstore"
)

// Harness connects a test case to a backend.
type Harness struct {
	// Open returns a store on the test case's data. Each call within one test case returns
	// a new handle on the same data, as another process would have (the memory backend may
	// return the same store); the suite closes every one. clock stamps the events and is
	// the one given to the first Open of the case.
	Open func(t testing.TB, clock eventstore.Clock) eventstore.Store
	// Wait bounds every wait of the suite. Defaults to 30s.
	Wait time.Duration
}

// Run runs every case, each with a fresh harness from setup (so each on its own data).
func Run(t *testing.T, setup func(t *testing.T) Harness) {
	cases := []struct {
		name string
		f    func(t *testing.T, h *harness)
	}{
		{"AppendAndReadStream", testAppendAndRead},
		{"ExpectedVersion", testExpectedVersion},
		{"IdempotentAppend", testIdempotent},
		{"ReadStreamRanges", testReadStreamRanges},
		{"ReadAll", testReadAll},
		{"ReadAllFilters", testReadAllFilters},
		{"BadInput", testBadInput},
		{"ConcurrentAppendsOneStream", testConcurrentOneStream},
		{"ConcurrentAppendsTailAll", testConcurrentTailAll},
		{"SecondHandle", testSecondHandle},
		{"WaitForAppend", testWaitForAppend},
		{"TimesAndVersionAt", testTimes},
		{"Checkpoints", testCheckpoints},
		{"Snapshots", testSnapshots},
		{"GroupLeases", testGroupLeases},
		{"SubscribeCatchUpThenLive", testSubscribeCatchUpLive},
		{"SubscribeResume", testSubscribeResume},
		{"SubscribeFilterAndFromEnd", testSubscribeFilter},
		{"SubscribeHandlerFails", testSubscribeHandlerFails},
		{"SubscribeGroup", testSubscribeGroup},
		{"Repository", testRepository},
		{"RepositoryConflictRetry", testRepositoryConflicts},
		{"RepositorySnapshotsAndTemporal", testRepositoryTemporal},
		{"DecodeErrors", testDecodeErrors},
		{"Closed", testClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := setup(t)
			if h.Wait == 0 {
				h.Wait = 30 * time.Second
			}
			c.f(t, &harness{Harness: h, t: t, clock: NewClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))})
		})
	}
}

type harness struct {
	Harness
	t     *testing.T
	clock *Clock
	mu    sync.Mutex
	first eventstore.Store
}

// store opens a store handle, closed when the test ends.
func (h *harness) store() eventstore.Store {
	h.t.Helper()
	s := h.Open(h.t, h.clock)
	h.t.Cleanup(func() { s.Close() })
	h.mu.Lock()
	if h.first == nil {
		h.first = s
	}
	h.mu.Unlock()
	return s
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), h.Wait)
	h.t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the wait is over.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(h.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", h.Wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ev(typ string, v any) eventstore.EventData { return eventstore.NewEvent(typ, v) }

func numbered(typ string, n, from int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = ev(typ, map[string]int{"n": from + i})
	}
	return out
}

func mustAppend(t testing.TB, s eventstore.Store, stream string, exp eventstore.ExpectedVersion, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	r, err := s.Append(context.Background(), stream, exp, evs...)
	if err != nil {
		t.Fatalf("Append(%s, %s): %v", stream, exp, err)
	}
	return r
}

func readAll(t testing.TB, s eventstore.Store, f eventstore.Filter) []eventstore.RecordedEvent {
	t.Helper()
	var out []eventstore.RecordedEvent
	next := eventstore.Position(1)
	for {
		sl, err := s.ReadAll(context.Background(), eventstore.ReadAllOptions{From: next, Limit: 1000, Filter: f})
		if err != nil {
			t.Fatalf("ReadAll from %d: %v", next, err)
		}
		out = append(out, sl.Events...)
		if sl.Next <= next && len(sl.Events) == 0 && sl.Next > sl.Head {
			return out
		}
		next = sl.Next
		if next > sl.Head {
			return out
		}
	}
}

func dataN(t testing.TB, e eventstore.RecordedEvent) int {
	t.Helper()
	var v struct{ N int }
	if err := json.Unmarshal(e.Data, &v); err != nil {
		t.Fatalf("event %d data %s: %v", e.Position, e.Data, err)
	}
	return v.N
}

func stream(t testing.TB, name string) string {
	return fmt.Sprintf("%s-%s", name, strings.ReplaceAll(eventstore.NewID()[24:], "-", ""))
}
