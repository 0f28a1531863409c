// Package httpwire is the HTTP codec of the mesh's wire format (package
// wire, docs/wire.md): an HTTP request becomes one NATS request message
// and its answer one reply, with no I/O of its own.
//
// [EncodeRequest] puts the request line in Mesh-Method, Mesh-Path,
// Mesh-Query and Mesh-Host, the end-to-end headers in NATS headers
// (hop-by-hop ones dropped, reserved names escaped with
// wire.EscapeHeaderName, trailers behind "Mesh-Trailer-") and the body in
// the payload, bounded by wire.Limits; [DecodeRequest] and [DecodeCall]
// turn it back into the *http.Request a handler receives, refusing
// anything that would not serialize as the same request line. Replies go
// the same way: [EncodeResponse] and [ResponseMsg] carry the status in
// Mesh-Status, which marks a service's own answer, and [DecodeResponse]
// reads it, a mesh error reply (as a *wire.Error) or a NATS-native answer
// such as a nats.go/micro service's. [WriteResponse] writes a decoded
// answer to a client, [WriteError] and [ErrorResponse] a mesh error.
//
// A body that streams (issue 18) crosses as a stream after its first
// message: [EncodeRequestHead] and [ResponseHead] make that message (the
// known length, the declared trailers, an upgrade's Mesh-Upgrade),
// [DecodeStreamCall] and [DecodeResponseHead] read it, and [TrailerHeader]
// and [ReadTrailer] the trailer at the stream's end.
//
// [EncodeRequest] answers 400 to ambiguous framing (both Content-Length
// and Transfer-Encoding) when a request is built by other means than Go's
// server, which frames such requests itself (see internal/httpguard for
// the listeners' guard).
package httpwire
