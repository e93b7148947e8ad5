// Package telemetry is what a service built with shoal exports about itself, and what shoal
// reads to chart and scale it:
//
//   - Metrics: a Prometheus registry, HTTP middleware (requests by method and code, a latency
//     histogram, requests in flight), connection counting, process CPU and memory, the seed's
//     scaling metrics under Prometheus names (see ScalingMetrics), and a /metrics handler that
//     can require METRICS_TOKEN as a bearer token.
//   - Window: a latency histogram over a sliding window, for response_time_p95.
//   - History: a bounded, downsampling, file-backed history of metric values, for
//     `shoal scaling metrics --since 1h` and the dashboard chart.
//   - Tracing: OpenTelemetry spans for inbound requests and proxy hops with W3C trace context,
//     exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
//   - NewLogger: log/slog, JSON when not on a terminal, with the instance id and trace id.
//   - GrafanaDashboard and AlertRules: a dashboard and Prometheus alerting rules generated from
//     the configuration's thresholds.
//
// docs/observability.md lists every metric with its meaning, unit, labels and a PromQL example.
package telemetry
