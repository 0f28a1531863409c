package bridge

import (
	"errors"
	"io"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// GRPCProxy is the agent's outbound gRPC listener: any gRPC client pointed
// at it (h2c, with the destination service as :authority) calls mesh
// services over NATS, with no generated code in the mesh. Serve it with
//
//	grpc.NewServer(p.ServerOptions()...)
//
// which installs [GRPCProxy.Handler] as the unknown-service handler with the
// pass-through [RawCodec].
type GRPCProxy struct {
	// Request sends the NATS request; the agent wraps its policies around
	// it. Required.
	Request RequestFunc
	// Caller is the name of the service the proxy calls for.
	Caller string
	// Limits bound the request; the zero value uses the defaults.
	Limits Limits
	// Resolve maps a call's :authority to the destination service and
	// subset. The default takes the host part (port stripped) as the service
	// and "" (any instance) as the subset. The service is validated with
	// [ValidateName] either way; an error is an Unimplemented (no route)
	// answer.
	Resolve func(authority string) (service, subset string, err error)
}

// ServerOptions are the options a grpc.Server needs to serve p: the
// pass-through codec and p.Handler for every method.
func (p *GRPCProxy) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(RawCodec{}), grpc.UnknownServiceHandler(p.Handler)}
}

// Handler forwards one unary call from stream over NATS, for use with
// grpc.UnknownServiceHandler and a [RawCodec] server codec. It reads the one
// request message, sends it like [GRPCClient] (metadata and deadline
// propagated), and writes back the header metadata, the response message,
// the trailer metadata and the status. A stream that does not carry exactly
// one request message gets Unimplemented ("streaming not supported yet").
// A server-streaming call cannot be told from a unary one here: it is
// forwarded as unary, and the far side answers it as such.
func (p *GRPCProxy) Handler(srv any, stream grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(stream)
	if !ok {
		return status.Error(codes.Internal, "natsmesh: no method in stream")
	}
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	var authority string
	if vs := md.Get(":authority"); len(vs) > 0 {
		authority = vs[0]
	}
	service, subset, err := p.resolve(authority)
	if err != nil {
		return GRPCStatus(err).Err()
	}
	if p.Request == nil {
		return status.Error(codes.Internal, "natsmesh: GRPCProxy.Request is nil")
	}

	var in RawFrame
	if err := stream.RecvMsg(&in); err != nil {
		if errors.Is(err, io.EOF) {
			return errStreaming
		}
		return err
	}
	// A unary client half-closes after its one message.
	var extra RawFrame
	if err := stream.RecvMsg(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return errStreaming
	}

	req := &GRPCRequest{Method: method, Metadata: md, Payload: in}
	subj := Subject{Service: service, Subset: subset, Caller: p.Caller, Proto: ProtoGRPC, Op: method}
	resp, err := forwardGRPC(ctx, p.Request, subj, req, p.Limits)
	if err != nil {
		return err
	}
	if len(resp.Header) > 0 {
		if err := stream.SetHeader(resp.Header); err != nil {
			return err
		}
	}
	stream.SetTrailer(resp.Trailer)
	if err := resp.Status.Err(); err != nil {
		return err
	}
	return stream.SendMsg(RawFrame(resp.Payload))
}

func (p *GRPCProxy) resolve(authority string) (service, subset string, err error) {
	if p.Resolve != nil {
		service, subset, err = p.Resolve(authority)
		if err != nil {
			return "", "", &Error{Kind: KindNoRoute, Message: err.Error(), Err: err}
		}
	} else {
		service = authority
		if host, _, err := net.SplitHostPort(authority); err == nil {
			service = host
		}
		service = strings.ToLower(service)
	}
	if err := ValidateName("service", service); err != nil {
		return "", "", &Error{Kind: KindNoRoute, Message: "no service for :authority " + authorityForMessage(authority) + ": " + err.Error(), Err: err}
	}
	return service, subset, nil
}

func authorityForMessage(a string) string {
	if len(a) > 64 {
		a = a[:64]
	}
	return "\"" + a + "\""
}
