// Package h2c serves HTTP/2 without TLS (h2c) on the mesh's HTTP
// listeners, beside HTTP/1.1 on the same port: the agent's proxy, its bind
// ports and the edge gateway.
//
// A client reaches HTTP/2 in one of two ways (RFC 7540 section 3):
//
//   - With prior knowledge (curl --http2-prior-knowledge, grpc-go, Go's
//     client with Protocols UnencryptedHTTP2) it opens the connection with
//     the HTTP/2 preface. net/http serves that itself once the server's
//     Protocols include UnencryptedHTTP2, which [Enable] sets.
//   - With "Upgrade: h2c" (curl --http2) it sends an HTTP/1.1 request that
//     asks to switch. net/http does not implement that, and x/net's h2c
//     package, which did, is deprecated and reads the request's body into
//     memory without a bound. [Server.Upgrade] does the switch: it answers
//     101, hands the connection to an x/net http2.Server with the request
//     as stream 1, and keeps the connection for [Server.Shutdown], since
//     http.Server forgets a connection once it is hijacked. A request it
//     does not upgrade (one with a body, over TLS, HTTP/1.0, without a
//     valid HTTP2-Settings) is served as HTTP/1.1: RFC 9110 section 7.8
//     lets a server ignore Upgrade, and the client gets its answer either
//     way.
//
// Both kinds of connection serve the server's own Handler, so a request
// over HTTP/2 passes the same wrappers as one over HTTP/1.1, and both are
// held to the mesh's HTTP/2 bounds ([MaxConcurrentStreams],
// [HeaderTableSize], the header list of the server's MaxHeaderBytes),
// which the gRPC proxy's grpc-go server takes too (decision 106). Docs: decision
// 87 in docs/decisions.md says why the upgrade is done here.
package h2c
