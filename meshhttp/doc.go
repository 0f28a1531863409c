// Package meshhttp is the mesh's HTTP adapter, as package meshgrpc is its
// gRPC one: it carries HTTP requests into the call pipelines (package
// pipeline, which knows no protocol) and their answers back out, encoded by
// the wire format's HTTP codec (wire/httpwire, which does no I/O).
//
// Outbound, [Proxy] is the entry point of HTTP clients: an http.Handler
// shaped like httputil.ReverseProxy, whose hooks are fields with
// documented nil defaults (Resolve the destination, CallerOf the caller,
// Rewrite the outgoing request, Limits, ErrorHandler). The agent's proxy
// listener (the default Resolve: the host the client addressed), its bind
// ports (a fixed destination) and the edge gateway (its route table, and
// the X-Forwarded-* headers it sets) are Proxies; a node agent will tell
// its clients apart with CallerOf. The agent's proxy listener also hands
// the requests for hosts outside the mesh to its Egress hook (package
// egress), whose plain-HTTP calls end in [Egress], a sender that makes
// the request to the host itself with [Upstream]'s code. [Transport] is the same steps as an
// http.RoundTripper, for a client in the agent's process. Either way one
// function makes the round trip: the client's deadline (Mesh-Timeout,
// [CallerDeadline]), the request encoded as a pipeline.Call ([NewCall]),
// sent through a pipeline.Sender, the outbound pipeline, and the reply
// decoded ([Send]) into the answer the client gets, or a mesh error.
//
// Inbound, the kinds of local service are pipeline.Handlers: [Upstream],
// an HTTP service on the network (the sidecar's --upstream), and
// [Handler], an in-process http.Handler.
//
// The mesh's HTTP listeners serve a Proxy behind internal/httpguard, which
// refuses ambiguous request framing (request smuggling) and h2c upgrades
// before a request reaches it, and bounds each wait for a body's bytes.
//
// Bodies stream, both ways (issue 18). A body crosses whole when its
// length is known and at most [WholeBodyMax]; otherwise it is a
// pipeline.Stream read as it comes: a request's, from the client's
// body ([NewCall]), which the Upstream and the Handler give their service
// as it arrives; an answer's, which the Upstream and the Handler return as
// a streamed reply (pipeline.NewStreamReply: the head, status and headers,
// at once; the body as the service writes it; the trailers at its end),
// and which the Proxy writes to its client as it arrives, flushed piece by
// piece (server-sent events reach the client at once), and the Transport
// gives as its response's body. A protocol upgrade (WebSocket) is one
// call whose bodies are both streams, full duplex: the Proxy takes over
// the client's connection once the service's 101 has come (upgrade.go).
// The stream protocol (docs/wire.md, "Streams") carries them across NATS
// with flow control, so every side holds a bounded part of a body,
// whatever its length.
package meshhttp
