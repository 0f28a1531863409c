package meshgrpc

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/meshgrpc/internal/grpcstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// Server serves gRPC services over NATS as a grpc.ServiceRegistrar, so
// that generated code (pb.RegisterXServer(s, impl)) serves mesh calls with
// no sidecar hop: the agent's inbound pipeline passes each call to
// [Server.ServeCall]. The zero value serves with the default limits and no
// interceptors; use [NewServer] for options.
//
// Unary and streaming methods are served. A call marked a stream
// (grpcwire.HeaderGRPCStream) runs a streaming method's handler with a
// grpc.ServerStream whose RecvMsg reads the call's messages as they
// arrive and whose SendMsg sends one once the mesh has taken it or
// holds it (up to 32 KiB waiting, which leave together): the
// answer streams from the handler's first header or message (its head the
// header metadata, its trailer the status and trailer metadata), or is
// one message when the handler is done at once (within a few
// milliseconds of its header, or before it). Closing the answer before its
// end (the caller cancelled) cancels the handler's context. A unary
// method called as a stream (as the sidecar's proxy calls every method)
// is served with the call's one message.
type Server struct {
	limits            pipeline.Limits
	interceptor       grpc.UnaryServerInterceptor
	streamInterceptor grpc.StreamServerInterceptor

	mu       sync.RWMutex
	services map[string]*grpcService
}

type grpcService struct {
	impl     any
	methods  map[string]*grpc.MethodDesc
	streams  map[string]*grpc.StreamDesc
	metadata any
}

var (
	_ grpc.ServiceRegistrar = (*Server)(nil)
	_ pipeline.Handler      = (*Server)(nil)
)

// ServerOption configures a [Server].
type ServerOption func(*Server)

// WithLimits bounds the replies, read at each call (the agent gives its
// connection's, [pipeline.ConnLimits]); the default is wire's defaults.
func WithLimits(lim pipeline.Limits) ServerOption {
	return func(s *Server) { s.limits = lim }
}

// WithStreamInterceptors adds stream interceptors, which run in the order
// given (the first is outermost), after those added before, as with
// grpc.ChainStreamInterceptor.
func WithStreamInterceptors(is ...grpc.StreamServerInterceptor) ServerOption {
	return func(s *Server) {
		all := is
		if s.streamInterceptor != nil {
			all = append([]grpc.StreamServerInterceptor{s.streamInterceptor}, is...)
		}
		s.streamInterceptor = chainStream(all)
	}
}

// WithUnaryInterceptors adds unary interceptors, which run in the order given
// (the first is outermost), after those added before, as with
// grpc.ChainUnaryInterceptor.
func WithUnaryInterceptors(is ...grpc.UnaryServerInterceptor) ServerOption {
	return func(s *Server) {
		all := is
		if s.interceptor != nil {
			all = append([]grpc.UnaryServerInterceptor{s.interceptor}, is...)
		}
		s.interceptor = chainUnary(all)
	}
}

// NewServer returns a server with opts applied.
func NewServer(opts ...ServerOption) *Server {
	s := &Server{}
	for _, o := range opts {
		o(s)
	}
	return s
}

// RegisterService registers a service and its implementation, as
// grpc.Server does. Like grpc.Server, it panics when impl does not implement
// desc.HandlerType or when the service is already registered: both are
// programming errors found at start-up.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	if impl != nil && desc.HandlerType != nil {
		ht := reflect.TypeOf(desc.HandlerType).Elem()
		if st := reflect.TypeOf(impl); !st.Implements(ht) {
			panic(fmt.Sprintf("meshgrpc: Server.RegisterService found the handler of type %v that does not satisfy %v", st, ht))
		}
	}
	svc := &grpcService{impl: impl, methods: make(map[string]*grpc.MethodDesc), streams: make(map[string]*grpc.StreamDesc), metadata: desc.Metadata}
	for i := range desc.Methods {
		d := &desc.Methods[i]
		svc.methods[d.MethodName] = d
	}
	for i := range desc.Streams {
		d := &desc.Streams[i]
		svc.streams[d.StreamName] = d
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.services[desc.ServiceName]; dup {
		panic(fmt.Sprintf("meshgrpc: Server.RegisterService found duplicate service registration for %q", desc.ServiceName))
	}
	if s.services == nil {
		s.services = make(map[string]*grpcService)
	}
	s.services[desc.ServiceName] = svc
}

// ServeCall serves one inbound gRPC call and returns the reply to send; it
// is the in-process gRPC kind of [pipeline.Handler]. A call marked a
// stream (grpcwire.HeaderGRPCStream) is served as [Server] says; this
// says how a unary one is.
//
// The handler's context is ctx (which carries the call's deadline and
// caller: see [pipeline.CallerFrom]) with the request metadata as incoming
// metadata, a peer naming the caller, and a grpc.ServerTransportStream, so
// grpc.SetHeader, grpc.SendHeader, grpc.SetTrailer and grpc.Method work.
// The reply carries the handler's status (an error that is no status error
// is Unknown, a context error DeadlineExceeded or Canceled), its response
// message on success, and the header and trailer metadata. An unknown
// service or method, or a streaming method, is the service's Unimplemented
// answer; a panic in the handler is recovered into an Internal status. A
// message that is no gRPC request, or a reply past the limits, is a mesh
// error.
func (s *Server) ServeCall(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
	req, err := grpcwire.DecodeCall(c.Header, c.Body.Bytes, c.Op)
	if err != nil {
		return nil, err
	}
	if req.Stream || c.Body.Streamed() {
		return s.serveStream(ctx, c, req)
	}
	// The answer is a value, not a pointer (the encoder keeps none of
	// it): that saves the allocation its Reply costs.
	resp := s.serve(ctx, c.Caller, req)
	// An answer larger than max_payload streams (the inbound dispatch
	// sends it in pieces).
	m, err := grpcwire.ResponseMsg(&resp, grpcstream.MessageLimits(s.limits.Now()))
	if err != nil {
		return nil, wire.ResponseError(err)
	}
	return pipeline.ReplyFromMsg(wire.ProtoGRPC, m), nil
}

// serve runs req for caller ("" when the subject named none).
func (s *Server) serve(ctx context.Context, caller string, req *grpcwire.Request) grpcwire.Response {
	svcName, methodName := grpcwire.SplitMethod(req.Method)
	s.mu.RLock()
	svc := s.services[svcName]
	s.mu.RUnlock()
	if svc == nil {
		return grpcwire.Response{Status: status.Newf(codes.Unimplemented, "unknown service %v", svcName)}
	}
	md := svc.methods[methodName]
	if md == nil {
		if svc.streams[methodName] != nil {
			return grpcwire.Response{Status: status.Newf(codes.Unimplemented, "natsmesh: %s is a streaming method: call it as a stream (%s)", req.Method, grpcwire.HeaderGRPCStream)}
		}
		return grpcwire.Response{Status: status.Newf(codes.Unimplemented, "unknown method %v for service %v", methodName, svcName)}
	}

	if req.Metadata == nil {
		req.Metadata = metadata.MD{}
	}
	ctx = metadata.NewIncomingContext(ctx, req.Metadata)
	if caller != "" {
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
	header, trailer, _ := stream.finish()
	resp := grpcwire.Response{Header: header, Trailer: trailer}
	if err != nil {
		resp.Status = handlerStatus(err)
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
	// sent, for a stream, is closed when its header is sent (SendHeader,
	// or its first message); nil for a unary call.
	sent chan struct{}

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
	s.sendLocked()
	return nil
}

// send sends the header unless it was: a stream's first message does.
func (s *serverStream) send() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.headerSent {
		s.sendLocked()
	}
}

func (s *serverStream) sendLocked() {
	s.headerSent = true
	if s.sent != nil {
		close(s.sent)
	}
}

// sentHeader is the header once sent.
func (s *serverStream) sentHeader() metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header
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
// change the metadata being sent, and tells whether the header was sent.
func (s *serverStream) finish() (header, trailer metadata.MD, sent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	return s.header, s.trailer, s.headerSent
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

func chainStream(is []grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	switch len(is) {
	case 0:
		return nil
	case 1:
		return is[0]
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return is[0](srv, ss, info, chainedStreamHandler(is, 0, info, handler))
	}
}

func chainedStreamHandler(is []grpc.StreamServerInterceptor, cur int, info *grpc.StreamServerInfo, final grpc.StreamHandler) grpc.StreamHandler {
	if cur == len(is)-1 {
		return final
	}
	return func(srv any, ss grpc.ServerStream) error {
		return is[cur+1](srv, ss, info, chainedStreamHandler(is, cur+1, info, final))
	}
}

// GetServiceInfo returns the registered services and their methods, as
// grpc.Server's does: gRPC reflection (reflection.Register) lists them
// from it.
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	info := make(map[string]grpc.ServiceInfo, len(s.services))
	for name, svc := range s.services {
		methods := make([]grpc.MethodInfo, 0, len(svc.methods)+len(svc.streams))
		for m := range svc.methods {
			methods = append(methods, grpc.MethodInfo{Name: m})
		}
		for m, d := range svc.streams {
			methods = append(methods, grpc.MethodInfo{Name: m, IsClientStream: d.ClientStreams, IsServerStream: d.ServerStreams})
		}
		info[name] = grpc.ServiceInfo{Methods: methods, Metadata: svc.metadata}
	}
	return info
}
