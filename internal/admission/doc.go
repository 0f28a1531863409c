// Package admission decides whether an inbound dispatch (pipeline.Inbound)
// takes a call, before anything of it runs, in this order:
//
//  1. its reply subject: only one in the pair inbox of its caller and
//     its service, wire.PairInbox(caller, service), is answered
//     ([ReplyAllowed]; docs/security.md, "The reply model"); any other
//     message is dropped, nothing published, and [Refusals] logs it at
//     most once a second;
//  2. its caller's deadline: a call whose wire.HeaderStartBy has passed,
//     with the clock skew tolerated, is not started ([StartBy]), and its
//     local deadline is no later than that;
//  3. the concurrency limit: a [Gate] holds a fixed bound, or the
//     adaptive limit (package internal/adaptivelimit) under a bound of
//     its own; a call with no place is refused at once (the dispatch
//     answers it overloaded), or, under the adaptive limit while it has
//     seen no queue at the service, waits a moment for one.
//
// What runs an admitted call, and answers it, is the dispatch's: this
// package says yes or no, and counts.
package admission
