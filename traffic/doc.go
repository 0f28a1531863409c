// Package traffic is the mesh's traffic management: the middleware that
// applies the traffic parts of the live mesh file (package policies, held
// by a policies/live Source) to the two call pipelines (package pipeline).
// internal/chain puts each at its place in the documented order; this
// package holds what they do.
//
// Outbound, in the caller's agent or the edge gateway:
//
//   - [Routing] matches the call's route (first match wins, see
//     policies.File.MatchRoute), records it with pipeline.WithRoute for the
//     policies below, picks a subset by the merged policy's split (a
//     weighted choice per call, on a clone: the caller's Call is never
//     written), and sends a share of the calls as mirror copies, in the
//     background, with the call's remaining deadline and a bound on how
//     many are in flight, their answers discarded. A call that already
//     names a subset keeps it.
//   - [Faults] injects the route's delays and aborts into each attempt,
//     where it would enter the mesh, below the resilience policies: an
//     abort with an HTTP status is a reply with that status, one with a
//     mesh error kind is that *wire.Error, so timeouts, retries, hedges
//     and breakers treat them as real failures. Its percentages are of
//     attempts.
//
// Inbound, in the serving agent:
//
//   - [RateLimit] gives each caller (the subject's caller token) its own
//     failsafe-go rate limiter; a call over the limit is answered
//     rate-limited (HTTP 429 with Retry-After) at once.
//
// Passive health (outlier detection), inbound too, is package
// internal/passive: its detection, its rule and the instance's side.
//
// Every middleware reads the current file at each call (live.Source is
// one atomic load), so a new version applies to the next call without a
// restart and without disturbing calls in flight. With no Source, or a file
// that says nothing for the call, each passes the call through unchanged.
//
// The mesh file has no inbound fault section (policies.Inbound), so faults
// are injected on the calling side only.
package traffic
