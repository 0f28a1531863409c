package meshgrpc

import (
	"context"

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

// Client calls a mesh service over NATS as a grpc.ClientConnInterface, so
// that generated stubs (pb.NewXClient(c)), unary and streaming, work with
// no sidecar hop. Each call goes through Sender (the outbound pipeline) as
// one call to Service (and Subset) from Caller; a streaming one is made by
// [Client.NewStream].
//
// Invoke propagates the outgoing metadata (see [grpcwire.EncodeRequest] for
// what is dropped) and the context's deadline, and returns status errors:
// the service's status as it sent it, or the mesh's failures through
// [grpcwire.Status]. Of the call options it honors grpc.Header, grpc.Trailer
// (filled on success and on a service's error status), grpc.ForceCodecV2,
// grpc.ForceCodec and grpc.CallContentSubtype (the codec for the messages);
// the others (WaitForReady, compression, message size limits, ...) describe
// an HTTP/2 connection and are ignored.
type Client struct {
	// Sender sends the calls. Required: a call with a nil Sender fails with
	// Internal.
	Sender pipeline.Sender
	// Caller is the calling service's name and Service the called one;
	// both must be valid names (see [wire.ValidateName]).
	Caller, Service string
	// Subset selects instances of Service; "" means any.
	Subset string
	// Limits, read per call, bound the request; nil means the defaults.
	Limits pipeline.Limits
}

var _ grpc.ClientConnInterface = (*Client)(nil)

// Invoke performs a unary call of method ("/pkg.Service/Method").
func (c *Client) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	o := callOptionsOf(opts)
	codec := o.codec
	if c.Sender == nil {
		return status.Error(codes.Internal, "natsmesh: meshgrpc.Client.Sender is nil")
	}
	if codec == nil {
		return status.Error(codes.Internal, "natsmesh: no proto codec registered")
	}
	data, err := codec.Marshal(args)
	if err != nil {
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
	}
	payload := data.Materialize()
	data.Free()
	md, _ := metadata.FromOutgoingContext(ctx)
	req := &grpcwire.Request{Method: method, Metadata: md, Payload: payload}
	lim := c.Limits.Now()
	m, err := grpcwire.EncodeRequest(req, lim)
	if tooLarge(err) {
		// Past max_payload, the message streams: the call is made as a
		// stream of one message each way, which the service's agent
		// serves as the unary call it is.
		return c.invokeAsStream(ctx, method, args, reply, opts)
	}
	if err != nil {
		return grpcwire.Status(err).Err()
	}
	resp, err := send(ctx, c.Sender, pipeline.Call{Service: c.Service, Subset: c.Subset, Caller: c.Caller}, method, m, lim)
	if err != nil {
		return err
	}
	for _, h := range o.header {
		*h = resp.Header
	}
	for _, t := range o.trailer {
		*t = resp.Trailer
	}
	if err := resp.Status.Err(); err != nil {
		return err
	}
	if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(resp.Payload)}, reply); err != nil {
		return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
	}
	return nil
}

// Send encodes req as a gRPC call to dest's service and subset
// (wire.NormalSubset) from dest's caller (the protocol, operation and
// message are set from req), sends it through
// s and reads the answer. A mesh failure, or a request that cannot be sent,
// is returned as a status error; the service's own status is in the
// response.
func Send(ctx context.Context, s pipeline.Sender, dest pipeline.Call, req *grpcwire.Request, lim wire.Limits) (*grpcwire.Response, error) {
	m, err := grpcwire.EncodeRequest(req, lim)
	if err != nil {
		return nil, grpcwire.Status(err).Err()
	}
	return send(ctx, s, dest, req.Method, m, lim)
}

// send is Send of the request m encodes.
func send(ctx context.Context, s pipeline.Sender, dest pipeline.Call, method string, m *nats.Msg, lim wire.Limits) (*grpcwire.Response, error) {
	dest.Subset = wire.NormalSubset(dest.Subset)
	dest.Proto, dest.Op, dest.Header, dest.Body = wire.ProtoGRPC, method, m.Header, pipeline.Body{Bytes: m.Data}
	reply, err := s.Send(ctx, &dest)
	if err != nil {
		// A caller that gave up is told so (Canceled), not that the mesh
		// timed out.
		return nil, streamFailure(ctx, err).Err()
	}
	// A unary answer too large for one message streams its bytes, up
	// to a message as large as gRPC takes.
	whole, err := reply.ReadWhole(ctx, grpcstream.MessageLimits(lim).PayloadLimit())
	if err != nil {
		return nil, grpcwire.Status(err).Err()
	}
	resp, err := grpcwire.DecodeResponse(whole)
	if err != nil {
		return nil, grpcwire.Status(err).Err()
	}
	return resp, nil
}

// invokeAsStream is Invoke as a stream of one message each way.
func (c *Client) invokeAsStream(ctx context.Context, method string, args, reply any, opts []grpc.CallOption) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := c.NewStream(ctx, &grpc.StreamDesc{}, method, opts...)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(args); err != nil {
		return err
	}
	return cs.RecvMsg(reply)
}

// codecV1 adapts a grpc.ForceCodec codec.
type codecV1 struct{ c encoding.Codec }

func (c codecV1) Marshal(v any) (mem.BufferSlice, error) {
	b, err := c.c.Marshal(v)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (c codecV1) Unmarshal(data mem.BufferSlice, v any) error {
	return c.c.Unmarshal(data.Materialize(), v)
}

func (c codecV1) Name() string { return c.c.Name() }
