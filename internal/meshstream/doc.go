// Package meshstream is the stream protocol of the mesh (docs/wire.md,
// "Streams"): how a call whose body, in either direction, is a stream
// crosses NATS, with credit-based flow control both ways, an explicit
// cancel both ways, keep-alives with an idle timeout, numbered frames
// (a lost one ends the stream), an end frame carrying the trailer, and
// mesh errors as frames.
//
// [Call] is the caller's side: it sends the request message (and its body
// in frames, once the callee accepts it) and returns the answer, whole or
// a [Body] read as it arrives. [Serve] is the callee's side: the request
// body as a Body, and the one answer, whole ([Server.Answer]) or streamed
// ([Server.AnswerStream]). Both receive their frames through the reply
// mux (internal/replymux) of their end, on subjects in the pair inbox of
// the two ends, so the broker authorizes every frame statically
// (docs/security.md, "The reply model").
//
// Each side of a stream holds at most the credit it granted unread (its
// Window), and sends at most the credit its peer granted: a slow reader
// slows the writer, whatever the stream's length. Each sends a ping when
// it has sent nothing for a third of the idle timeout, and fails the
// stream when it has heard nothing for the idle timeout or its peer has
// granted no credit for as long; the callee's idle timeout is the
// caller's (wire.HeaderIdle).
package meshstream
