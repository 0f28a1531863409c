// Package wire is the wire format of the mesh: how a call and its answer
// look on NATS. It does no I/O and imports no other natsmesh package, so
// the agent, the edge bridge, the policies and any NATS-native peer share
// one definition. docs/wire.md is its contract.
//
//   - Subjects: [Subject] names a call as
//     mesh.<service>.<subset>.<caller>.<proto>.<op>, with every token
//     validated or escaped so that outside input can never form a wildcard
//     or change the token count. [ParseHost] reads a destination from a
//     mesh name ("orders", "v2.orders", "orders.mesh"), [ReadHost] tells
//     whether a host a proxy client addressed is a mesh service at all
//     ("example.com" is not: issue 19), and
//     [ServiceSubjects] and [InboxPrefix] name what an instance subscribes
//     to.
//   - Headers: the Mesh-* metadata names, the escaping of header names
//     that NATS or the mesh reserve ("Status", "Mesh-*", "Nats-*" travel
//     behind "Mesh-Hdr-", [EscapeHeaderName]) so a service's own headers
//     never look like mesh metadata or a NATS status, the propagated
//     deadline (Mesh-Timeout: [SetTimeout], [Timeout], [RequestTimeout]),
//     and [Limits], which bound what is converted so too-large input fails
//     before anything is published ([Limits.Check]).
//   - Errors: [Error] is a failure made by the mesh (no responders,
//     timeout, overloaded, ...). It travels as the Mesh-Error header
//     ([ErrorMsg], [ReplyError]), is never confused with a service's own
//     answer, and maps to an HTTP status and a gRPC code.
//   - Outcomes: [OutcomeOf] reads how a call ended ([AnswerOutcome] a
//     status from a header, [Outcome.WithTrailer] a stream's from its
//     trailer), and [Outcome] holds the one rule of whether a service
//     failed ([Outcome.ServerFailed]) with the variants the metrics,
//     passive health, the circuit breaker and the retry and hedge
//     policies read it by.
//
// The codecs build on these, one package per protocol: wire/httpwire turns
// an HTTP request or response into one NATS message and back (and writes
// mesh errors to HTTP clients), wire/grpcwire does the same for a unary
// gRPC call and its status. Like wire, they do no I/O.
package wire
