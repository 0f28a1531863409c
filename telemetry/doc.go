// Package telemetry is the mesh's monitoring on OpenTelemetry: metrics of
// every call (exposed in Prometheus text format on the admin endpoints),
// traces carried across hops in NATS headers, and access logs.
package telemetry
