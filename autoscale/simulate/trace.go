package simulate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Limits of a trace, so a typo cannot ask for a year of simulation.
const (
	// MaxDuration is the longest trace simulated.
	MaxDuration = 7 * 24 * time.Hour
	// MaxRPS is the highest rate a trace may hold.
	MaxRPS = 1e9
)

// Trace is traffic over time: requests per second at each whole second from 0, linearly
// interpolated between the points it was read from.
type Trace struct {
	// Name says where the trace came from ("load.csv", "diurnal pattern").
	Name string `json:"name"`
	// RPS holds one rate per second.
	RPS []float64 `json:"-"`
}

// Duration is the trace's length.
func (t Trace) Duration() time.Duration { return time.Duration(len(t.RPS)) * time.Second }

// Peak is the highest rate of the trace.
func (t Trace) Peak() float64 {
	p := 0.0
	for _, r := range t.RPS {
		p = max(p, r)
	}
	return p
}

// LineError is a bad row of a trace file.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// ErrEmptyTrace is returned by ParseCSV for a file without a single row of data.
var ErrEmptyTrace = errors.New("the trace has no rows; write one row per point: timestamp,requests_per_second")

// ParseCSV reads a trace: one row per point, "timestamp,requests_per_second", with an optional
// header row and # comments. A timestamp is seconds from the start ("90", "90.5"), a duration
// from the start ("1h30m"), or an RFC 3339 time ("2026-12-01T09:00:00Z", the first row being
// the start). Timestamps must increase. Every bad row is reported, each with its line, joined in
// one error. Between rows the rate changes linearly; the trace ends at the last row.
func ParseCSV(r io.Reader, name string) (Trace, error) {
	type point struct {
		at  time.Duration
		rps float64
	}
	var pts []point
	var errs []error
	var start time.Time
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	bad := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, &LineError{File: name, Line: line, Msg: fmt.Sprintf(format, args...)})
		}
	}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, ",")
		if len(fields) != 2 {
			bad("want two columns, timestamp,requests_per_second; got %d", len(fields))
			continue
		}
		ts, rv := strings.TrimSpace(fields[0]), strings.TrimSpace(fields[1])
		if len(pts) == 0 && len(errs) == 0 && isHeader(ts, rv) {
			continue
		}
		at, ok := parseTimestamp(ts, &start, len(pts) == 0)
		if !ok {
			bad("%q is not a timestamp; write seconds from the start (90), a duration (1h30m) or an RFC 3339 time", ts)
			continue
		}
		rps, err := strconv.ParseFloat(rv, 64)
		switch {
		case err != nil:
			bad("%q is not a number of requests per second", rv)
			continue
		case math.IsNaN(rps) || rps < 0 || rps > MaxRPS:
			bad("%s requests per second is out of range; use 0 to %g", rv, float64(MaxRPS))
			continue
		case at < 0 || at > MaxDuration:
			bad("%s is outside the 0 to %s a trace may cover", ts, MaxDuration)
			continue
		case len(pts) > 0 && at <= pts[len(pts)-1].at:
			bad("timestamp %s is not after the row before (%s); sort the rows by time", ts, pts[len(pts)-1].at)
			continue
		}
		pts = append(pts, point{at, rps})
	}
	if err := sc.Err(); err != nil {
		return Trace{}, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(errs) > 0 {
		return Trace{}, errors.Join(errs...)
	}
	if len(pts) == 0 {
		return Trace{}, fmt.Errorf("%s: %w", name, ErrEmptyTrace)
	}
	if len(pts) == 1 {
		pts = append(pts, point{pts[0].at + time.Second, pts[0].rps})
	}
	n := int(pts[len(pts)-1].at / time.Second)
	tr := Trace{Name: name, RPS: make([]float64, max(n, 1))}
	j := 0
	for s := range tr.RPS {
		at := time.Duration(s) * time.Second
		for j+1 < len(pts)-1 && pts[j+1].at <= at {
			j++
		}
		a, b := pts[j], pts[j+1]
		switch {
		case at <= a.at:
			tr.RPS[s] = a.rps
		case at >= b.at:
			tr.RPS[s] = b.rps
		default:
			f := float64(at-a.at) / float64(b.at-a.at)
			tr.RPS[s] = a.rps + f*(b.rps-a.rps)
		}
	}
	return tr, nil
}

// isHeader reports whether a first row names its columns instead of holding numbers.
func isHeader(ts, rv string) bool {
	_, err := strconv.ParseFloat(rv, 64)
	return err != nil && !strings.ContainsAny(ts, "0123456789")
}

// parseTimestamp reads a timestamp as ParseCSV documents; the first RFC 3339 time sets start.
func parseTimestamp(s string, start *time.Time, first bool) (time.Duration, bool) {
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > MaxDuration.Seconds()*2 {
			return 0, false
		}
		return time.Duration(v * float64(time.Second)), true
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if first || start.IsZero() {
			*start = t
		}
		return t.Sub(*start), true
	}
	return 0, false
}

// Patterns lists the built-in traffic patterns.
var Patterns = []string{"diurnal", "spike", "ramp"}

// Pattern returns a built-in trace reaching peak requests per second:
//
//	diurnal  a day (24h): 10% of peak at 04:00, peak at 16:00, a cosine between, ±2% noise
//	spike    2h at 20% of peak with a jump to peak in 30s at 1h, held for 10m
//	ramp     2h: 5% of peak rising linearly to peak over the first hour, held 30m, down over 30m
//
// A duration above zero stretches or shortens the pattern to it.
func Pattern(name string, peak float64, duration time.Duration) (Trace, error) {
	if peak <= 0 || peak > MaxRPS || math.IsNaN(peak) {
		return Trace{}, fmt.Errorf("the peak must be above 0 and at most %g requests per second, not %g", float64(MaxRPS), peak)
	}
	if duration < 0 || duration > MaxDuration {
		return Trace{}, fmt.Errorf("the duration must be at most %s", MaxDuration)
	}
	var base time.Duration
	var shape func(f float64, r *rand.Rand) float64 // f: 0..1 through the pattern
	switch name {
	case "diurnal":
		base = 24 * time.Hour
		shape = func(f float64, r *rand.Rand) float64 {
			hours := f * 24
			day := (1 - math.Cos(2*math.Pi*(hours-4)/24)) / 2 // 0 at 04:00, 1 at 16:00
			return (0.1 + 0.9*day) * (1 + (r.Float64()*2-1)*0.02)
		}
	case "spike":
		base = 2 * time.Hour
		shape = func(f float64, _ *rand.Rand) float64 {
			m := f * 120 // minutes
			switch {
			case m < 60 || m >= 70.5:
				return 0.2
			case m < 60.5:
				return 0.2 + 0.8*(m-60)/0.5
			default:
				return 1
			}
		}
	case "ramp":
		base = 2 * time.Hour
		shape = func(f float64, _ *rand.Rand) float64 {
			switch m := f * 120; {
			case m < 60:
				return 0.05 + 0.95*m/60
			case m < 90:
				return 1
			default:
				return 1 - 0.95*(m-90)/30
			}
		}
	default:
		return Trace{}, fmt.Errorf("%q is not a pattern; use one of %s", name, strings.Join(Patterns, ", "))
	}
	if duration == 0 {
		duration = base
	}
	n := int(duration / time.Second)
	tr := Trace{Name: name + " pattern", RPS: make([]float64, max(n, 1))}
	r := rand.New(rand.NewPCG(17, 42)) // the same noise every run
	for s := range tr.RPS {
		tr.RPS[s] = peak * shape(float64(s)/float64(len(tr.RPS)), r)
	}
	return tr, nil
}
