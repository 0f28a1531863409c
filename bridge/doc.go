// Package bridge converts calls between HTTP, gRPC and NATS request-reply.
//
// It is the wire format of the mesh, shared by the agent (sidecar and
// in-process) and by the edge gateway. It has three parts:
//
//   - Subjects: [Subject] names a call as
//     mesh.<service>.<subset>.<caller>.<proto>.<op>, with every token
//     validated or escaped so that outside input can never form a wildcard or
//     change the token count. The broker routes on it: service discovery is
//     subject interest and load balancing is queue groups.
//   - Messages: an HTTP request or a unary gRPC call becomes one NATS message
//     (headers carry the metadata, the body is the payload) and a reply
//     becomes an HTTP response or a gRPC status. Header names that NATS or the
//     mesh reserve ("Status", "Mesh-*", "Nats-*") are escaped on the way in and
//     restored on the way out, so a service's own headers never look like
//     mesh metadata or a NATS status.
//   - Errors: [Error] is a failure made by the mesh (no responders, timeout,
//     overloaded, ...). It travels as the Mesh-Error header, is never confused
//     with a service's own answer, and maps to an HTTP status and a gRPC code.
//   - The edge: [Gateway] is an http.Handler for outside clients that
//     forwards each request, chosen by Host or path prefix ([Route]), to a
//     meshed service or a NATS-native endpoint, and [Gateway.Server] wraps it
//     in an http.Server with slowloris-safe timeouts.
//
// Go's HTTP server already refuses conflicting Content-Length headers (400)
// and frames a request that has both Content-Length and Transfer-Encoding by
// the chunked encoding alone, removing Content-Length (RFC 9112 section
// 6.3), so what reaches the gateway is never ambiguous. Since the gateway
// cannot tell such a request from a plain chunked one, it closes the
// connection after answering any chunked request, as RFC 9112 section 6.1
// asks. [EncodeHTTPRequest] answers 400 to ambiguous framing when a request
// is built by other means.
//
// The package imports no other natsmesh package.
package bridge
