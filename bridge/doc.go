// Package bridge is the HTTP-to-NATS bridge at the edge of the mesh: it
// lets outside HTTP clients reach meshed services and NATS-native
// endpoints.
//
// A [Gateway] is routes plus the mesh's HTTP adapter: an http.Handler, a
// meshhttp.Proxy whose destination is chosen by Host or path prefix
// ([Route], [ParseRoute]), that forwards each request through its outbound
// pipeline (package pipeline, with the mesh's policies and telemetry
// composed as on an agent) to a meshed service, one subset of it, or a
// NATS subject such as a nats.go/micro service. Every request gets exactly one answer: the
// service's, or a mesh error. Toward the service it replaces the
// X-Forwarded-* headers and refuses paths with dot segments.
//
// [Gateway.Serve] serves it on a listener with slowloris-safe timeouts
// ([Gateway.Server]), over HTTP/1.1 and, without TLS, HTTP/2 (h2c: prior
// knowledge or Upgrade: h2c, see internal/h2c), behind the framing guard
// of internal/httpguard, which answers ambiguous framing (request
// smuggling) with 400 and closes the connection; [Gateway.AdminHandler] is its admin endpoint for load
// balancers (/healthz, /readyz). It has an agent's lifecycle:
// [NewGateway] subscribes to nothing, [Gateway.Start] answers discovery,
// [Gateway.Readiness] and [Gateway.Ready] say and wait for readiness,
// [Gateway.Shutdown] drains.
//
// [Edge] is a gateway with its listeners, its NATS connection and its live
// mesh file, what `natsmesh bridge` runs (as agent.Sidecar is for an
// agent), run by internal/host: [NewEdge] validates the [EdgeConfig] and
// does no I/O, [Edge.Start] opens the gateway and admin listeners before
// anything connects, then connects ([ConnectConfig], shared with
// agent.Connect through internal/natsconn, with the gateway's inbox
// prefix) and serves, and [Edge.Shutdown], safe during Start, drains in
// order: the gateway's requests in flight, discovery, the policy source,
// the connection, and last the admin endpoint.
package bridge
