package telemetry

import (
	"math"
	"sort"
	"sync"
	"time"
)

// Window is a latency histogram over a sliding time window, for quantiles of recent requests
// (the response_time_p95 scaling metric). It keeps the same buckets as the Prometheus
// histogram, in slots of size/12, so memory is fixed and a quantile is exact up to the width of
// the bucket it falls in — the same error histogram_quantile has. Safe for concurrent use.
type Window struct {
	mu      sync.Mutex
	bounds  []float64 // upper bounds, ascending; the last bucket is +Inf
	slotDur time.Duration
	starts  []int64    // slot start, in slotDur units since the epoch; -1 when unused
	counts  [][]uint64 // per slot, per bucket (len(bounds)+1)
	now     func() time.Time
}

const windowSlots = 12

// NewWindow returns a window of size over buckets (upper bounds in seconds, ascending; nil means
// DefaultBuckets). now is the clock; nil means time.Now.
func NewWindow(size time.Duration, buckets []float64, now func() time.Time) *Window {
	if len(buckets) == 0 {
		buckets = DefaultBuckets
	}
	if now == nil {
		now = time.Now
	}
	slot := size / windowSlots
	if slot <= 0 {
		slot = time.Millisecond
	}
	w := &Window{bounds: append([]float64(nil), buckets...), slotDur: slot, now: now,
		starts: make([]int64, windowSlots), counts: make([][]uint64, windowSlots)}
	sort.Float64s(w.bounds)
	for i := range w.counts {
		w.starts[i] = -1
		w.counts[i] = make([]uint64, len(w.bounds)+1)
	}
	return w
}

// Observe records one value (seconds).
func (w *Window) Observe(v float64) {
	b := sort.SearchFloat64s(w.bounds, v) // first bound >= v: buckets are le (upper-inclusive)
	n := w.now().UnixNano() / int64(w.slotDur)
	i := int(n % windowSlots)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.starts[i] != n {
		w.starts[i] = n
		clear(w.counts[i])
	}
	w.counts[i][b]++
}

// Quantile returns the q-quantile (0 < q < 1) of the values observed in the window, linearly
// interpolated within its bucket as Prometheus's histogram_quantile does; the lowest bucket
// starts at 0, and a quantile in the +Inf bucket is the highest finite bound. It returns NaN
// when the window holds no value.
func (w *Window) Quantile(q float64) float64 {
	n := w.now().UnixNano() / int64(w.slotDur)
	total := make([]uint64, len(w.bounds)+1)
	var count uint64
	w.mu.Lock()
	for i, start := range w.starts {
		// Slots n-windowSlots+1 .. n are in the window (the current one partly).
		if start < 0 || start <= n-windowSlots || start > n {
			continue
		}
		for b, c := range w.counts[i] {
			total[b] += c
			count += c
		}
	}
	w.mu.Unlock()
	if count == 0 {
		return math.NaN()
	}
	rank := q * float64(count)
	var cum uint64
	for b, c := range total {
		if float64(cum+c) < rank || c == 0 {
			cum += c
			continue
		}
		if b == len(w.bounds) {
			return w.bounds[len(w.bounds)-1]
		}
		lower := 0.0
		if b > 0 {
			lower = w.bounds[b-1]
		}
		upper := w.bounds[b]
		return lower + (upper-lower)*(rank-float64(cum))/float64(c)
	}
	return w.bounds[len(w.bounds)-1]
}
