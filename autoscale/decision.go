package autoscale

import (
	"sync"
	"time"
)

// Changes of Decision.Change.
const (
	ChangeUp   = "up"
	ChangeDown = "down"
	ChangeNone = "none"
)

// Limits of Decision.Limit: what held the recommendation back.
const (
	LimitStabilized = "stabilized"    // the stabilisation window of the direction
	LimitRate       = "rate"          // a rate policy
	LimitMax        = "max_instances" // the upper bound
	LimitMin        = "min_instances" // the lower bound
	LimitDisabled   = "disabled"      // select_policy: disabled for the direction
)

// Decision is one evaluation, whatever it decided: "no change" is logged as well as a scale,
// with the metric values, what each policy recommended and why the chosen one won.
type Decision struct {
	Time time.Time `json:"time"`
	// Current is the instance count before, Desired the count decided; they are equal for
	// ChangeNone.
	Current int    `json:"current"`
	Desired int    `json:"desired"`
	Change  string `json:"change"`
	// Ready instances at the time.
	Ready int `json:"ready"`
	// Winner is the policy whose recommendation was the largest ("" when none recommended
	// anything); Recommended is that recommendation before stabilisation, rate limits and bounds.
	Winner      string `json:"winner,omitempty"`
	Recommended int    `json:"recommended"`
	// Limit says what held the recommendation back, when something did.
	Limit string `json:"limit,omitempty"`
	// Reason says in one sentence why the decision came out so.
	Reason   string           `json:"reason"`
	Metrics  []MetricValue    `json:"metrics"`
	Policies []Recommendation `json:"policies"`
	// Applied is true once the target made the change; Error says why it could not.
	Applied bool   `json:"applied"`
	Error   string `json:"error,omitempty"`
}

// MetricValue is one input of an evaluation.
type MetricValue struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	// Instances, Missing and Ignored count the instances behind a per-instance value.
	Instances int `json:"instances,omitempty"`
	Missing   int `json:"missing,omitempty"`
	Ignored   int `json:"ignored,omitempty"`
}

// Kinds of Recommendation.Kind.
const (
	KindTarget = "target" // proportional control
	KindRule   = "rule"   // a threshold rule
	KindManual = "manual" // a manual scale still held
	KindBounds = "bounds" // the instance count was outside min..max
)

// Recommendation is what one policy said.
type Recommendation struct {
	Policy string `json:"policy"` // e.g. "target cpu_utilization_percentage 70%" or "rule 0: cpu_utilization_percentage > 70%"
	Kind   string `json:"kind"`
	Source string `json:"source,omitempty"` // the configuration field
	Metric string `json:"metric,omitempty"`
	// Replicas recommended; 0 when the policy recommended nothing (Note says why).
	Replicas int    `json:"replicas"`
	Note     string `json:"note"`
}

// Log keeps the latest decisions, oldest first. Safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	buf  []Decision
	next int
	full bool
}

// DefaultLogSize keeps a day of decisions at the default 30 s interval.
const DefaultLogSize = 2880

// NewLog returns a log keeping the latest size decisions (DefaultLogSize when size ≤ 0).
func NewLog(size int) *Log {
	if size <= 0 {
		size = DefaultLogSize
	}
	return &Log{buf: make([]Decision, size)}
}

// Add appends d, dropping the oldest when the log is full.
func (l *Log) Add(d Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf[l.next] = d
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
}

// update changes the latest decision (its Applied and Error once the target answered).
func (l *Log) update(f func(*Decision)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next == 0 && !l.full {
		return
	}
	f(&l.buf[(l.next-1+len(l.buf))%len(l.buf)])
}

// Since returns the decisions at or after t, oldest first, at most limit of the newest (all
// when limit ≤ 0).
func (l *Log) Since(t time.Time, limit int) []Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []Decision
	if l.full {
		all = append(all, l.buf[l.next:]...)
	}
	all = append(all, l.buf[:l.next]...)
	out := make([]Decision, 0, len(all))
	for _, d := range all {
		if !d.Time.Before(t) {
			out = append(out, d)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// Len returns the number of decisions kept.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.full {
		return len(l.buf)
	}
	return l.next
}
