package bridge

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// GRPCServer serves gRPC services over NATS as a grpc.ServiceRegistrar, so
// that generated code (pb.RegisterXServer(s, impl)) serves mesh calls with
// no sidecar hop. The agent subscribes and passes each request message to
// [GRPCServer.ServeMsg]. The zero value serves with the default limits and no
// interceptors; use [NewGRPCServer] for options.
//
// Only unary methods are served; the streaming methods of a registered
// service answer Unimplemented.
type GRPCServer struct {
	limits      Limits
	interceptor grpc.UnaryServerInterceptor

	mu       sync.RWMutex
	services map[string]*grpcService
}

type grpcService struct {
	impl    any
	methods map[string]*grpc.MethodDesc
	streams map[string]bool
}

var _ grpc.ServiceRegistrar = (*GRPCServer)(nil)

// GRPCServerOption configures a [GRPCServer].
type GRPCServerOption func(*GRPCServer)

// WithGRPCLimits bounds the replies; the default is the zero Limits.
func WithGRPCLimits(lim Limits) GRPCServerOption {
	return func(s *GRPCServer) { s.limits = lim }
}

// WithUnaryInterceptors adds unary interceptors, which run in the order given
// (the first is outermost), after those added before, as with
// grpc.ChainUnaryInterceptor.
func WithUnaryInterceptors(is ...grpc.UnaryServerInterceptor) GRPCServerOption {
	return func(s *GRPCServer) {
		all := is
		if s.interceptor != nil {
			all = append([]grpc.UnaryServerInterceptor{s.interceptor}, is...)
		}
		s.interceptor = chainUnary(all)
	}
}

// NewGRPCServer returns a server with opts applied.
func NewGRPCServer(opts ...GRPCServerOption) *GRPCServer {
	s := &GRPCServer{}
	for _, o := range opts {
		o(s)
	}
	return s
}

// RegisterService registers a service and its implementation, as
// grpc.Server does. Like grpc.Server, it panics when impl does not implement
// desc.HandlerType or when the service is already registered: both are
// programming errors found at start-up.
func (s *GRPCServer) RegisterService(desc *grpc.ServiceDesc, impl any) {
	if impl != nil && desc.HandlerType != nil {
		ht := reflect.TypeOf(desc.HandlerType).Elem()
		if st := reflect.TypeOf(impl); !st.Implements(ht) {
			panic(fmt.Sprintf("bridge: GRPCServer.RegisterService found the handler of type %v that does not satisfy %v", st, ht))
		}
	}
	svc := &grpcService{impl: impl, methods: make(map[string]*grpc.MethodDesc), streams: make(map[string]bool)}
	for i := range desc.Methods {
		d := &desc.Methods[i]
		svc.methods[d.MethodName] = d
	}
	for _, d := range desc.Streams {
		svc.streams[d.StreamName] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.services[desc.ServiceName]; dup {
		panic(fmt.Sprintf("bridge: GRPCServer.RegisterService found duplicate service registration for %q", desc.ServiceName))
	}
	if s.services == nil {
		s.services = make(map[string]*grpcService)
	}
	s.services[desc.ServiceName] = svc
}

// callerKey is the context key of the caller's name.
type callerKey struct{}

// CallerFromContext returns the name of the calling service of a call served
// by [GRPCServer], read from the subject (which the broker vouches for).
func CallerFromContext(ctx context.Context) (string, bool) {
	c, ok := ctx.Value(callerKey{}).(string)
	return c, ok
}

// ServeMsg serves one request message and returns the reply to send.
//
// The handler's context is ctx with the message's timeout as its deadline,
// the request metadata as incoming metadata, the caller from the subject
// (see [CallerFromContext]) and a grpc.ServerTransportStream, so
// grpc.SetHeader, grpc.SendHeader, grpc.SetTrailer and grpc.Method work.
// The reply carries the handler's status (an error that is no status error
// is Unknown, a context error DeadlineExceeded or Canceled), its response
// message on success, and the header and trailer metadata. An unknown
// service or method, or a streaming method, is the service's Unimplemented
// answer; a panic in the handler is recovered into an Internal status. A
// message that is no gRPC request, or a reply past the limits, gets a mesh
// error reply.
func (s *GRPCServer) ServeMsg(ctx context.Context, m *nats.Msg) *nats.Msg {
	req, caller, err := decodeGRPCRequest(m)
	if err != nil {
		return ErrorMsg(FromError(err))
	}
	resp := s.serve(ctx, caller, req)
	reply, err := GRPCResponseMsg(resp, s.limits)
	if err != nil {
		return ErrorMsg(FromError(err))
	}
	return reply
}

// serve runs req for caller ("" when the subject named none).
func (s *GRPCServer) serve(ctx context.Context, caller string, req *GRPCRequest) *GRPCResponse {
	svcName, methodName := splitGRPCMethod(req.Method)
	s.mu.RLock()
	svc := s.services[svcName]
	s.mu.RUnlock()
	if svc == nil {
		return &GRPCResponse{Status: status.Newf(codes.Unimplemented, "unknown service %v", svcName)}
	}
	md := svc.methods[methodName]
	if md == nil {
		if svc.streams[methodName] {
			return &GRPCResponse{Status: status.Convert(errStreaming)}
		}
		return &GRPCResponse{Status: status.Newf(codes.Unimplemented, "unknown method %v for service %v", methodName, svcName)}
	}

	ctx, cancel := withRequestTimeout(ctx, req.Timeout)
	defer cancel()
	if req.Metadata == nil {
		req.Metadata = metadata.MD{}
	}
	ctx = metadata.NewIncomingContext(ctx, req.Metadata)
	if caller != "" {
		ctx = context.WithValue(ctx, callerKey{}, caller)
		ctx = peer.NewContext(ctx, &peer.Peer{Addr: meshAddr(caller)})
	}
	stream := &serverStream{method: req.Method}
	ctx = grpc.NewContextWithServerTransportStream(ctx, stream)

	codec := protoCodec()
	dec := func(v any) error {
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(req.Payload)}, v); err != nil {
			return status.Errorf(codes.Internal, "grpc: error unmarshalling request: %v", err)
		}
		return nil
	}
	out, err := callHandler(ctx, md, svc.impl, dec, s.interceptor)
	header, trailer := stream.finish()
	resp := &GRPCResponse{Header: header, Trailer: trailer}
	if err != nil {
		st, ok := status.FromError(err)
		if !ok {
			if cs := status.FromContextError(err); cs.Code() != codes.Unknown {
				st = cs
			}
		}
		resp.Status = st
		return resp
	}
	data, err := codec.Marshal(out)
	if err != nil {
		resp.Status = status.Newf(codes.Internal, "grpc: error while marshaling: %v", err)
		return resp
	}
	resp.Payload = data.Materialize()
	data.Free()
	resp.Status = status.New(codes.OK, "")
	return resp
}

// callHandler runs a method handler, turning a panic into an Internal status.
func callHandler(ctx context.Context, md *grpc.MethodDesc, impl any, dec func(any) error, ic grpc.UnaryServerInterceptor) (out any, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, status.Errorf(codes.Internal, "natsmesh: handler panic: %v", p)
		}
	}()
	return md.Handler(impl, ctx, dec, ic)
}

// meshAddr is the net.Addr of a caller seen through the mesh.
type meshAddr string

func (a meshAddr) Network() string { return "natsmesh" }
func (a meshAddr) String() string  { return string(a) }

// serverStream is the grpc.ServerTransportStream of a call served over NATS:
// it collects the header and trailer metadata that go into the one reply.
type serverStream struct {
	method string

	mu         sync.Mutex
	header     metadata.MD
	trailer    metadata.MD
	headerSent bool
	done       bool
}

var _ grpc.ServerTransportStream = (*serverStream)(nil)

func (s *serverStream) Method() string { return s.method }

func (s *serverStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headerSent || s.done {
		return status.Error(codes.Internal, "transport: the stream is done or SetHeader was called after headers were sent")
	}
	s.header = metadata.Join(s.header, md)
	return nil
}

// SendHeader fixes the header metadata; over NATS it travels with the reply.
func (s *serverStream) SendHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headerSent || s.done {
		return status.Error(codes.Internal, "transport: SendHeader called multiple times")
	}
	s.header = metadata.Join(s.header, md)
	s.headerSent = true
	return nil
}

func (s *serverStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return status.Error(codes.Internal, "transport: SetTrailer called after the call ended")
	}
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// finish ends the call, so that a handler's goroutine left behind cannot
// change the metadata being sent.
func (s *serverStream) finish() (header, trailer metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	return s.header, s.trailer
}

func chainUnary(is []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	switch len(is) {
	case 0:
		return nil
	case 1:
		return is[0]
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return is[0](ctx, req, info, chainedHandler(is, 0, info, handler))
	}
}

func chainedHandler(is []grpc.UnaryServerInterceptor, cur int, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) grpc.UnaryHandler {
	if cur == len(is)-1 {
		return final
	}
	return func(ctx context.Context, req any) (any, error) {
		return is[cur+1](ctx, req, info, chainedHandler(is, cur+1, info, final))
	}
}

// ServeGRPCUpstream forwards a request message to a local gRPC server over
// cc (a grpc.ClientConn dialed to the local service, h2c) with [RawCodec],
// so it needs no generated code, and returns the reply to send: the
// service's status, response message, header and trailer metadata.
//
// The local call gets the message's timeout as its deadline and the request
// metadata as outgoing metadata, plus [MetadataCaller] set from the subject
// when it is a mesh subject. A failure to reach the service at all (codes.Unavailable
// before any transport stream to it existed: connection refused, no address)
// is a KindUpstream mesh error, so callers and policies can tell it from the
// service's own Unavailable; a malformed message or a reply past lim gets a
// mesh error reply too.
func ServeGRPCUpstream(ctx context.Context, cc grpc.ClientConnInterface, m *nats.Msg, lim Limits) *nats.Msg {
	req, caller, err := decodeGRPCRequest(m)
	if err != nil {
		return ErrorMsg(FromError(err))
	}
	ctx, cancel := withRequestTimeout(ctx, req.Timeout)
	defer cancel()
	// The metadata is the decoder's own, fresh map: set the caller in it.
	md := req.Metadata
	if md == nil {
		md = metadata.MD{}
	}
	if caller != "" {
		md.Set(MetadataCaller, caller)
	}
	ctx = metadata.NewOutgoingContext(ctx, md)

	in, out := RawFrame(req.Payload), RawFrame(nil)
	var header, trailer metadata.MD
	var p peer.Peer
	err = cc.Invoke(ctx, req.Method, &in, &out,
		grpc.ForceCodecV2(RawCodec{}), grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p))
	st, _ := status.FromError(err)
	if st.Code() == codes.Unavailable && p.Addr == nil {
		return ErrorMsg(&Error{Kind: KindUpstream, Message: st.Message(), Err: err})
	}
	resp := &GRPCResponse{Payload: out, Header: header, Trailer: trailer, Status: st}
	reply, err := GRPCResponseMsg(resp, lim)
	if err != nil {
		return ErrorMsg(FromError(err))
	}
	return reply
}
