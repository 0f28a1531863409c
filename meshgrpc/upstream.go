package meshgrpc

import (
	"context"
	"errors"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/meshgrpc/internal/grpcstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// Upstream is the inbound handler for a local gRPC server reached over a
// connection (h2c): it forwards each call with [grpcwire.RawCodec], so it needs
// no generated code, and returns the service's status, response message,
// header and trailer metadata.
//
// The local call gets the call's deadline (the context's) and the request
// metadata as outgoing metadata, plus [grpcwire.MetadataCaller] set from the
// subject. A failure to reach the service at all (codes.Unavailable before
// any transport stream to it existed: connection refused, no address) means
// nothing ran: it is a KindUpstreamRefused mesh error, which callers may
// resend elsewhere and can tell from the service's own Unavailable, and
// OnRefused is told. An answer past max_payload streams, up to a message
// of gRPC's default bound; one whose headers are too large to send back is
// the service's failure (upstream-unavailable), not the caller's. A server-streaming
// method called unary (without grpcwire.HeaderGRPCStream), which a unary
// answer cannot carry, answers Unimplemented.
//
// A call marked a stream is forwarded as a stream, whatever the method
// (see [Upstream.ServeCall]).
type Upstream struct {
	// Conn is the connection to the local service. Required.
	Conn grpc.ClientConnInterface
	// Limits, read per call, bound the replies; nil means the defaults.
	Limits pipeline.Limits
	// OnRefused, when set, is called after a call found the service not
	// accepting connections.
	OnRefused func(error)
}

var _ pipeline.Handler = (*Upstream)(nil)

// ServeCall implements [pipeline.Handler].
//
// A call marked a stream opens a stream to the service (the method's
// kind is the service's business: client, server or bidirectional
// streaming, or unary), and sends it the call's messages as they arrive.
// Once the service has sent its headers, the reply is a stream: its head
// the header metadata, its body the service's messages as they come, its
// trailer the status and trailer metadata; but an answer that ends within
// a few milliseconds of its headers (a unary method's, a short stream's)
// is one message, and so is one with no headers (gRPC's trailers-only
// answer: a status at once). Closing the reply before its end cancels the
// service's call; a request that fails (a malformed message, a broken
// request stream) cancels it too, and is the answer's failure.
func (u *Upstream) ServeCall(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	req, err := grpcwire.DecodeCall(c.Header, c.Body.Bytes, c.Op)
	if err != nil {
		return nil, err
	}
	// The metadata is the decoder's own, fresh map: set the caller in it.
	md := req.Metadata
	if md == nil {
		md = metadata.MD{}
	}
	if c.Caller != "" {
		md.Set(grpcwire.MetadataCaller, c.Caller)
	}
	ctx = metadata.NewOutgoingContext(ctx, md)
	if req.Stream || c.Body.Streamed() {
		return u.serveStream(ctx, req, pipeline.Body{Bytes: req.Payload, Stream: c.Body.Stream})
	}

	in, out := grpcwire.RawFrame(req.Payload), grpcwire.RawFrame(nil)
	var header, trailer metadata.MD
	var p peer.Peer
	err = u.Conn.Invoke(ctx, req.Method, &in, &out,
		grpc.ForceCodecV2(grpcwire.RawCodec{}), grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p))
	st, _ := status.FromError(err)
	switch {
	case st.Code() == codes.Unavailable && p.Addr == nil:
		return nil, u.refused(st, err)
	case st.Code() == codes.Internal && strings.Contains(st.Message(), "cardinality violation"):
		// grpc-go's client answer when a unary call meets a method that
		// streams its responses.
		st = status.New(codes.Unimplemented, "natsmesh: "+req.Method+" streams its responses: call it as a stream ("+grpcwire.HeaderGRPCStream+")")
	}
	resp := &grpcwire.Response{Payload: out, Header: header, Trailer: trailer, Status: st}
	// An answer larger than max_payload streams (the inbound dispatch
	// sends it in pieces).
	m, err := grpcwire.ResponseMsg(resp, grpcstream.MessageLimits(u.Limits.Now()))
	if err != nil {
		return nil, wire.ResponseError(err)
	}
	return pipeline.ReplyFromMsg(wire.ProtoGRPC, m), nil
}

// refused is the mesh error of a call the service refused (st, err).
func (u *Upstream) refused(st *status.Status, err error) error {
	if u.OnRefused != nil {
		u.OnRefused(err)
	}
	return &wire.Error{Kind: wire.KindUpstreamRefused, Message: "local service refused the connection: " + st.Message(), Err: err}
}

// streamDesc is how the upstream opens every stream: both sides may
// stream, so grpc-go checks nothing the service's method does not.
var streamDesc = &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}

// serveStream forwards a call marked a stream (see ServeCall).
func (u *Upstream) serveStream(ctx context.Context, req *grpcwire.Request, body pipeline.Body) (*pipeline.Reply, error) {
	// Cancelled with its cause: a request that fails (a message the
	// caller sent malformed, the caller's stream broken) is the answer's
	// failure.
	ctx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(nil) }
	var p peer.Peer
	cs, err := u.Conn.NewStream(ctx, streamDesc, req.Method, grpc.ForceCodecV2(grpcwire.RawCodec{}), grpc.Peer(&p))
	if err != nil {
		cancel()
		st := status.Convert(err)
		if st.Code() == codes.Unavailable {
			// No stream was opened: the service refused, or there was
			// none to ask.
			return nil, u.refused(st, err)
		}
		return u.wholeReply(&grpcwire.Response{Status: st})
	}
	go sendAll(ctx, cancelCause, cs, grpcstream.BodyMessages(body))
	header, _ := cs.Header()
	if header == nil {
		// The stream ended before any header: its status, at once.
		var m grpcwire.RawFrame
		err := cs.RecvMsg(&m)
		cancel()
		if f := requestFailure(ctx); f != nil {
			return nil, f
		}
		st := status.Convert(err)
		if errors.Is(err, io.EOF) {
			st = nil
		}
		if st.Code() == codes.Unavailable && p.Addr == nil {
			return nil, u.refused(st, err)
		}
		return u.wholeReply(&grpcwire.Response{Status: st, Trailer: cs.Trailer()})
	}
	lim := u.Limits.Now()
	head, err := grpcwire.StreamHead(header, lim)
	if err != nil {
		cancel()
		return nil, wire.ResponseError(err)
	}
	out := grpcstream.NewPipe()
	go receiveAnswer(ctx, cs, out, lim)
	return grpcstream.Settle(ctx, head, &grpcstream.Answer{Pipe: out, Cancel: cancel}, lim)
}

// wholeReply is resp in one message.
func (u *Upstream) wholeReply(resp *grpcwire.Response) (*pipeline.Reply, error) {
	m, err := grpcwire.ResponseMsg(resp, u.Limits.Now())
	if err != nil {
		return nil, wire.ResponseError(err)
	}
	return pipeline.ReplyFromMsg(wire.ProtoGRPC, m), nil
}

// sendAll sends the call's messages to the service, then half-closes. A
// request that fails cancels the service's call; a service that ended the
// call (a send fails) is left to tell its status to the receiving side.
func sendAll(ctx context.Context, cancel context.CancelCauseFunc, cs grpc.ClientStream, in *grpcstream.Messages) {
	for {
		msg, err := in.Next(ctx)
		if errors.Is(err, io.EOF) {
			cs.CloseSend()
			return
		}
		if err != nil {
			cancel(err)
			return
		}
		if cs.SendMsg(grpcwire.RawFrame(msg)) != nil {
			return
		}
	}
}

// receiveAnswer writes the service's answer to out: its messages framed,
// then its status and trailer metadata as the trailer. It ends when the
// service's call does: at the answer's end, or once out's reader has
// cancelled the call (ctx).
func receiveAnswer(ctx context.Context, cs grpc.ClientStream, out *grpcstream.Pipe, lim wire.Limits) {
	for {
		var f grpcwire.Framed
		err := cs.RecvMsg(&f)
		if err == nil {
			if out.Write(ctx, f) != nil {
				return
			}
			continue
		}
		if f := requestFailure(ctx); f != nil {
			out.End(f, nil)
			return
		}
		st := status.Convert(err)
		if errors.Is(err, io.EOF) {
			st = nil
		}
		tr, terr := grpcwire.StreamTrailer(st, cs.Trailer(), lim)
		if terr != nil {
			terr = wire.ResponseError(terr)
		}
		out.End(terr, tr)
		return
	}
}

// requestFailure is the failure of the request that ended ctx: its
// cause, unless it ended for no more than a cancel or a deadline.
func requestFailure(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	c := context.Cause(ctx)
	if c == nil || errors.Is(c, context.Canceled) || errors.Is(c, context.DeadlineExceeded) {
		return nil
	}
	return c
}
