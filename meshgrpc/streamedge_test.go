package meshgrpc

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/meshgrpc/internal/grpcstream"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/grpcwire"
)

// panicky panics in its streams.
type panicky struct {
	testpb.UnimplementedTestServiceServer
}

func (panicky) FullDuplexCall(testpb.TestService_FullDuplexCallServer) error { panic("boom") }

// TestServerStreamHandlers: the in-process server's stream interceptors
// run in order around a stream handler with its info; a panic in a stream
// is Internal; its service list is what reflection reads.
func TestServerStreamHandlers(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	record := func(name string) grpc.StreamServerInterceptor {
		return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			mu.Lock()
			seen = append(seen, name+" "+info.FullMethod)
			if !info.IsClientStream || !info.IsServerStream {
				t.Errorf("info %+v: a bidirectional stream", info)
			}
			if m, ok := grpc.Method(ss.Context()); !ok || m != info.FullMethod {
				t.Errorf("grpc.Method %q, %v", m, ok)
			}
			mu.Unlock()
			return h(srv, ss)
		}
	}
	s := NewServer(WithStreamInterceptors(record("a")), WithStreamInterceptors(record("b"), record("c")))
	testpb.RegisterTestServiceServer(s, interop.NewTestServer())
	client := testpb.NewTestServiceClient(&Client{Sender: direct(s), Caller: "web", Service: "orders"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	const m = "/grpc.testing.TestService/FullDuplexCall"
	if want := []string{"a " + m, "b " + m, "c " + m}; !slices.Equal(seen, want) {
		t.Errorf("interceptors ran %q, want %q", seen, want)
	}

	info := s.GetServiceInfo()["grpc.testing.TestService"]
	var names []string
	for _, mi := range info.Methods {
		names = append(names, mi.Name)
		if mi.Name == "StreamingOutputCall" && (mi.IsClientStream || !mi.IsServerStream) {
			t.Errorf("%+v: a server stream", mi)
		}
	}
	slices.Sort(names)
	if want := []string{"CacheableUnaryCall", "EmptyCall", "FullDuplexCall", "HalfDuplexCall", "StreamingInputCall", "StreamingOutputCall", "UnaryCall", "UnimplementedCall"}; !slices.Equal(names, want) {
		t.Errorf("methods %q, want %q", names, want)
	}

	p := NewServer()
	testpb.RegisterTestServiceServer(p, panicky{})
	stream, err = testpb.NewTestServiceClient(&Client{Sender: direct(p), Caller: "web", Service: "orders"}).FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Internal || !strings.Contains(status.Convert(err).Message(), "boom") {
		t.Errorf("a panicking stream: %v, want Internal", err)
	}
}

// rawStreamCall is a call marked a stream to orders, as a raw NATS client
// could make one, with body as its whole body.
func rawStreamCall(method string, body []byte) *pipeline.Call {
	return &pipeline.Call{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: method,
		Header: nats.Header{grpcwire.HeaderGRPCMethod: {method}, grpcwire.HeaderGRPCStream: {"1"}},
		Body:   pipeline.Body{Bytes: body}}
}

// TestStreamCallsRefused: what the local services refuse of a call marked
// a stream, whoever made it: a unary method with no message or two, a
// compressed or cut message, an unknown method; the in-process server and
// an upstream alike.
func TestStreamCallsRefused(t *testing.T) {
	one := grpcwire.AppendMessage(nil, nil)
	for _, svc := range []struct {
		name string
		h    func(t *testing.T) pipeline.Handler
	}{
		{"server", func(*testing.T) pipeline.Handler { return interopServer() }},
		{"upstream", func(t *testing.T) pipeline.Handler { return interopUpstream(t) }},
	} {
		h := svc.h(t)
		for _, tc := range []struct {
			name, method string
			body         []byte
			code         codes.Code // the service's status, or
			kind         wire.Kind  // a mesh error
		}{
			{"unary with no message", "/grpc.testing.TestService/EmptyCall", nil, codes.Internal, ""},
			{"unary with two", "/grpc.testing.TestService/EmptyCall", append(slices.Clip(one), one...), codes.Internal, ""},
			{"unary with one", "/grpc.testing.TestService/EmptyCall", one, codes.OK, ""},
			{"server stream with none", "/grpc.testing.TestService/StreamingOutputCall", nil, codes.Internal, ""},
			{"unknown method", "/grpc.testing.TestService/Nope", one, codes.Unimplemented, ""},
			{"unknown service", "/no.Such/Method", one, codes.Unimplemented, ""},
			{"compressed", "/grpc.testing.TestService/EmptyCall", []byte{1, 0, 0, 0, 0}, 0, wire.KindBadRequest},
			{"cut short", "/grpc.testing.TestService/EmptyCall", []byte{0, 0, 0, 0, 9, 1}, 0, wire.KindInternal},
		} {
			t.Run(svc.name+": "+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				reply, err := h.ServeCall(pipeline.WithCaller(ctx, "web"), rawStreamCall(tc.method, tc.body))
				if tc.kind != "" {
					if e := wire.FromError(err); err == nil || e.Kind != tc.kind {
						t.Errorf("got %v, %v; want %s", reply, err, tc.kind)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				rr, err := grpcstream.ReadReply(reply)
				if err != nil {
					t.Fatal(err)
				}
				for {
					if _, err = rr.Next(ctx); err != nil {
						break
					}
				}
				if err != io.EOF {
					t.Fatal(err)
				}
				if rr.Status.Code() != tc.code {
					t.Errorf("status %v, want %v", rr.Status, tc.code)
				}
			})
		}
	}
}

// TestProxyBodies: the proxy sends every call marked a stream; a call
// whose client half-closed at once (unary, server streaming) with a whole
// body, which the policies may send again, and one larger than
// max_payload as a stream that replays; a call still sending (a
// bidirectional stream) with a stream.
func TestProxyBodies(t *testing.T) {
	type seen struct {
		marked, streamed, replayable bool
	}
	calls := make(chan seen, 10)
	observe := pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		calls <- seen{c.Header.Get(grpcwire.HeaderGRPCStream) == "1", c.Body.Streamed(), c.Body.Replayable()}
		return direct(interopServer()).Send(ctx, c)
	})
	// A wait long enough for a large message to arrive, under -race.
	client := testpb.NewTestServiceClient(viaProxyOf(t, &Proxy{Sender: observe, Caller: "web", HalfCloseWait: 300 * time.Millisecond}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	check := func(what string, want seen) {
		t.Helper()
		if got := <-calls; got != want {
			t.Errorf("%s: %+v, want %+v", what, got, want)
		}
	}

	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	check("unary", seen{marked: true, replayable: true})
	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 2<<20)}}); err != nil {
		t.Fatal(err)
	}
	check("unary past max_payload", seen{marked: true, streamed: true, replayable: true})
	out, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Recv(); err != io.EOF {
		t.Fatal(err)
	}
	check("server stream", seen{marked: true, replayable: true})
	duplex, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := duplex.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := duplex.Recv(); err != nil {
		t.Fatal(err)
	}
	check("bidirectional stream", seen{marked: true, streamed: true})
	duplex.CloseSend()
	if _, err := duplex.Recv(); err != io.EOF {
		t.Fatal(err)
	}
}

// TestProxyServeHTTP: the proxy's gRPC server served by net/http, over
// unencrypted HTTP/2 (grpc.Server.ServeHTTP), as a listener that also
// serves HTTP/1.1 on its port would serve it, with the destination fixed
// (Resolve), as a bind port fixes it: grpc-go's interop cases pass.
func TestProxyServeHTTP(t *testing.T) {
	proxy := &Proxy{Sender: direct(interopServer()), Caller: "web",
		Resolve: func(string) (string, string, error) { return "orders", "", nil }}
	srv := grpc.NewServer(proxy.ServerOptions()...)
	t.Cleanup(srv.Stop)
	hs := &http.Server{Handler: srv}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetUnencryptedHTTP2(true)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	runInterop(t, testpb.NewTestServiceClient(dialGRPC(t, l.Addr().String(), grpc.WithAuthority("anything"))))
}
