// Package meshgrpc carries unary gRPC calls over the mesh, with and without
// generated code.
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
// Streaming calls do not cross the mesh yet: every entry point answers them
// Unimplemented at once (the proxy by the shape of the stream, the server
// and the upstream by the method).
package meshgrpc
