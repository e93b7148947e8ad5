package balancer

import (
	"math"
	"sync/atomic"
	"time"
)

// decayTime is the time constant τ of the latency EWMA: a sample that is τ old
// weighs 1/e as much as a fresh one, and a backend that completes no request for
// τ sees its cost, as p2c_ewma reads it, fall by the same factor. Ten seconds, as
// in Finagle's and go-zero's peak/p2c balancers.
const decayTime = 10 * time.Second

// epoch anchors the package's monotonic clock; see nanotime.
var epoch = time.Now()

// nanotime returns monotonic nanoseconds since package initialisation. time.Since
// on a time carrying a monotonic reading only reads the runtime's monotonic
// clock, so this is cheaper than time.Now and unaffected by wall-clock jumps.
func nanotime() int64 { return int64(time.Since(epoch)) }

// Backend is one upstream instance as the pickers see it.
//
// The proxy keeps exactly one *Backend per instance for the instance's whole
// life — across Update calls — and brackets every request it sends there with
// Acquire and Release, so that in-flight counts and latency EWMA are live for
// least_connections and p2c_ewma. Pickers identify backends by pointer: the
// exclude list passed to [Picker.Pick] must hold the same pointers that were
// passed to [Picker.Update].
//
// ID and Weight are read by [Picker.Update]: set them before the Backend is
// first passed to a picker and do not change them afterwards (doing so races
// with Update). The zero value with ID set is a valid Backend of weight 1.
// All methods are safe for concurrent use.
type Backend struct {
	// ID is the backend's stable identity (instance id or URL). ip_hash hashes
	// it to place the backend in its lookup table, and session affinity
	// cookies name it, so it must be the same for the same instance on every
	// proxy replica and across restarts.
	ID string
	// Weight is the backend's relative capacity, honoured by
	// weighted_round_robin and ip_hash and ignored by the other algorithms.
	// Values below 1 count as 1 and values above 1<<20 as 1<<20. Defaults
	// to 1.
	Weight int

	inflight atomic.Int64
	ewma     atomic.Uint64 // math.Float64bits of the latency EWMA in ns; 0 = no sample yet
	stamp    atomic.Int64  // nanotime of the last sample

	// Padding to 64 bytes puts each Backend in an allocation size class of
	// 64 and so on a cache line of its own: Acquire and Release on one
	// backend then do not evict the counters of the next from the other
	// cores' caches, which least_connections would pay for on every scan.
	_ [16]byte
}

// NewBackend returns a Backend with the given identity and weight, clamped to
// [1, 1<<20].
func NewBackend(id string, weight int) *Backend {
	return &Backend{ID: id, Weight: min(max(weight, 1), maxWeight)}
}

// maxWeight bounds Backend.Weight so that weight arithmetic cannot overflow.
const maxWeight = 1 << 20

// weight returns b.Weight clamped to [1, maxWeight].
func (b *Backend) weight() int { return min(max(b.Weight, 1), maxWeight) }

// Acquire records the start of a request to b: one more in flight. Call it
// after Pick has chosen b and before the request is sent; pair it with exactly
// one Release.
func (b *Backend) Acquire() { b.inflight.Add(1) }

// Release records the end of a request started with Acquire: one fewer in
// flight, and latency (time from Acquire to the end of the response headers or
// body, as the proxy chooses — consistently) folded into the EWMA.
//
// For a request that failed, pass a penalty latency (for example the request
// timeout) rather than the time the failure took: a backend that fails fast
// would otherwise look fast and p2c_ewma would send it more traffic. Negative
// latencies count as zero.
func (b *Backend) Release(latency time.Duration) {
	b.inflight.Add(-1)
	b.observe(latency, nanotime())
}

// observe folds latency into the EWMA at monotonic time now. The weight of the
// old average decays with the time since the previous sample (w = e^(-Δt/τ)),
// so the average spans about τ of wall time whatever the request rate. The
// first sample seeds the average.
func (b *Backend) observe(latency time.Duration, now int64) {
	sample := float64(max(latency, 0))
	for {
		oldBits := b.ewma.Load()
		next := sample
		if oldBits != 0 {
			old := math.Float64frombits(oldBits)
			w := decay(now - b.stamp.Load())
			next = old*w + sample*(1-w)
		}
		if b.ewma.CompareAndSwap(oldBits, math.Float64bits(next)) {
			// Stamp after the swap: a concurrent sample may interleave,
			// which only blurs Δt of one sample by a few nanoseconds.
			b.stamp.Store(now)
			return
		}
	}
}

// decay returns e^(-dt/τ), the weight left to a value dt nanoseconds old
// (1 for dt <= 0). Busy backends see dt of micro- to milliseconds, where the
// second-order Taylor polynomial is accurate to 1e-5 and five times cheaper
// than math.Exp.
func decay(dt int64) float64 {
	if dt <= 0 {
		return 1
	}
	x := float64(dt) / float64(decayTime)
	if x < 1.0/32 {
		return 1 - x + x*x/2
	}
	return math.Exp(-x)
}

// InFlight reports the number of requests acquired and not yet released.
func (b *Backend) InFlight() int64 { return b.inflight.Load() }

// EWMA reports the exponentially weighted moving average of the latencies
// passed to Release, as of the last Release; zero before the first. (p2c_ewma
// additionally decays it while the backend completes no requests; EWMA does not
// show that.)
func (b *Backend) EWMA() time.Duration {
	return time.Duration(math.Float64frombits(b.ewma.Load()))
}

// penalty is the cost of a backend that has requests in flight but has never
// completed one: high enough to lose against any measured backend, so a new
// backend gets one probe request, not a flood, until its first latency is
// known (Finagle's rule).
const penalty = float64(math.MaxInt64 >> 16)

// load returns p2c_ewma's cost inputs for b: the latency EWMA times
// (in-flight + 1), the time of the last sample, and whether there has been a
// sample at all. Without one the cost is 0 when idle and penalty (plus the
// in-flight count) when busy. See [P2CEWMA] for how the time enters.
func (b *Backend) load() (cost float64, stamp int64, measured bool) {
	inflight := float64(max(b.inflight.Load(), 0))
	bits := b.ewma.Load()
	if bits == 0 {
		if inflight == 0 {
			return 0, 0, false
		}
		return penalty + inflight, 0, false
	}
	return math.Float64frombits(bits) * (inflight + 1), b.stamp.Load(), true
}
