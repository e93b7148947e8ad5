package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Point is one sample of a series. It has the fields and JSON of admin.Point, so
// admin.Point(p) converts it.
type Point struct {
	Time  time.Time `json:"t"`
	Value float64   `json:"v"`
}

// Tier is one resolution of the history: samples are averaged into slots of Step, and the
// latest Span of them is kept.
type Tier struct {
	Step time.Duration `json:"step"`
	Span time.Duration `json:"span"`
}

// DefaultTiers keep 1s for 10 minutes, 10s for 2 hours and 1m for 24 hours: 2 760 slots per
// series, about 66 KiB.
var DefaultTiers = []Tier{
	{Step: time.Second, Span: 10 * time.Minute},
	{Step: 10 * time.Second, Span: 2 * time.Hour},
	{Step: time.Minute, Span: 24 * time.Hour},
}

// DefaultMaxSeries bounds how many series a History keeps.
const DefaultMaxSeries = 64

// History answers "the value of metric M over the last hour at resolution R" from memory: each
// series is a set of fixed rings, one per Tier, so memory is bounded whatever the sampling rate
// and a query reads the finest tier that reaches back far enough. Save and Load keep it across
// restarts. Safe for concurrent use.
type History struct {
	mu        sync.Mutex
	tiers     []Tier
	series    map[string]*series
	maxSeries int
	dropped   int
	now       func() time.Time
}

// series is one metric: a ring per tier.
type series struct {
	rings []ring
}

// ring holds one tier's slots, indexed by slot number modulo its length.
type ring struct {
	slots []slot
}

type slot struct {
	N     int64   `json:"n"` // slot number: unix time / step; 0 when unused
	Sum   float64 `json:"s"`
	Count int64   `json:"c"`
}

// NewHistory returns an empty history with the given tiers, finest first (nil means
// DefaultTiers), and clock (nil means time.Now). It keeps at most DefaultMaxSeries series.
func NewHistory(tiers []Tier, now func() time.Time) *History {
	if len(tiers) == 0 {
		tiers = DefaultTiers
	}
	if now == nil {
		now = time.Now
	}
	t := append([]Tier(nil), tiers...)
	sort.Slice(t, func(i, j int) bool { return t[i].Step < t[j].Step })
	return &History{tiers: t, series: map[string]*series{}, maxSeries: DefaultMaxSeries, now: now}
}

func (h *History) newSeries() *series {
	s := &series{rings: make([]ring, len(h.tiers))}
	for i, t := range h.tiers {
		s.rings[i].slots = make([]slot, max(1, int(t.Span/t.Step)))
	}
	return s
}

// Record adds the value v of metric name at time t. Values in the same slot are averaged.
// NaN and infinite values are ignored, and so are new names once the history holds its
// maximum number of series (Dropped counts them).
func (h *History) Record(name string, t time.Time, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.series[name]
	if !ok {
		if len(h.series) >= h.maxSeries {
			h.dropped++
			return
		}
		s = h.newSeries()
		h.series[name] = s
	}
	for i, tier := range h.tiers {
		n := t.UnixNano() / int64(tier.Step)
		r := s.rings[i].slots
		sl := &r[int(n%int64(len(r)))]
		if sl.N != n {
			if sl.N > n {
				continue // older than what the ring now holds there
			}
			*sl = slot{N: n}
		}
		sl.Sum += v
		sl.Count++
	}
}

// Dropped returns how many samples of new series were ignored because the history was full.
func (h *History) Dropped() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

// Names returns the names of the series, sorted.
func (h *History) Names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := make([]string, 0, len(h.series))
	for n := range h.series {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Query returns the values of name over the last since, oldest first, from the finest tier that
// reaches back that far (the coarsest when none does). Each point is the mean of its slot; with
// points > 0 the result is downsampled to at most that many points by averaging runs of
// consecutive slots, aligned on round times, each point timed at the start of its run; a
// partial run at the start of the range is left out when it would make one point too many.
// An unknown name returns nil.
func (h *History) Query(name string, since time.Duration, points int) []Point {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.series[name]
	if !ok {
		return nil
	}
	ti := len(h.tiers) - 1
	for i, t := range h.tiers {
		if t.Span >= since {
			ti = i
			break
		}
	}
	tier := h.tiers[ti]
	step := int64(tier.Step)
	first := now.Add(-since).UnixNano() / step
	last := now.UnixNano() / step
	slots := s.rings[ti].slots
	var in []slot
	for _, sl := range slots {
		if sl.Count > 0 && sl.N >= first && sl.N <= last {
			in = append(in, sl)
		}
	}
	sort.Slice(in, func(i, j int) bool { return in[i].N < in[j].N })
	if len(in) == 0 {
		return []Point{}
	}
	// Group slots into runs of per slots, aligned on multiples of per*step so points fall on
	// round times (whole minutes for one-minute points).
	per := int64(1)
	if span := (int64(since) + step - 1) / step; points > 0 && span > int64(points) {
		per = (span + int64(points) - 1) / int64(points)
	}
	var out []Point
	var cur slot
	curGroup := int64(math.MinInt64)
	flush := func() {
		if cur.Count > 0 {
			out = append(out, Point{Time: time.Unix(0, curGroup*per*step).UTC(), Value: cur.Sum / float64(cur.Count)})
		}
	}
	for _, sl := range in {
		if g := sl.N / per; g != curGroup {
			flush()
			cur, curGroup = slot{}, g
		}
		// Each slot counts as one sample of its mean, so a busy second does not outweigh a quiet
		// one in a coarser point.
		cur.Sum += sl.Sum / float64(sl.Count)
		cur.Count++
	}
	flush()
	if points > 0 && len(out) > points {
		out = out[len(out)-points:] // the oldest run was partial: the window starts mid-run
	}
	return out
}

// historyFile is the JSON form of a History.
type historyFile struct {
	Version int                 `json:"version"`
	Tiers   []Tier              `json:"tiers"`
	Series  map[string][][]slot `json:"series"` // name → per tier, the used slots
}

// Save writes the history to path atomically (a temporary file renamed over it), creating the
// directory if needed.
func (h *History) Save(path string) error {
	h.mu.Lock()
	f := historyFile{Version: 1, Tiers: h.tiers, Series: map[string][][]slot{}}
	for name, s := range h.series {
		tiers := make([][]slot, len(s.rings))
		for i, r := range s.rings {
			for _, sl := range r.slots {
				if sl.Count > 0 {
					tiers[i] = append(tiers[i], sl)
				}
			}
		}
		f.Series[name] = tiers
	}
	h.mu.Unlock()
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encoding metric history: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("saving metric history: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("saving metric history: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("saving metric history: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving metric history: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving metric history: %w", err)
	}
	return nil
}

// Load merges the history saved at path into h. A missing file is not an error (a first start).
// Slots of tiers that h does not have are ignored, so changing the tiers loses only their data.
func (h *History) Load(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading metric history: %w", err)
	}
	var f historyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("loading metric history from %s: %w", path, err)
	}
	if f.Version != 1 {
		return fmt.Errorf("loading metric history from %s: version %d is not 1", path, f.Version)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, tiers := range f.Series {
		s, ok := h.series[name]
		if !ok {
			if len(h.series) >= h.maxSeries {
				h.dropped++
				continue
			}
			s = h.newSeries()
			h.series[name] = s
		}
		for fi, slots := range tiers {
			if fi >= len(f.Tiers) {
				break
			}
			ti := -1
			for i, t := range h.tiers {
				if t == f.Tiers[fi] {
					ti = i
				}
			}
			if ti < 0 {
				continue
			}
			r := s.rings[ti].slots
			for _, sl := range slots {
				if sl.Count <= 0 || sl.N <= 0 {
					continue
				}
				dst := &r[int(sl.N%int64(len(r)))]
				if dst.N < sl.N || dst.Count == 0 {
					*dst = sl
				}
			}
		}
	}
	return nil
}

// Autosave loads path, then saves the history there every interval and once more when ctx is
// done; it returns the error of that last save. Run it in a goroutine for the life of `shoal up`.
// Errors of the periodic saves are passed to onError when it is not nil.
func (h *History) Autosave(ctx context.Context, path string, interval time.Duration, onError func(error)) error {
	if err := h.Load(path); err != nil && onError != nil {
		onError(err)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return h.Save(path)
		case <-t.C:
			if err := h.Save(path); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}
