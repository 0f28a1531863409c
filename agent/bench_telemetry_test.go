package agent_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/telemetry"
)

// The cost of telemetry per call: the benchmarks of bench_test.go again
// with a Telemetry on both agents. "Metrics": metrics and the snapshot's
// counters, tracing off (no OTEL_* exporter), as `natsmesh agent` runs by
// default. "Tracing": also a span per call, attempt and served call,
// every one sampled, batched to an exporter that drops them. Compare with
// the benchmark of the same name without the suffix (README, "Cost of
// telemetry").

func benchTelemetry(b *testing.B, tracing bool) func() *telemetry.Telemetry {
	var cfg telemetry.Config
	if tracing {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		b.Cleanup(func() { tp.Shutdown(context.Background()) })
		cfg.TracerProvider = tp
	}
	return func() *telemetry.Telemetry {
		tel, err := telemetry.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tel.Shutdown(context.Background()) })
		return tel
	}
}

func BenchmarkAgentHTTPInProcessMetrics(b *testing.B) {
	benchRoundTrip(b, inProcessHTTP(b, benchTelemetry(b, false)))
}
func BenchmarkAgentHTTPInProcessTracing(b *testing.B) {
	benchRoundTrip(b, inProcessHTTP(b, benchTelemetry(b, true)))
}

func BenchmarkAgentHTTPSidecarMetrics(b *testing.B) {
	benchRoundTrip(b, sidecarHTTP(b, benchTelemetry(b, false)))
}
func BenchmarkAgentHTTPSidecarTracing(b *testing.B) {
	benchRoundTrip(b, sidecarHTTP(b, benchTelemetry(b, true)))
}

// BenchmarkAgentHTTPSidecarListener is the sidecar pair as `natsmesh agent`
// runs it: the client agent's own proxy listener (ServeHTTPProxy, with the
// framing guard and the body deadline) rather than an httptest server, and
// metrics on both agents. Compare with BenchmarkAgentHTTPSidecarMetrics
// for what the listener costs.
func BenchmarkAgentHTTPSidecarListener(b *testing.B) {
	tel := benchTelemetry(b, false)
	mb := meshtest.Broker(b)
	upstream := httptest.NewServer(http.HandlerFunc(echo))
	b.Cleanup(upstream.Close)
	agenttest.Start(b, mb, agent.Config{Service: "echo", Upstream: upstream.URL, Telemetry: tel()})
	client := agenttest.Start(b, mb, agent.Config{Service: "client", Telemetry: tel()})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go client.ServeHTTPProxy(l)
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustParse(b, "http://"+l.Addr().String()))}}
	b.Cleanup(hc.CloseIdleConnections)
	benchRoundTrip(b, func(tb testing.TB) { httpCall(tb, hc, "http://echo/echo") })
}
