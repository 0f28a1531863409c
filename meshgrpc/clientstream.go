package meshgrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/meshgrpc/internal/grpcstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// NewStream starts a streaming call of method ("/pkg.Service/Method"), for
// generated streaming stubs, through Sender as one call to Service (and
// Subset) from Caller, marked a stream (grpcwire.HeaderGRPCStream).
//
// A client-streaming or bidirectional call is sent at once, its body a
// stream of the messages SendMsg passes (SendMsg returns once the mesh has
// taken the message; CloseSend ends the body). A server-streaming call
// (desc.ClientStreams false) is sent at its one SendMsg, or CloseSend,
// with a whole body, which the policies may send again. Header waits for
// the reply's head; RecvMsg returns its messages, then io.EOF for an OK
// status or the status error. Cancelling ctx, or its deadline, ends the
// call, on both sides. The call options honored are Invoke's; grpc.Header
// and grpc.Trailer are filled as the header and the trailer arrive.
//
// As with grpc-go, the call's resources are released once RecvMsg has
// returned an error (io.EOF included) or ctx is done: a caller that
// stops reading early cancels ctx.
func (c *Client) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	o := callOptionsOf(opts)
	if c.Sender == nil {
		return nil, status.Error(codes.Internal, "natsmesh: meshgrpc.Client.Sender is nil")
	}
	if o.codec == nil {
		return nil, status.Error(codes.Internal, "natsmesh: no proto codec registered")
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	lim := c.Limits.Now()
	m, err := grpcwire.EncodeRequest(&grpcwire.Request{Method: method, Metadata: md, Stream: true}, lim)
	if err != nil {
		return nil, grpcwire.Status(err).Err()
	}
	if desc.ServerStreams {
		// A server stream may send its first message, and with it its
		// headers, as late as it likes: the default deadline does not
		// bound its head (docs/wire.md, "Streams").
		m.Header[wire.HeaderStreamDeadline] = []string{"none"}
	}
	ctx, cancel := context.WithCancel(ctx)
	cs := &clientStream{
		ctx: ctx, cancel: cancel, desc: desc, opts: o, sender: c.Sender, lim: lim,
		call: pipeline.Call{Service: c.Service, Subset: wire.NormalSubset(c.Subset), Caller: c.Caller,
			Proto: wire.ProtoGRPC, Op: method, Header: m.Header},
		head: make(chan struct{}),
	}
	if desc.ClientStreams {
		cs.req = grpcstream.NewPipe()
		cs.start(pipeline.Body{Stream: cs.req})
	}
	return cs, nil
}

// callOptions are the call options Invoke and NewStream honor.
type callOptions struct {
	codec           encoding.CodecV2
	header, trailer []*metadata.MD
}

func callOptionsOf(opts []grpc.CallOption) callOptions {
	o := callOptions{codec: protoCodec()}
	for _, opt := range opts {
		switch opt := opt.(type) {
		case grpc.HeaderCallOption:
			o.header = append(o.header, opt.HeaderAddr)
		case grpc.TrailerCallOption:
			o.trailer = append(o.trailer, opt.TrailerAddr)
		case grpc.ForceCodecV2CallOption:
			o.codec = opt.CodecV2
		case grpc.ForceCodecCallOption:
			o.codec = codecV1{opt.Codec}
		case grpc.ContentSubtypeCallOption:
			if cv := encoding.GetCodecV2(opt.ContentSubtype); cv != nil {
				o.codec = cv
			}
		}
	}
	return o
}

// clientStream is a streaming call made by [Client.NewStream].
type clientStream struct {
	ctx    context.Context
	cancel context.CancelFunc
	desc   *grpc.StreamDesc
	opts   callOptions
	sender pipeline.Sender
	lim    wire.Limits
	call   pipeline.Call

	// req is a client stream's body; nil for a server stream, whose
	// one message is sent whole.
	req      *grpcstream.Pipe
	sendMu   sync.Mutex // orders SendMsg and CloseSend
	sentLast bool       // CloseSend, or a server stream's message (under sendMu)

	head    chan struct{} // closed once Send has returned
	reply   *pipeline.Reply
	sendErr error

	// The receiving side, one goroutine's (RecvMsg's).
	rr      *grpcstream.ReplyReader
	recvErr error // sticky, once the call ended

	mu      sync.Mutex
	header  metadata.MD
	trailer metadata.MD
}

var _ grpc.ClientStream = (*clientStream)(nil)

// start sends the call with body, on a goroutine of its own, which
// releases the call once its context ends (RecvMsg's end, the caller's
// cancel or deadline).
func (cs *clientStream) start(body pipeline.Body) {
	cs.call.Body = body
	go func() {
		reply, err := cs.sender.Send(cs.ctx, &cs.call)
		cs.reply, cs.sendErr = reply, err
		close(cs.head)
		if err == nil && reply.Streamed() {
			<-cs.ctx.Done()
			// Before its end, this cancels the call.
			reply.Body.Stream.Close()
		}
		if cs.req != nil {
			// The request's stream is the client's: closed once the call
			// has ended (a SendMsg waiting fails).
			cs.req.Close()
		}
	}()
}

func (cs *clientStream) Context() context.Context { return cs.ctx }

// SendMsg sends m: on a client stream, once the mesh has taken it or
// holds it (up to grpcstream.PipeBuffer waiting); on a server stream, as the call's one message. As with grpc-go, a call that
// has ended fails it with io.EOF (RecvMsg tells its status).
func (cs *clientStream) SendMsg(m any) error {
	cs.sendMu.Lock()
	defer cs.sendMu.Unlock()
	if cs.sentLast {
		return status.Error(codes.Internal, "SendMsg called after CloseSend")
	}
	data, err := cs.opts.codec.Marshal(m)
	if err != nil {
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
	}
	if n := data.Len(); n > grpcwire.DefaultMaxMessage {
		// No gRPC server takes it (grpc.MaxRecvMsgSize's default), nor
		// the mesh's reader of a stream's messages.
		data.Free()
		return grpcwire.Status(&wire.Error{Kind: wire.KindTooLarge, Message: fmt.Sprintf("gRPC message of %d bytes, more than the limit of %d", n, grpcwire.DefaultMaxMessage)}).Err()
	}
	framed := make([]byte, grpcwire.MessagePrefixLen, grpcwire.MessagePrefixLen+data.Len())
	for _, b := range data {
		framed = append(framed, b.ReadOnlyData()...)
	}
	putLength(framed)
	data.Free()
	if cs.req == nil {
		cs.sentLast = true
		body := pipeline.Body{Bytes: framed}
		if cs.lim.Check(&nats.Msg{Header: cs.call.Header, Data: framed}, 0, 0) != nil {
			// Too large for one message: it streams, and can be sent again.
			body = grpcstream.Replayable(framed)
		}
		cs.start(body)
		return nil
	}
	if err := cs.req.Write(cs.ctx, framed); err != nil {
		return io.EOF
	}
	return nil
}

// putLength writes the length of the message behind framed's prefix
// into it.
func putLength(framed []byte) {
	n := len(framed) - grpcwire.MessagePrefixLen
	framed[1], framed[2], framed[3], framed[4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

// CloseSend ends the request's body; a server stream that sent no message
// is sent with none (the service answers that it wanted one).
func (cs *clientStream) CloseSend() error {
	cs.sendMu.Lock()
	defer cs.sendMu.Unlock()
	if cs.sentLast {
		return nil
	}
	cs.sentLast = true
	if cs.req == nil {
		cs.start(pipeline.Body{Bytes: []byte{}})
		return nil
	}
	cs.req.End(nil, nil)
	return nil
}

// Header waits for the reply's head and returns its header metadata.
// Like grpc-go's, it returns nil, nil when the call failed first: RecvMsg
// tells how.
func (cs *clientStream) Header() (metadata.MD, error) {
	select {
	case <-cs.head:
	case <-cs.ctx.Done():
		return nil, nil
	}
	if cs.sendErr != nil {
		return nil, nil
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.header == nil {
		head, err := grpcwire.DecodeResponse(&nats.Msg{Header: cs.reply.Header})
		if err != nil {
			return nil, nil
		}
		cs.header = head.Header
		if cs.header == nil {
			cs.header = metadata.MD{}
		}
		for _, h := range cs.opts.header {
			*h = cs.header
		}
	}
	return cs.header.Copy(), nil
}

func (cs *clientStream) Trailer() metadata.MD {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.trailer
}

// RecvMsg receives the next message into m.
func (cs *clientStream) RecvMsg(m any) error {
	if cs.recvErr != nil {
		return cs.recvErr
	}
	select {
	case <-cs.head:
	case <-cs.ctx.Done():
		return cs.finish(status.FromContextError(cs.ctx.Err()).Err())
	}
	if cs.sendErr != nil {
		return cs.finish(streamFailure(cs.ctx, cs.sendErr).Err())
	}
	if cs.rr == nil {
		cs.Header() // fills grpc.Header options
		rr, err := grpcstream.ReadReply(cs.reply)
		if err != nil {
			return cs.finish(grpcwire.Status(err).Err())
		}
		cs.rr = rr
	}
	msg, err := cs.recv()
	if errors.Is(err, io.EOF) && !cs.desc.ServerStreams {
		return cs.finish(status.Error(codes.Internal, "cardinality violation: received no response message from non-server-streaming RPC"))
	}
	if err != nil {
		return cs.finish(err)
	}
	if err := cs.opts.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, m); err != nil {
		return cs.finish(status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err))
	}
	if !cs.desc.ServerStreams {
		// One message, then the end, as grpc-go checks it.
		_, err := cs.recv()
		switch {
		case err == nil:
			return cs.finish(status.Error(codes.Internal, "cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message"))
		case !errors.Is(err, io.EOF):
			return cs.finish(err)
		}
		cs.finish(io.EOF)
		return nil
	}
	return nil
}

// recv reads the next message: io.EOF at the end of an OK reply, the
// status error of another, the status of a failure.
func (cs *clientStream) recv() ([]byte, error) {
	msg, err := cs.rr.Next(cs.ctx)
	switch {
	case err == nil:
		return msg, nil
	case errors.Is(err, io.EOF):
		cs.mu.Lock()
		cs.trailer = cs.rr.Trailer
		cs.mu.Unlock()
		if st := cs.rr.Status; st.Code() != codes.OK {
			return nil, st.Err()
		}
		return nil, io.EOF
	}
	return nil, streamFailure(cs.ctx, err).Err()
}

// finish ends the call with err (io.EOF for its OK end): RecvMsg returns
// it from now on, grpc.Trailer options are filled, and the call's
// resources are released.
func (cs *clientStream) finish(err error) error {
	cs.recvErr = err
	cs.mu.Lock()
	for _, t := range cs.opts.trailer {
		*t = cs.trailer
	}
	cs.mu.Unlock()
	cs.cancel()
	return err
}
