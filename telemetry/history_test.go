package telemetry

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fill records one sample a second of metric over the span before clock's now, the i-th valued
// f(i).
func fill(h *History, clock *manualClock, metric string, span time.Duration, f func(i int) float64) {
	start := clock.Now().Add(-span)
	for i := range int(span / time.Second) {
		h.Record(metric, start.Add(time.Duration(i)*time.Second), f(i))
	}
}

func TestHistory_QueryPicksResolution(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	h := NewHistory(nil, clock.Now)
	fill(h, clock, "cpu", 3*time.Hour, func(int) float64 { return 50 })

	for _, tc := range []struct {
		since time.Duration
		step  time.Duration
	}{
		{5 * time.Minute, time.Second},
		{time.Hour, 10 * time.Second},
		{3 * time.Hour, time.Minute},
	} {
		pts := h.Query("cpu", tc.since, 0)
		want := int(tc.since / tc.step)
		// The slot that holds "now" is empty (nothing recorded at now); the oldest may be partial.
		if len(pts) < want-1 || len(pts) > want+1 {
			t.Errorf("since %s: %d points, want about %d (one per %s)", tc.since, len(pts), want, tc.step)
			continue
		}
		if d := pts[1].Time.Sub(pts[0].Time); d != tc.step {
			t.Errorf("since %s: points %s apart, want %s", tc.since, d, tc.step)
		}
		for _, p := range pts {
			if p.Value != 50 {
				t.Fatalf("since %s: value %v, want 50", tc.since, p.Value)
			}
		}
	}
	if pts := h.Query("nope", time.Hour, 0); pts != nil {
		t.Errorf("unknown series: %v", pts)
	}
}

func TestHistory_Downsamples(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	clock.now = clock.now.Truncate(time.Minute)
	h := NewHistory(nil, clock.Now)
	// One value per second for 10 minutes: 0 in even minutes, 100 in odd ones.
	fill(h, clock, "rps", 10*time.Minute, func(i int) float64 { return float64((i / 60 % 2) * 100) })

	pts := h.Query("rps", 10*time.Minute, 10)
	if len(pts) != 10 {
		t.Fatalf("%d points, want 10", len(pts))
	}
	for i, p := range pts {
		if p.Value != 0 && p.Value != 100 {
			t.Errorf("point %d = %v: a minute-long point mixes minutes", i, p.Value)
		}
	}
	pts = h.Query("rps", 10*time.Minute, 5)
	for _, p := range pts {
		if p.Value != 50 {
			t.Errorf("two-minute points should average 0 and 100 to 50, got %v", p.Value)
		}
	}
	if len(pts) != 5 {
		t.Errorf("%d points, want 5", len(pts))
	}
	for i, p := range pts {
		if p.Time.Second() != 0 || p.Time.Minute()%2 != 0 {
			t.Errorf("point %d at %v, not on a round two minutes", i, p.Time)
		}
	}
}

func TestHistory_AveragesWithinASlot(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	h := NewHistory([]Tier{{Step: 10 * time.Second, Span: time.Minute}}, clock.Now)
	at := clock.Now().Add(-30 * time.Second).Truncate(10 * time.Second)
	h.Record("p95", at, 100)
	h.Record("p95", at.Add(time.Second), 200)
	h.Record("p95", at.Add(2*time.Second), 600)
	pts := h.Query("p95", time.Minute, 0)
	if len(pts) != 1 || pts[0].Value != 300 || !pts[0].Time.Equal(at) {
		t.Fatalf("points = %v, want one of 300 at %v", pts, at)
	}
}

func TestHistory_IsBounded(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	h := NewHistory([]Tier{{Step: time.Second, Span: time.Minute}}, clock.Now)
	fill(h, clock, "m", time.Hour, func(i int) float64 { return float64(i) })
	if n := len(h.series["m"].rings[0].slots); n != 60 {
		t.Fatalf("a 1-minute ring at 1s holds %d slots", n)
	}
	pts := h.Query("m", time.Hour, 0) // asks for more than is kept
	if len(pts) != 60 || pts[59].Value != 3599 {
		t.Fatalf("got %d points ending in %v, want the last 60 seconds", len(pts), pts[len(pts)-1])
	}
	for i := range DefaultMaxSeries + 5 {
		h.Record("series-"+strings.Repeat("x", i), clock.Now(), 1)
	}
	if got := len(h.Names()); got != DefaultMaxSeries {
		t.Fatalf("%d series kept, want the maximum %d", got, DefaultMaxSeries)
	}
	if h.Dropped() != 6 {
		t.Fatalf("dropped = %d, want 6", h.Dropped())
	}
}

func TestHistory_SaveLoad(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	h := NewHistory(nil, clock.Now)
	fill(h, clock, "instance_count", 2*time.Hour, func(i int) float64 { return float64(1 + i/600) })
	fill(h, clock, "response_time_p95", 5*time.Minute, func(i int) float64 { return 120.5 })
	path := filepath.Join(t.TempDir(), "state", "metrics.json")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() > 512<<10 {
		t.Errorf("the saved history is %d bytes; want it small", info.Size())
	}

	restarted := NewHistory(nil, clock.Now)
	if err := restarted.Load(path); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"instance_count", "response_time_p95"} {
		for _, since := range []time.Duration{5 * time.Minute, time.Hour, 2 * time.Hour} {
			a, b := h.Query(name, since, 100), restarted.Query(name, since, 100)
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if string(ja) != string(jb) {
				t.Fatalf("%s since %s differs after a restart:\n%s\n%s", name, since, ja, jb)
			}
		}
	}

	if err := NewHistory(nil, nil).Load(filepath.Join(t.TempDir(), "missing.json")); err != nil {
		t.Errorf("a missing file is a first start, not an error: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte("{not json"), 0o644)
	if err := NewHistory(nil, nil).Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a corrupt file: %v", err)
	}
}

func TestHistory_Autosave(t *testing.T) {
	t.Parallel()
	h := NewHistory(nil, nil)
	h.Record("m", time.Now(), 7)
	path := filepath.Join(t.TempDir(), "metrics.json")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Autosave(ctx, path, time.Hour, func(err error) { t.Error(err) }) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	again := NewHistory(nil, nil)
	if err := again.Load(path); err != nil {
		t.Fatal(err)
	}
	if pts := again.Query("m", time.Minute, 0); len(pts) != 1 || pts[0].Value != 7 {
		t.Fatalf("after the final save: %v", pts)
	}
}

func TestPoint_JSONMatchesAdmin(t *testing.T) {
	t.Parallel()
	b, _ := json.Marshal(Point{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Value: 1.5})
	if string(b) != `{"t":"2026-01-02T03:04:05Z","v":1.5}` {
		t.Fatalf("Point JSON = %s", b)
	}
}
