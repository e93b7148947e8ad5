package simulate

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Model is the fleet the trace is replayed through.
type Model struct {
	// Capacity is the requests per second one instance serves at 100% CPU. Required.
	Capacity float64 `json:"capacity_rps"`
	// Startup is how long a new instance takes to become ready; it uses all its CPU meanwhile
	// (start-up work), which the autoscaler must not mistake for load.
	Startup time.Duration `json:"startup"`
	// ServiceTime is the mean time one request takes on an idle instance. Defaults to 50ms.
	ServiceTime time.Duration `json:"service_time"`
	// Memory is each instance's memory utilisation in percent. Defaults to 30.
	Memory float64 `json:"memory_percent"`
	// Timeout is how long a request waits in the queue before it is dropped. Defaults to 5s.
	Timeout time.Duration `json:"timeout"`
	// Initial is the number of instances at the start, ready. Defaults to the settings' minimum.
	Initial int `json:"initial"`
}

func (m *Model) setDefaults() {
	if m.ServiceTime <= 0 {
		m.ServiceTime = 50 * time.Millisecond
	}
	if m.Memory <= 0 {
		m.Memory = 30
	}
	if m.Timeout <= 0 {
		m.Timeout = 5 * time.Second
	}
}

func (m Model) validate() error {
	var errs []error
	if !(m.Capacity > 0) || m.Capacity > MaxRPS {
		errs = append(errs, fmt.Errorf("the capacity of an instance must be above 0 requests per second (--capacity), not %g", m.Capacity))
	}
	if m.Startup < 0 || m.Startup > time.Hour {
		errs = append(errs, fmt.Errorf("the start-up delay must be 0 to 1h (--startup), not %s", m.Startup))
	}
	if m.ServiceTime > time.Minute {
		errs = append(errs, fmt.Errorf("the service time must be at most 1m, not %s", m.ServiceTime))
	}
	if m.Memory > 100 {
		errs = append(errs, fmt.Errorf("the memory utilisation is a percentage, at most 100, not %g", m.Memory))
	}
	return errors.Join(errs...)
}

// servers is how many requests one instance works on at once: its capacity times the service
// time (Little's law), at least one.
func (m Model) servers() int {
	return max(1, int(math.Round(m.Capacity*m.ServiceTime.Seconds())))
}

// p95 returns the 95th percentile of response time, in seconds, of an M/M/c queue: c servers
// each serving 1/s requests per second, lambda arriving per second. With lambda at or above
// the servers' capacity it returns +Inf.
//
// Waiting: P(W > t) = C(c, a) · e^(−(cμ−λ)t), with C the Erlang C probability of waiting, so
// the 95th percentile of the wait is ln(C/0.05)/(cμ−λ) when C > 5%, else 0. Service is
// exponential, its 95th percentile s·ln 20. The two are added: an upper bound of the
// percentile of the sum, close enough to size a fleet by.
func p95(c int, s, lambda float64) float64 {
	mu := 1 / s
	a := lambda * s
	if a >= float64(c) {
		return math.Inf(1)
	}
	service := s * math.Log(20)
	if lambda <= 0 {
		return service
	}
	pw := erlangC(c, a)
	if pw <= 0.05 {
		return service
	}
	return service + math.Log(pw/0.05)/(float64(c)*mu-lambda)
}

// erlangC is the probability that a request waits in an M/M/c queue with offered load a < c.
// Up to 500 servers it is computed exactly through Erlang B's recursion; above, with the
// Halfin–Whitt approximation, which is accurate for many servers and costs the same at any c.
func erlangC(c int, a float64) float64 {
	if c <= 500 {
		b := 1.0
		for k := 1; k <= c; k++ {
			b = a * b / (float64(k) + a*b)
		}
		rho := a / float64(c)
		return b / (1 - rho*(1-b))
	}
	beta := (float64(c) - a) / math.Sqrt(a)
	phi := math.Exp(-beta*beta/2) / math.Sqrt(2*math.Pi)
	Phi := 0.5 * math.Erfc(-beta/math.Sqrt2)
	return 1 / (1 + beta*Phi/phi)
}
