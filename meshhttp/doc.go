// Package meshhttp is the mesh's HTTP adapter, as package meshgrpc is its
// gRPC one: HTTP requests in and out of the call pipelines (package
// pipeline), encoded by the wire format's HTTP codec (wire/httpwire).
//
// Inbound, the kinds of local service are pipeline.Handlers: [Upstream],
// an HTTP service on the network, and [Handler], an in-process
// http.Handler.
//
// [NewCall] and [Send] are the codec's two halves around a
// pipeline.Sender, and [CallerDeadline] reads a client's Mesh-Timeout.
package meshhttp
