package meshgrpc

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
) // runGRPCTestNATS starts an in-process nats-server for one test and returns a
// connection to it.
func runGRPCTestNATS(t testing.TB) *nats.Conn {
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
	// Every test calls as web: replies go to its inbox.
	nc, err := nats.Connect(s.ClientURL(), nats.CustomInboxPrefix(wire.InboxPrefix("web")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serveGRPCOverNATS subscribes service's subjects and serves each call
// with h through an inbound pipeline.
func serveGRPCOverNATS(t testing.TB, nc *nats.Conn, service string, h pipeline.Handler) {
	t.Helper()
	in, err := pipeline.NewInbound(nc, pipeline.InboundConfig{Service: service, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: calls finish before nc closes.
	t.Cleanup(func() { in.Close(context.Background()) })
	subjects, queues := wire.ServiceSubjects(service, "")
	for i := range subjects {
		sub, err := nc.QueueSubscribe(subjects[i], queues[i], in.ServeMsg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// sender is the outbound pipeline over nc.
func sender(t testing.TB, nc *nats.Conn, mw ...pipeline.OutboundMiddleware) pipeline.Sender {
	t.Helper()
	o, err := pipeline.NewOutbound(nc, pipeline.OutboundConfig{Middleware: mw})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// startServer runs a real gRPC server on a loopback port.
func startServer(t testing.TB, register func(*grpc.Server), opts ...grpc.ServerOption) string {
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

func dialGRPC(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
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
// with Upstream in front of it.
func meshUpstream(t *testing.T, nc *nats.Conn, service string, svc testpb.TestServiceServer) {
	t.Helper()
	addr := startServer(t, func(s *grpc.Server) { testpb.RegisterTestServiceServer(s, svc) })
	cc := dialGRPC(t, addr)
	serveGRPCOverNATS(t, nc, service, &Upstream{Conn: cc})
}

// (a) generated client -> Client -> NATS -> Server -> generated server.
func TestClientToServerHealth(t *testing.T) {
	nc := runGRPCTestNATS(t)
	var caller atomic.Value
	var intercepted atomic.Int32
	gs := NewServer(WithUnaryInterceptors(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		intercepted.Add(1)
		if c, ok := pipeline.CallerFrom(ctx); ok {
			caller.Store(c)
		}
		if m, ok := grpc.Method(ctx); !ok || m != info.FullMethod {
			t.Errorf("grpc.Method = %q, %v; want %q", m, ok, info.FullMethod)
		}
		return h(ctx, req)
	}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	serveGRPCOverNATS(t, nc, "orders", gs)

	client := healthpb.NewHealthClient(&Client{Sender: sender(t, nc), Caller: "web", Service: "orders"})
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
	if grpcwire.StatusKind(status.Convert(err)) != "" {
		t.Errorf("the service's own status carries a mesh ErrorInfo: %v", status.Convert(err).Details())
	}
	if n := intercepted.Load(); n != 2 {
		t.Errorf("interceptor ran %d times, want 2", n)
	}

	// A streaming method called unary, and unknown methods.
	c := &Client{Sender: sender(t, nc), Caller: "web", Service: "orders"}
	err = c.Invoke(ctx, "/grpc.health.v1.Health/Watch", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if st := status.Convert(err); st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "call it as a stream") {
		t.Errorf("Watch served as unary: got %v, want Unimplemented: call it as a stream", err)
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

func TestServerPanicAndHeaders(t *testing.T) {
	nc := runGRPCTestNATS(t)
	gs := NewServer(WithUnaryInterceptors(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if r := req.(*testpb.SimpleRequest); r.GetResponseSize() == 1 {
			panic("boom")
		}
		return h(ctx, req)
	}))
	svc := &testService{}
	testpb.RegisterTestServiceServer(gs, svc)
	serveGRPCOverNATS(t, nc, "orders", gs)
	client := testpb.NewTestServiceClient(&Client{Sender: sender(t, nc), Caller: "web", Service: "orders"})
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

// (b) Client -> NATS -> Upstream -> real gRPC server.
func TestClientToUpstream(t *testing.T) {
	nc := runGRPCTestNATS(t)
	svc := &testService{}
	meshUpstream(t, nc, "orders", svc)
	client := testpb.NewTestServiceClient(&Client{Sender: sender(t, nc), Caller: "web", Service: "orders"})

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
	for k, want := range map[string]string{"x-user": "alice", "trace-bin": "\x00\x01\xfe\xff", "status": "forged?", grpcwire.MetadataCaller: "web"} {
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

// TestUpstreamRefused: a local gRPC service that refuses connections is
// upstream-refused (nothing ran), and the agent's hook is told.
func TestUpstreamRefused(t *testing.T) {
	nc := runGRPCTestNATS(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there any more
	cc := dialGRPC(t, addr)
	var refused atomic.Int32
	serveGRPCOverNATS(t, nc, "orders", &Upstream{Conn: cc, OnRefused: func(error) { refused.Add(1) }})
	client := testpb.NewTestServiceClient(&Client{Sender: sender(t, nc), Caller: "web", Service: "orders"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{})
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || string(grpcwire.StatusKind(st)) != string(wire.KindUpstreamRefused) {
		t.Errorf("got %v (details %v), want Unavailable with reason %s", err, st.Details(), wire.KindUpstreamRefused)
	}
	if refused.Load() != 1 {
		t.Errorf("OnRefused called %d times, want 1", refused.Load())
	}
}

// (c) raw gRPC client -> Proxy -> NATS -> Upstream -> real server.
func TestProxyFullPath(t *testing.T) {
	nc := runGRPCTestNATS(t)
	svc := &testService{}
	meshUpstream(t, nc, "orders", svc)
	proxy := &Proxy{Sender: sender(t, nc), Caller: "web"}
	proxyAddr := startServer(t, func(*grpc.Server) {}, proxy.ServerOptions()...)
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
	if md.Get("x-user")[0] != "bob" || md.Get("blob-bin")[0] != "\xff\x00" || md.Get(grpcwire.MetadataCaller)[0] != "web" {
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

	// A client stream reaches the service, which does not implement it.
	cs, err := client.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = cs.Send(&testpb.StreamingInputCallRequest{})
	_ = cs.Send(&testpb.StreamingInputCallRequest{})
	_, err = cs.CloseAndRecv()
	if st := status.Convert(err); st.Code() != codes.Unimplemented || grpcwire.StatusKind(st) != "" || !strings.Contains(st.Message(), "StreamingInputCall not implemented") {
		t.Errorf("client streaming: %v", err)
	}

	// An authority that is no service name.
	bad := testpb.NewTestServiceClient(dialGRPC(t, proxyAddr, grpc.WithAuthority("Not_A.Service")))
	_, err = bad.UnaryCall(ctx, &testpb.SimpleRequest{})
	if st := status.Convert(err); st.Code() != codes.Unimplemented || string(grpcwire.StatusKind(st)) != string(wire.KindNoRoute) {
		t.Errorf("bad authority: %v", err)
	}
}

// (d) failures made by the mesh.
func TestClientMeshFailures(t *testing.T) {
	nc := runGRPCTestNATS(t)
	ctx := context.Background()

	t.Run("no responders", func(t *testing.T) {
		client := testpb.NewTestServiceClient(&Client{Sender: sender(t, nc), Caller: "web", Service: "nobody"})
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		st := status.Convert(err)
		if st.Code() != codes.Unavailable || string(grpcwire.StatusKind(st)) != string(wire.KindNoResponders) {
			t.Errorf("got %v, want Unavailable no-responders", err)
		}
		// Not a speed check: a timeout would take the call's whole deadline.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("deadline exceeded", func(t *testing.T) {
		gs := NewServer()
		svc := &testService{block: true}
		testpb.RegisterTestServiceServer(gs, svc)
		serveGRPCOverNATS(t, nc, "slow", gs)
		client := testpb.NewTestServiceClient(&Client{Sender: sender(t, nc), Caller: "web", Service: "slow"})
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("got %v, want DeadlineExceeded", err)
		}
	})

	t.Run("too large", func(t *testing.T) {
		var sent atomic.Int32
		count := func(next pipeline.Sender) pipeline.Sender {
			return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
				sent.Add(1)
				return next.Send(ctx, c)
			})
		}
		// Past max_payload a message streams (TestLargeMessages); past
		// gRPC's bound of a message it is refused, unsent.
		client := testpb.NewTestServiceClient(&Client{Sender: sender(t, nc, count), Caller: "web", Service: "orders", Limits: func() wire.Limits { return wire.Limits{MaxPayload: 64 << 10} }})
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, grpcwire.DefaultMaxMessage)}})
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted || string(grpcwire.StatusKind(st)) != string(wire.KindTooLarge) {
			t.Errorf("got %v, want ResourceExhausted too-large", err)
		}
		if n := sent.Load(); n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})

	t.Run("streaming, no responders", func(t *testing.T) {
		client := testpb.NewTestServiceClient(&Client{Sender: sender(t, nc), Caller: "web", Service: "nobody"})
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		st := status.Convert(err)
		if st.Code() != codes.Unavailable || string(grpcwire.StatusKind(st)) != string(wire.KindNoResponders) {
			t.Errorf("got %v, want Unavailable no-responders", err)
		}
	})

	t.Run("bad service name", func(t *testing.T) {
		c := testpb.NewTestServiceClient(&Client{Sender: sender(t, nc), Caller: "web", Service: "Bad.Name"})
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("got %v", err)
		}
	})
}

// TestLimitsReadPerCall: issue 17 item 3. The gRPC adapters read their
// limits at each call, as the HTTP ones do, so a connection's max_payload
// that changes (a reconnect to another server) applies to the next call:
// a request past the client's new max_payload streams, an answer past the
// server's new header bounds is refused.
func TestLimitsReadPerCall(t *testing.T) {
	nc := runGRPCTestNATS(t)
	ctx := context.Background()
	var serverHeaders, clientMax atomic.Int64
	serverHeaders.Store(100)
	clientMax.Store(1 << 20)
	gs := NewServer(WithLimits(func() wire.Limits { return wire.Limits{MaxHeaders: int(serverHeaders.Load())} }))
	testpb.RegisterTestServiceServer(gs, &testService{})
	serveGRPCOverNATS(t, nc, "limits", gs)
	var streamed atomic.Bool
	observe := func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			streamed.Store(c.Body.Streamed())
			return next.Send(ctx, c)
		})
	}
	client := testpb.NewTestServiceClient(&Client{Sender: sender(t, nc, observe), Caller: "web", Service: "limits",
		Limits: func() wire.Limits { return wire.Limits{MaxPayload: clientMax.Load()} }})
	call := func() *status.Status {
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 48<<10)}})
		return status.Convert(err)
	}
	if st := call(); st.Code() != codes.OK || streamed.Load() {
		t.Fatalf("under both limits: %v, streamed %v", st.Err(), streamed.Load())
	}
	serverHeaders.Store(2) // the answer has three header values
	if st := call(); st.Code() != codes.Unavailable || string(grpcwire.StatusKind(st)) != string(wire.KindUpstream) {
		t.Errorf("answer past the server's new limit: %v, want Unavailable upstream-unavailable", st.Err())
	}
	serverHeaders.Store(100)
	clientMax.Store(32 << 10)
	if st := call(); st.Code() != codes.OK || !streamed.Load() {
		t.Errorf("request past the client's new max_payload: %v, streamed %v; want OK, streamed", st.Err(), streamed.Load())
	}
}
