package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/natsmesh/natsmesh/bridge"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
)

// trace records the order in which stub middleware sees calls.
type trace struct {
	mu     sync.Mutex
	events []string
}

func (tr *trace) add(e string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events = append(tr.events, e)
}

func (tr *trace) take() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s := strings.Join(tr.events, " ")
	tr.events = nil
	return s
}

// stub is an outbound middleware that records the call on its way in (with
// what the entry point parsed) and the outcome on its way out.
func (tr *trace) stub(name string) pipeline.OutboundMiddleware {
	return func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			if _, ok := ctx.Deadline(); !ok {
				tr.add(name + ":no-deadline")
			}
			tr.add(fmt.Sprintf("%s>%s/%s/%s/%s/%s", name, c.Caller, c.Dest(), c.Proto, c.Op, c.Path))
			reply, err := next.Send(ctx, c)
			tr.add("<" + name)
			return reply, err
		})
	}
}

// TestEveryOutboundEntryPointUsesThePipeline: the six ways a call enters
// the mesh (sidecar HTTP proxy, bind port, gRPC proxy, in-process Transport
// and ClientConn, the edge gateway) all pass the configured middleware, in
// the documented order (the first outermost), with the call already parsed
// and its deadline set.
func TestEveryOutboundEntryPointUsesThePipeline(t *testing.T) {
	b := meshtest.Broker(t)
	up := echoServer(t, "orders-1")
	startAgent(t, b, Config{Service: "orders", Upstream: up.URL})
	grpcUp, _ := grpcUpstream(t, "grpc-1")
	startAgent(t, b, Config{Service: "greeter", Upstream: grpcUp})

	tr := &trace{}
	mw := []pipeline.OutboundMiddleware{tr.stub("a"), tr.stub("b")}
	web := startAgent(t, b, Config{Service: "web", Outbound: mw})
	proxy := listen(t, web.ServeHTTPProxy)
	bind := listen(t, func(l net.Listener) error { return web.ServeBind(l, "orders") })
	grpcProxy := listen(t, web.ServeGRPCProxy)

	g, err := bridge.NewGateway(bridge.GatewayConfig{
		Conn:       meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("bridge"))),
		Routes:     []bridge.Route{{PathPrefix: "/", Service: "orders"}},
		Middleware: mw,
		Logger:     quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(gl, nil)
	t.Cleanup(func() { g.Shutdown(context.Background()) })

	httpGet := func(c *http.Client, url string) error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		decodeEcho(t, resp)
		return nil
	}
	grpcCall := func(conn grpc.ClientConnInterface) error {
		_, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{})
		return err
	}
	want := func(caller, dest, proto, op, path string) string {
		call := strings.Join([]string{caller, dest, proto, op, path}, "/")
		return "a>" + call + " b>" + call + " <b <a"
	}
	const grpcMethod = "/grpc.testing.TestService/UnaryCall"
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"sidecar HTTP proxy", func() error { return httpGet(proxyClient(proxy), "http://orders/p") },
			want("web", "orders", "http", "GET", "/p")},
		{"bind port", func() error { return httpGet(&http.Client{Timeout: 10 * time.Second}, "http://"+bind+"/b") },
			want("web", "orders", "http", "GET", "/b")},
		{"gRPC proxy", func() error {
			cc, err := grpc.NewClient(grpcProxy, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("greeter"))
			if err != nil {
				return err
			}
			defer cc.Close()
			return grpcCall(cc)
		}, want("web", "greeter", "grpc", grpcMethod, "")},
		{"in-process Transport", func() error {
			return httpGet(&http.Client{Transport: web.Transport(), Timeout: 10 * time.Second}, "http://orders/t")
		}, want("web", "orders", "http", "GET", "/t")},
		{"in-process ClientConn", func() error {
			conn, err := web.ClientConn("greeter")
			if err != nil {
				return err
			}
			return grpcCall(conn)
		}, want("web", "greeter", "grpc", grpcMethod, "")},
		{"edge gateway", func() error {
			return httpGet(&http.Client{Timeout: 10 * time.Second}, "http://"+gl.Addr().String()+"/g")
		}, want("bridge", "orders", "http", "GET", "/g")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr.take()
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			if got := tr.take(); got != tt.want {
				t.Fatalf("middleware saw\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}
}
