package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-sh/shoal/balancer"
	"github.com/shoal-sh/shoal/resilience"
)

// Upstream is one instance behind the proxy with everything the proxy knows about it.
type upstream struct {
	id      string
	cookie  string // opaque name of the instance in affinity cookies (its ID may be an internal URL)
	url     *url.URL
	meta    map[string]string
	backend *balancer.Backend
	breaker *resilience.Breaker // nil when the breaker is disabled
	added   time.Time
	metrics instanceMetrics

	healthy  atomic.Bool // active health: in rotation
	draining atomic.Bool // removed: no new requests, in-flight ones finish

	// Latency-aware ejection (stalls.go).
	awaiting   atomic.Int64 // requests sent whose answer head has not come
	awaitSince atomic.Int64 // unix ns when awaiting last rose from 0
	lastHead   atomic.Int64 // unix ns of the last answer head
	stalled    atomic.Bool  // out of rotation until it answers again
	stallHeld  atomic.Bool  // would be stalled, but too few others answer (logged once)

	mu           sync.Mutex
	passes       int       // consecutive active-check passes
	fails        int       // consecutive active-check failures
	lastCheck    time.Time // last active check
	lastErr      string    // last active-check or proxy error
	windowStart  time.Time // passive health window
	windowFails  int
	ejectedUntil time.Time
	ejections    int
	stalledAt    time.Time     // when the current stall began
	stallHold    time.Duration // how long a passed health check cannot end it
	stallStreak  int           // stalls in a row, each within failure_timeout of the last
	stallEnded   time.Time     // when the last stall ended
	drained      chan struct{} // closed when draining and nothing is in flight
	stopCheck    chan struct{} // stops the active checker
}

// ejected reports whether passive health or a stall has taken u out of rotation at now.
func (u *upstream) ejected(now time.Time) bool {
	if u.stalled.Load() {
		return true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return now.Before(u.ejectedUntil)
}

// UpstreamStatus is a snapshot of one upstream for status pages and the admin API.
type UpstreamStatus struct {
	ID       string            `json:"id"`
	URL      string            `json:"url"`
	Meta     map[string]string `json:"meta,omitempty"`
	Weight   int               `json:"weight"`
	Healthy  bool              `json:"healthy"`
	Ejected  bool              `json:"ejected"`
	Stalled  bool              `json:"stalled"` // out of rotation: stopped answering (also Ejected)
	Draining bool              `json:"draining"`
	Breaker  string            `json:"breaker"`
	InFlight int64             `json:"in_flight"`
	EWMA     time.Duration     `json:"latency_ewma_ns"`
	LastErr  string            `json:"last_error,omitempty"`
	Since    time.Time         `json:"since"`
}

func (u *upstream) status(now time.Time) UpstreamStatus {
	s := UpstreamStatus{
		ID: u.id, URL: u.url.Redacted(), Meta: u.meta, Weight: u.backend.Weight,
		Healthy: u.healthy.Load(), Draining: u.draining.Load(), Breaker: "disabled",
		InFlight: u.backend.InFlight(), EWMA: u.backend.EWMA(), Since: u.added,
	}
	if u.breaker != nil {
		s.Breaker = u.breaker.State().String()
	}
	s.Stalled = u.stalled.Load()
	u.mu.Lock()
	s.Ejected = now.Before(u.ejectedUntil) || s.Stalled
	s.LastErr = u.lastErr
	u.mu.Unlock()
	return s
}

// pool is an immutable view of the upstreams, swapped whole when membership or health
// changes, together with the pickers' sets, so a pick reads no locks.
type pool struct {
	byID     map[string]*upstream
	byCookie map[string]*upstream
	byBack   map[*balancer.Backend]*upstream
	nElig    int // healthy, not ejected, not draining
	nAll     int // not draining: used when none is eligible (panic mode)
}

// cookieName derives the opaque affinity name of an instance ID.
func cookieName(id string) string {
	sum := sha256.Sum256([]byte("shoal-affinity\x00" + id))
	return hex.EncodeToString(sum[:12])
}
