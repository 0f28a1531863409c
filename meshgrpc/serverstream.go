package meshgrpc

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/meshgrpc/internal/grpcstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// serveStream serves a call marked a stream: a streaming method's
// handler, with the call's messages to receive and a streamed reply of
// those it sends; a unary method's, with the call's one message.
//
// Once the handler has sent its header (SendHeader, or its first
// message), the reply is streamed: its head carries the header metadata,
// its body the messages as the handler sends them (a send returns once
// the mesh has taken the message), its trailer the status and trailer
// metadata once the handler returns; but a handler that is done within
// grpcstream.AnswerWait is answered in one message (see settle), and so is one that
// returns before sending its header, its status with its metadata (gRPC's
// trailers-only answer). Closing the reply before its end cancels the
// handler's context; its sends fail from then on.
func (s *Server) serveStream(ctx context.Context, c *pipeline.Call, req *grpcwire.Request) (*pipeline.Reply, error) {
	svcName, methodName := grpcwire.SplitMethod(req.Method)
	s.mu.RLock()
	svc := s.services[svcName]
	s.mu.RUnlock()
	body := pipeline.Body{Bytes: req.Payload, Stream: c.Body.Stream}
	switch {
	case svc == nil:
		return s.wholeReply(&grpcwire.Response{Status: status.Newf(codes.Unimplemented, "unknown service %v", svcName)})
	case svc.streams[methodName] != nil:
		return s.runStream(ctx, c.Caller, req, body, svc.impl, svc.streams[methodName])
	case svc.methods[methodName] != nil:
		return s.unaryOverStream(ctx, c.Caller, req, body)
	}
	return s.wholeReply(&grpcwire.Response{Status: status.Newf(codes.Unimplemented, "unknown method %v for service %v", methodName, svcName)})
}

// wholeReply is resp, whose payload is its messages framed, as one
// answer (which the inbound dispatch streams when it is larger than
// max_payload).
func (s *Server) wholeReply(resp *grpcwire.Response) (*pipeline.Reply, error) {
	m, err := grpcwire.ResponseMsg(resp, grpcstream.MessageLimits(s.limits.Now()))
	if err != nil {
		return nil, wire.ResponseError(err)
	}
	return pipeline.ReplyFromMsg(wire.ProtoGRPC, m), nil
}

// unaryOverStream serves a unary method called as a stream (as the
// sidecar's proxy calls every method): its one message in, its answer out
// in one message.
func (s *Server) unaryOverStream(ctx context.Context, caller string, req *grpcwire.Request, body pipeline.Body) (*pipeline.Reply, error) {
	in := grpcstream.BodyMessages(body)
	msg, err := in.Next(ctx)
	if errors.Is(err, io.EOF) {
		return s.wholeReply(&grpcwire.Response{Status: status.New(codes.Internal, "grpc: cardinality violation: received no request message from a non-client-streaming RPC")})
	}
	if err != nil {
		return nil, err
	}
	if _, err := in.Next(ctx); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return s.wholeReply(&grpcwire.Response{Status: status.New(codes.Internal, "grpc: cardinality violation: received multiple request messages for a non-client-streaming RPC")})
	}
	resp := s.serve(ctx, caller, &grpcwire.Request{Method: req.Method, Metadata: req.Metadata, Payload: msg, Timeout: req.Timeout})
	if resp.Status.Code() == codes.OK {
		resp.Payload = grpcwire.AppendMessage(nil, resp.Payload)
	}
	return s.wholeReply(&resp)
}

// runStream runs a streaming method's handler for req.
func (s *Server) runStream(callCtx context.Context, caller string, req *grpcwire.Request, body pipeline.Body, impl any, sd *grpc.StreamDesc) (*pipeline.Reply, error) {
	// The handler's context ends with its call: when the handler returns,
	// or its answer is closed before its end.
	ctx, cancel := context.WithCancel(callCtx)
	if req.Metadata == nil {
		req.Metadata = metadata.MD{}
	}
	ctx = metadata.NewIncomingContext(ctx, req.Metadata)
	if caller != "" {
		ctx = peer.NewContext(ctx, &peer.Peer{Addr: meshAddr(caller)})
	}
	ts := &serverStream{method: req.Method, sent: make(chan struct{})}
	ctx = grpc.NewContextWithServerTransportStream(ctx, ts)
	hs := &handlerStream{ctx: ctx, ts: ts, desc: sd, codec: protoCodec(), in: grpcstream.BodyMessages(body), out: grpcstream.NewPipe()}

	lim := s.limits.Now()
	done := make(chan struct{})
	var whole *grpcwire.Response // the answer, when the handler returned before its header
	go func() {
		defer close(done)
		defer cancel()
		st := handlerStatus(callStreamHandler(impl, hs, sd, req.Method, s.streamInterceptor))
		header, trailer, sent := ts.finish()
		if !sent {
			whole = &grpcwire.Response{Header: header, Trailer: trailer, Status: st}
			return
		}
		tr, err := grpcwire.StreamTrailer(st, trailer, lim)
		if err != nil {
			err = wire.ResponseError(err)
		}
		hs.out.End(err, tr)
	}()
	select {
	case <-ts.sent:
	case <-done:
		if whole != nil {
			return s.wholeReply(whole)
		}
	}
	head, err := grpcwire.StreamHead(ts.sentHeader(), lim)
	if err != nil {
		cancel()
		hs.out.Close()
		return nil, wire.ResponseError(err)
	}
	return grpcstream.Settle(callCtx, head, &grpcstream.Answer{Pipe: hs.out, Cancel: cancel}, lim)
}

// callStreamHandler runs a stream handler through the interceptors,
// turning a panic into an Internal status.
func callStreamHandler(impl any, ss grpc.ServerStream, sd *grpc.StreamDesc, method string, ic grpc.StreamServerInterceptor) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = status.Errorf(codes.Internal, "natsmesh: handler panic: %v", p)
		}
	}()
	if ic == nil {
		return sd.Handler(impl, ss)
	}
	info := &grpc.StreamServerInfo{FullMethod: method, IsClientStream: sd.ClientStreams, IsServerStream: sd.ServerStreams}
	return ic(impl, ss, info, sd.Handler)
}

// handlerStream is the grpc.ServerStream a stream handler gets.
type handlerStream struct {
	ctx   context.Context
	ts    *serverStream
	desc  *grpc.StreamDesc
	codec encoding.CodecV2
	in    *grpcstream.Messages // the call's messages, read by RecvMsg
	out   *grpcstream.Pipe     // the reply's, written by SendMsg
	recvd atomic.Bool
}

var _ grpc.ServerStream = (*handlerStream)(nil)

func (h *handlerStream) Context() context.Context        { return h.ctx }
func (h *handlerStream) SetHeader(md metadata.MD) error  { return h.ts.SetHeader(md) }
func (h *handlerStream) SendHeader(md metadata.MD) error { return h.ts.SendHeader(md) }
func (h *handlerStream) SetTrailer(md metadata.MD)       { _ = h.ts.SetTrailer(md) }

// SendMsg sends m once the mesh has taken it or holds it (up to
// grpcstream.PipeBuffer waiting, as grpc-go returns once a message fits
// its stream's window); a call that ended (the caller cancelled, the
// stream failed) fails it with its status.
func (h *handlerStream) SendMsg(m any) error {
	data, err := h.codec.Marshal(m)
	if err != nil {
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
	}
	framed := make([]byte, grpcwire.MessagePrefixLen, grpcwire.MessagePrefixLen+data.Len())
	for _, b := range data {
		framed = append(framed, b.ReadOnlyData()...)
	}
	data.Free()
	putLength(framed)
	h.ts.send()
	if err := h.out.Write(h.ctx, framed); err != nil {
		if h.ctx.Err() != nil {
			return status.FromContextError(h.ctx.Err()).Err()
		}
		return status.Error(codes.Canceled, "natsmesh: the caller gave up the stream")
	}
	return nil
}

// RecvMsg receives the call's next message into m: io.EOF after the last.
func (h *handlerStream) RecvMsg(m any) error {
	msg, err := h.in.Next(h.ctx)
	if errors.Is(err, io.EOF) {
		if !h.desc.ClientStreams && !h.recvd.Load() {
			return status.Error(codes.Internal, "grpc: cardinality violation: received no request message from a non-client-streaming RPC")
		}
		return io.EOF
	}
	if err != nil {
		return streamFailure(h.ctx, err).Err()
	}
	h.recvd.Store(true)
	if err := h.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, m); err != nil {
		return status.Errorf(codes.Internal, "grpc: error unmarshalling request: %v", err)
	}
	return nil
}
