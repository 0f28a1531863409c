// Package meshgrpc carries gRPC calls over the mesh, unary and streaming,
// with and without generated code.
//
// Outbound, [Client] is a grpc.ClientConnInterface for generated stubs in
// process (pb.NewOrdersClient(c)), and [Proxy] is the sidecar's h2c
// listener for any gRPC client, routed by :authority, with no generated
// code: both encode the call with the wire package and send it through a
// pipeline.Sender, the caller's outbound pipeline; [Dispatch] serves the
// proxy on an HTTP listener too, beside its HTTP clients. Inbound, [Server] is a
// grpc.ServiceRegistrar that serves generated servers in process, and
// [Upstream] forwards calls to a local gRPC server over h2c with a
// pass-through codec: both are pipeline.Handler kinds behind the agent's
// inbound pipeline.
//
// A streaming call (client, server or bidirectional streaming) is one
// pipeline call marked grpcwire.HeaderGRPCStream, whose bodies both ways
// are the gRPC messages, length-prefixed as on gRPC's own wire: the
// request body whole when the client has sent all of it before the call
// leaves (a server stream, and any call the proxy finds half-closed),
// else a pipeline.Stream of the messages as the client sends them; the
// reply a pipeline.NewStreamReply once the service has sent its headers
// (its head the header metadata, its trailer the status and trailer
// metadata), or one message when it answered with a status alone. The
// Client knows a method's kind from its StreamDesc; the Proxy has no
// schema and sends every call as a stream, which serves a unary method
// just as well. Cancelling the client's call closes the reply stream,
// which cancels the service's handler; a deadline travels as grpc-timeout
// does.
package meshgrpc
