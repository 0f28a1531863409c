package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/meshhttp"
	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/telemetry"
	"github.com/natsmesh/natsmesh/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

func newTelemetry(t *testing.T, cfg telemetry.Config) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	return tel
}

// recordSpans is a tracer provider that records its spans synchronously in
// the exporter returned, shut down in t.Cleanup.
func recordSpans(t *testing.T) (*tracetest.InMemoryExporter, *sdktrace.TracerProvider) {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return spans, tp
}

// startOverloadedOnce starts service orders, whose first call is refused
// overloaded and whose later ones are answered "ok".
func startOverloadedOnce(t *testing.T, b *broker.Broker) {
	t.Helper()
	var calls atomic.Int32
	overloadFirst := func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			if calls.Add(1) == 1 {
				return nil, &wire.Error{Kind: wire.KindOverloaded, Message: "busy"}
			}
			return next.ServeCall(ctx, c)
		})
	}
	startAgent(t, b, agent.Config{Service: "orders", Inbound: []pipeline.InboundMiddleware{overloadFirst}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
}

// startAgent starts an agent (agenttest.Start); h, when set, is its
// in-process service.
func startAgent(t *testing.T, b *broker.Broker, cfg agent.Config, h http.Handler) *agent.Agent {
	t.Helper()
	if h == nil {
		return agenttest.Start(t, b, cfg)
	}
	return agenttest.Start(t, b, cfg, agenttest.Handle(h))
}

func get(t *testing.T, c *http.Client, url string, h http.Header) *http.Response {
	t.Helper()
	return do(t, c, http.MethodGet, url, h)
}

func do(t *testing.T, c *http.Client, method, url string, h http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestTraceAcrossHops: web -> b -> c through three agents with in-process
// services, b forwarding the traceparent of the request it serves (and
// nothing else: it calls with a fresh context), is one trace:
//
//	web: GET b (call) > send b (attempt) > b: GET b (served)
//	  > b: GET c (call) > send c (attempt) > c: GET c (served)
//
// and the services see the traceparent of their served span.
func TestTraceAcrossHops(t *testing.T) {
	b := meshtest.Broker(t)
	spans, tp := recordSpans(t)
	tel := func() *telemetry.Telemetry { return newTelemetry(t, telemetry.Config{TracerProvider: tp}) }

	var seenC atomic.Value
	startAgent(t, b, agent.Config{Service: "c", Telemetry: tel()}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenC.Store(r.Header.Get("Traceparent"))
		io.WriteString(w, "c")
	}))
	var bAgent *agent.Agent
	var seenB atomic.Value
	bAgent = startAgent(t, b, agent.Config{Service: "b", Telemetry: tel()}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenB.Store(r.Header.Get("Traceparent"))
		out, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://c/items", nil)
		out.Header.Set("Traceparent", r.Header.Get("Traceparent"))
		resp, err := (&http.Client{Transport: bAgent.Transport()}).Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))
	web := startAgent(t, b, agent.Config{Service: "web", Telemetry: tel()}, nil)

	if resp := get(t, &http.Client{Transport: web.Transport()}, "http://b/orders", nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := spans.GetSpans().Snapshots()
	if len(got) != 6 {
		t.Fatalf("%d spans, want 6: %v", len(got), names(got))
	}
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range got {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	one := func(name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
		t.Helper()
		for _, s := range byName[name] {
			if s.SpanKind() == kind {
				return s
			}
		}
		t.Fatalf("no %v span %q in %v", kind, name, names(got))
		return nil
	}
	webCall := one("GET b", trace.SpanKindInternal)
	webSend := one("send b", trace.SpanKindClient)
	bServed := one("GET b", trace.SpanKindServer)
	bCall := one("GET c", trace.SpanKindInternal)
	bSend := one("send c", trace.SpanKindClient)
	cServed := one("GET c", trace.SpanKindServer)
	chain := []sdktrace.ReadOnlySpan{webCall, webSend, bServed, bCall, bSend, cServed}
	if webCall.Parent().IsValid() {
		t.Errorf("the first call has a parent: %v", webCall.Parent())
	}
	for i := 1; i < len(chain); i++ {
		if chain[i].SpanContext().TraceID() != webCall.SpanContext().TraceID() {
			t.Errorf("%s is in trace %s, not %s", chain[i].Name(), chain[i].SpanContext().TraceID(), webCall.SpanContext().TraceID())
		}
		if chain[i].Parent().SpanID() != chain[i-1].SpanContext().SpanID() {
			t.Errorf("parent of %s (%v) is not %s (%v)", chain[i].Name(), chain[i].SpanKind(), chain[i-1].Name(), chain[i-1].SpanKind())
		}
	}
	for _, tc := range []struct {
		who  string
		seen any
		span sdktrace.ReadOnlySpan
	}{{"b", seenB.Load(), bServed}, {"c", seenC.Load(), cServed}} {
		if s, _ := tc.seen.(string); !strings.Contains(s, tc.span.SpanContext().SpanID().String()) {
			t.Errorf("service %s saw traceparent %q, not its served span %s", tc.who, s, tc.span.SpanContext().SpanID())
		}
	}
	if v := attr(cServed, "http.request.method"); v != "GET" {
		t.Errorf("c's served span: http.request.method = %q", v)
	}
	if v := attr(bSend, "messaging.system"); v != "nats" {
		t.Errorf("b's attempt span: messaging.system = %q", v)
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var n []string
	for _, s := range spans {
		n = append(n, s.Name()+"/"+s.SpanKind().String())
	}
	return n
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// retryOnce stands in for the resilience policies in this test: it sends
// an attempt again when the first answered overloaded.
func retryOnce(next pipeline.Sender) pipeline.Sender {
	return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		reply, err := next.Send(ctx, c)
		if errors.Is(err, wire.ErrOverloaded) {
			return next.Send(ctx, c)
		}
		return reply, err
	})
}

// TestRetryAttempts: a call whose first attempt is answered overloaded and
// whose second succeeds has one call span with two sibling attempt spans,
// the first failed, and counts one retry, under the route it matched.
func TestRetryAttempts(t *testing.T) {
	b := meshtest.Broker(t)
	spans, tp := recordSpans(t)
	startOverloadedOnce(t, b)

	tel := newTelemetry(t, telemetry.Config{TracerProvider: tp})
	nc := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("web")))
	out, err := pipeline.NewOutbound(nc, pipeline.OutboundConfig{Middleware: []pipeline.OutboundMiddleware{
		tel.OutboundCall(), routeReads, retryOnce, tel.OutboundAttempt(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://orders/x", nil)
	c, err := meshhttp.NewCall(req, pipeline.Call{Service: "orders", Caller: "web"}, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	before := len(c.Header)
	if _, err := out.Send(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(c.Header) != before || c.HeaderValue("traceparent") != "" {
		t.Errorf("the caller's call was changed: %v", c.Header)
	}
	var call sdktrace.ReadOnlySpan
	var attempts []sdktrace.ReadOnlySpan
	for _, s := range spans.GetSpans().Snapshots() {
		switch s.Name() {
		case "GET orders":
			call = s
		case "send orders":
			attempts = append(attempts, s)
		}
	}
	if call == nil || len(attempts) != 2 {
		t.Fatalf("spans %v: want one call and two attempts", names(spans.GetSpans().Snapshots()))
	}
	for i, a := range attempts {
		if a.Parent().SpanID() != call.SpanContext().SpanID() {
			t.Errorf("attempt %d is not a child of the call", i+1)
		}
		if got := attr(a, "natsmesh.attempt"); got != []string{"1", "2"}[i] {
			t.Errorf("attempt %d: natsmesh.attempt = %s", i+1, got)
		}
	}
	if attr(attempts[0], "natsmesh.mesh_error") != "overloaded" || attempts[1].Status().Code != 0 {
		t.Errorf("attempts: first %q %v, second %v", attr(attempts[0], "natsmesh.mesh_error"), attempts[0].Status(), attempts[1].Status())
	}
	if got := attr(call, "natsmesh.attempts"); got != "2" {
		t.Errorf("call: natsmesh.attempts = %s", got)
	}
	fams := scrape(t, tel)
	if v := value(fams, "natsmesh_outbound_retries_total", map[string]string{"caller": "web", "callee": "orders", "route": "reads"}); v != 1 {
		t.Errorf("retries = %v, want 1", v)
	}
	if v := value(fams, "natsmesh_outbound_requests_total", map[string]string{"callee": "orders", "route": "reads", "status_class": "2xx"}); v != 1 {
		t.Errorf("requests on route reads = %v, want 1", v)
	}
}

// routeReads stands in for routing: the call matched route "reads".
func routeReads(next pipeline.Sender) pipeline.Sender {
	return pipeline.SendFunc(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		return next.Send(pipeline.WithRoute(ctx, "reads"), c)
	})
}

// scrape reads t's /metrics page with the Prometheus text parser.
func scrape(t *testing.T, tel *telemetry.Telemetry) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatalf("the Prometheus parser refuses /metrics: %v\n%s", err, rec.Body)
	}
	return fams
}

// value sums the samples of family whose labels include want: a counter's
// or gauge's value, a histogram's count.
func value(fams map[string]*dto.MetricFamily, family string, want map[string]string) float64 {
	f := fams[family]
	if f == nil {
		return -1
	}
	var sum float64
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// TestMetricsAfterKnownTraffic: 37 answers, 5 of the service's 500s and 3
// calls to a service nobody serves (each retried by the built-in policy: a
// call is counted once, whatever its attempts) show as exactly those counts on both
// sides, under their labels, on a page the Prometheus parser accepts; and
// in the snapshot, and in $SRV.STATS.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	b := meshtest.Broker(t)
	ordersTel := newTelemetry(t, telemetry.Config{})
	orders := startAgent(t, b, agent.Config{Service: "orders", Subset: "v1", Telemetry: ordersTel},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/fail" {
				http.Error(w, "failed", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "ok")
		}))
	var logs bytes.Buffer
	webTel := newTelemetry(t, telemetry.Config{AccessLog: slog.New(slog.NewJSONHandler(&logs, nil))})
	web := startAgent(t, b, agent.Config{Service: "web", Telemetry: webTel}, nil)
	client := &http.Client{Transport: web.Transport()}
	for range 37 {
		get(t, client, "http://orders/items/123", nil)
	}
	// POST: not idempotent, so the built-in policy does not retry the 500s.
	for range 5 {
		do(t, client, http.MethodPost, "http://orders/fail", nil)
	}
	for range 3 {
		if resp := get(t, client, "http://inventory/items", nil); resp.Header.Get(wire.HeaderError) != "no-responders" {
			t.Fatalf("inventory: %d %q", resp.StatusCode, resp.Header.Get(wire.HeaderError))
		}
	}

	fams := scrape(t, webTel)
	out := map[string]string{"caller": "web", "callee": "orders", "subset": "", "proto": "http", "route": ""}
	with := func(m map[string]string, kv ...string) map[string]string {
		n := map[string]string{}
		for k, v := range m {
			n[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			n[kv[i]] = kv[i+1]
		}
		return n
	}
	for _, tc := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"natsmesh_outbound_requests_total", with(out, "status_class", "2xx", "mesh_error", ""), 37},
		{"natsmesh_outbound_requests_total", with(out, "status_class", "5xx", "mesh_error", ""), 5},
		{"natsmesh_outbound_errors_total", with(out, "status_class", "5xx", "mesh_error", ""), 5},
		{"natsmesh_outbound_errors_total", with(out, "status_class", "2xx"), 0},
		{"natsmesh_outbound_requests_total", with(out, "callee", "inventory", "status_class", "5xx", "mesh_error", "no-responders"), 3},
		{"natsmesh_outbound_errors_total", with(out, "callee", "inventory", "mesh_error", "no-responders"), 3},
		{"natsmesh_outbound_duration_seconds", with(out), 42},
		{"natsmesh_outbound_duration_seconds", with(out, "callee", "inventory"), 3},
		{"natsmesh_outbound_active", map[string]string{"caller": "web"}, 0},
	} {
		if got := value(fams, tc.family, tc.labels); got != tc.want {
			t.Errorf("web: %s%v = %v, want %v", tc.family, tc.labels, got, tc.want)
		}
	}
	fams = scrape(t, ordersTel)
	in := map[string]string{"caller": "web", "callee": "orders", "subset": "", "proto": "http"}
	for _, tc := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"natsmesh_inbound_requests_total", with(in, "status_class", "2xx", "mesh_error", ""), 37},
		{"natsmesh_inbound_requests_total", with(in, "status_class", "5xx", "mesh_error", ""), 5},
		{"natsmesh_inbound_errors_total", with(in), 5},
		{"natsmesh_inbound_duration_seconds", with(in), 42},
		{"natsmesh_serving", map[string]string{"service": "orders", "subset": "v1"}, 1},
	} {
		if got := value(fams, tc.family, tc.labels); got != tc.want {
			t.Errorf("orders: %s%v = %v, want %v", tc.family, tc.labels, got, tc.want)
		}
	}
	// No raw path, no ID in any label.
	for name, f := range scrape(t, webTel) {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "/") || strings.Contains(l.GetValue(), "123") {
					t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	// The snapshot counts the same.
	s := web.Stats()
	if len(s.Outbound) != 2 || len(s.Inbound) != 0 || s.Kind != "agent" || !s.Serving || s.ID == "" {
		t.Fatalf("web stats %+v", s)
	}
	o, inv := s.Outbound[1], s.Outbound[0]
	if o.Callee != "orders" || o.Requests != 42 || o.Errors != 5 || len(o.MeshErrors) != 0 || sum(o.Latency.Counts) != 42 ||
		len(o.Latency.Counts) != len(o.Latency.BoundsMS)+1 {
		t.Errorf("web -> orders: %+v", o)
	}
	if inv.Callee != "inventory" || inv.Requests != 3 || inv.Errors != 3 || inv.MeshErrors["no-responders"] != 3 {
		t.Errorf("web -> inventory: %+v", inv)
	}

	// $SRV.STATS.orders, as `nats micro stats orders` asks it.
	nc := meshtest.Conn(t, b)
	msg, err := nc.Request("$SRV.STATS.orders", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats struct {
		micro.Stats
		Natsmesh telemetry.Snapshot `json:"natsmesh"`
	}
	if err := json.Unmarshal(msg.Data, &stats); err != nil {
		t.Fatal(err)
	}
	if len(stats.Endpoints) != 2 {
		t.Fatalf("endpoints %+v", stats.Endpoints)
	}
	anyEP := stats.Endpoints[0]
	if anyEP.Name != "orders" || anyEP.Subject != "mesh.orders._.>" || anyEP.QueueGroup != "orders" ||
		anyEP.NumRequests != 42 || anyEP.NumErrors != 5 || anyEP.ProcessingTime <= 0 || anyEP.AverageProcessingTime <= 0 ||
		anyEP.LastError != "status 500" {
		t.Errorf("endpoint %+v", anyEP)
	}
	if stats.Endpoints[1].Name != "orders-v1" || stats.Endpoints[1].NumRequests != 0 {
		t.Errorf("subset endpoint %+v", stats.Endpoints[1])
	}
	n := stats.Natsmesh
	if n.Service != "orders" || n.Subset != "v1" || n.ID != orders.ID() || stats.ID != orders.ID() || !n.Serving ||
		len(n.Inbound) != 1 || n.Inbound[0].Caller != "web" || n.Inbound[0].Requests != 42 || n.Inbound[0].Errors != 5 {
		t.Errorf("natsmesh stats %+v", n)
	}

	// One access log line per call, failures with their mesh error.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 45 {
		t.Fatalf("%d access log lines, want 45", len(lines))
	}
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[44]), &last); err != nil {
		t.Fatal(err)
	}
	// No responders never ran, so the built-in policy retried it.
	if n, _ := last["attempts"].(float64); last["callee"] != "inventory" || last["mesh_error"] != "no-responders" || last["status"] != float64(503) || n < 2 {
		t.Errorf("access log line %s", lines[44])
	}
}

func sum(v []uint64) (s uint64) {
	for _, x := range v {
		s += x
	}
	return s
}

// TestServingInDiscovery: $SRV.INFO shows natsmesh.serving flip to false
// while the service fails its health checks and back once it passes, and
// the natsmesh_serving and natsmesh_healthy gauges with it.
func TestServingInDiscovery(t *testing.T) {
	b := meshtest.Broker(t)
	var healthy atomic.Bool
	healthy.Store(true)
	tel := newTelemetry(t, telemetry.Config{})
	a := startAgent(t, b, agent.Config{Service: "orders", Telemetry: tel, Health: agent.HealthConfig{
		Interval: 10 * time.Millisecond, FailThreshold: 1, PassThreshold: 1,
		Check: func(context.Context) error {
			if healthy.Load() {
				return nil
			}
			return errors.New("down")
		},
	}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	nc := meshtest.Conn(t, b)
	serving := func() string {
		m, err := nc.Request("$SRV.INFO.orders."+a.ID(), nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var info micro.Info
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Fatal(err)
		}
		return info.Metadata["natsmesh.serving"]
	}
	// natsmesh_healthy follows the checks, natsmesh_serving the queue
	// groups (one check is each threshold here, so they move together).
	gauge := func() float64 {
		fams := scrape(t, tel)
		orders := map[string]string{"service": "orders"}
		if s, h := value(fams, "natsmesh_serving", orders), value(fams, "natsmesh_healthy", orders); s != h {
			return -1
		}
		return value(fams, "natsmesh_serving", orders)
	}
	wait := func(want string, g float64) {
		t.Helper()
		meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
			if got := serving(); got != want {
				return errors.New("natsmesh.serving = " + got)
			}
			if got := gauge(); got != g {
				return fmt.Errorf("natsmesh_serving and natsmesh_healthy %v, want %v", got, g)
			}
			return nil
		})
	}
	wait("true", 1)
	healthy.Store(false)
	wait("false", 0)
	healthy.Store(true)
	wait("true", 1)
}

// TestRetryThroughPolicies: with the mesh's own resilience policies (the
// built-in policy retries what never ran, such as overloaded), a call whose
// first attempt is refused shows two sibling attempt spans numbered by the
// policies, one retry on /metrics, and 2 attempts in the access log.
func TestRetryThroughPolicies(t *testing.T) {
	b := meshtest.Broker(t)
	spans, tp := recordSpans(t)
	startOverloadedOnce(t, b)
	var logs bytes.Buffer
	tel := newTelemetry(t, telemetry.Config{TracerProvider: tp, AccessLog: slog.New(slog.NewJSONHandler(&logs, nil))})
	web := startAgent(t, b, agent.Config{Service: "web", Telemetry: tel}, nil)
	if resp := get(t, &http.Client{Transport: web.Transport()}, "http://orders/x", nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var call sdktrace.ReadOnlySpan
	var attempts []sdktrace.ReadOnlySpan
	for _, s := range spans.GetSpans().Snapshots() {
		switch s.Name() {
		case "GET orders":
			call = s
		case "send orders":
			attempts = append(attempts, s)
		}
	}
	if call == nil || len(attempts) != 2 {
		t.Fatalf("spans %v: want one call and two attempts", names(spans.GetSpans().Snapshots()))
	}
	for _, a := range attempts {
		if a.Parent().SpanID() != call.SpanContext().SpanID() || attr(a, "natsmesh.hedge") != "false" {
			t.Errorf("attempt %s: parent %v, hedge %s", attr(a, "natsmesh.attempt"), a.Parent().SpanID(), attr(a, "natsmesh.hedge"))
		}
	}
	if v := value(scrape(t, tel), "natsmesh_outbound_retries_total", map[string]string{"callee": "orders"}); v != 1 {
		t.Errorf("retries = %v, want 1", v)
	}
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line["attempts"] != float64(2) || line["status"] != float64(200) {
		t.Errorf("access log %s (%v)", logs.String(), err)
	}
}
