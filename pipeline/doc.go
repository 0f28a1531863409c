// Package pipeline is the seam of the mesh: one call pipeline per
// direction, which every entry point and every kind of local service goes
// through, and on which policies, authorization, fault injection and
// telemetry are middleware.
//
// A [Call] is one request already parsed: destination service and subset
// (or a NATS-native subject), caller, protocol, operation (HTTP method or
// gRPC method), HTTP path, and the message as the wire package encodes it.
//
// Outbound, a [Sender] sends a call and returns the service's reply; an
// [OutboundMiddleware] wraps a Sender, in the shape of http.RoundTripper
// wrappers. [Outbound] is the pipeline itself: the sidecar's HTTP proxy,
// its bind ports, its gRPC proxy, the in-process Transport and ClientConn
// and the edge gateway all send through one. It sets the deadline (the
// caller's, or its default) in exactly one place, runs the middleware, and
// ends in one NATS request per attempt, each a message of its own. Every
// failure of the mesh, including a reply that carries one (overloaded, a
// remote timeout), comes back as a *wire.Error, so a middleware classifies
// outcomes with errors.Is.
//
// Inbound, a [Handler] serves a call (with a [HandlerFunc] adapter, as
// nats.go micro does) and an [InboundMiddleware] wraps one. The kinds of
// local service are Handlers: [HTTPUpstream] (an HTTP service on the
// network), [HTTPHandler] (an in-process http.Handler), and in package
// meshgrpc the h2c gRPC upstream and the in-process gRPC server;
// [Protocols] picks one by the call's protocol. [Inbound] is the dispatch
// every message goes through: it owns the concurrency limit, the deadline
// (Mesh-Timeout, else grpc-timeout, else its default; the decoders apply
// the same Mesh-Timeout again, which changes nothing behind the dispatch)
// and the one reply, which goes only to the pair inbox of the caller and
// the service, wire.PairInbox(caller, service) ([ReplyAllowed]). A handler's reply message belongs to the dispatch,
// which sets its subject and publishes it: return a fresh message.
//
// # Order of the middleware
//
// Middleware runs in the order given, the first outermost: it sees the call
// first and the outcome last. The agent and the gateway compose theirs in
// this order, outermost first, so each concern sees what it must:
//
// Outbound:
//
//  1. telemetry of the call (one span and one measurement per call, as the
//     caller saw it, mesh errors included);
//  2. routing: route match, traffic split and mirroring (pick the subset;
//     a mirror sends its own copy and never delays the call);
//  3. authorization: a call the mesh file's allow lists forbid is answered
//     forbidden here, at once;
//  4. the overall timeout of the route;
//  5. retries with their budget, and hedging (each attempt a clone);
//  6. the bulkhead (concurrency limit) of the destination;
//  7. the circuit breaker of the destination (inside the bulkhead, so the
//     caller's own refusals never count for or against the destination):
//     a call's first attempt takes its permit, and the call's outcome after
//     its retries and hedges is what it counts (package resilience);
//  8. telemetry of each attempt;
//  9. fault injection, per attempt, where the attempt would enter the
//     mesh, so the policies above act on an injected fault as on a real
//     one (a retry recovers an injected abort, a breaker counts it);
//  10. the application's own middleware (agent.Config.Outbound), then the
//     NATS request.
//
// Routing passes the route it matched on the context ([WithRoute]); the
// resilience policies (package resilience) number each attempt on its
// context ([AttemptFrom]), from which telemetry of each attempt counts the
// call's attempts, retries and hedges.
//
// Inbound:
//
//  1. telemetry of the served call;
//  2. authorization of the caller (the subject's caller token);
//  3. the rate limit per caller;
//  4. fault injection;
//  5. passive health (outlier detection);
//  6. the application's own middleware (agent.Config.Inbound), then the
//     local service.
//
// # Streams
//
// Calls are unary: Data is the whole body, one message each way. A
// streaming call (gRPC streams, bodies over max_payload, WebSocket) will be
// another kind of Call, whose body is a flow-controlled sequence of
// messages each way instead of Data; routing, authorization and the
// decisions of policies read only a Call's routing fields and headers, so
// they apply to it unchanged.
package pipeline
