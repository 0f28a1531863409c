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
//     handler: an HTTP upstream, a gRPC upstream (either over TLS too;
//     package internal/upstream reads its address and probes it), an
//     in-process http.Handler ([Agent.Handle]) or in-process gRPC
//     services ([Agent.GRPCServer]). Past its concurrency limit
//     (adaptive, learned from the service's latency, unless
//     Config.MaxConcurrent fixes one) it answers "overloaded" at once. It
//     subscribes only while its service passes health checks (health.go;
//     a frozen service is found by its calls, internal/stallwatch),
//     withdraws at once when the service refuses connections, and on
//     Shutdown drains its subscriptions and finishes the calls in flight,
//     so no request is routed to an instance that cannot answer.
//   - Outbound, calls its service makes: an HTTP proxy (HTTP_PROXY or
//     Host: <service>; a host that is no mesh service, wire.ReadHost's
//     rule, is a call out of the mesh, plain HTTP or a CONNECT tunnel,
//     which package egress sends directly under the mesh file's egress
//     section), per-destination local ports ([Agent.ServeBind]), an
//     h2c gRPC proxy routed by :authority, and, in-process, an
//     http.RoundTripper ([Agent.Transport]) and a grpc.ClientConnInterface
//     ([Agent.ClientConn]). All of them send through one outbound pipeline,
//     as the agent's service (the subject's caller token). The HTTP
//     listeners speak HTTP/1.1 and HTTP/2 without TLS (internal/h2c: prior
//     knowledge, or Upgrade: h2c) on one port, and hand a gRPC call among
//     their requests whole to the gRPC proxy's handler (meshgrpc.Dispatch):
//     a bind port serves gRPC clients of its destination too.
//
// The agent takes a *nats.Conn and never starts a broker itself: whoever
// runs it decides where NATS comes from. [Connect] dials with the reply
// inbox prefix the mesh's permissions expect (internal/natsconn, which the
// edge bridge connects with too), and New refuses a connection without
// it. [Sidecar] is an agent with its connection, listeners, live
// mesh file (SidecarConfig.Policy) and admin endpoint (/healthz, /readyz,
// /config, /debug/pprof/, and /metrics when the command adds it), what
// `natsmesh agent` runs, on internal/host's lifecycle: [NewSidecar] does no
// I/O, [Sidecar.Start] listens before it connects, [Sidecar.Shutdown] is
// safe during Start. Each instance answers the discovery
// requests of nats.go/micro services ($SRV.PING, $SRV.INFO, $SRV.STATS; see
// discovery.go and package internal/discovery), so `nats micro ls`, `info`
// and `stats` show it: an endpoint per inbound subject with the counts of
// its inbound pipeline, its subset, version and serving state in the
// metadata, and under "natsmesh" in the STATS answer the per-edge snapshot
// of [Agent.Stats]. It also answers on passive.StatusSubject whether it
// serves now, and whether passive health holds it out or is about to,
// since when. Passive health (package internal/passive) uses that: an
// instance whose service keeps failing claims a place, counts its siblings
// there, and leaves its queue groups for a cool-off only if the share rule
// (passive.Allowed) keeps its place. The agent gives it its inbound
// side's hold on the queue groups (package internal/queuehold: joined
// with a flush, the broker's refusal told and asked again, left by
// draining): whether it serves, withdraw, and the return after a
// cool-off, which waits for passing health checks (inbound.go).
package agent
