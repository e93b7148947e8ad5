package messaging

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Bus's Prometheus collectors (listed in docs/observability.md).
type metrics struct {
	published       *prometheus.CounterVec
	publishErrors   *prometheus.CounterVec
	publishDuration *prometheus.HistogramVec
	delivered       *prometheus.CounterVec
	acked           *prometheus.CounterVec
	retried         *prometheus.CounterVec
	deadLettered    *prometheus.CounterVec
	abandoned       *prometheus.CounterVec
	released        *prometheus.CounterVec
	handlerDuration *prometheus.HistogramVec
	inFlight        *prometheus.GaugeVec
	lag             *prometheus.GaugeVec
}

var subLabels = []string{"backend", "pattern", "group"}

// newMetrics makes the collectors and registers them with reg (when not nil).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var errs []error
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels), &errs)
	}
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		published:     counter("shoal_messaging_published_total", "Messages the broker confirmed.", []string{"backend"}),
		publishErrors: counter("shoal_messaging_publish_errors_total", "Publish calls that returned an error.", []string{"backend"}),
		publishDuration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_messaging_publish_duration_seconds", Help: "Time from Publish to the broker's confirmation of every message of the call.",
			Buckets: buckets}, []string{"backend"}), &errs),
		delivered:    counter("shoal_messaging_delivered_total", "Messages handed to a subscription's handler (once per delivery, not per retry).", subLabels),
		acked:        counter("shoal_messaging_acked_total", "Messages handled successfully and acknowledged.", subLabels),
		retried:      counter("shoal_messaging_retried_total", "Handler errors followed by another attempt.", subLabels),
		deadLettered: counter("shoal_messaging_dead_lettered_total", "Messages sent to <topic>.dlq after their last attempt failed.", subLabels),
		abandoned:    counter("shoal_messaging_abandoned_total", "Dead letters whose handler failed again: acknowledged and logged, not dead-lettered twice.", subLabels),
		released:     counter("shoal_messaging_released_total", "Messages given back to the broker unhandled (subscription closed) for redelivery.", subLabels),
		handlerDuration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_messaging_handler_duration_seconds", Help: "Time of one handler call.", Buckets: buckets}, subLabels), &errs),
		inFlight: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_messaging_in_flight", Help: "Messages a subscription holds unacknowledged (running, queued or waiting for a retry)."}, subLabels), &errs),
		lag: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_messaging_consumer_lag", Help: "Messages the broker holds behind the last one delivered, where it tells (JetStream, Kafka)."}, subLabels), &errs),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("registering the metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the collector already registered under its name, so
// several Buses can share one registry. Another collector of that name with other labels
// is an error, added to errs.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		*errs = append(*errs, err)
	}
	return c
}

// subMetrics are one subscription's collectors, labels resolved once.
type subMetrics struct {
	delivered, acked, retried, deadLettered, abandoned, released prometheus.Counter
	handlerDuration                                              prometheus.Observer
	inFlight, lag                                                prometheus.Gauge
}

func (m *metrics) forSubscription(backend, pattern, group string) subMetrics {
	l := prometheus.Labels{"backend": backend, "pattern": pattern, "group": group}
	return subMetrics{
		delivered: m.delivered.With(l), acked: m.acked.With(l), retried: m.retried.With(l),
		deadLettered: m.deadLettered.With(l), abandoned: m.abandoned.With(l), released: m.released.With(l),
		handlerDuration: m.handlerDuration.With(l), inFlight: m.inFlight.With(l), lag: m.lag.With(l),
	}
}
