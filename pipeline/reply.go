package pipeline

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// Reply is a service's answer to a call, read once from the wire: its
// status in its protocol, its header, and its body, whole or a stream.
// What every middleware needs to judge the answer, its [wire.Outcome], is
// read from it here, once, and not again from its header; what a
// middleware makes of that outcome is one of wire.Outcome's variants
// (CountsAsError, PassiveHealth, DestinationFailed, Retry, EndsHedge).
//
// A whole reply (one message, [ReplyFromMsg]) has its outcome when it is
// made. A streamed reply ([NewStreamReply]) has the outcome of its header
// until its end, which may change it: a gRPC stream's status comes in its
// trailer, and a stream may fail or be given up midway. [Reply.OnEnd]
// tells an observer the final outcome, once.
//
// A reply passes through the middleware as it is: nothing writes to it
// once it is made, and a middleware that answers otherwise makes another.
// The receiver of a streamed reply reads it to its end or closes it.
type Reply struct {
	// Proto is the protocol Status is in: the call's, or, for a reply
	// made with proto "", gRPC when its header has Mesh-Grpc-Status.
	Proto wire.Proto
	// Status is the answer's status as its client sees it: the HTTP
	// status, or the gRPC code (wire.Outcome's Code). A NATS-native
	// answer's is read as the codecs read it (200 or OK, or a
	// nats.go/micro error's). A streamed reply's is its header's: a gRPC
	// stream's final status is in its trailer.
	Status int
	// Message is a gRPC answer's status message ("" for HTTP).
	Message string
	// Header is the reply's header as the wire format encodes it (that of
	// its first message, for a stream).
	Header nats.Header
	// Body is the answer's body: the payload of a whole reply, or its
	// stream.
	Body Body

	// msg is the message a whole reply was read from.
	msg *nats.Msg
	// end watches a streamed reply's stream for its end; nil for a whole
	// reply.
	end *ending
}

// ReplyFromMsg is the whole reply m carries, to a call of proto: its
// status read from its header once, by wire's one reading of the status
// headers ([wire.AnswerOutcome]). The reply keeps m (its header and data
// are the reply's, not copies) for the adapters that send or decode it
// ([Reply.Msg]).
func ReplyFromMsg(proto wire.Proto, m *nats.Msg) *Reply {
	r := new(Reply)
	r.fromMsg(proto, m)
	return r
}

// fromMsg makes r the reply m carries, in memory its caller already
// allocated (the outbound pipeline's request and reply share one).
func (r *Reply) fromMsg(proto wire.Proto, m *nats.Msg) {
	o := wire.AnswerOutcome(proto, m.Header)
	*r = Reply{Proto: o.Proto, Status: o.Code, Header: m.Header, Body: Body{Bytes: m.Data}, msg: m}
	if o.Proto == wire.ProtoGRPC {
		r.Message = grpcwire.StatusMessage(m.Header)
	}
}

// NewStreamReply is a streamed reply to a call of proto: header is its
// first message's header (its status, for HTTP), body the rest as it
// arrives. Its Body.Stream is body watched for its end ([Reply.OnEnd]):
// read it, not body.
func NewStreamReply(proto wire.Proto, header nats.Header, body Stream) *Reply {
	o := wire.AnswerOutcome(proto, header)
	r := &Reply{Proto: o.Proto, Status: o.Code, Header: header}
	if o.Proto == wire.ProtoGRPC {
		r.Message = grpcwire.StatusMessage(header)
	}
	r.watch(body)
	return r
}

// watch makes r's body stream s, watched for its end.
func (r *Reply) watch(s Stream) {
	r.end = &ending{inner: s, head: wire.Outcome{Proto: r.Proto, Code: r.Status}}
	r.Body = Body{Stream: r.end}
}

// Streamed reports whether r's body arrives over time (false for a nil r).
func (r *Reply) Streamed() bool { return r != nil && r.Body.Stream != nil }

// Outcome is how the call ended as r tells it now: a whole reply's
// outcome; a streamed reply's final one once it has ended, its header's
// until then.
func (r *Reply) Outcome() wire.Outcome {
	if r.end != nil {
		return r.end.outcome()
	}
	return wire.Outcome{Proto: r.Proto, Code: r.Status}
}

// OnEnd calls fn with r's final outcome, once: at once for a whole reply
// or a stream that has ended; for a stream, when it ends: at io.EOF (with
// its trailer's status), at an error of Next (that mesh error), or at a
// Close before the end (a call given up: cancelled, which no variant
// holds against the service). Observers are called in the order they
// were registered, on the goroutine that ended the stream.
//
// Every observer of a call's answer (the breaker, passive health,
// telemetry) registers here rather than reading the stream, so a stream's
// outcome is read once, at its end, whoever reads its body. For a whole
// reply, checking [Reply.Streamed] first and reading [OutcomeOf] at once
// saves the closure an observer passes.
func (r *Reply) OnEnd(fn func(wire.Outcome)) {
	if r.Body.Stream == nil {
		fn(r.Outcome())
		return
	}
	if r.end == nil {
		// A Reply made without NewStreamReply.
		r.watch(r.Body.Stream)
	}
	r.end.onEnd(fn)
}

// Msg is a whole reply as one NATS message: the one it was read from
// (its header and data are r's, not copies), or one made of r's Header
// and Body.Bytes; nil for a streamed reply ([Reply.ReadWhole] reads one).
// The adapters that send or decode a reply read it, to copy nothing.
func (r *Reply) Msg() *nats.Msg {
	switch {
	case r.Streamed():
		return nil
	case r.msg != nil:
		return r.msg
	}
	return &nats.Msg{Header: r.Header, Data: r.Body.Bytes}
}

// ReadWhole is r as one message: a whole reply's ([Reply.Msg]), or a
// streamed one's read to its end, its pieces joined and its trailer added
// to a copy of its header, up to limit bytes of body (too-large past it,
// the stream closed), under ctx.
//
// An entry point that needs the answer whole (a unary gRPC call, a NATS
// client) reads it so.
func (r *Reply) ReadWhole(ctx context.Context, limit int64) (*nats.Msg, error) {
	return r.readWholeAs(ctx, limit, nil)
}

// readWholeAs is ReadWhole whose error past limit is over's of the
// too-large error: the stream's observers are told that error too.
func (r *Reply) readWholeAs(ctx context.Context, limit int64, over func(*wire.Error) error) (*nats.Msg, error) {
	if !r.Streamed() {
		return r.Msg(), nil
	}
	b, trailer, err := readStreamAs(ctx, r.Body.Stream, limit, over)
	if err != nil {
		return nil, err
	}
	return &nats.Msg{Header: withTrailer(r.Header, trailer), Data: b}, nil
}

// OutcomeOf is how a call of proto that returned reply and err ended, as
// far as is known now: a mesh error's outcome (every failure of the mesh
// is an error, never a reply), or the reply's ([Reply.Outcome]).
func OutcomeOf(proto wire.Proto, reply *Reply, err error) wire.Outcome {
	if err != nil || reply == nil {
		return wire.OutcomeOf(proto, nil, err)
	}
	return reply.Outcome()
}

// ending is a streamed reply's stream, watched for its end.
type ending struct {
	inner Stream
	head  wire.Outcome // the header's

	mu    sync.Mutex
	done  bool
	final wire.Outcome
	fns   []func(wire.Outcome)
}

// errGivenUp is how a stream closed before its end ended.
var errGivenUp = &wire.Error{Kind: wire.KindTimeout, Message: "the streamed reply was closed before its end", Err: context.Canceled}

func (e *ending) Next(ctx context.Context) ([]byte, error) {
	b, err := e.inner.Next(ctx)
	if err != nil {
		e.finish(err)
	}
	return b, err
}

func (e *ending) Trailer() nats.Header { return e.inner.Trailer() }

func (e *ending) Close() error {
	err := e.inner.Close()
	e.finish(errGivenUp)
	return err
}

// finish records the stream's end, by err (io.EOF for its end), once, and
// tells the observers.
func (e *ending) finish(err error) {
	e.mu.Lock()
	if e.done {
		e.mu.Unlock()
		return
	}
	e.done = true
	if errors.Is(err, io.EOF) {
		e.final = e.head.WithTrailer(e.inner.Trailer())
	} else {
		e.final = wire.OutcomeOf(e.head.Proto, nil, err)
	}
	fns := e.fns
	e.fns = nil
	o := e.final
	e.mu.Unlock()
	for _, fn := range fns {
		fn(o)
	}
}

func (e *ending) outcome() wire.Outcome {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return e.final
	}
	return e.head
}

func (e *ending) onEnd(fn func(wire.Outcome)) {
	e.mu.Lock()
	if e.done {
		o := e.final
		e.mu.Unlock()
		fn(o)
		return
	}
	e.fns = append(e.fns, fn)
	e.mu.Unlock()
}
