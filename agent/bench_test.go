package agent_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/bridge"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// The benchmarks here measure one full round trip of the hot path through a
// real in-process broker over TCP loopback, with 1 KiB request and response
// bodies: allocations and time per call, for the whole process (caller,
// broker and callee alike). natsmesh bench measures the same paths with
// every component in its own process.

const benchSize = 1024

var benchBody = bytes.Repeat([]byte("x"), benchSize)

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header()["Content-Type"] = []string{"application/octet-stream"}
	w.Write(b)
}

type echoGRPC struct {
	testpb.UnimplementedTestServiceServer
}

func (echoGRPC) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func httpCall(tb testing.TB, c *http.Client, url string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(benchBody))
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	echoed(tb, resp)
}

// echoed reads and closes resp, which must be a 200 with benchSize bytes.
func echoed(tb testing.TB, resp *http.Response) {
	tb.Helper()
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n != benchSize {
		tb.Fatalf("status %d, %d bytes", resp.StatusCode, n)
	}
}

// A roundTrip is one call through an entry point's whole path, made by
// the setups below: the benchmarks time it, allocs_test.go holds it to
// its budget of allocations.
type roundTrip func(tb testing.TB)

// benchRoundTrip benchmarks rt: time, CPU and allocations per call.
func benchRoundTrip(b *testing.B, rt roundTrip) {
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetBytes(2 * benchSize)
	for b.Loop() {
		rt(b)
	}
}

// noTelemetry is the agents' default: no Telemetry.
func noTelemetry() *telemetry.Telemetry { return nil }

// inProcessHTTP: Transport -> NATS -> Handle, no sidecar.
func inProcessHTTP(tb testing.TB, tel func() *telemetry.Telemetry) roundTrip {
	mb := meshtest.Broker(tb)
	agenttest.Start(tb, mb, agent.Config{Service: "echo", Telemetry: tel()}, agenttest.Handle(http.HandlerFunc(echo)))
	client := &http.Client{Transport: agenttest.Start(tb, mb, agent.Config{Service: "client", Telemetry: tel()}).Transport()}
	return func(tb testing.TB) { httpCall(tb, client, "http://echo/echo") }
}

// embeddedHTTP: Transport -> embedded broker over in-process connections
// (no TCP at all) -> Handle: the single-binary mode.
func embeddedHTTP(tb testing.TB) roundTrip {
	br := meshtest.Broker(tb)
	inProcess := func(service string) *nats.Conn {
		nc, err := br.InProcessConn(nats.CustomInboxPrefix(wire.InboxPrefix(service)))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(nc.Close)
		return nc
	}
	agenttest.StartConn(tb, inProcess("echo"), agent.Config{Service: "echo"}, agenttest.Handle(http.HandlerFunc(echo)))
	client := &http.Client{Transport: agenttest.StartConn(tb, inProcess("client"), agent.Config{Service: "client"}).Transport()}
	return func(tb testing.TB) { httpCall(tb, client, "http://echo/echo") }
}

// inProcessGRPC: ClientConn -> NATS -> GRPCServer.
func inProcessGRPC(tb testing.TB) roundTrip {
	mb := meshtest.Broker(tb)
	agenttest.Start(tb, mb, agent.Config{Service: "echo"}, func(a *agent.Agent) error {
		testpb.RegisterTestServiceServer(a.GRPCServer(), echoGRPC{})
		return nil
	})
	cc, err := agenttest.Start(tb, mb, agent.Config{Service: "client"}).ClientConn("echo")
	if err != nil {
		tb.Fatal(err)
	}
	return grpcCall(testpb.NewTestServiceClient(cc))
}

// grpcCall is one unary call of benchSize bytes each way through c.
func grpcCall(c testpb.TestServiceClient) roundTrip {
	req := &testpb.SimpleRequest{ResponseSize: benchSize, Payload: &testpb.Payload{Body: benchBody}}
	return func(tb testing.TB) {
		resp, err := c.UnaryCall(context.Background(), req)
		if err != nil || len(resp.GetPayload().GetBody()) != benchSize {
			tb.Fatalf("%v, %d bytes", err, len(resp.GetPayload().GetBody()))
		}
	}
}

// sidecarHTTP: HTTP client -> client agent's HTTP proxy -> NATS ->
// service agent -> HTTP upstream, all in this process.
func sidecarHTTP(tb testing.TB, tel func() *telemetry.Telemetry) roundTrip {
	mb := echoBehindAgent(tb, tel)
	proxy := httptest.NewServer(agenttest.Start(tb, mb, agent.Config{Service: "client", Telemetry: tel()}).HTTPProxy())
	tb.Cleanup(proxy.Close)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustParse(tb, proxy.URL))}}
	tb.Cleanup(client.CloseIdleConnections)
	return func(tb testing.TB) { httpCall(tb, client, "http://echo/echo") }
}

// bindHTTP: HTTP client -> client agent's bind port for echo -> NATS ->
// service agent -> HTTP upstream, all in this process.
func bindHTTP(tb testing.TB) roundTrip {
	mb := echoBehindAgent(tb, noTelemetry)
	h, err := agenttest.Start(tb, mb, agent.Config{Service: "client"}).BindHandler("echo")
	if err != nil {
		tb.Fatal(err)
	}
	return serverCall(tb, h)
}

// gatewayHTTP: HTTP client -> the edge gateway (package bridge) -> NATS ->
// service agent -> HTTP upstream, all in this process.
func gatewayHTTP(tb testing.TB) roundTrip {
	mb := echoBehindAgent(tb, noTelemetry)
	g, err := bridge.NewGateway(bridge.GatewayConfig{
		Conn:   meshtest.Conn(tb, mb, nats.CustomInboxPrefix(wire.InboxPrefix("bridge"))),
		Routes: []bridge.Route{{PathPrefix: "/", Service: "echo"}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Shutdown(context.Background()) })
	return serverCall(tb, g)
}

// echoBehindAgent starts a broker, the echo service as an HTTP upstream
// and its agent, and returns the broker.
func echoBehindAgent(tb testing.TB, tel func() *telemetry.Telemetry) *broker.Broker {
	mb := meshtest.Broker(tb)
	upstream := httptest.NewServer(http.HandlerFunc(echo))
	tb.Cleanup(upstream.Close)
	agenttest.Start(tb, mb, agent.Config{Service: "echo", Upstream: upstream.URL, Telemetry: tel()})
	return mb
}

// serverCall serves h on a loopback HTTP server and returns a POST of
// benchSize bytes to its /echo.
func serverCall(tb testing.TB, h http.Handler) roundTrip {
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{}}
	tb.Cleanup(client.CloseIdleConnections)
	return func(tb testing.TB) { httpCall(tb, client, srv.URL+"/echo") }
}

// sidecarGRPC: gRPC client -> client agent's gRPC proxy -> NATS ->
// service agent -> h2c gRPC upstream, all in this process.
func sidecarGRPC(tb testing.TB) roundTrip {
	mb := meshtest.Broker(tb)
	ul, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	upstream := grpc.NewServer()
	testpb.RegisterTestServiceServer(upstream, echoGRPC{})
	healthpb.RegisterHealthServer(upstream, health.NewServer())
	go upstream.Serve(ul)
	tb.Cleanup(upstream.Stop)
	agenttest.Start(tb, mb, agent.Config{Service: "echo", Upstream: "h2c://" + ul.Addr().String()})
	client := agenttest.Start(tb, mb, agent.Config{Service: "client"})
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go client.ServeGRPCProxy(pl)
	cc, err := grpc.NewClient("passthrough:///"+pl.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("echo"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return grpcCall(testpb.NewTestServiceClient(cc))
}

// adapters are the HTTP entry points themselves (see
// BenchmarkAgentHTTPAdapter): the outbound pipeline's innermost
// middleware answers at once (200, 1 KiB), so no NATS request is made.
func adapters(tb testing.TB) []struct {
	name string
	rt   roundTrip
} {
	br := meshtest.Broker(tb)
	m, err := httpwire.ResponseMsg(http.StatusOK, http.Header{"Content-Type": {"application/octet-stream"}}, benchBody, nil, wire.Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	ok := pipeline.ReplyFromMsg(wire.ProtoHTTP, m)
	answer := func(pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(context.Context, *pipeline.Call) (*pipeline.Reply, error) { return ok, nil })
	}
	a := agenttest.Start(tb, br, agent.Config{Service: "client", Outbound: []pipeline.OutboundMiddleware{answer}})
	bind, err := a.BindHandler("echo")
	if err != nil {
		tb.Fatal(err)
	}
	g, err := bridge.NewGateway(bridge.GatewayConfig{
		Conn:       meshtest.Conn(tb, br, nats.CustomInboxPrefix(wire.InboxPrefix("bridge"))),
		Routes:     []bridge.Route{{PathPrefix: "/", Service: "echo"}},
		Middleware: []pipeline.OutboundMiddleware{answer},
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Shutdown(context.Background()) })
	serve := func(h http.Handler, target string) roundTrip {
		return func(tb testing.TB) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, target, bytes.NewReader(benchBody)))
			if w.Code != http.StatusOK || w.Body.Len() != benchSize {
				tb.Fatalf("status %d, %d bytes", w.Code, w.Body.Len())
			}
		}
	}
	tr := a.Transport()
	return []struct {
		name string
		rt   roundTrip
	}{
		{"proxy", serve(a.HTTPProxy(), "http://echo/echo")},
		{"bind", serve(bind, "/echo")},
		{"gateway", serve(g, "/echo")},
		{"transport", func(tb testing.TB) {
			req, _ := http.NewRequest(http.MethodPost, "http://echo/echo", bytes.NewReader(benchBody))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				tb.Fatal(err)
			}
			echoed(tb, resp)
		}},
	}
}

func BenchmarkAgentHTTPInProcess(b *testing.B) { benchRoundTrip(b, inProcessHTTP(b, noTelemetry)) }
func BenchmarkAgentHTTPEmbedded(b *testing.B)  { benchRoundTrip(b, embeddedHTTP(b)) }
func BenchmarkAgentGRPCInProcess(b *testing.B) { benchRoundTrip(b, inProcessGRPC(b)) }
func BenchmarkAgentHTTPSidecar(b *testing.B)   { benchRoundTrip(b, sidecarHTTP(b, noTelemetry)) }
func BenchmarkAgentHTTPBind(b *testing.B)      { benchRoundTrip(b, bindHTTP(b)) }
func BenchmarkAgentHTTPGateway(b *testing.B)   { benchRoundTrip(b, gatewayHTTP(b)) }
func BenchmarkAgentGRPCSidecar(b *testing.B)   { benchRoundTrip(b, sidecarGRPC(b)) }

// BenchmarkAgentHTTPAdapter is the cost of each HTTP entry point itself:
// the outbound pipeline's innermost middleware answers at once (200, 1 KiB),
// so no NATS request is made and what is measured, with no network and
// little noise, is the entry point (reading the request, encoding the call,
// the mesh's middleware, decoding the reply, writing the answer).
func BenchmarkAgentHTTPAdapter(b *testing.B) {
	for _, e := range adapters(b) {
		b.Run(e.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e.rt(b)
			}
		})
	}
}

// reportCPU reports the CPU time (user and system) the whole process spent
// per call, from now until the returned function runs, beside the wall time
// of ns/op: on a machine shared with other work a call waits for a CPU
// longer than it uses one, and cpu-ns/op is the figure that compares.
func reportCPU(b *testing.B) func() {
	start := processCPU(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mustParse(tb testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}
