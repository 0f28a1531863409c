// Package bridge is the HTTP-to-NATS bridge at the edge of the mesh: it
// lets outside HTTP clients reach meshed services and NATS-native
// endpoints.
//
// A [Gateway] is an http.Handler that forwards each request, chosen by Host
// or path prefix ([Route], [ParseRoute]), through its outbound pipeline
// (package pipeline, with the mesh's policies and telemetry composed as on
// an agent) to a meshed service, one subset of it, or a NATS subject such
// as a nats.go/micro service. Every request gets exactly one answer: the
// service's, or a mesh error. Toward the service it replaces the
// X-Forwarded-* headers and refuses paths with dot segments.
//
// [Gateway.Serve] serves it on a listener with slowloris-safe timeouts
// ([Gateway.Server]) behind the framing guard of internal/httpguard, which
// answers ambiguous framing (request smuggling) with 400 and closes the
// connection; [Gateway.AdminHandler] is its admin endpoint for load
// balancers (/healthz, /readyz).
package bridge
