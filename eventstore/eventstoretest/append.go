package eventstoretest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/eventstore"
)

func testAppendAndRead(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	e1 := ev("AccountOpened", map[string]any{"owner": "ada"})
	e1.Metadata = eventstore.Metadata{CausationID: "cmd-1", CorrelationID: "corr-1", Headers: map[string]string{"user": "ada", "ünï": "çødé"}}
	e2 := ev("Deposited", map[string]any{"amount": 100})
	e3 := eventstore.EventData{Type: "Noted"} // no ID, no data
	res := mustAppend(t, s, "account-1", eventstore.NoStream, e1, e2, e3)
	if res.Stream != "account-1" || res.FirstVersion != 1 || res.LastVersion != 3 || res.FirstPosition != 1 || res.LastPosition != 3 || res.Duplicate {
		t.Fatalf("AppendResult = %+v, want versions 1-3 at positions 1-3", res)
	}
	got, err := s.ReadStream(ctx, "account-1", eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d events, want 3", len(got))
	}
	for i, e := range got {
		if e.Version != int64(i+1) || e.Position != eventstore.Position(i+1) || e.Stream != "account-1" {
			t.Errorf("event %d: stream %q version %d position %d", i, e.Stream, e.Version, e.Position)
		}
		if e.Time.IsZero() || e.Time.Location() != time.UTC && e.Time.Location().String() != "UTC" {
			t.Errorf("event %d: time %v, want a UTC time", i, e.Time)
		}
		if len(e.ID) != 36 {
			t.Errorf("event %d: id %q", i, e.ID)
		}
	}
	if got[0].ID != e1.ID || got[1].ID != e2.ID || got[0].Type != "AccountOpened" || got[2].Type != "Noted" {
		t.Errorf("ids/types: %q %q %q / %q %q", got[0].ID, got[1].ID, got[2].ID, got[0].Type, got[2].Type)
	}
	if !jsonEqual(got[0].Data, `{"owner":"ada"}`) || !jsonEqual(got[2].Data, `{}`) {
		t.Errorf("data: %s, %s", got[0].Data, got[2].Data)
	}
	md := got[0].Metadata
	if md.CausationID != "cmd-1" || md.CorrelationID != "corr-1" || md.Headers["user"] != "ada" || md.Headers["ünï"] != "çødé" {
		t.Errorf("metadata: %+v", md)
	}
	if !got[1].Metadata.IsZero() {
		t.Errorf("empty metadata came back as %+v", got[1].Metadata)
	}
	if v, at, err := s.StreamVersion(ctx, "account-1"); err != nil || v != 3 || !at.Equal(got[2].Time) {
		t.Errorf("StreamVersion = %d, %v, %v; want 3, %v", v, at, err, got[2].Time)
	}
	if v, _, err := s.StreamVersion(ctx, "nobody"); err != nil || v != 0 {
		t.Errorf("StreamVersion(nobody) = %d, %v", v, err)
	}
	// A second stream continues the global order.
	res = mustAppend(t, s, "account-2", eventstore.Any, ev("AccountOpened", nil))
	if res.FirstPosition != 4 || res.FirstVersion != 1 {
		t.Errorf("second stream: %+v", res)
	}
	if head, err := s.Head(ctx); err != nil || head != 4 {
		t.Errorf("Head = %d, %v", head, err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Events != 4 || st.Streams != 2 || st.Head != 4 || st.Backend == "" {
		t.Errorf("Stats = %+v, %v", st, err)
	}
}

func testExpectedVersion(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	conflict := func(err error, exp eventstore.ExpectedVersion, actual int64) {
		t.Helper()
		var ce *eventstore.ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, eventstore.ErrConflict) || !eventstore.IsConflict(err) {
			t.Fatalf("err = %v, want a *ConflictError", err)
		}
		if ce.Expected != exp || ce.Actual != actual || ce.Stream != "s" {
			t.Fatalf("ConflictError = %+v, want expected %s actual %d", ce, exp, actual)
		}
		if !strings.Contains(err.Error(), exp.String()) {
			t.Errorf("message %q does not name the expected version", err)
		}
	}
	_, err := s.Append(ctx, "s", eventstore.StreamExists, ev("A", nil))
	conflict(err, eventstore.StreamExists, 0)
	_, err = s.Append(ctx, "s", eventstore.Exact(1), ev("A", nil))
	conflict(err, eventstore.Exact(1), 0)
	mustAppend(t, s, "s", eventstore.Exact(0), ev("A", nil))
	_, err = s.Append(ctx, "s", eventstore.NoStream, ev("A", nil))
	conflict(err, eventstore.NoStream, 1)
	mustAppend(t, s, "s", eventstore.StreamExists, ev("A", nil))
	mustAppend(t, s, "s", eventstore.Exact(2), ev("A", nil), ev("A", nil))
	_, err = s.Append(ctx, "s", eventstore.Exact(3), ev("A", nil))
	conflict(err, eventstore.Exact(3), 4)
	r := mustAppend(t, s, "s", eventstore.Any, ev("A", nil))
	if r.LastVersion != 5 {
		t.Errorf("Any append: %+v", r)
	}
	_, err = s.Append(ctx, "s", eventstore.ExpectedVersion(-7), ev("A", nil))
	if !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Errorf("expected version -7: %v", err)
	}
	if head, _ := s.Head(ctx); head != 5 {
		t.Errorf("head %d after refused appends, want 5", head)
	}
}

func testIdempotent(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	batch := numbered("Deposited", 3, 1)
	first := mustAppend(t, s, "acc", eventstore.NoStream, batch...)
	mustAppend(t, s, "other", eventstore.NoStream, ev("X", nil))
	for _, exp := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Any} {
		again, err := s.Append(ctx, "acc", exp, batch...)
		if err != nil {
			t.Fatalf("retry with %s: %v", exp, err)
		}
		if !again.Duplicate || again.FirstVersion != first.FirstVersion || again.LastVersion != first.LastVersion ||
			again.FirstPosition != first.FirstPosition || again.LastPosition != first.LastPosition {
			t.Fatalf("retry with %s = %+v, want the first result %+v with Duplicate", exp, again, first)
		}
	}
	// Upper-case IDs are the same IDs.
	upper := append([]eventstore.EventData(nil), batch...)
	for i := range upper {
		upper[i].ID = strings.ToUpper(upper[i].ID)
	}
	if r, err := s.Append(ctx, "acc", eventstore.Exact(0), upper...); err != nil || !r.Duplicate {
		t.Fatalf("retry with upper-case ids: %+v, %v", r, err)
	}
	// A retry that expects what the first append could not have expected conflicts.
	if _, err := s.Append(ctx, "acc", eventstore.Exact(2), batch...); !eventstore.IsConflict(err) {
		t.Errorf("retry with a wrong expected version: %v, want a conflict", err)
	}
	// A second append after the batch, retried.
	more := numbered("Deposited", 2, 4)
	r1 := mustAppend(t, s, "acc", eventstore.Exact(3), more...)
	if r2, err := s.Append(ctx, "acc", eventstore.Exact(3), more...); err != nil || !r2.Duplicate || r2.FirstVersion != 4 || r2.FirstPosition != r1.FirstPosition {
		t.Fatalf("retry of a later append: %+v, %v (first %+v)", r2, err, r1)
	}
	// IDs stored elsewhere or only partly: not a retry.
	dup := func(evs ...eventstore.EventData) {
		t.Helper()
		_, err := s.Append(ctx, "acc", eventstore.Any, evs...)
		var de *eventstore.DuplicateEventError
		if !errors.As(err, &de) || !errors.Is(err, eventstore.ErrDuplicateEvent) {
			t.Fatalf("err = %v, want a *DuplicateEventError", err)
		}
		if de.Stream == "" || de.Version < 1 || de.Position < 1 {
			t.Errorf("DuplicateEventError without its location: %+v", de)
		}
	}
	// Stored in order at consecutive versions (a part of an earlier append): answered as a
	// retry, since nothing of it is new.
	if r, err := s.Append(ctx, "acc", eventstore.Any, batch[0], batch[1]); err != nil || !r.Duplicate || r.FirstVersion != 1 || r.LastVersion != 2 {
		t.Fatalf("a stored part of an append: %+v, %v", r, err)
	}
	dup(ev("New", nil), batch[2])     // a new event with a stored one
	dup(batch[1], batch[0], batch[2]) // out of order
	stored := readAll(t, s, eventstore.Filter{StreamPrefixes: []string{"other"}})
	dup(eventstore.EventData{ID: stored[0].ID, Type: "X"}) // stored in another stream
	if head, _ := s.Head(ctx); head != 6 {
		t.Errorf("head %d, want 6: a duplicate wrote something", head)
	}
}

func testReadStreamRanges(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	mustAppend(t, s, "r", eventstore.NoStream, numbered("E", 10, 1)...)
	mustAppend(t, s, "r2", eventstore.NoStream, numbered("E", 1, 1)...)
	versions := func(o eventstore.ReadStreamOptions) []int64 {
		t.Helper()
		evs, err := s.ReadStream(ctx, "r", o)
		if err != nil {
			t.Fatalf("ReadStream %+v: %v", o, err)
		}
		var out []int64
		for _, e := range evs {
			out = append(out, e.Version)
			if e.Stream != "r" {
				t.Fatalf("read an event of stream %q", e.Stream)
			}
		}
		return out
	}
	cases := []struct {
		o    eventstore.ReadStreamOptions
		want []int64
	}{
		{eventstore.ReadStreamOptions{From: 4, Limit: 3}, []int64{4, 5, 6}},
		{eventstore.ReadStreamOptions{From: 9}, []int64{9, 10}},
		{eventstore.ReadStreamOptions{From: 11}, nil},
		{eventstore.ReadStreamOptions{Backward: true, Limit: 3}, []int64{10, 9, 8}},
		{eventstore.ReadStreamOptions{Backward: true, From: 2}, []int64{2, 1}},
		{eventstore.ReadStreamOptions{Backward: true, From: 50, Limit: 1}, []int64{10}},
		{eventstore.ReadStreamOptions{Limit: 1}, []int64{1}},
	}
	for _, c := range cases {
		if got := versions(c.o); !equalInts(got, c.want) {
			t.Errorf("ReadStream(%+v) = %v, want %v", c.o, got, c.want)
		}
	}
	if _, err := s.ReadStream(ctx, "missing", eventstore.ReadStreamOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("missing stream: %v, want ErrStreamNotFound", err)
	}
	if _, err := s.ReadStream(ctx, "", eventstore.ReadStreamOptions{}); !errors.Is(err, eventstore.ErrInvalidStream) {
		t.Errorf("empty stream name: %v", err)
	}
}

func testBadInput(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	mustAppend(t, s, "ok", eventstore.NoStream, ev("A", nil))
	long := strings.Repeat("x", eventstore.MaxStreamLen+1)
	bad := []struct {
		name   string
		stream string
		evs    []eventstore.EventData
		is     error
		say    string
	}{
		{"empty stream", "", []eventstore.EventData{ev("A", nil)}, eventstore.ErrInvalidStream, "empty"},
		{"long stream", long, []eventstore.EventData{ev("A", nil)}, eventstore.ErrInvalidStream, "limit"},
		{"reserved stream", "$all", []eventstore.EventData{ev("A", nil)}, eventstore.ErrInvalidStream, "reserved"},
		{"control character", "a\nb", []eventstore.EventData{ev("A", nil)}, eventstore.ErrInvalidStream, "control"},
		{"no events", "s", nil, eventstore.ErrInvalidEvent, "no events"},
		{"no type", "s", []eventstore.EventData{ev("A", nil), {Data: []byte(`{}`)}}, eventstore.ErrInvalidEvent, "no type"},
		{"bad type", "s", []eventstore.EventData{ev("has space", nil)}, eventstore.ErrInvalidEvent, "type"},
		{"corrupt data", "s", []eventstore.EventData{ev("A", nil), {Type: "B", Data: []byte(`{"amount": 1`)}}, eventstore.ErrInvalidEvent, "JSON"},
		{"bad id", "s", []eventstore.EventData{{ID: "not-a-uuid", Type: "A"}}, eventstore.ErrInvalidEvent, "UUID"},
		{"same id twice", "s", func() []eventstore.EventData { e := ev("A", nil); return []eventstore.EventData{e, e} }(), eventstore.ErrInvalidEvent, "same ID"},
		{"too large", "s", []eventstore.EventData{{Type: "A", Data: []byte(`"` + strings.Repeat("a", eventstore.MaxDataLen) + `"`)}}, eventstore.ErrInvalidEvent, "limit"},
	}
	for _, b := range bad {
		_, err := s.Append(ctx, b.stream, eventstore.Any, b.evs...)
		if !errors.Is(err, b.is) {
			t.Errorf("%s: err = %v, want %v", b.name, err, b.is)
			continue
		}
		if !strings.Contains(err.Error(), b.say) {
			t.Errorf("%s: message %q does not say %q", b.name, err, b.say)
		}
	}
	if head, _ := s.Head(ctx); head != 1 {
		t.Errorf("head %d after bad appends, want 1: something was appended half-way", head)
	}
	if _, err := s.ReadStream(ctx, "s", eventstore.ReadStreamOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("stream s exists after refused appends: %v", err)
	}
}

// testSecondHandle checks that a second handle (another process) sees the first's appends
// and that their appends interleave into one order.
func testSecondHandle(t *testing.T, h *harness) {
	a, b := h.store(), h.store()
	ctx := h.ctx()
	mustAppend(t, a, "x", eventstore.NoStream, ev("A", nil))
	if _, err := b.Append(ctx, "x", eventstore.NoStream, ev("A", nil)); !eventstore.IsConflict(err) {
		t.Fatalf("second handle appended over the first's stream: %v", err)
	}
	mustAppend(t, b, "x", eventstore.Exact(1), ev("B", nil))
	mustAppend(t, a, "y", eventstore.NoStream, ev("A", nil))
	evs := readAll(t, b, eventstore.Filter{})
	if len(evs) != 3 || evs[1].Type != "B" || evs[2].Stream != "y" {
		t.Fatalf("second handle reads %d events: %+v", len(evs), evs)
	}
	if err := b.WaitForAppend(ctx, 2); err != nil {
		t.Fatal(err)
	}
}

func testClosed(t *testing.T, h *harness) {
	s := h.store()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Append(context.Background(), "s", eventstore.Any, ev("A", nil)); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := s.ReadAll(context.Background(), eventstore.ReadAllOptions{}); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("ReadAll after Close: %v", err)
	}
	if err := s.WaitForAppend(context.Background(), 0); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("WaitForAppend after Close: %v", err)
	}
}
