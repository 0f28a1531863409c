package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

// TestPanicEndsSpans: middleware below the telemetry that panics (an
// application's own, in Config.Inbound or Config.Outbound) still leaves
// every span ended with an error, the call counted as an internal error
// and nothing in flight, on both sides.
func TestPanicEndsSpans(t *testing.T) {
	b := meshtest.Broker(t)
	spans, tp := recordSpans(t)
	panics := func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) { panic("inbound bug") })
	}
	ordersTel := newTelemetry(t, telemetry.Config{TracerProvider: tp})
	startAgent(t, b, agent.Config{Service: "orders", Telemetry: ordersTel, Inbound: []pipeline.InboundMiddleware{panics}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	webTel := newTelemetry(t, telemetry.Config{TracerProvider: tp})
	web := startAgent(t, b, agent.Config{Service: "web", Telemetry: webTel}, nil)
	if resp := get(t, &http.Client{Transport: web.Transport()}, "http://orders/x", nil); resp.StatusCode != 500 {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	served := pick(spans.GetSpans().Snapshots(), "GET orders", trace.SpanKindServer)
	if len(served) != 1 || served[0].Status().Code != codes.Error || attr(served[0], "natsmesh.mesh_error") != "internal" {
		t.Fatalf("served spans %v", names(spans.GetSpans().Snapshots()))
	}
	fams := scrape(t, ordersTel)
	if v := value(fams, "natsmesh_inbound_active", map[string]string{"callee": "orders"}); v != 0 {
		t.Errorf("orders: %v inbound calls in flight after the panic", v)
	}
	if v := value(fams, "natsmesh_inbound_requests_total", map[string]string{"callee": "orders", "mesh_error": "internal"}); v != 1 {
		t.Errorf("orders: %v internal errors counted, want 1", v)
	}

	// Outbound, through the HTTP proxy, which answers the panic 500
	// internal (as every meshhttp.Proxy does).
	spans.Reset()
	outPanics := func(next pipeline.Sender) pipeline.Sender {
		return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) { panic("outbound bug") })
	}
	shopTel := newTelemetry(t, telemetry.Config{TracerProvider: tp})
	shop := startAgent(t, b, agent.Config{Service: "shop", Telemetry: shopTel, Outbound: []pipeline.OutboundMiddleware{outPanics}}, nil)
	proxy := httptest.NewUnstartedServer(shop.HTTPProxy())
	proxy.Config.ErrorLog = nil
	proxy.Start()
	t.Cleanup(proxy.Close)
	pc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, proxy.URL))}}
	resp, err := pc.Get("http://orders/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 || resp.Header.Get(wire.HeaderError) != string(wire.KindInternal) {
		t.Fatalf("the proxy answered %d %q after a panic, want 500 internal", resp.StatusCode, resp.Header.Get(wire.HeaderError))
	}
	got := spans.GetSpans().Snapshots()
	call := pick(got, "GET orders", trace.SpanKindInternal)
	send := pick(got, "send orders", trace.SpanKindClient)
	if len(call) != 1 || len(send) != 1 || call[0].Status().Code != codes.Error || send[0].Status().Code != codes.Error {
		t.Fatalf("spans after an outbound panic: %v", names(got))
	}
	fams = scrape(t, shopTel)
	if v := value(fams, "natsmesh_outbound_active", map[string]string{"caller": "shop"}); v != 0 {
		t.Errorf("shop: %v outbound calls in flight after the panic", v)
	}
	if v := value(fams, "natsmesh_outbound_requests_total", map[string]string{"caller": "shop", "mesh_error": "internal"}); v != 1 {
		t.Errorf("shop: %v internal errors counted, want 1", v)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
