// Package grpcstream holds what every adapter of gRPC streams in package
// meshgrpc (the in-process Client and Server, the sidecar's Proxy and
// Upstream) shares to turn a gRPC stream's messages into a mesh call's
// body and back, with no gRPC transport of its own:
//
//   - [Pipe], a pipeline.Stream whose pieces one goroutine pushes (the
//     messages it reads from a gRPC stream) and another takes: it holds
//     up to [PipeBuffer] bytes, and the reader takes every piece waiting
//     as one, so a stream of small messages leaves as fewer stream
//     frames; [Prefixed] puts pieces already read back in front;
//   - [Messages], the gRPC messages of a body, whole or streamed
//     (length-prefixed, grpcwire.MessageReader), and [ReplyReader], the
//     answer to a streamed call: its header metadata, its messages, and
//     at their end its status and trailer metadata;
//   - [Settle], the reply to a call whose answer has begun: whole, in one
//     message, when it ends within [AnswerWait] (a unary method's answer,
//     a short stream), else a stream;
//   - [Replayable] and [MessageLimits], a body that can be sent again and
//     the limits of a message that may be larger than one NATS message.
//
// Package meshgrpc's doc says how the adapters use them; docs/wire.md
// what the bodies carry.
package grpcstream
