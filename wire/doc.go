// Package wire is the wire format of the mesh: how a call and its answer
// look on NATS. It does no I/O and imports no other natsmesh package, so
// the agent, the edge bridge, the policies and any NATS-native peer share
// one definition. docs/wire.md is its contract.
//
//   - Subjects: [Subject] names a call as
//     mesh.<service>.<subset>.<caller>.<proto>.<op>, with every token
//     validated or escaped so that outside input can never form a wildcard
//     or change the token count. [ParseHost] reads a destination from the
//     host a client addressed ("orders", "v2.orders", "orders.mesh"), and
//     [ServiceSubjects] and [InboxPrefix] name what an instance subscribes
//     to.
//   - Messages: an HTTP request or a unary gRPC call becomes one NATS
//     message (headers carry the metadata, the body is the payload) and a
//     reply becomes an HTTP response or a gRPC status. Header names that
//     NATS or the mesh reserve ("Status", "Mesh-*", "Nats-*") are escaped
//     on the way in and restored on the way out, so a service's own headers
//     never look like mesh metadata or a NATS status. [Limits] bound what is
//     converted, so too-large input fails before anything is published.
//   - Errors: [Error] is a failure made by the mesh (no responders,
//     timeout, overloaded, ...). It travels as the Mesh-Error header, is
//     never confused with a service's own answer, and maps to an HTTP
//     status and a gRPC code.
//
// [EncodeHTTPRequest] answers 400 to ambiguous framing (both Content-Length
// and Transfer-Encoding) when a request is built by other means than Go's
// server, which frames such requests itself (see internal/httpguard for
// the listeners' guard).
package wire
