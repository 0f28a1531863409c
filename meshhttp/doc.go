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
// its clients apart with CallerOf. [Transport] is the same steps as an
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
// refuses ambiguous request framing (request smuggling) and protocol
// upgrades before a request reaches it, and bounds the time a body may
// take.
//
// Streams (issue 18) have their places marked: an answer that is written
// as it arrives (Server-Sent Events) and a protocol upgrade (WebSocket)
// are the Proxy's to carry once the wire carries streams; until then a
// streamed reply is read whole ([Send]).
package meshhttp
