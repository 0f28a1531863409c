package meshgrpc

import (
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// Proxy is the agent's outbound gRPC listener: any gRPC client pointed at
// it (h2c, with the destination service as :authority) calls mesh services
// over NATS, with no generated code in the mesh. Serve it with
//
//	grpc.NewServer(p.ServerOptions()...)
//
// which installs [Proxy.Handler] as the unknown-service handler with the
// pass-through [grpcwire.RawCodec].
type Proxy struct {
	// Sender sends the calls (the outbound pipeline). Required.
	Sender pipeline.Sender
	// Caller is the name of the service the proxy calls for.
	Caller string
	// Limits, read per call, bound the request; nil means the defaults.
	Limits pipeline.Limits
	// HalfCloseWait is how long the proxy waits, after a call's first
	// message, for the half-close that marks it unary; a stream that keeps
	// its send side open longer is answered Unimplemented. Default
	// DefaultHalfCloseWait.
	HalfCloseWait time.Duration
	// Domains are the mesh domains accepted after a service name in the
	// :authority (see [wire.ParseHost]).
	Domains []string
	// Resolve, when set, maps a call's :authority to the destination
	// service and subset instead of [wire.ParseHost]. The service is
	// validated either way; an error is an Unimplemented (no route) answer.
	Resolve func(authority string) (service, subset string, err error)
}

// ServerOptions are the options a grpc.Server needs to serve p: the
// pass-through codec and p.Handler for every method.
func (p *Proxy) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(grpcwire.RawCodec{}), grpc.UnknownServiceHandler(p.Handler)}
}

// Handler forwards one unary call from stream over NATS, for use with
// grpc.UnknownServiceHandler and a [grpcwire.RawCodec] server codec. It reads
// the one request message, sends it like [Client] (metadata and deadline
// propagated), and writes back the header metadata, the response message,
// the trailer metadata and the status.
//
// The proxy has no schema, so it tells a unary call from a stream by its
// shape: a unary client half-closes right after its one message. A second
// message (client streaming), no half-close within HalfCloseWait of the
// first message (a bidirectional stream waiting for an answer), or no first
// message within firstMessageWait (a stream waiting for the server), gets
// Unimplemented, so no stream hangs or holds up shutdown. A
// server-streaming call looks unary here; the far side refuses it (see
// [Upstream] and [Server]).
func (p *Proxy) Handler(srv any, stream grpc.ServerStream) error {
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
		return grpcwire.Status(err).Err()
	}
	if p.Sender == nil {
		return status.Error(codes.Internal, "natsmesh: meshgrpc.Proxy.Sender is nil")
	}

	in, err := awaitFirstMessage(stream)
	if err != nil {
		return err
	}
	wait := p.HalfCloseWait
	if wait <= 0 {
		wait = DefaultHalfCloseWait
	}
	if err := awaitHalfClose(stream, wait); err != nil {
		return err
	}

	req := &grpcwire.Request{Method: method, Metadata: md, Payload: in}
	resp, err := Send(ctx, p.Sender, pipeline.Call{Service: service, Subset: subset, Caller: p.Caller}, req, p.Limits.Now())
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
	return stream.SendMsg(grpcwire.RawFrame(resp.Payload))
}

// firstMessageWait is how long the proxy waits for a call's first message.
// A unary client sends it with the call's headers; a stream that waits for
// the server to speak first would otherwise hold the handler, and shutdown,
// forever.
const firstMessageWait = time.Second

// awaitFirstMessage returns the call's first message, or errStreaming when
// the client half-closes without one (client streaming) or sends none in
// time.
func awaitFirstMessage(stream grpc.ServerStream) (grpcwire.RawFrame, error) {
	type result struct {
		msg grpcwire.RawFrame
		err error
	}
	got := make(chan result, 1)
	go func() {
		var m grpcwire.RawFrame
		err := stream.RecvMsg(&m)
		got <- result{m, err}
	}()
	t := time.NewTimer(firstMessageWait)
	defer t.Stop()
	select {
	case r := <-got:
		if errors.Is(r.err, io.EOF) {
			return nil, errStreaming
		}
		return r.msg, r.err
	case <-t.C:
		// The receive ends when the handler returns and gRPC ends the
		// stream.
		return nil, errStreaming
	case <-stream.Context().Done():
		return nil, status.FromContextError(stream.Context().Err()).Err()
	}
}

// DefaultHalfCloseWait is the default of Proxy.HalfCloseWait. A unary
// client sends its message and the half-close in one burst (grpc-go sets
// END_STREAM on the message's own DATA frame), and on the loopback hop to
// the sidecar they arrive together: the wait only has to outlast a
// scheduling delay or a GC pause, while a bidirectional stream learns that
// it is not carried within it.
const DefaultHalfCloseWait = 500 * time.Millisecond

// awaitHalfClose returns nil when the client half-closes after its one
// message, and errStreaming when it sends another or keeps the stream open.
func awaitHalfClose(stream grpc.ServerStream, wait time.Duration) error {
	got := make(chan error, 1)
	go func() {
		var extra grpcwire.RawFrame
		got <- stream.RecvMsg(&extra)
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-got:
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
		return errStreaming
	case <-t.C:
		// The receive goroutine ends when the handler returns and gRPC
		// cancels the stream.
		return errStreaming
	case <-stream.Context().Done():
		return status.FromContextError(stream.Context().Err()).Err()
	}
}

func (p *Proxy) resolve(authority string) (service, subset string, err error) {
	if p.Resolve == nil {
		return wire.ParseHost(authority, p.Domains)
	}
	service, subset, err = p.Resolve(authority)
	if err != nil {
		return "", "", &wire.Error{Kind: wire.KindNoRoute, Message: err.Error(), Err: err}
	}
	if err := wire.ValidateName("service", service); err != nil {
		return "", "", &wire.Error{Kind: wire.KindNoRoute, Message: "no service for :authority " + authorityForMessage(authority) + ": " + err.Error(), Err: err}
	}
	return service, subset, nil
}

func authorityForMessage(a string) string {
	if len(a) > 64 {
		a = a[:64]
	}
	return "\"" + a + "\""
}
