package meshgrpc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// direct is a Sender that serves each call with h in this process, as the
// mesh would after NATS: the callee gets a copy of the call, its caller on
// the context, and a streamed body as a stream (as Go objects), whose
// pieces it cuts at random places (the mesh keeps no piece boundaries),
// both ways. A whole reply passes as the message it is.
func direct(h pipeline.Handler) pipeline.Sender {
	return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		in := *c
		if c.Body.Stream != nil {
			in.Body = pipeline.Body{Stream: &chopped{s: c.Body.Stream}}
		}
		reply, err := h.ServeCall(pipeline.WithCaller(ctx, c.Caller), &in)
		if err != nil {
			return nil, wire.FromError(err)
		}
		if !reply.Streamed() {
			return pipeline.ReplyFromMsg(c.Proto, reply.Msg()), nil
		}
		return pipeline.NewStreamReply(c.Proto, reply.Header, &chopped{s: reply.Body.Stream}), nil
	})
}

// chopped is s with its pieces cut at random places.
type chopped struct {
	s    pipeline.Stream
	rest []byte
}

func (c *chopped) Next(ctx context.Context) ([]byte, error) {
	if len(c.rest) == 0 {
		b, err := c.s.Next(ctx)
		if err != nil || len(b) == 0 {
			return b, err
		}
		c.rest = b
	}
	n := 1 + rand.IntN(len(c.rest))
	b := c.rest[:n]
	c.rest = c.rest[n:]
	return b, nil
}

func (c *chopped) Trailer() nats.Header { return c.s.Trailer() }
func (c *chopped) Close() error         { return c.s.Close() }

// interopCase is one of grpc-go's interop test cases
// (google.golang.org/grpc/interop, the cases of
// doc/interop-test-descriptions.md).
type interopCase struct {
	name string
	do   func(context.Context, testpb.TestServiceClient, ...grpc.CallOption)
}

var interopCases = []interopCase{
	{name: "empty_unary", do: interop.DoEmptyUnaryCall},
	{name: "large_unary", do: interop.DoLargeUnaryCall},
	{name: "client_streaming", do: interop.DoClientStreaming},
	{name: "server_streaming", do: interop.DoServerStreaming},
	{name: "ping_pong", do: interop.DoPingPong},
	{name: "empty_stream", do: interop.DoEmptyStream},
	{name: "custom_metadata", do: interop.DoCustomMetadata},
	{name: "status_code_and_message", do: interop.DoStatusCodeAndMessage},
	{name: "special_status_message", do: interop.DoSpecialStatusMessage},
	{name: "cancel_after_begin", do: interop.DoCancelAfterBegin},
	{name: "cancel_after_first_response", do: interop.DoCancelAfterFirstResponse},
	{name: "timeout_on_sleeping_server", do: interop.DoTimeoutOnSleepingServer},
}

// interopFatal is what the interop cases' fatal log panics with (see
// TestMain), so a failed case fails its test instead of exiting.
type interopFatal string

// runInterop runs the cases against tc, each a subtest.
func runInterop(t *testing.T, tc testpb.TestServiceClient) {
	t.Helper()
	for _, c := range interopCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			defer func() {
				if r := recover(); r != nil {
					if f, ok := r.(interopFatal); ok {
						t.Fatal(string(f))
					}
					panic(r)
				}
			}()
			c.do(ctx, tc)
		})
	}
}

// interopServer is the interop test service in process, on a Server.
func interopServer() *Server {
	s := NewServer()
	testpb.RegisterTestServiceServer(s, interop.NewTestServer())
	reflection.RegisterV1(s)
	return s
}

// interopUpstream is the interop test service on a real gRPC server,
// reached through an Upstream.
func interopUpstream(t *testing.T) *Upstream {
	addr := startServer(t, func(s *grpc.Server) {
		testpb.RegisterTestServiceServer(s, interop.NewTestServer())
		reflection.RegisterV1(s)
	})
	return &Upstream{Conn: dialGRPC(t, addr)}
}

// viaProxy is a real gRPC client of a Proxy that sends through s.
func viaProxy(t testing.TB, s pipeline.Sender) *grpc.ClientConn {
	return viaProxyOf(t, &Proxy{Sender: s, Caller: "web"})
}

// viaProxyOf is a real gRPC client of proxy, calling orders.
func viaProxyOf(t testing.TB, proxy *Proxy) *grpc.ClientConn {
	addr := startServer(t, func(*grpc.Server) {}, proxy.ServerOptions()...)
	return dialGRPC(t, addr, grpc.WithAuthority("orders"))
}

// TestInteropStreams runs grpc-go's interop cases through every pair of
// an entry point (the in-process Client with the generated stubs, the
// sidecar's Proxy with a real gRPC client) and a kind of local service
// (the in-process Server, an Upstream to a real gRPC server): over the
// in-memory sender, which cuts the streams' pieces anywhere, and over NATS
// through the pipelines (the stream protocol, full duplex).
func TestInteropStreams(t *testing.T) {
	services := []struct {
		name string
		h    func(t *testing.T) pipeline.Handler
	}{
		{"server", func(*testing.T) pipeline.Handler { return interopServer() }},
		{"upstream", func(t *testing.T) pipeline.Handler { return interopUpstream(t) }},
	}
	clients := []struct {
		name string
		tc   func(t *testing.T, s pipeline.Sender) testpb.TestServiceClient
	}{
		{"client", func(t *testing.T, s pipeline.Sender) testpb.TestServiceClient {
			return testpb.NewTestServiceClient(&Client{Sender: s, Caller: "web", Service: "orders"})
		}},
		{"proxy", func(t *testing.T, s pipeline.Sender) testpb.TestServiceClient {
			return testpb.NewTestServiceClient(viaProxy(t, s))
		}},
	}
	for _, svc := range services {
		for _, cl := range clients {
			t.Run(cl.name+" to "+svc.name+" direct", func(t *testing.T) {
				runInterop(t, cl.tc(t, direct(svc.h(t))))
			})
			t.Run(cl.name+" to "+svc.name+" over NATS", func(t *testing.T) {
				nc := runGRPCTestNATS(t)
				serveGRPCOverNATS(t, nc, "orders", svc.h(t))
				runInterop(t, cl.tc(t, sender(t, nc)))
			})
		}
	}
}

// TestReflection: gRPC reflection (a bidirectional stream) lists the
// services through the mesh, as grpcurl list does: the in-process server's
// and a real server's, from the Client and through the Proxy, over the
// in-memory sender and over NATS.
func TestReflection(t *testing.T) {
	want := []string{"grpc.reflection.v1.ServerReflection", "grpc.testing.TestService"}
	for _, svc := range []struct {
		name string
		h    func(t *testing.T) pipeline.Handler
	}{
		{"server", func(*testing.T) pipeline.Handler { return interopServer() }},
		{"upstream", func(t *testing.T) pipeline.Handler { return interopUpstream(t) }},
	} {
		for _, over := range []struct {
			name   string
			sender func(t *testing.T, h pipeline.Handler) pipeline.Sender
		}{
			{"direct", func(t *testing.T, h pipeline.Handler) pipeline.Sender { return direct(h) }},
			{"over NATS", func(t *testing.T, h pipeline.Handler) pipeline.Sender {
				nc := runGRPCTestNATS(t)
				serveGRPCOverNATS(t, nc, "orders", h)
				return sender(t, nc)
			}},
		} {
			t.Run("client to "+svc.name+" "+over.name, func(t *testing.T) {
				cc := &Client{Sender: over.sender(t, svc.h(t)), Caller: "web", Service: "orders"}
				if got := listServices(t, reflectionpb.NewServerReflectionClient(cc)); !slices.Equal(got, want) {
					t.Errorf("services %q, want %q", got, want)
				}
			})
			t.Run("proxy to "+svc.name+" "+over.name, func(t *testing.T) {
				cc := viaProxy(t, over.sender(t, svc.h(t)))
				if got := listServices(t, reflectionpb.NewServerReflectionClient(cc)); !slices.Equal(got, want) {
					t.Errorf("services %q, want %q", got, want)
				}
			})
		}
	}
}

// listServices asks for the service list twice on one stream, each time
// waiting for the answer before it goes on, as reflection clients do.
func listServices(t *testing.T, c reflectionpb.ServerReflectionClient) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for range 2 {
		req := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		slices.Sort(names)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal(fmt.Errorf("a third answer"))
	}
	return names
}

// TestLargeMessages: messages larger than max_payload (1 MiB here), up to
// gRPC's own bound, cross the mesh both ways, unary and streaming, through
// every pair of entry point and local service: they stream.
func TestLargeMessages(t *testing.T) {
	const mib = 1 << 20
	services := map[string]func(t *testing.T) pipeline.Handler{
		"server":   func(*testing.T) pipeline.Handler { return interopServer() },
		"upstream": func(t *testing.T) pipeline.Handler { return interopUpstream(t) },
	}
	for name, h := range services {
		nc := runGRPCTestNATS(t)
		serveGRPCOverNATS(t, nc, "orders", h(t))
		for cname, tc := range map[string]testpb.TestServiceClient{
			"client": testpb.NewTestServiceClient(&Client{Sender: sender(t, nc), Caller: "web", Service: "orders"}),
			"proxy":  testpb.NewTestServiceClient(viaProxy(t, sender(t, nc))),
		} {
			t.Run(cname+" to "+name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				for _, sizes := range [][2]int{{2 * mib, 3 * mib}, {10, 3 * mib}, {3 * mib, 10}} {
					resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: int32(sizes[1]), Payload: &testpb.Payload{Body: make([]byte, sizes[0])}})
					if err != nil || len(resp.GetPayload().GetBody()) != sizes[1] {
						t.Fatalf("unary %v: %d bytes, %v", sizes, len(resp.GetPayload().GetBody()), err)
					}
				}
				out, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
					ResponseParameters: []*testpb.ResponseParameters{{Size: 3 * mib}, {Size: 10}, {Size: 2 * mib}},
				})
				if err != nil {
					t.Fatal(err)
				}
				for _, want := range []int{3 * mib, 10, 2 * mib} {
					resp, err := out.Recv()
					if err != nil || len(resp.GetPayload().GetBody()) != want {
						t.Fatalf("server stream: %d bytes, %v; want %d", len(resp.GetPayload().GetBody()), err, want)
					}
				}
				in, err := tc.StreamingInputCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for range 2 {
					if err := in.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 2*mib)}}); err != nil {
						t.Fatal(err)
					}
				}
				if resp, err := in.CloseAndRecv(); err != nil || resp.GetAggregatedPayloadSize() != 4*mib {
					t.Fatalf("client stream: %v, %v", resp, err)
				}
			})
		}
	}
}
