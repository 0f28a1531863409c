// Package agent is the part of the mesh that sits beside, or inside, each
// service.
//
// An [Agent] has two sides, both speaking NATS through the bridge package:
//
//   - Inbound, calls to its service: it holds queue subscriptions on the
//     service's subjects (bridge.ServiceSubjects), turns each message into a
//     call to the local service (an HTTP or h2c gRPC upstream, or an in-process
//     http.Handler or gRPC service), and replies with the answer. At most
//     Config.MaxConcurrent calls run at once; past that it answers
//     "overloaded" at once, without processing, so the caller may retry
//     elsewhere. It subscribes only while its service passes health checks,
//     and on Shutdown it drains its subscriptions and finishes the calls in
//     flight, so no request is routed to an instance that cannot answer.
//   - Outbound, calls its service makes: an HTTP proxy (HTTP_PROXY or
//     Host: <service>), per-destination local ports (Bind), an h2c gRPC proxy
//     routed by :authority, and, in-process, an http.RoundTripper and a
//     grpc.ClientConnInterface. Each call becomes one NATS request carrying the
//     caller's identity (the subject's caller token) and deadline.
//
// The agent takes a *nats.Conn and never starts a broker itself: whoever runs
// it (the natsmesh command, a test, an application) decides where NATS comes
// from. Each instance answers the discovery requests of nats.go/micro
// services ($SRV.PING, $SRV.INFO, $SRV.STATS; see package
// internal/discovery), so `nats micro ls`, `info` and `stats` show it: an
// endpoint per inbound subject with the counts of its inbound pipeline, its
// subset, version and serving state in the metadata, and under "natsmesh"
// in the STATS answer the per-edge snapshot of [Agent.Stats].
package agent
