// Package pipeline is the seam of the mesh: one call pipeline per
// direction, which every entry point and every kind of local service goes
// through, and on which policies, authorization, fault injection and
// telemetry are middleware.
//
// A [Call] is one request already parsed: destination service and subset
// (or a NATS-native subject), caller, protocol, operation (HTTP method or
// gRPC method), HTTP path, and the message as the wire package encodes it:
// its header, and its [Body], whole (the unary payload) or a [Stream],
// replayable or not.
//
// A [Reply] is the service's answer read once from the wire, whatever the
// protocol: its status (the HTTP status or the gRPC code, with its
// message), its header as the wire encodes it, and its Body, whole or a
// stream. Its [wire.Outcome], wire's one rule of whether the service
// failed, is read when the reply is made ([ReplyFromMsg], by
// [wire.AnswerOutcome]); a middleware judges an answer by that outcome's
// variant for it (CountsAsError for telemetry, PassiveHealth, and
// DestinationFailed, Retry, EndsHedge for the resilience policies, each
// written beside the rule), never by reading headers again, and a failure
// of the mesh is an error, never a reply ([OutcomeOf] reads either).
//
// The seam has one shape for unary and streamed calls, where grpc-go has
// two interceptors (unary, and stream, which wraps the stream itself) and
// every concern is written twice: a middleware wraps one function that
// returns the answer, and a stream is a body that arrives later, as in
// Envoy's phases of headers, data and trailers. What a middleware decides
// (routing, authorization, limits, faults, whether to retry) it decides
// from the call's routing fields and header and the reply's header, the
// headers phase, the same for both; what it observes of the answer it
// observes through the reply's outcome, which a stream makes at its end
// ([Reply.OnEnd]); one that must see the data wraps Body.Stream.
//
// The seam knows no protocol: a protocol's adapter turns its requests into
// Calls and Replies into its answers, on both sides. Package meshhttp is
// HTTP's (the agent's proxy and bind ports, the edge gateway and the
// in-process Transport are each a meshhttp.Proxy or Transport; the HTTP
// upstream and the in-process http.Handler are its kinds of local
// service), package meshgrpc is gRPC's, and both encode with the wire
// format's codecs (wire/httpwire, wire/grpcwire). This package imports
// only the wire format (wire, and wire/grpcwire for the gRPC status a
// reply carries and the grpc-timeout a raw NATS client may send) and the
// NATS plumbing (internal/replymux; internal/meshstream, the stream
// protocol; and internal/outconn, what its sender's calls share of the
// connection: the callers' reply muxes, the reconnect grace, the broker's
// refusals), and what its dispatch admits a call by (internal/admission:
// the reply subject, the caller's deadline, the concurrency limit,
// adaptive by internal/adaptivelimit).
//
// Outbound, a [Sender] sends a call and returns the service's reply; an
// [OutboundMiddleware] wraps a Sender, in the shape of http.RoundTripper
// wrappers. [Outbound] is the pipeline itself: every entry point sends
// through one, the sidecar's HTTP proxy, its bind ports, its gRPC proxy,
// the in-process Transport and ClientConn and the edge gateway. It sets
// the deadline (the caller's, or its default) in exactly one place, runs
// the middleware, and ends in one NATS request per attempt, each a
// message of its own. Every failure of the mesh, including a reply that
// carries one (overloaded, a remote timeout), comes back as a
// *wire.Error, so a middleware classifies outcomes with errors.Is.
//
// Inbound, a [Handler] serves a call (with a [HandlerFunc] adapter, as
// nats.go micro does) and an [InboundMiddleware] wraps one. The kinds of
// local service are Handlers, each in its protocol's adapter: in package
// meshhttp the HTTP upstream (an HTTP service on the network) and the
// in-process http.Handler, in package meshgrpc the h2c gRPC upstream and
// the in-process gRPC server; [Protocols] picks one by the call's
// protocol. [Inbound] is the dispatch every message goes through: it owns the concurrency limit (adaptive by default, or a
// fixed bound: InboundConfig.MaxConcurrent), the deadline
// (Mesh-Timeout, else grpc-timeout, else its default; the decoders apply
// the same Mesh-Timeout again, which changes nothing behind the dispatch)
// and the one reply, which goes only to the pair inbox of the caller and
// the service, wire.PairInbox(caller, service) (admission.ReplyAllowed). A
// handler's reply belongs to the dispatch, which sets the subject of its
// message ([Reply.Msg]) and publishes it: return a fresh one.
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
//  5. retries with their budget, and hedging (each attempt a clone, whose
//     body a retry or a hedge reads again: [Call.Replay]);
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
// A call out of the mesh (Call.Egress set, package egress) goes through a
// pipeline of its own, composed by internal/chain's Egress: telemetry of
// the call, the egress gate, the resilience policies of its host, and
// telemetry of each attempt, then the agent dials the host; routing,
// authorization and fault injection are the mesh's and do not apply.
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
// A streamed call is a Call and a Reply like any other: only their Body
// differs, a [Stream] (Next, then Trailer after io.EOF, and Close to give
// up) instead of Bytes. What a stream changes, the seam owns:
//
//   - A request's stream is replayable when its Body.Replay can read it
//     again from its start (net/http's Request.GetBody). [Call.Clone]
//     shares the body (the same attempt), [Call.Replay] reads it again
//     (another attempt: a retry, a hedge, a mirror copy). A call whose
//     body cannot be replayed is sent once: the resilience policies
//     neither retry nor hedge it, routing does not mirror it. Whoever
//     makes a stream closes it once the call has ended ([Call.CloseBody]).
//   - A streamed reply's outcome is its header's until its end, which
//     makes the final one: a gRPC stream's status comes in its trailer
//     ([wire.Outcome.WithTrailer]), a stream may fail midway (that mesh
//     error), or be closed before its end (a call given up, which no
//     variant holds against the service). Reply.OnEnd tells it, once, to
//     every observer (the breaker, passive health, telemetry, discovery's
//     counts), whoever reads the body: the stream is classified once.
//   - A streamed reply commits the call, as a gRPC client commits an RPC
//     once it has the response's headers: the policies never retry it,
//     and it ends a hedged call (the other attempts' streams are closed).
//     The breaker holds the call's permit until the stream ends.
//   - Whoever receives a streamed reply last reads it to its end or
//     closes it; until then its observers wait.
//
// On the wire a stream crosses with the stream protocol (docs/wire.md,
// "Streams"; internal/meshstream): every call to a mesh service is sent as
// one that can take a streamed answer, its body streams when Body.Stream
// is set, and the callee answers whole when its answer is whole and fits
// in one message, as a stream otherwise. Each direction is flow
// controlled by credit, either side may cancel, keep-alives bound a
// silent peer by the idle timeout (OutboundConfig.StreamIdle), and a
// stream is bounded by its caller's own deadline, not the default one
// (which bounds only the wait for its head). A stream holds its inbound
// slot until it ends (under the adaptive limit, only until its head). A call to a plain NATS subject still takes one
// message: its streamed body is read whole, up to max_payload.
package pipeline
