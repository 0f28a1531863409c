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
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
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

// benchAgent starts an agent for service on a connection of its own.
func benchAgent(b *testing.B, url string, cfg agent.Config, before func(*agent.Agent)) *agent.Agent {
	b.Helper()
	nc, err := nats.Connect(url, nats.CustomInboxPrefix(wire.InboxPrefix(cfg.Service)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	cfg.Logger = slog.New(slog.DiscardHandler)
	a, err := agent.New(nc, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if before != nil {
		before(a)
	}
	if err := a.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Shutdown(context.Background()) })
	if err := a.Ready(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	return a
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
	start := func(service string, before func(*agent.Agent)) *agent.Agent {
		nc, err := br.InProcessConn(nats.CustomInboxPrefix(wire.InboxPrefix(service)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		a, err := agent.New(nc, agent.Config{Service: service, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		if before != nil {
			before(a)
		}
		if err := a.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { a.Shutdown(context.Background()) })
		return a
	}
	start("echo", func(a *agent.Agent) { a.Handle(http.HandlerFunc(echo)) })
	client := &http.Client{Transport: start("client", nil).Transport()}
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetBytes(2 * benchSize)
	for b.Loop() {
		httpCall(b, client, "http://echo/echo")
	}
}

// BenchmarkAgentGRPCInProcess: ClientConn -> NATS -> GRPCServer.
func BenchmarkAgentGRPCInProcess(b *testing.B) {
	url := meshtest.Broker(b).ClientURL()
	benchAgent(b, url, agent.Config{Service: "echo"}, func(a *agent.Agent) {
		testpb.RegisterTestServiceServer(a.GRPCServer(), echoGRPC{})
	})
	cc, err := benchAgent(b, url, agent.Config{Service: "client"}, nil).ClientConn("echo")
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
	url := meshtest.Broker(b).ClientURL()
	upstream := httptest.NewServer(http.HandlerFunc(echo))
	b.Cleanup(upstream.Close)
	benchAgent(b, url, agent.Config{Service: "echo", Upstream: upstream.URL}, nil)
	proxy := httptest.NewServer(benchAgent(b, url, agent.Config{Service: "client"}, nil).HTTPProxy())
	b.Cleanup(proxy.Close)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustParse(b, proxy.URL))}}
	b.ReportAllocs()
	defer reportCPU(b)()
	b.SetBytes(2 * benchSize)
	for b.Loop() {
		httpCall(b, client, "http://echo/echo")
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
	url := meshtest.Broker(b).ClientURL()
	ul, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	upstream := grpc.NewServer()
	testpb.RegisterTestServiceServer(upstream, echoGRPC{})
	healthpb.RegisterHealthServer(upstream, health.NewServer())
	go upstream.Serve(ul)
	b.Cleanup(upstream.Stop)
	benchAgent(b, url, agent.Config{Service: "echo", Upstream: "h2c://" + ul.Addr().String()}, nil)
	client := benchAgent(b, url, agent.Config{Service: "client"}, nil)
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
