// Package telemetry is the mesh's monitoring on OpenTelemetry: metrics of
// every call (exposed in Prometheus text format on the admin endpoints),
// traces carried across hops in NATS headers, and access logs.
//
// A [Telemetry] belongs to one component (an agent or the edge gateway).
// Its three middlewares take their places in the pipelines' order (package
// internal/chain): [Telemetry.OutboundCall] outermost outbound (one
// measurement, span and log line per call), [Telemetry.OutboundAttempt]
// innermost (a span per attempt, retries and hedges counted, the trace
// context put in each attempt's clone), and [Telemetry.Inbound] outermost
// inbound. [Telemetry.Snapshot] is the per-edge cumulative counts the
// components publish in $SRV.STATS; [Telemetry.MetricsHandler] the
// /metrics page. [Telemetry.ObserveBreakers] and [Telemetry.BreakerChanged]
// take the circuit breakers' states from the resilience policies, and
// [Telemetry.SetServing], [Telemetry.SetEjected] and [Telemetry.SetHealthy]
// the agent's inbound state, [Telemetry.ObserveAdmission] its inbound
// concurrency limit. [HeaderCarrier] carries the W3C trace context in a NATS
// header. docs/observability.md lists the metrics, spans, log fields and
// the snapshot's schema.
package telemetry
