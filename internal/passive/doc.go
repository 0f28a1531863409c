// Package passive is the mesh's passive health (outlier detection): an
// instance whose service keeps failing takes itself out of its queue
// groups for a cool-off, if its siblings can spare it. It has three parts:
//
//   - Detection, [Middleware] (outlier.go): inbound middleware that counts
//     the local service's answers by wire's rule of whether a service
//     failed (wire.Outcome's PassiveHealth variant) with a failsafe-go
//     circuit breaker over the policy's window (the mesh file's inbound
//     passive_health, policies.PassiveHealth, read from a live.Source at
//     every call). When the breaker opens, the instance claims a place,
//     counts its siblings and withdraws for cool_off if the rule keeps its
//     place; back in, the breaker is half-open, and another failing window
//     ejects it again. internal/chain puts it at its place in the inbound
//     order.
//   - The rule, [Allowed] (ejection.go): from one count of a service's
//     instances ([Sibling]), which of those out or leaving may be out: at
//     most floor(max_ejected × instances) out, for any reason, and never a
//     queue group (or subset) left without a serving instance, the claims
//     taken in one order every instance computes alike ([Place]), so
//     siblings failing at the same moment agree on who leaves. It is pure:
//     no I/O.
//   - The instance's side, [Member] (siblings.go): the claim of a place to
//     leave, the withdrawal with its timed return, and the counts of its
//     siblings over NATS. [Member.Instance] is what [Middleware] needs of
//     it ([Instance]: claim, withdraw, count).
//
// Siblings are counted through discovery: every instance answers on the
// subject [StatusSubject](service) (a [Member.Answer] handler, which the
// agent's discovery responder, package internal/discovery, subscribes
// outside any queue group), so one request is answered by every instance
// of the service with its [Status]. The request carries the asker's place
// (a [StatusRequest]), and an answering instance notes its time, so that a
// place it claims later comes after it (a Lamport clock; see [Place]). An
// instance announces itself at start ([Member.Announce]) so that every
// count waits for all the instances it knows of.
//
// Requests and answers stay within the service: a request's reply subject
// is under [StatusInbox](service), the service's pair inbox with itself
// (docs/security.md, "The reply model"), and an instance answers no other
// reply subject, so a request on the status subject cannot make it publish
// anywhere else, even on an open broker.
//
// A [Member] does not hold the queue subscriptions itself: the agent's
// inbound side does (agent/inbound.go), and gives the Member the functions
// to ask whether it serves, to leave and to come back ([Config]). The
// agent builds the Member, passes [Member.Instance] to internal/chain for
// the middleware, and answers [StatusSubject] with [Member.Answer]. The
// edge gateway has no queue groups to leave, so no passive health.
package passive
