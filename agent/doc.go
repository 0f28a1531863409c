// Package agent is the part of the mesh that sits beside, or inside, each
// service.
//
// An [Agent] has two sides, each one call pipeline (package pipeline) with
// the mesh's middleware composed on it (internal/chain: policies,
// authorization, telemetry, in the order package pipeline documents):
//
//   - Inbound, calls to its service: it holds queue subscriptions on the
//     service's subjects (wire.ServiceSubjects) and feeds every message to
//     its inbound pipeline, in front of the local service's kind of
//     handler: an HTTP upstream, an h2c gRPC upstream, an in-process
//     http.Handler ([Agent.Handle]) or in-process gRPC services
//     ([Agent.GRPCServer]). Past Config.MaxConcurrent calls it answers
//     "overloaded" at once. It subscribes only while its service passes
//     health checks (health.go), withdraws at once when the service refuses
//     connections, and on Shutdown drains its subscriptions and finishes
//     the calls in flight, so no request is routed to an instance that
//     cannot answer.
//   - Outbound, calls its service makes: an HTTP proxy (HTTP_PROXY or
//     Host: <service>), per-destination local ports ([Agent.ServeBind]), an
//     h2c gRPC proxy routed by :authority, and, in-process, an
//     http.RoundTripper ([Agent.Transport]) and a grpc.ClientConnInterface
//     ([Agent.ClientConn]). All of them send through one outbound pipeline,
//     as the agent's service (the subject's caller token).
//
// The agent takes a *nats.Conn and never starts a broker itself: whoever
// runs it decides where NATS comes from. [Connect] dials with the reply
// inbox prefix the mesh's permissions expect, and New refuses a connection
// without it. [Sidecar] is an agent with its connection, listeners, live
// mesh file (SidecarConfig.Policy) and admin endpoint ([Agent.AdminHandler]:
// /healthz, /readyz, /config, /debug/pprof/), what `natsmesh agent` runs.
// Each instance registers for discovery ($SRV.PING, $SRV.INFO, `nats micro
// ls`), with its subset and subjects in the metadata, and answers on
// [StatusSubject] whether it serves now. Passive health (package traffic)
// uses that: an instance whose service keeps failing leaves its queue
// groups for a cool-off (outlier.go), unless its siblings' answers show it
// would leave a group empty.
package agent
