// Package benchecho is the echo service that natsmesh bench calls, run as
// its own process (the hidden `natsmesh bench-echo`, Serve): over HTTP
// (Handler: a request's body back; /download and /upload for the
// streaming scenarios' transfers), over h2c gRPC (GRPC: the interop
// TestService's UnaryCall and StreamingOutputCall, with the standard
// health service), and in process through an agent of the mesh (Handle
// and GRPCServer), as a service built on the agent library would serve.
//
// Its bodies cost it as little as possible (a transfer's bytes are copies
// of one pattern, NewBulkBody), so that the bench measures the way to the
// service rather than the service.
package benchecho
