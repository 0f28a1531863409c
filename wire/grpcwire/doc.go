// Package grpcwire is the gRPC codec of the mesh's wire format (package
// wire, docs/wire.md): a unary gRPC call becomes one NATS request message
// and its answer one reply, with no I/O of its own.
//
// [EncodeRequest] carries the full method in Mesh-Grpc-Method, the
// metadata in NATS headers (binary values in base64, transport keys
// dropped) and the serialized message as the payload; [DecodeRequest] and
// [DecodeCall] read it back. [ResponseMsg] carries the answer's header and
// trailer metadata and its status (Mesh-Grpc-Status, always present, so a
// reply is never confused with a NATS status), and [DecodeResponse] reads
// it, a mesh error reply or a nats.go/micro error. [Status] is the status a
// gRPC client sees for any error of the mesh, and [StatusKind] the mesh
// error kind behind a status. [RawCodec] carries messages as their bytes,
// so the mesh forwards any service's calls without its generated code.
//
// A call of a streaming method is marked [HeaderGRPCStream] (Request.Stream)
// and its bodies are gRPC length-prefixed messages ([AppendMessage],
// [MessageReader]), whole or streamed; a streamed reply has the header
// metadata in its head ([StreamHead]) and the status with the trailer
// metadata in its trailer ([StreamTrailer]), which together read as a
// unary reply's header.
package grpcwire
