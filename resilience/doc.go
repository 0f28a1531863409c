// Package resilience is the outbound middleware that applies a mesh file's
// timeouts, retries with their budget, hedging, bulkheads and circuit
// breakers to every call, on failsafe-go's policies. Where it stands among
// the other middleware is stated once, in package pipeline's "Order of the
// middleware"; below is the order of its own policies.
//
// Each call gets the policy of its service and route (pipeline.RouteFrom;
// no route: the service's policy) in the version of the mesh file current
// when it starts, so a new version applies to the next call. The failsafe-go
// executors of a (file, service, route, destination) are built once and
// cached; the state of a destination (its breaker, bulkhead, retry budget
// and observed latencies) is kept by destination and configuration, so it
// survives new versions of the file that leave that part unchanged.
//
// A call runs, outermost first:
//
//  1. the route's timeout, as the call's context deadline (the terminal
//     sends what is left of it as Mesh-Timeout, so the receiver gives the
//     local call no more);
//  2. the retry policy: exponential backoff with jitter, up to the route's
//     attempts. A try is retried only when it is safe (nothing ran:
//     no-responders, overloaded, upstream-refused, broker-unavailable,
//     no-mesh-file, always; a 5xx reply but 501, gRPC UNAVAILABLE or a timeout only when
//     the call is idempotent: wire.Outcome's Retry), tries are left, the deadline leaves more than the
//     backoff, and the destination's retry budget allows it. An open
//     breaker, a full bulkhead, forbidden, bad-request and too-large are
//     never retried;
//  3. for idempotent calls with a hedge, the hedge policy: more attempts
//     while the first is slow; the first reply that is not a server error
//     (or says not implemented) wins and the others are cancelled
//     (wire.Outcome's EndsHedge); no hedge is sent once the call's
//     deadline comes before a fixed delay would;
//  4. the destination's bulkhead: over max_concurrent a try fails at once
//     with overloaded (the caller's own limit, never retried);
//  5. the destination's circuit breaker, which counts calls, not attempts:
//     the call's first attempt that passes the bulkhead takes a permit
//     (open, it fails at once with circuit-open, and so does the call), its
//     other attempts go with it, and the call's outcome after its retries
//     and hedges is recorded once; timeouts, no-responders, upstream
//     failures and server errors but not implemented count as failures,
//     4xx and forbidden do not (wire.Outcome's DestinationFailed). The destination is a queue group: an attempt that met a failing
//     instance and a retry another answered make a call that succeeded;
//  6. the attempt: its own timeout as its context deadline, numbered on
//     its context (pipeline.AttemptFrom; telemetry of each attempt counts
//     retries and hedges from it), and sent as a clone of the call, whose
//     body a retry or a hedge reads again from its start
//     (pipeline.Call.Replay).
//
// Streams. A call whose body is a stream that cannot be replayed is sent
// once: no retry, no hedge, as a mirror copy. A streamed reply commits
// the call, as a gRPC client commits an RPC once it has the response's
// headers: it is the call's answer (never retried, and it ends a hedged
// call), and the breaker records the call when the stream ends, by the
// outcome its end makes (pipeline.Reply.OnEnd; a gRPC stream's status is
// in its trailer), holding the call's permit until then. The streamed
// replies of a hedge's other attempts are closed.
//
// A call that is not hedged makes its first try outside any failsafe-go
// executor: it takes the bulkhead's and the breaker's permits directly
// (the breaker's through callBreaker, as for every call), and it enters
// the retry policy only when that try is to be retried, which
// then replays the first result as its first execution (so attempts,
// backoff and budget are counted as before). An executor costs dozens of
// allocations per call, and most calls succeed at once: that common case
// costs one allocation here (the attempt's numbered context). The route's
// and the attempt's timeouts get a context of their own only when they end
// sooner than the deadline the call already has. Hedged calls run under the
// executors throughout.
//
// A Config.Observer is told of every change of state of the breakers and
// can list those in use (package internal/chain shows them in the
// metrics); the package itself records no telemetry.
//
// The bulkhead is outside the breaker: a try the caller's own bulkhead
// refuses then never reaches the breaker, so local overload is not counted
// for or against the destination.
package resilience
