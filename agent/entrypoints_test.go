package agent

import (
	"context"
	"fmt"
	"io"
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
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/meshhttp"
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

// ordersGateway serves a gateway routing every path to orders on b, with
// mw as its outbound middleware, until t ends; it returns its address.
func ordersGateway(t *testing.T, b *broker.Broker, mw []pipeline.OutboundMiddleware) string {
	t.Helper()
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
	return gl.Addr().String()
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

	gateway := ordersGateway(t, b, mw)

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
			return httpGet(&http.Client{Timeout: 10 * time.Second}, "http://"+gateway+"/g")
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

// TestEveryHTTPEntryPointUsesMeshhttp: issue 17. The agent's HTTP proxy,
// its bind ports, its in-process Transport and the edge gateway all send
// through package meshhttp's one adapter (meshhttp.Proxy, and
// meshhttp.Transport for the Transport): each answers by its rules, the
// same way, what the pipeline returns (a middleware here answers for the
// service, by the case the client names in X-Case).
func TestEveryHTTPEntryPointUsesMeshhttp(t *testing.T) {
	b := meshtest.Broker(t)
	reached := make(chan string, 16)
	answer := func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			reached <- c.Caller + ">" + c.Dest()
			switch c.HeaderValue("X-Case") {
			case "forged 101":
				return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"101"}, "Upgrade": {"evil"}}}), nil
			case "panic":
				panic("boom")
			case "empty":
				return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}), nil
			}
			return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"201"}, "X-Made": {"1"}}, Data: []byte("made")}), nil
		})
	}
	web := startAgent(t, b, Config{Service: "web", Outbound: []pipeline.OutboundMiddleware{answer}})
	if _, ok := web.HTTPProxy().(*meshhttp.Proxy); !ok {
		t.Errorf("HTTPProxy is a %T", web.HTTPProxy())
	}
	if h, _ := web.BindHandler("orders"); h == nil {
		t.Error("no bind handler")
	} else if _, ok := h.(*meshhttp.Proxy); !ok {
		t.Errorf("BindHandler is a %T", h)
	}
	if _, ok := web.Transport().(*meshhttp.Transport); !ok {
		t.Errorf("Transport is a %T", web.Transport())
	}
	proxy := listen(t, web.ServeHTTPProxy)
	bind := listen(t, func(l net.Listener) error { return web.ServeBind(l, "orders") })
	gateway := ordersGateway(t, b, []pipeline.OutboundMiddleware{answer})

	direct := &http.Client{Timeout: 10 * time.Second}
	entryPoints := []struct {
		name, caller string
		client       *http.Client
		url          string
		// recovers: a panic below is answered (a RoundTripper's caller
		// gets its own panics).
		recovers bool
	}{
		{"sidecar HTTP proxy", "web", proxyClient(proxy), "http://orders/x", true},
		{"bind port", "web", direct, "http://" + bind + "/x", true},
		{"in-process Transport", "web", &http.Client{Transport: web.Transport(), Timeout: 10 * time.Second}, "http://orders/x", false},
		{"edge gateway", "bridge", direct, "http://" + gateway + "/x", true},
	}
	cases := []struct {
		name, method string
		header       http.Header
		sent         bool // reaches the pipeline
		status       int
		kind         wire.Kind
		check        func(t *testing.T, resp *http.Response, body string)
	}{
		{name: "service answer", method: "GET", sent: true, status: 201, check: func(t *testing.T, resp *http.Response, body string) {
			if body != "made" || resp.Header.Get("X-Made") != "1" {
				t.Errorf("answer %q, header %v", body, resp.Header)
			}
		}},
		{name: "forged 101", method: "GET", header: http.Header{"X-Case": {"forged 101"}}, sent: true, status: 502, kind: wire.KindUpstream},
		{name: "panic", method: "GET", header: http.Header{"X-Case": {"panic"}}, sent: true, status: 500, kind: wire.KindInternal},
		{name: "HEAD, empty answer", method: "HEAD", header: http.Header{"X-Case": {"empty"}}, sent: true, status: 200,
			check: func(t *testing.T, resp *http.Response, _ string) {
				if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
					t.Errorf("Content-Length %d %q: an empty answer to HEAD tells none", resp.ContentLength, resp.Header.Get("Content-Length"))
				}
			}},
		{name: "bad Mesh-Timeout", method: "GET", header: http.Header{wire.HeaderTimeout: {"soon"}}, status: 400, kind: wire.KindBadRequest},
	}
	for _, ep := range entryPoints {
		t.Run(ep.name, func(t *testing.T) {
			for _, tt := range cases {
				if tt.name == "panic" && !ep.recovers {
					continue
				}
				t.Run(tt.name, func(t *testing.T) {
					req, err := http.NewRequest(tt.method, ep.url, nil)
					if err != nil {
						t.Fatal(err)
					}
					for k, vs := range tt.header {
						req.Header[k] = vs
					}
					resp, err := ep.client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != tt.status || resp.Header.Get(wire.HeaderError) != string(tt.kind) {
						t.Fatalf("answered %d %q (%s), want %d %q", resp.StatusCode, resp.Header.Get(wire.HeaderError), strings.TrimSpace(string(body)), tt.status, tt.kind)
					}
					if tt.check != nil {
						tt.check(t, resp, string(body))
					}
					select {
					case got := <-reached:
						if !tt.sent || got != ep.caller+">orders" {
							t.Errorf("the pipeline got %s (sent: %v)", got, tt.sent)
						}
					default:
						if tt.sent {
							t.Error("the call did not reach the pipeline")
						}
					}
				})
			}
		})
	}
}
