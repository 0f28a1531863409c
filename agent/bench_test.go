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

func httpCall(b *testing.B, c *http.Client, url string) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(benchBody))
	if err != nil {
		b.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	echoed(b, resp)
}

// echoed reads and closes resp, which must be a 200 with benchSize bytes.
func echoed(b *testing.B, resp *http.Response) {
	b.Helper()
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n != benchSize {
		b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
	}
}

// BenchmarkAgentHTTPInProcess: Transport -> NATS -> Handle, no sidecar.
func BenchmarkAgentHTTPInProcess(b *testing.B) {
	benchHTTPInProcess(b, func() *telemetry.Telemetry { return nil })
}

// BenchmarkAgentHTTPEmbedded: Transport -> embedded broker over in-process
// connections (no TCP at all) -> Handle: the single-binary mode.
func BenchmarkAgentHTTPEmbedded(b *testing.B) {
	br := meshtest.Broker(b)
	inProcess := func(service string) *nats.Conn {
		nc, err := br.InProcessConn(nats.CustomInboxPrefix(wire.InboxPrefix(service)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
	agenttest.StartConn(b, inProcess("echo"), agent.Config{Service: "echo"}, agenttest.Handle(http.HandlerFunc(echo)))
	client := &http.Client{Transport: agenttest.StartConn(b, inProcess("client"), agent.Config{Service: "client"}).Transport()}
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetBytes(2 * benchSize)
	for b.Loop() {
		httpCall(b, client, "http://echo/echo")
	}
}

// BenchmarkAgentGRPCInProcess: ClientConn -> NATS -> GRPCServer.
func BenchmarkAgentGRPCInProcess(b *testing.B) {
	mb := meshtest.Broker(b)
	agenttest.Start(b, mb, agent.Config{Service: "echo"}, func(a *agent.Agent) error {
		testpb.RegisterTestServiceServer(a.GRPCServer(), echoGRPC{})
		return nil
	})
	cc, err := agenttest.Start(b, mb, agent.Config{Service: "client"}).ClientConn("echo")
	if err != nil {
		b.Fatal(err)
	}
	c := testpb.NewTestServiceClient(cc)
	req := &testpb.SimpleRequest{ResponseSize: benchSize, Payload: &testpb.Payload{Body: benchBody}}
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetBytes(2 * benchSize)
	for b.Loop() {
		resp, err := c.UnaryCall(context.Background(), req)
		if err != nil || len(resp.GetPayload().GetBody()) != benchSize {
			b.Fatalf("%v, %d bytes", err, len(resp.GetPayload().GetBody()))
		}
	}
}

// BenchmarkAgentHTTPSidecar: HTTP client -> client agent's HTTP proxy ->
// NATS -> service agent -> HTTP upstream, all in this process.
func BenchmarkAgentHTTPSidecar(b *testing.B) {
	mb := meshtest.Broker(b)
	upstream := httptest.NewServer(http.HandlerFunc(echo))
	b.Cleanup(upstream.Close)
	agenttest.Start(b, mb, agent.Config{Service: "echo", Upstream: upstream.URL})
	proxy := httptest.NewServer(agenttest.Start(b, mb, agent.Config{Service: "client"}).HTTPProxy())
	b.Cleanup(proxy.Close)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustParse(b, proxy.URL))}}
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetBytes(2 * benchSize)
	for b.Loop() {
		httpCall(b, client, "http://echo/echo")
	}
}

// BenchmarkAgentHTTPBind: HTTP client -> client agent's bind port for echo
// -> NATS -> service agent -> HTTP upstream, all in this process.
func BenchmarkAgentHTTPBind(b *testing.B) {
	mb := meshtest.Broker(b)
	upstream := httptest.NewServer(http.HandlerFunc(echo))
	b.Cleanup(upstream.Close)
	agenttest.Start(b, mb, agent.Config{Service: "echo", Upstream: upstream.URL})
	h, err := agenttest.Start(b, mb, agent.Config{Service: "client"}).BindHandler("echo")
	if err != nil {
		b.Fatal(err)
	}
	bind := httptest.NewServer(h)
	b.Cleanup(bind.Close)
	client := &http.Client{Transport: &http.Transport{}}
	b.Cleanup(client.CloseIdleConnections)
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetBytes(2 * benchSize)
	for b.Loop() {
		httpCall(b, client, bind.URL+"/echo")
	}
}

// BenchmarkAgentHTTPAdapter is the cost of each HTTP entry point itself:
// the outbound pipeline's innermost middleware answers at once (200, 1 KiB),
// so no NATS request is made and what is measured, with no network and
// little noise, is the entry point (reading the request, encoding the call,
// the mesh's middleware, decoding the reply, writing the answer).
func BenchmarkAgentHTTPAdapter(b *testing.B) {
	br := meshtest.Broker(b)
	m, err := httpwire.ResponseMsg(http.StatusOK, http.Header{"Content-Type": {"application/octet-stream"}}, benchBody, nil, wire.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	ok := pipeline.ReplyFromMsg(wire.ProtoHTTP, m)
	answer := func(pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(context.Context, *pipeline.Call) (*pipeline.Reply, error) { return ok, nil })
	}
	a := agenttest.Start(b, br, agent.Config{Service: "client", Outbound: []pipeline.OutboundMiddleware{answer}})
	bind, err := a.BindHandler("echo")
	if err != nil {
		b.Fatal(err)
	}
	g, err := bridge.NewGateway(bridge.GatewayConfig{
		Conn:       meshtest.Conn(b, br, nats.CustomInboxPrefix(wire.InboxPrefix("bridge"))),
		Routes:     []bridge.Route{{PathPrefix: "/", Service: "echo"}},
		Middleware: []pipeline.OutboundMiddleware{answer},
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Shutdown(context.Background()) })
	serve := func(h http.Handler, target string) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, target, bytes.NewReader(benchBody)))
				if w.Code != http.StatusOK || w.Body.Len() != benchSize {
					b.Fatalf("status %d, %d bytes", w.Code, w.Body.Len())
				}
			}
		}
	}
	b.Run("proxy", serve(a.HTTPProxy(), "http://echo/echo"))
	b.Run("bind", serve(bind, "/echo"))
	b.Run("gateway", serve(g, "/echo"))
	b.Run("transport", func(b *testing.B) {
		tr := a.Transport()
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, "http://echo/echo", bytes.NewReader(benchBody))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			echoed(b, resp)
		}
	})
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

func mustParse(b *testing.B, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		b.Fatal(err)
	}
	return u
}

// BenchmarkAgentGRPCSidecar: gRPC client -> client agent's gRPC proxy ->
// NATS -> service agent -> h2c gRPC upstream, all in this process.
func BenchmarkAgentGRPCSidecar(b *testing.B) {
	mb := meshtest.Broker(b)
	ul, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	upstream := grpc.NewServer()
	testpb.RegisterTestServiceServer(upstream, echoGRPC{})
	healthpb.RegisterHealthServer(upstream, health.NewServer())
	go upstream.Serve(ul)
	b.Cleanup(upstream.Stop)
	agenttest.Start(b, mb, agent.Config{Service: "echo", Upstream: "h2c://" + ul.Addr().String()})
	client := agenttest.Start(b, mb, agent.Config{Service: "client"})
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go client.ServeGRPCProxy(pl)
	cc, err := grpc.NewClient("passthrough:///"+pl.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("echo"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	c := testpb.NewTestServiceClient(cc)
	req := &testpb.SimpleRequest{ResponseSize: benchSize, Payload: &testpb.Payload{Body: benchBody}}
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetBytes(2 * benchSize)
	for b.Loop() {
		resp, err := c.UnaryCall(context.Background(), req)
		if err != nil || len(resp.GetPayload().GetBody()) != benchSize {
			b.Fatalf("%v, %d bytes", err, len(resp.GetPayload().GetBody()))
		}
	}
}
