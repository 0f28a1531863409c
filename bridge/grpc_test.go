package bridge

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// runGRPCTestNATS starts an in-process nats-server for one test and returns a
// connection to it.
func runGRPCTestNATS(t *testing.T) *nats.Conn {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serveGRPCOverNATS subscribes service's subjects and answers each message
// with serve.
func serveGRPCOverNATS(t *testing.T, nc *nats.Conn, service string, serve func(ctx context.Context, m *nats.Msg) *nats.Msg) {
	t.Helper()
	subjects, queues := ServiceSubjects(service, "")
	var wg sync.WaitGroup
	// Cleanups run last-in first-out: handlers finish before nc closes.
	t.Cleanup(wg.Wait)
	for i := range subjects {
		sub, err := nc.QueueSubscribe(subjects[i], queues[i], func(m *nats.Msg) {
			wg.Go(func() {
				if err := m.RespondMsg(serve(context.Background(), m)); err != nil {
					t.Errorf("respond: %v", err)
				}
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// startGRPCServer runs a real gRPC server on a loopback port.
func startGRPCServer(t *testing.T, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	register(s)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func dialGRPC(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// testService is the grpc.testing.TestService of the tests: UnaryCall echoes
// the payload, answers the requested status with a BadRequest detail, sets
// header and trailer metadata, and records what it saw.
type testService struct {
	testpb.UnimplementedTestServiceServer
	mu       sync.Mutex
	md       metadata.MD
	deadline time.Time
	hasDL    bool
	block    bool
}

func (s *testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	dl, ok := ctx.Deadline()
	s.mu.Lock()
	s.md, s.deadline, s.hasDL = md, dl, ok
	block := s.block
	s.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err := grpc.SetHeader(ctx, metadata.Pairs("h-key", "h-val", "h-bin", "\x00\xff")); err != nil {
		return nil, err
	}
	if err := grpc.SetTrailer(ctx, metadata.Pairs("t-key", "t-val")); err != nil {
		return nil, err
	}
	if rs := req.GetResponseStatus(); rs != nil && rs.Code != 0 {
		st, err := status.New(codes.Code(rs.Code), rs.Message).WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "payload", Description: "too dull"}},
		})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload(), Username: "echo"}, nil
}

func (s *testService) seen() (metadata.MD, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.md, s.deadline, s.hasDL
}

// meshUpstream runs svc on a real gRPC server and serves service over NATS
// with ServeGRPCUpstream in front of it.
func meshUpstream(t *testing.T, nc *nats.Conn, service string, svc testpb.TestServiceServer) {
	t.Helper()
	addr := startGRPCServer(t, func(s *grpc.Server) { testpb.RegisterTestServiceServer(s, svc) })
	cc := dialGRPC(t, addr)
	serveGRPCOverNATS(t, nc, service, func(ctx context.Context, m *nats.Msg) *nats.Msg {
		return ServeGRPCUpstream(ctx, cc, m, Limits{})
	})
}

func errorInfoReason(st *status.Status) string {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Domain == ErrorInfoDomain {
			return ei.Reason
		}
	}
	return ""
}

// (a) generated client -> GRPCClient -> NATS -> GRPCServer -> generated server.
func TestGRPCClientToGRPCServerHealth(t *testing.T) {
	nc := runGRPCTestNATS(t)
	var caller atomic.Value
	var intercepted atomic.Int32
	gs := NewGRPCServer(WithUnaryInterceptors(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		intercepted.Add(1)
		if c, ok := CallerFromContext(ctx); ok {
			caller.Store(c)
		}
		if m, ok := grpc.Method(ctx); !ok || m != info.FullMethod {
			t.Errorf("grpc.Method = %q, %v; want %q", m, ok, info.FullMethod)
		}
		return h(ctx, req)
	}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	serveGRPCOverNATS(t, nc, "orders", gs.ServeMsg)

	client := healthpb.NewHealthClient(&GRPCClient{Request: Requester(nc), Caller: "web", Service: "orders"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("status %v, want SERVING", resp.Status)
	}
	if got := caller.Load(); got != "web" {
		t.Errorf("caller in context = %v, want web", got)
	}

	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "unknown service" {
		t.Errorf("unknown service: got %v, want NotFound %q", err, "unknown service")
	}
	if errorInfoReason(status.Convert(err)) != "" {
		t.Errorf("the service's own status carries a mesh ErrorInfo: %v", status.Convert(err).Details())
	}
	if n := intercepted.Load(); n != 2 {
		t.Errorf("interceptor ran %d times, want 2", n)
	}

	// Streaming methods of a registered service and unknown methods.
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if st := status.Convert(err); st.Code() != codes.Unimplemented || st.Message() != "natsmesh: streaming not supported yet" {
		t.Errorf("Watch: got %v, want Unimplemented streaming not supported", err)
	}
	c := &GRPCClient{Request: Requester(nc), Caller: "web", Service: "orders"}
	err = c.Invoke(ctx, "/grpc.health.v1.Health/Watch", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if st := status.Convert(err); st.Code() != codes.Unimplemented || st.Message() != "natsmesh: streaming not supported yet" {
		t.Errorf("Watch served as unary: got %v, want Unimplemented streaming not supported", err)
	}
	err = c.Invoke(ctx, "/grpc.health.v1.Health/Nope", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v, want Unimplemented", err)
	}
	err = c.Invoke(ctx, "/no.Such/Method", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if st := status.Convert(err); st.Code() != codes.Unimplemented || st.Message() != "unknown service no.Such" {
		t.Errorf("unknown service: %v, want Unimplemented", err)
	}
}

func TestGRPCServerPanicAndHeaders(t *testing.T) {
	nc := runGRPCTestNATS(t)
	gs := NewGRPCServer(WithUnaryInterceptors(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if r := req.(*testpb.SimpleRequest); r.GetResponseSize() == 1 {
			panic("boom")
		}
		return h(ctx, req)
	}))
	svc := &testService{}
	testpb.RegisterTestServiceServer(gs, svc)
	serveGRPCOverNATS(t, nc, "orders", gs.ServeMsg)
	client := testpb.NewTestServiceClient(&GRPCClient{Request: Requester(nc), Caller: "web", Service: "orders"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 1})
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "natsmesh: handler panic: boom" {
		t.Errorf("panic: got %v", err)
	}
	var header, trailer metadata.MD
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hi")}}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.GetPayload().GetBody()) != "hi" {
		t.Errorf("payload %q", resp.GetPayload().GetBody())
	}
	if header.Get("h-key")[0] != "h-val" || header.Get("h-bin")[0] != "\x00\xff" || trailer.Get("t-key")[0] != "t-val" {
		t.Errorf("header %v trailer %v", header, trailer)
	}
}

// (b) GRPCClient -> NATS -> ServeGRPCUpstream -> real gRPC server.
func TestGRPCClientToUpstream(t *testing.T) {
	nc := runGRPCTestNATS(t)
	svc := &testService{}
	meshUpstream(t, nc, "orders", svc)
	client := testpb.NewTestServiceClient(&GRPCClient{Request: Requester(nc), Caller: "web", Service: "orders"})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(
		"x-user", "alice", "trace-bin", "\x00\x01\xfe\xff", "status", "forged?", "mesh-caller", "forged",
	))
	var header, trailer metadata.MD
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}},
		grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	if string(resp.GetPayload().GetBody()) != "ping" || resp.GetUsername() != "echo" {
		t.Errorf("response %v", resp)
	}
	md, dl, hasDL := svc.seen()
	for k, want := range map[string]string{"x-user": "alice", "trace-bin": "\x00\x01\xfe\xff", "status": "forged?", MetadataCaller: "web"} {
		if got := md.Get(k); len(got) != 1 || got[0] != want {
			t.Errorf("server metadata %q = %q, want [%q]", k, got, want)
		}
	}
	if !hasDL {
		t.Fatal("server saw no deadline")
	}
	if d := deadline.Sub(dl); d < -time.Second || d > 500*time.Millisecond {
		t.Errorf("server deadline differs from the client's by %v", d)
	}
	if header.Get("h-key")[0] != "h-val" || header.Get("h-bin")[0] != "\x00\xff" || trailer.Get("t-key")[0] != "t-val" {
		t.Errorf("header %v trailer %v", header, trailer)
	}

	// An error status with details crosses intact, with header and trailer.
	header, trailer = nil, nil
	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "not now\n100% sure: ü"}},
		grpc.Header(&header), grpc.Trailer(&trailer))
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || st.Message() != "not now\n100% sure: ü" {
		t.Fatalf("got %v", err)
	}
	ds := st.Details()
	if len(ds) != 1 {
		t.Fatalf("details %v", ds)
	}
	br, ok := ds[0].(*errdetails.BadRequest)
	if !ok || len(br.FieldViolations) != 1 || br.FieldViolations[0].Field != "payload" || br.FieldViolations[0].Description != "too dull" {
		t.Errorf("details %v", ds)
	}
	if header.Get("h-key")[0] != "h-val" || trailer.Get("t-key")[0] != "t-val" {
		t.Errorf("header %v trailer %v", header, trailer)
	}
}

func TestServeGRPCUpstreamUnreachable(t *testing.T) {
	nc := runGRPCTestNATS(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there any more
	cc := dialGRPC(t, addr)
	serveGRPCOverNATS(t, nc, "orders", func(ctx context.Context, m *nats.Msg) *nats.Msg {
		return ServeGRPCUpstream(ctx, cc, m, Limits{})
	})
	client := testpb.NewTestServiceClient(&GRPCClient{Request: Requester(nc), Caller: "web", Service: "orders"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{})
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || errorInfoReason(st) != string(KindUpstream) {
		t.Errorf("got %v (details %v), want Unavailable with reason %s", err, st.Details(), KindUpstream)
	}
}

// (c) raw gRPC client -> GRPCProxy -> NATS -> ServeGRPCUpstream -> real server.
func TestGRPCProxyFullPath(t *testing.T) {
	nc := runGRPCTestNATS(t)
	svc := &testService{}
	meshUpstream(t, nc, "orders", svc)
	proxy := &GRPCProxy{Request: Requester(nc), Caller: "web"}
	proxyAddr := startGRPCServer(t, func(*grpc.Server) {}, proxy.ServerOptions()...)
	client := testpb.NewTestServiceClient(dialGRPC(t, proxyAddr, grpc.WithAuthority("orders:9090")))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-user", "bob", "blob-bin", "\xff\x00")
	var header, trailer metadata.MD
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: bytes.Repeat([]byte("x"), 1000)}},
		grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("UnaryCall via proxy: %v", err)
	}
	if len(resp.GetPayload().GetBody()) != 1000 {
		t.Errorf("payload of %d bytes", len(resp.GetPayload().GetBody()))
	}
	md, dl, hasDL := svc.seen()
	if md.Get("x-user")[0] != "bob" || md.Get("blob-bin")[0] != "\xff\x00" || md.Get(MetadataCaller)[0] != "web" {
		t.Errorf("server metadata %v", md)
	}
	if len(md.Get(":authority")) == 1 && md.Get(":authority")[0] == "orders:9090" {
		t.Errorf("the client's :authority crossed the mesh: %v", md)
	}
	if !hasDL || deadline.Sub(dl) < -time.Second || deadline.Sub(dl) > 500*time.Millisecond {
		t.Errorf("server deadline %v (set %v), client's %v", dl, hasDL, deadline)
	}
	if header.Get("h-key")[0] != "h-val" || header.Get("h-bin")[0] != "\x00\xff" || trailer.Get("t-key")[0] != "t-val" {
		t.Errorf("header %v trailer %v", header, trailer)
	}

	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.AlreadyExists), Message: "dup"}},
		grpc.Trailer(&trailer))
	st := status.Convert(err)
	if st.Code() != codes.AlreadyExists || st.Message() != "dup" || len(st.Details()) != 1 || trailer.Get("t-key")[0] != "t-val" {
		t.Errorf("got %v details %v trailer %v", err, st.Details(), trailer)
	}

	// Client streaming is refused.
	cs, err := client.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = cs.Send(&testpb.StreamingInputCallRequest{})
	_ = cs.Send(&testpb.StreamingInputCallRequest{})
	_, err = cs.CloseAndRecv()
	if st := status.Convert(err); st.Code() != codes.Unimplemented || st.Message() != "natsmesh: streaming not supported yet" {
		t.Errorf("client streaming: %v", err)
	}

	// An authority that is no service name.
	bad := testpb.NewTestServiceClient(dialGRPC(t, proxyAddr, grpc.WithAuthority("Not_A.Service")))
	_, err = bad.UnaryCall(ctx, &testpb.SimpleRequest{})
	if st := status.Convert(err); st.Code() != codes.Unimplemented || errorInfoReason(st) != string(KindNoRoute) {
		t.Errorf("bad authority: %v", err)
	}
}

// (d) failures made by the mesh.
func TestGRPCClientMeshFailures(t *testing.T) {
	nc := runGRPCTestNATS(t)
	ctx := context.Background()

	t.Run("no responders", func(t *testing.T) {
		client := testpb.NewTestServiceClient(&GRPCClient{Request: Requester(nc), Caller: "web", Service: "nobody"})
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		st := status.Convert(err)
		if st.Code() != codes.Unavailable || errorInfoReason(st) != string(KindNoResponders) {
			t.Errorf("got %v, want Unavailable no-responders", err)
		}
		// Not a speed check: a timeout would take the call's whole deadline.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("deadline exceeded", func(t *testing.T) {
		gs := NewGRPCServer()
		svc := &testService{block: true}
		testpb.RegisterTestServiceServer(gs, svc)
		serveGRPCOverNATS(t, nc, "slow", gs.ServeMsg)
		client := testpb.NewTestServiceClient(&GRPCClient{Request: Requester(nc), Caller: "web", Service: "slow"})
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("got %v, want DeadlineExceeded", err)
		}
	})

	t.Run("too large", func(t *testing.T) {
		var sent atomic.Int32
		req := func(ctx context.Context, m *nats.Msg) (*nats.Msg, error) {
			sent.Add(1)
			return Request(ctx, nc, m)
		}
		client := testpb.NewTestServiceClient(&GRPCClient{Request: req, Caller: "web", Service: "orders", Limits: Limits{MaxPayload: 64 << 10}})
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 100<<10)}})
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted || errorInfoReason(st) != string(KindTooLarge) {
			t.Errorf("got %v, want ResourceExhausted too-large", err)
		}
		if n := sent.Load(); n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})

	t.Run("streaming", func(t *testing.T) {
		c := &GRPCClient{Request: Requester(nc), Caller: "web", Service: "orders"}
		_, err := c.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/grpc.testing.TestService/StreamingOutputCall")
		if st := status.Convert(err); st.Code() != codes.Unimplemented || st.Message() != "natsmesh: streaming not supported yet" {
			t.Errorf("got %v", err)
		}
	})

	t.Run("bad service name", func(t *testing.T) {
		c := testpb.NewTestServiceClient(&GRPCClient{Request: Requester(nc), Caller: "web", Service: "Bad.Name"})
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("got %v", err)
		}
	})
}

// (e) the wire format.
func TestGRPCRequestRoundTrip(t *testing.T) {
	subject := Subject{Service: "orders", Caller: "web", Proto: ProtoGRPC, Op: "/pkg.Svc/Get"}.String()
	tests := []struct {
		name    string
		req     GRPCRequest
		lim     Limits
		wantMD  metadata.MD
		wantTO  time.Duration // approximate; 0 = none
		wantErr Kind
	}{
		{name: "plain", req: GRPCRequest{Method: "/pkg.Svc/Get", Payload: []byte("abc")}, wantMD: nil},
		{
			name: "metadata",
			req: GRPCRequest{Method: "/pkg.Svc/Get", Metadata: metadata.MD{
				"x-a": {"1", "2"}, "bin-bin": {"\x00\xff\x10"}, "status": {"reserved"}, "description": {"d"},
				"mesh-path": {"/x"}, "nats-msg-id": {"n"}, "Upper": {"u"}, "user-agent": {"ua"}, "grpc-trace-bin": {"\x01"},
			}},
			wantMD: metadata.MD{
				"x-a": {"1", "2"}, "bin-bin": {"\x00\xff\x10"}, "status": {"reserved"}, "description": {"d"},
				"mesh-path": {"/x"}, "nats-msg-id": {"n"}, "upper": {"u"}, "user-agent": {"ua"}, "grpc-trace-bin": {"\x01"},
			},
		},
		{
			name: "transport metadata dropped",
			req: GRPCRequest{Method: "/pkg.Svc/Get", Metadata: metadata.MD{
				":authority": {"orders"}, "content-type": {"application/grpc"}, "te": {"trailers"},
				"grpc-encoding": {"gzip"}, "grpc-accept-encoding": {"gzip"}, "connection": {"close"}, "mesh-caller": {"forged"},
				"keep": {"me"},
			}},
			wantMD: metadata.MD{"keep": {"me"}},
		},
		{name: "timeout", req: GRPCRequest{Method: "/pkg.Svc/Get", Timeout: 1500 * time.Millisecond}, wantTO: 1500 * time.Millisecond},
		{name: "grpc-timeout", req: GRPCRequest{Method: "/pkg.Svc/Get", Metadata: metadata.MD{"grpc-timeout": {"250m"}}}, wantTO: 250 * time.Millisecond},
		{name: "bad method", req: GRPCRequest{Method: "pkg.Svc/Get"}, wantErr: KindBadRequest},
		{name: "method with space", req: GRPCRequest{Method: "/pkg.Svc/G et"}, wantErr: KindBadRequest},
		{name: "bad key", req: GRPCRequest{Method: "/pkg.Svc/Get", Metadata: metadata.MD{"x y": {"1"}}}, wantErr: KindBadRequest},
		{name: "control byte", req: GRPCRequest{Method: "/pkg.Svc/Get", Metadata: metadata.MD{"x": {"a\r\nb: c"}}}, wantErr: KindBadRequest},
		{name: "too many", req: GRPCRequest{Method: "/pkg.Svc/Get", Metadata: metadata.MD{"x": make([]string, 101)}}, wantErr: KindHeadersTooLarge},
		{name: "header bytes", req: GRPCRequest{Method: "/pkg.Svc/Get", Metadata: metadata.MD{"x": {string(bytes.Repeat([]byte("v"), 65<<10))}}}, wantErr: KindHeadersTooLarge},
		{name: "too large", req: GRPCRequest{Method: "/pkg.Svc/Get", Payload: make([]byte, 1<<20)}, wantErr: KindTooLarge},
		{name: "small limit", req: GRPCRequest{Method: "/pkg.Svc/Get", Payload: make([]byte, 1000)}, lim: Limits{MaxPayload: 1000}, wantErr: KindTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := EncodeGRPCRequest(subject, &tt.req, tt.lim)
			if tt.wantErr != "" {
				if e := FromError(err); err == nil || e.Kind != tt.wantErr {
					t.Fatalf("err %v, want kind %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeGRPCRequest(m)
			if err != nil {
				t.Fatal(err)
			}
			if got.Method != tt.req.Method || !bytes.Equal(got.Payload, tt.req.Payload) {
				t.Errorf("got %+v", got)
			}
			if !mdEqual(got.Metadata, tt.wantMD) {
				t.Errorf("metadata %v, want %v", got.Metadata, tt.wantMD)
			}
			if d := got.Timeout - tt.wantTO; d > 0 || d < -100*time.Millisecond {
				t.Errorf("timeout %v, want about %v", got.Timeout, tt.wantTO)
			}
		})
	}
}

func mdEqual(a, b metadata.MD) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb := b[k]
		if len(va) != len(vb) {
			return false
		}
		for i := range va {
			if va[i] != vb[i] {
				return false
			}
		}
	}
	return true
}

func TestDecodeGRPCRequestErrors(t *testing.T) {
	good := Subject{Service: "orders", Caller: "web", Proto: ProtoGRPC, Op: "/pkg.Svc/Get"}.String()
	tests := []struct {
		name    string
		msg     *nats.Msg
		wantErr bool
		method  string
	}{
		{name: "method from subject", msg: &nats.Msg{Subject: good, Header: nats.Header{}}, method: "/pkg.Svc/Get"},
		{name: "header and subject agree", msg: &nats.Msg{Subject: good, Header: nats.Header{HeaderGRPCMethod: {"/pkg.Svc/Get"}}}, method: "/pkg.Svc/Get"},
		{name: "header contradicts subject", msg: &nats.Msg{Subject: good, Header: nats.Header{HeaderGRPCMethod: {"/pkg.Svc/Delete"}}}, wantErr: true},
		{name: "no method", msg: &nats.Msg{Subject: "other", Header: nats.Header{}}, wantErr: true},
		{name: "non-mesh subject", msg: &nats.Msg{Subject: "other", Header: nats.Header{HeaderGRPCMethod: {"/a/b"}}}, method: "/a/b"},
		{name: "bad timeout", msg: &nats.Msg{Subject: good, Header: nats.Header{HeaderTimeout: {"soon"}}}, wantErr: true},
		{name: "bad base64", msg: &nats.Msg{Subject: good, Header: nats.Header{"x-bin": {"!!!"}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeGRPCRequest(tt.msg)
			if tt.wantErr {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("err %v, want bad request", err)
				}
				return
			}
			if err != nil || req.Method != tt.method {
				t.Fatalf("got %+v, %v", req, err)
			}
		})
	}
}

func TestGRPCResponseRoundTrip(t *testing.T) {
	withDetails, err := status.New(codes.InvalidArgument, " leading space, 100%, \r\n, ünïcode").WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "f", Description: "d"}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		resp GRPCResponse
	}{
		{name: "ok", resp: GRPCResponse{Payload: []byte("out"), Header: metadata.Pairs("a", "1"), Trailer: metadata.Pairs("b", "2", "c-bin", "\x00")}},
		{name: "nil status is ok", resp: GRPCResponse{}},
		{name: "error", resp: GRPCResponse{Status: status.New(codes.NotFound, "gone"), Trailer: metadata.Pairs("status", "x")}},
		{name: "details", resp: GRPCResponse{Status: withDetails}},
		{name: "code beyond the known", resp: GRPCResponse{Status: status.New(codes.Code(99), "odd")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := GRPCResponseMsg(&tt.resp, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Header.Get(HeaderGRPCStatus) == "" {
				t.Fatal("no status header")
			}
			got, err := DecodeGRPCResponse(m)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got.Status.Proto(), tt.resp.Status.Proto()) && tt.resp.Status != nil {
				t.Errorf("status %v, want %v", got.Status.Proto(), tt.resp.Status.Proto())
			}
			if got.Status.Code() != tt.resp.Status.Code() {
				t.Errorf("code %v", got.Status.Code())
			}
			if !bytes.Equal(got.Payload, tt.resp.Payload) || !mdEqual(got.Header, tt.resp.Header) || !mdEqual(got.Trailer, tt.resp.Trailer) {
				t.Errorf("got %+v, want %+v", got, tt.resp)
			}
		})
	}
}

func TestDecodeGRPCResponseForeign(t *testing.T) {
	tests := []struct {
		name     string
		msg      *nats.Msg
		wantKind Kind
		wantCode codes.Code
		payload  string
	}{
		{name: "mesh error", msg: ErrorMsg(&Error{Kind: KindOverloaded, Message: "busy", RetryAfter: 2 * time.Second}), wantKind: KindOverloaded},
		{name: "nats no responders", msg: &nats.Msg{Header: nats.Header{"Status": {"503"}}}, wantKind: KindNoResponders},
		{name: "micro error", msg: &nats.Msg{Header: nats.Header{"Nats-Service-Error": {"nope"}, "Nats-Service-Error-Code": {"404"}}}, wantCode: codes.Unimplemented},
		{name: "micro error odd code", msg: &nats.Msg{Header: nats.Header{"Nats-Service-Error": {"nope"}, "Nats-Service-Error-Code": {"x"}}}, wantCode: codes.Unknown},
		{name: "plain nats answer", msg: &nats.Msg{Data: []byte("raw")}, wantCode: codes.OK, payload: "raw"},
		{name: "bad status", msg: &nats.Msg{Header: nats.Header{HeaderGRPCStatus: {"x"}}}, wantKind: KindInternal},
		{name: "bad details", msg: &nats.Msg{Header: nats.Header{HeaderGRPCStatus: {"3"}, HeaderGRPCDetails: {"%%%"}}}, wantKind: KindInternal},
		{name: "no payload on error", msg: &nats.Msg{Header: nats.Header{HeaderGRPCStatus: {"3"}}, Data: []byte("junk")}, wantCode: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := DecodeGRPCResponse(tt.msg)
			if tt.wantKind != "" {
				var e *Error
				if !errors.As(err, &e) || e.Kind != tt.wantKind {
					t.Fatalf("err %v, want kind %s", err, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status.Code() != tt.wantCode || string(resp.Payload) != tt.payload {
				t.Errorf("got %v %q", resp.Status, resp.Payload)
			}
		})
	}
}

func TestGRPCStatus(t *testing.T) {
	svcStatus := status.New(codes.NotFound, "no such order")
	tests := []struct {
		name       string
		err        error
		wantCode   codes.Code
		wantReason string
	}{
		{name: "nil", err: nil, wantCode: codes.OK},
		{name: "service status", err: svcStatus.Err(), wantCode: codes.NotFound},
		{name: "no responders", err: ErrNoResponders, wantCode: codes.Unavailable, wantReason: "no-responders"},
		{name: "timeout", err: &Error{Kind: KindTimeout}, wantCode: codes.DeadlineExceeded, wantReason: "timeout"},
		{name: "wrapped mesh error", err: errors.Join(errors.New("x"), &Error{Kind: KindForbidden}), wantCode: codes.PermissionDenied, wantReason: "forbidden"},
		{name: "too large", err: &Error{Kind: KindTooLarge}, wantCode: codes.ResourceExhausted, wantReason: "too-large"},
		{name: "headers too large", err: &Error{Kind: KindHeadersTooLarge}, wantCode: codes.ResourceExhausted, wantReason: "headers-too-large"},
		{name: "upstream", err: &Error{Kind: KindUpstream}, wantCode: codes.Unavailable, wantReason: "upstream-unavailable"},
		{name: "no route", err: &Error{Kind: KindNoRoute}, wantCode: codes.Unimplemented, wantReason: "no-route"},
		{name: "bad request", err: &Error{Kind: KindBadRequest}, wantCode: codes.InvalidArgument, wantReason: "bad-request"},
		{name: "internal", err: &Error{Kind: KindInternal}, wantCode: codes.Internal, wantReason: "internal"},
		{name: "ctx deadline", err: context.DeadlineExceeded, wantCode: codes.DeadlineExceeded},
		{name: "ctx canceled", err: context.Canceled, wantCode: codes.Canceled},
		{name: "nats no responders", err: nats.ErrNoResponders, wantCode: codes.Unavailable, wantReason: "no-responders"},
		{name: "nats timeout", err: nats.ErrTimeout, wantCode: codes.DeadlineExceeded, wantReason: "timeout"},
		{name: "other", err: errors.New("boom"), wantCode: codes.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := GRPCStatus(tt.err)
			if st.Code() != tt.wantCode {
				t.Fatalf("code %v, want %v", st.Code(), tt.wantCode)
			}
			if got := errorInfoReason(st); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
		})
	}
	st := GRPCStatus(&Error{Kind: KindOverloaded, RetryAfter: 3 * time.Second})
	var ri *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			ri = r
		}
	}
	if ri == nil || ri.RetryDelay.AsDuration() != 3*time.Second {
		t.Errorf("retry info %v", st.Details())
	}
}

func TestRawCodec(t *testing.T) {
	c := RawCodec{}
	if c.Name() != "proto" {
		t.Errorf("name %q", c.Name())
	}
	for _, v := range []any{RawFrame("a"), ptr(RawFrame("a")), []byte("a"), ptr([]byte("a"))} {
		bs, err := c.Marshal(v)
		if err != nil || string(bs.Materialize()) != "a" {
			t.Errorf("Marshal(%T) = %q, %v", v, bs.Materialize(), err)
		}
		var f RawFrame
		if err := c.Unmarshal(bs, &f); err != nil || string(f) != "a" {
			t.Errorf("Unmarshal = %q, %v", f, err)
		}
	}
	if _, err := c.Marshal("a"); err == nil {
		t.Error("Marshal(string) did not fail")
	}
}

func ptr[T any](v T) *T { return &v }
