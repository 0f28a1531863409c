package bridge

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// errStreaming is the answer to any streaming call: the mesh carries unary
// calls only, for now.
var errStreaming = status.Error(codes.Unimplemented, "natsmesh: streaming not supported yet")

// GRPCClient calls a mesh service over NATS as a grpc.ClientConnInterface, so
// that generated stubs (pb.NewXClient(c)) work with no sidecar hop. Each
// unary call becomes one NATS request on
// mesh.<Service>.<Subset>.<Caller>.grpc.<method> sent with Request.
//
// Invoke propagates the outgoing metadata (see [EncodeGRPCRequest] for what
// is dropped) and the context's deadline, and returns status errors: the
// service's status as it sent it, or the mesh's failures through
// [GRPCStatus]. Of the call options it honors grpc.Header, grpc.Trailer
// (filled on success and on a service's error status), grpc.ForceCodecV2,
// grpc.ForceCodec and grpc.CallContentSubtype (the codec for the messages);
// the others (WaitForReady, compression, message size limits, ...) describe
// an HTTP/2 connection and are ignored.
type GRPCClient struct {
	// Request sends the NATS request; the agent wraps its policies around
	// it. Required: a call with a nil Request fails with Internal.
	Request RequestFunc
	// Caller is the calling service's name and Service the called one;
	// both must be valid names (see [ValidateName]).
	Caller, Service string
	// Subset selects instances of Service; "" means any.
	Subset string
	// Limits bound the request; the zero value uses the defaults.
	Limits Limits
}

var _ grpc.ClientConnInterface = (*GRPCClient)(nil)

// Invoke performs a unary call of method ("/pkg.Service/Method").
func (c *GRPCClient) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	codec := protoCodec()
	var header, trailer []*metadata.MD
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			header = append(header, o.HeaderAddr)
		case grpc.TrailerCallOption:
			trailer = append(trailer, o.TrailerAddr)
		case grpc.ForceCodecV2CallOption:
			codec = o.CodecV2
		case grpc.ForceCodecCallOption:
			codec = codecV1{o.Codec}
		case grpc.ContentSubtypeCallOption:
			if cv := encoding.GetCodecV2(o.ContentSubtype); cv != nil {
				codec = cv
			}
		}
	}
	if c.Request == nil {
		return status.Error(codes.Internal, "natsmesh: GRPCClient.Request is nil")
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
	req := &GRPCRequest{Method: method, Metadata: md, Payload: payload}
	subj := Subject{Service: c.Service, Subset: c.Subset, Caller: c.Caller, Proto: ProtoGRPC, Op: method}
	resp, err := forwardGRPC(ctx, c.Request, subj, req, c.Limits)
	if err != nil {
		return err
	}
	for _, h := range header {
		*h = resp.Header
	}
	for _, t := range trailer {
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

// NewStream fails with Unimplemented: the mesh carries unary calls only.
func (c *GRPCClient) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errStreaming
}

// forwardGRPC sends req to subj with request and reads the answer. A mesh
// failure, or a request that cannot be sent, is returned as a status error;
// the service's own status is in the response.
func forwardGRPC(ctx context.Context, request RequestFunc, subj Subject, req *GRPCRequest, lim Limits) (*GRPCResponse, error) {
	if err := subj.Validate(); err != nil {
		return nil, GRPCStatus(&Error{Kind: KindNoRoute, Message: err.Error(), Err: err}).Err()
	}
	if deadline, ok := ctx.Deadline(); ok {
		req.Timeout = time.Until(deadline)
		if req.Timeout <= 0 {
			return nil, GRPCStatus(&Error{Kind: KindTimeout, Message: "deadline passed before the request was sent"}).Err()
		}
	}
	m, err := EncodeGRPCRequest(subj.String(), req, lim)
	if err != nil {
		return nil, GRPCStatus(err).Err()
	}
	reply, err := request(ctx, m)
	if err != nil {
		return nil, GRPCStatus(err).Err()
	}
	resp, err := DecodeGRPCResponse(reply)
	if err != nil {
		return nil, GRPCStatus(err).Err()
	}
	return resp, nil
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
