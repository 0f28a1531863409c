package meshgrpc

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/internal/h2c"
	"github.com/natsmesh/natsmesh/internal/headerbudget"
	"github.com/natsmesh/natsmesh/meshgrpc/internal/grpcstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// Proxy is the agent's outbound gRPC listener: any gRPC client pointed at
// it (h2c, with the destination service as :authority) calls mesh services
// over NATS, unary and streaming methods alike, with no generated code in
// the mesh. Serve it with
//
//	grpc.NewServer(p.ServerOptions()...)
//
// which installs [Proxy.Handler] as the unknown-service handler with the
// pass-through [grpcwire.RawCodec]. A listener that serves HTTP/1.1 too
// hands its gRPC requests (HTTP/2, content-type application/grpc) to that
// server's ServeHTTP; with Resolve fixing the destination, it is a bind
// port for gRPC clients.
type Proxy struct {
	// Sender sends the calls (the outbound pipeline). Required.
	Sender pipeline.Sender
	// Caller is the name of the service the proxy calls for.
	Caller string
	// Limits, read per call, bound the request; nil means the defaults.
	Limits pipeline.Limits
	// HalfCloseWait is how long the proxy waits for a call's client to
	// send its next message or half-close, from the call's start and
	// after each message, before it sends the call: a call whose client
	// has sent all of its messages by then (every unary call, and most
	// server-streaming ones) crosses the mesh with a whole body, which the
	// policies may send again (retries, hedges, mirrors); a call still
	// sending (a client or bidirectional stream) is sent then, its body a
	// stream. Default DefaultHalfCloseWait.
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
// pass-through codec and p.Handler for every method, and the mesh's HTTP/2
// bounds (internal/h2c): a header list longer than p's limits admit
// (wire.Limits.HeaderListSize) is refused while it is decoded, the
// stream reset (grpc-go's default, 16 MiB, let a few hundred kilobytes
// of HPACK references make hundreds of megabytes of fields), and one
// connection has at most h2c.MaxConcurrentStreams calls open at once
// (grpc-go's default has no bound). [Proxy.Handler] takes each call's
// headers from its connection's budget (internal/headerbudget: serve a
// listener wrapped by headerbudget.Listen, or through an http.Server whose
// ConnContext gives one).
func (p *Proxy) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(grpcwire.RawCodec{}), grpc.UnknownServiceHandler(p.Handler),
		grpc.MaxHeaderListSize(p.Limits.Now().HeaderListSize()), grpc.MaxConcurrentStreams(h2c.MaxConcurrentStreams)}
}

// Handler forwards one call from stream over NATS, for use with
// grpc.UnknownServiceHandler and a [grpcwire.RawCodec] server codec.
//
// The proxy has no schema, so it cannot tell a unary method from a
// streaming one: it sends every call as a stream (grpcwire.HeaderGRPCStream),
// the client's messages framed as the request body, whole when the client
// half-closed within HalfCloseWait, else streamed as the client sends
// them. It propagates the metadata and the deadline (grpc-timeout), writes
// back the reply's header metadata (at once for a streamed reply, as the
// service sent it), its messages as they arrive, and its trailer metadata
// and status. A client that cancels ends the call: the reply stream is
// closed, which cancels the service's handler.
func (p *Proxy) Handler(srv any, stream grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(stream)
	if !ok {
		return status.Error(codes.Internal, "natsmesh: no method in stream")
	}
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	// The connection's budget of held headers (internal/headerbudget):
	// past it, the call is refused as one over the per-call limit is.
	size := headerbudget.Size(md, method)
	budget, ok := headerbudget.Hold(ctx, size)
	if !ok {
		return grpcwire.Status(wire.Errorf(wire.KindHeadersTooLarge, "the calls open on this connection hold over %d bytes of headers", headerbudget.Max)).Err()
	}
	defer budget.Give(size)
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
	lim := p.Limits.Now()

	in := grpcstream.NewPipe()
	// The receive ends at the client's half-close, or when the call
	// ends (gRPC cancels the stream's context once Handler returns).
	go receive(stream, in)
	defer in.Close()
	body, err := p.requestBody(ctx, in, lim)
	if err != nil {
		return err
	}
	m, err := grpcwire.EncodeRequest(&grpcwire.Request{Method: method, Metadata: md, Payload: body.Bytes, Stream: true}, lim)
	if tooLarge(err) && !body.Streamed() {
		// Too large for one message: the body streams, and can be
		// sent again.
		m, err = grpcwire.EncodeRequest(&grpcwire.Request{Method: method, Metadata: md, Stream: true}, lim)
		body = grpcstream.Replayable(body.Bytes)
	}
	if err != nil {
		return grpcwire.Status(err).Err()
	}
	call := &pipeline.Call{Service: service, Subset: wire.NormalSubset(subset), Caller: p.Caller,
		Proto: wire.ProtoGRPC, Op: method, Header: m.Header, Body: body}
	reply, err := p.Sender.Send(ctx, call)
	if err != nil {
		return streamFailure(ctx, err).Err()
	}
	if reply.Streamed() {
		// Closed before its end, it cancels the call (the client went
		// away, or failed); after, it is released.
		defer reply.Body.Stream.Close()
	}
	rr, err := grpcstream.ReadReply(reply)
	if err != nil {
		return grpcwire.Status(err).Err()
	}
	if reply.Streamed() {
		// The service sent its headers before its first message: so
		// does the proxy.
		if err := stream.SendHeader(rr.Header); err != nil {
			return err
		}
	} else if len(rr.Header) > 0 {
		if err := stream.SetHeader(rr.Header); err != nil {
			return err
		}
	}
	for {
		msg, err := rr.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return streamFailure(ctx, err).Err()
		}
		if err := stream.SendMsg(grpcwire.RawFrame(msg)); err != nil {
			return err
		}
	}
	stream.SetTrailer(rr.Trailer)
	return rr.Status.Err()
}

// DefaultHalfCloseWait is the default of Proxy.HalfCloseWait. A unary
// client sends its message and the half-close in one burst (grpc-go sets
// END_STREAM on the message's own DATA frame), and on the loopback hop to
// the sidecar they arrive together: the wait only has to outlast a
// scheduling delay, while a stream that keeps sending waits that long for
// its call to start. A unary call that misses it is carried all the same,
// as a stream (which the policies do not send again).
const DefaultHalfCloseWait = 5 * time.Millisecond

// receive reads the client's messages into in, framed, until the client
// half-closes (in ends with io.EOF), the stream fails (in ends with its
// error), or in's reader closes it.
func receive(stream grpc.ServerStream, in *grpcstream.Pipe) {
	ctx := stream.Context()
	for {
		var f grpcwire.Framed
		if err := stream.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			in.End(err, nil)
			return
		}
		if in.Write(ctx, f) != nil {
			return
		}
	}
}

// requestBody is the body of the call whose messages in receives: whole
// when the client half-closes within HalfCloseWait (and its messages are
// no larger than one gRPC message may be), else a stream of them, those
// read so far first.
func (p *Proxy) requestBody(ctx context.Context, in *grpcstream.Pipe, lim wire.Limits) (pipeline.Body, error) {
	wait := p.HalfCloseWait
	if wait <= 0 {
		wait = DefaultHalfCloseWait
	}
	var first [][]byte
	size := int64(0)
	for {
		wctx, cancel := context.WithTimeout(ctx, wait)
		b, err := in.Next(wctx)
		waited := wctx.Err() != nil
		cancel()
		switch {
		case err == nil:
			first = append(first, b)
			if size += int64(len(b)); size <= grpcstream.MessageLimits(lim).PayloadLimit() {
				continue
			}
		case errors.Is(err, io.EOF):
			if len(first) == 1 {
				return pipeline.Body{Bytes: first[0]}, nil
			}
			whole := make([]byte, 0, size)
			for _, b := range first {
				whole = append(whole, b...)
			}
			return pipeline.Body{Bytes: whole}, nil
		case ctx.Err() != nil:
			return pipeline.Body{}, status.FromContextError(ctx.Err()).Err()
		case !waited:
			// The client's stream failed.
			return pipeline.Body{}, status.Convert(err).Err()
		}
		return pipeline.Body{Stream: &grpcstream.Prefixed{First: first, Rest: in}}, nil
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
