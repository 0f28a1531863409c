// Package httpstream carries HTTP's byte streams over the call
// pipelines' streams (pipeline.Stream, which internal/meshstream moves
// across NATS with flow control), for package meshhttp: a body that
// does not cross whole, and the connection of a protocol upgrade.
//
// [Source] is an HTTP body (a client's request body, a service's answer
// body, the connection a service switched to) read as a pipeline.Stream,
// in pieces of at most 32 KiB, its trailer taken at its end. [Body] is
// the other way: a pipeline.Stream read as an HTTP body (an
// io.ReadCloser, and an io.WriterTo that writes each piece as it comes),
// which hands the stream's trailer to its maker at the end.
//
// A protocol upgrade (WebSocket) is one call whose bodies are both
// streams: [Tunnel] is the caller's side, the bytes its client sends on
// its connection once the service has switched protocols (until then it
// waits; an answer other than 101 ends it empty), and [Pump] the
// callee's, which writes the call's stream to the service's connection.
package httpstream
