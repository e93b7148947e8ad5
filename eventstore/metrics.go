package eventstore

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// subMetrics are the metrics of subscriptions (docs/observability.md).
type subMetrics struct {
	lag       *prometheus.GaugeVec
	position  *prometheus.GaugeVec
	delivered *prometheus.CounterVec
	failures  *prometheus.CounterVec
}

func newSubMetrics(reg prometheus.Registerer) *subMetrics {
	m := &subMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shoal_eventstore_subscription_lag_events",
			Help: "Events appended after the last one a subscription handled (head position minus its position), at its last read."}, []string{"subscription"}),
		position: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shoal_eventstore_subscription_position",
			Help: "The global position a subscription has handled up to."}, []string{"subscription"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_eventstore_subscription_events_total",
			Help: "Events a subscription's handler handled successfully."}, []string{"subscription"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_eventstore_subscription_handler_errors_total",
			Help: "Handler calls of a subscription that returned an error (each retry counts)."}, []string{"subscription"}),
	}
	if reg != nil {
		m.lag = RegisterOrExisting(reg, m.lag)
		m.position = RegisterOrExisting(reg, m.position)
		m.delivered = RegisterOrExisting(reg, m.delivered)
		m.failures = RegisterOrExisting(reg, m.failures)
	}
	return m
}

// RegisterOrExisting registers c with reg, or returns the collector already registered
// there under the same description, so that many subscriptions (or stores) can share one
// registry. For backends and sub-packages.
func RegisterOrExisting[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
