package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/natsmesh/natsmesh/meshhttp"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// BenchmarkMiddleware measures the telemetry of one call alone, without
// NATS: the caller's two outbound middlewares and the callee's inbound one
// around a call that answers at once. agent's BenchmarkAgentHTTP*Metrics
// and *Tracing measure the same inside whole calls, where the machine's
// noise is larger than the difference.
func BenchmarkMiddleware(b *testing.B) {
	req := httptest.NewRequest(http.MethodGet, "http://orders/items/1", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	call, err := meshhttp.NewCall(req, pipeline.Call{Service: "orders", Caller: "web"}, wire.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	ok := pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}})
	for _, tc := range []struct {
		name string
		cfg  func() telemetry.Config
	}{
		{"none", nil},
		{"metrics", func() telemetry.Config { return telemetry.Config{} }},
		{"tracing", func() telemetry.Config {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { tp.Shutdown(context.Background()) })
			return telemetry.Config{TracerProvider: tp}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var tel *telemetry.Telemetry
			if tc.cfg != nil {
				var err error
				if tel, err = telemetry.New(tc.cfg()); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { tel.Shutdown(context.Background()) })
			}
			var h pipeline.Handler = pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) { return ok, nil })
			if mw := tel.Inbound(); mw != nil {
				h = mw(h)
			}
			var s pipeline.Sender = pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
				return h.ServeCall(ctx, c)
			})
			for _, mw := range []pipeline.OutboundMiddleware{tel.OutboundAttempt(), tel.OutboundCall()} {
				if mw != nil {
					s = mw(s)
				}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Send(ctx, call); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
