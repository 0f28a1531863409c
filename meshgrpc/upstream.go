package meshgrpc

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

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
// OnRefused is told. An answer too large to send back is the service's
// failure (upstream-unavailable), not the caller's. A server-streaming method, which a unary call
// cannot carry, answers Unimplemented.
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

	in, out := grpcwire.RawFrame(req.Payload), grpcwire.RawFrame(nil)
	var header, trailer metadata.MD
	var p peer.Peer
	err = u.Conn.Invoke(ctx, req.Method, &in, &out,
		grpc.ForceCodecV2(grpcwire.RawCodec{}), grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p))
	st, _ := status.FromError(err)
	switch {
	case st.Code() == codes.Unavailable && p.Addr == nil:
		if u.OnRefused != nil {
			u.OnRefused(err)
		}
		return nil, &wire.Error{Kind: wire.KindUpstreamRefused, Message: "local service refused the connection: " + st.Message(), Err: err}
	case st.Code() == codes.Internal && strings.Contains(st.Message(), "cardinality violation"):
		// grpc-go's client answer when a unary call meets a method that
		// streams its responses.
		st = status.New(codes.Unimplemented, "natsmesh: "+req.Method+" streams its responses: streaming not supported yet, only unary calls cross the mesh")
	}
	resp := &grpcwire.Response{Payload: out, Header: header, Trailer: trailer, Status: st}
	m, err := grpcwire.ResponseMsg(resp, u.Limits.Now())
	if err != nil {
		return nil, wire.ResponseError(err)
	}
	return pipeline.ReplyFromMsg(wire.ProtoGRPC, m), nil
}
