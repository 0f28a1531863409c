package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/telemetry"
)

// sidecarMesh is the mesh file of the sidecar trace tests: calls to c are
// tried twice, with almost no backoff, so a 503 on an idempotent GET is
// retried once.
const sidecarMesh = `version: 1
services:
  c:
    policy:
      retries: { attempts: 2, backoff: 1ms, max_backoff: 1ms, jitter: 0 }
`

// sidecars starts sidecar agents on one broker, each with telemetry of
// its own on one in-memory span exporter, and the mesh file of
// sidecarMesh.
type sidecars struct {
	t     *testing.T
	b     *broker.Broker
	tp    *sdktrace.TracerProvider
	spans *tracetest.InMemoryExporter
	mesh  string
}

func newSidecars(t *testing.T) *sidecars {
	spans, tp := recordSpans(t)
	mesh := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(mesh, []byte(sidecarMesh), 0o600); err != nil {
		t.Fatal(err)
	}
	return &sidecars{t: t, b: meshtest.Broker(t), tp: tp, spans: spans, mesh: mesh}
}

// start runs a sidecar for service: upstream "" for an outbound-only one;
// its HTTP and gRPC proxies listen on loopback.
func (m *sidecars) start(service, upstream string) *agent.Sidecar {
	t := m.t
	t.Helper()
	s := agenttest.StartSidecar(t, agent.SidecarConfig{
		Agent: agent.Config{Service: service, Upstream: upstream, Logger: quiet,
			Telemetry: newTelemetry(t, telemetry.Config{Service: service, TracerProvider: m.tp})},
		Connect: agent.ConnectConfig{URL: m.b.ClientURL(), Logger: quiet},
		HTTP:    "127.0.0.1:0",
		GRPC:    "127.0.0.1:0",
		Policy:  m.mesh,
	})
	if upstream != "" {
		if err := s.Agent().Ready(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// proxyClient is a plain HTTP client whose proxy is the sidecar's.
func proxyClient(s *agent.Sidecar) *http.Client {
	u := &url.URL{Scheme: "http", Host: s.Addr("HTTP proxy").String()}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: 10 * time.Second}
}

// waitSpans waits until the exporter holds n spans and returns them (more
// than n fails).
func (m *sidecars) waitSpans(n int) []sdktrace.ReadOnlySpan {
	t := m.t
	t.Helper()
	var got []sdktrace.ReadOnlySpan
	meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		got = m.spans.GetSpans().Snapshots()
		if len(got) < n {
			return fmt.Errorf("%d spans, want %d: %v", len(got), n, names(got))
		}
		return nil
	})
	if len(got) != n {
		t.Fatalf("%d spans, want %d: %v", len(got), n, names(got))
	}
	return got
}

// pick returns the spans of name and kind, in the order they started.
func pick(spans []sdktrace.ReadOnlySpan, name string, kind trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name && s.SpanKind() == kind {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	return out
}

func onePick(t *testing.T, spans []sdktrace.ReadOnlySpan, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	t.Helper()
	got := pick(spans, name, kind)
	if len(got) != 1 {
		t.Fatalf("%d %v spans %q, want 1, in %v", len(got), kind, name, names(spans))
	}
	return got[0]
}

// wantAttrs checks attributes of span.
func wantAttrs(t *testing.T, s sdktrace.ReadOnlySpan, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		if got := attr(s, kv[i]); got != kv[i+1] {
			t.Errorf("%s (%v): %s = %q, want %q", s.Name(), s.SpanKind(), kv[i], got, kv[i+1])
		}
	}
}

// wantChain checks that chain is one trace, each span the child of the one
// before.
func wantChain(t *testing.T, chain ...sdktrace.ReadOnlySpan) {
	t.Helper()
	id := chain[0].SpanContext().TraceID()
	for i, s := range chain {
		if s.SpanContext().TraceID() != id {
			t.Errorf("%s (%v) is in trace %s, not %s", s.Name(), s.SpanKind(), s.SpanContext().TraceID(), id)
		}
		if i > 0 && s.Parent().SpanID() != chain[i-1].SpanContext().SpanID() {
			t.Errorf("parent of %s (%v) is not %s (%v)", s.Name(), s.SpanKind(), chain[i-1].Name(), chain[i-1].SpanKind())
		}
	}
}

// TestTraceThroughSidecars: a -> b -> c where b and c are real HTTP servers
// each behind a sidecar and a is a plain HTTP client of its own sidecar's
// proxy. b's handler has no tracing of its own: it calls c through its
// sidecar's proxy with the traceparent of the request it serves, as any
// service in the mesh must. The six spans are one trace:
//
//	a's sidecar  GET b (internal) > send b (client)
//	b's sidecar  > GET b (server) > [b forwards traceparent] > GET c (internal) > send c (client)
//	c's sidecar  > GET c (server)
//
// Then a retried call: c answers the first attempt of an idempotent GET
// with 503 and the mesh file tries calls to c twice, so b's call span has
// two attempt spans, the first failed, each with a served span of c's
// under it; a client that sends a traceparent of its own is their parent.
func TestTraceThroughSidecars(t *testing.T) {
	m := newSidecars(t)

	var flaky atomic.Int32
	var seenC sync.Map // path -> traceparents c saw, []string
	c := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := seenC.LoadOrStore(r.URL.Path, &[]string{})
		*v.(*[]string) = append(*v.(*[]string), r.Header.Get("Traceparent"))
		if r.URL.Path == "/flaky" && flaky.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "c")
	}))
	t.Cleanup(c.Close)
	m.start("c", c.URL)

	var bProxy atomic.Pointer[http.Client]
	var seenB atomic.Value
	bSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenB.Store(r.Header.Get("Traceparent"))
		out, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://c"+r.URL.Path, nil)
		out.Header.Set("Traceparent", r.Header.Get("Traceparent"))
		resp, err := bProxy.Load().Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))
	t.Cleanup(bSrv.Close)
	bProxy.Store(proxyClient(m.start("b", bSrv.URL)))

	a := proxyClient(m.start("a", ""))
	if resp := get(t, a, "http://b/orders", nil); resp.StatusCode != 200 {
		t.Fatalf("a -> b: status %d", resp.StatusCode)
	}
	got := m.waitSpans(6)
	aCall := onePick(t, got, "GET b", trace.SpanKindInternal)
	aSend := onePick(t, got, "send b", trace.SpanKindClient)
	bServed := onePick(t, got, "GET b", trace.SpanKindServer)
	bCall := onePick(t, got, "GET c", trace.SpanKindInternal)
	bSend := onePick(t, got, "send c", trace.SpanKindClient)
	cServed := onePick(t, got, "GET c", trace.SpanKindServer)
	if aCall.Parent().IsValid() {
		t.Errorf("a's call has a parent %v: a sent no traceparent", aCall.Parent())
	}
	wantChain(t, aCall, aSend, bServed, bCall, bSend, cServed)
	for _, s := range got {
		if s.Status().Code == codes.Error {
			t.Errorf("%s (%v) failed: %v", s.Name(), s.SpanKind(), s.Status())
		}
	}
	// Each service saw its served span as the parent.
	if s, _ := seenB.Load().(string); !strings.Contains(s, bServed.SpanContext().SpanID().String()) {
		t.Errorf("b saw traceparent %q, not its served span %s", s, bServed.SpanContext().SpanID())
	}
	if v, ok := seenC.Load("/orders"); !ok || !strings.Contains((*v.(*[]string))[0], cServed.SpanContext().SpanID().String()) {
		t.Errorf("c saw traceparents %v, not its served span %s", v, cServed.SpanContext().SpanID())
	}
	// The semantic conventions, and the mesh's own.
	wantAttrs(t, aCall, "http.request.method", "GET", "url.path", "/orders", "server.address", "b",
		"http.response.status_code", "200", "natsmesh.caller", "a", "natsmesh.callee", "b", "natsmesh.attempts", "1")
	wantAttrs(t, aSend, "messaging.system", "nats", "messaging.operation.type", "send", "messaging.destination.name", "mesh.b._.a.http.GET",
		"server.address", "b", "natsmesh.attempt", "1", "http.response.status_code", "200")
	wantAttrs(t, bServed, "http.request.method", "GET", "url.path", "/orders", "natsmesh.caller", "a",
		"messaging.system", "nats", "messaging.operation.type", "process", "messaging.consumer.group.name", "b",
		"http.response.status_code", "200")
	wantAttrs(t, bCall, "natsmesh.caller", "b", "natsmesh.callee", "c", "http.request.method", "GET")
	wantAttrs(t, cServed, "natsmesh.caller", "b", "messaging.destination.name", "mesh.c._.b.http.GET", "http.response.status_code", "200")

	// The retried call, under a client's own trace.
	m.spans.Reset()
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	if resp := get(t, a, "http://b/flaky", http.Header{"Traceparent": {"00-" + clientTrace + "-" + clientSpan + "-01"}}); resp.StatusCode != 200 {
		t.Fatalf("a -> b -> c/flaky: status %d", resp.StatusCode)
	}
	got = m.waitSpans(8)
	for _, s := range got {
		if s.SpanContext().TraceID().String() != clientTrace {
			t.Errorf("%s (%v) is in trace %s, not the client's", s.Name(), s.SpanKind(), s.SpanContext().TraceID())
		}
	}
	aCall = onePick(t, got, "GET b", trace.SpanKindInternal)
	if aCall.Parent().SpanID().String() != clientSpan || !aCall.Parent().IsRemote() {
		t.Errorf("a's call: parent %v, want the client's span %s", aCall.Parent(), clientSpan)
	}
	bServed = onePick(t, got, "GET b", trace.SpanKindServer)
	wantChain(t, aCall, onePick(t, got, "send b", trace.SpanKindClient), bServed)
	bCall = onePick(t, got, "GET c", trace.SpanKindInternal)
	sends := pick(got, "send c", trace.SpanKindClient)
	served := pick(got, "GET c", trace.SpanKindServer)
	if len(sends) != 2 || len(served) != 2 {
		t.Fatalf("%d attempts and %d served calls of c, want 2 and 2: %v", len(sends), len(served), names(got))
	}
	wantChain(t, bServed, bCall)
	wantAttrs(t, bCall, "natsmesh.attempts", "2", "http.response.status_code", "200")
	if bCall.Status().Code == codes.Error {
		t.Errorf("b's call failed: %v", bCall.Status())
	}
	for i := range 2 {
		wantChain(t, bCall, sends[i], served[i])
		wantAttrs(t, sends[i], "natsmesh.attempt", fmt.Sprint(i+1), "natsmesh.hedge", "false")
	}
	wantAttrs(t, sends[0], "http.response.status_code", "503", "error.type", "503")
	wantAttrs(t, served[0], "http.response.status_code", "503")
	if sends[0].Status().Code != codes.Error || served[0].Status().Code != codes.Error {
		t.Errorf("first attempt: status %v, served %v; want errors", sends[0].Status(), served[0].Status())
	}
	if sends[1].Status().Code == codes.Error || served[1].Status().Code == codes.Error {
		t.Errorf("second attempt: status %v, served %v; want success", sends[1].Status(), served[1].Status())
	}
	v, _ := seenC.Load("/flaky")
	if tps := *v.(*[]string); len(tps) != 2 || !strings.Contains(tps[0], served[0].SpanContext().SpanID().String()) ||
		!strings.Contains(tps[1], served[1].SpanContext().SpanID().String()) {
		t.Errorf("c saw traceparents %v, not its two served spans", tps)
	}
}

// traceService answers UnaryCall with the traceparent metadata it got.
type traceService struct {
	testpb.UnimplementedTestServiceServer
}

func (traceService) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	tp := md.Get("traceparent")
	if len(tp) != 1 {
		return nil, errors.New("traceparent metadata: " + strings.Join(tp, ", "))
	}
	return &testpb.SimpleResponse{Username: tp[0]}, nil
}

// TestTraceGRPCThroughSidecars: a gRPC client of a sidecar's gRPC proxy,
// sending its own traceparent metadata, calling a real gRPC server behind
// another sidecar, is one trace of three spans under the client's, with the
// rpc conventions, and the server gets its served span's traceparent as
// (exactly one) metadata value.
func TestTraceGRPCThroughSidecars(t *testing.T) {
	m := newSidecars(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, traceService{})
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	m.start("g", "h2c://"+l.Addr().String())

	a := m.start("a", "")
	cc, err := grpc.NewClient(a.Addr("gRPC proxy").String(), grpc.WithAuthority("g"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	// The client is traced itself: its metadata carries its span.
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	resp, err := testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	const method = "grpc.testing.TestService/UnaryCall"
	got := m.waitSpans(3)
	call := onePick(t, got, method, trace.SpanKindInternal)
	if call.SpanContext().TraceID().String() != clientTrace || call.Parent().SpanID().String() != clientSpan {
		t.Errorf("a's call: trace %s, parent %s; want the client's", call.SpanContext().TraceID(), call.Parent().SpanID())
	}
	send := onePick(t, got, "send g", trace.SpanKindClient)
	served := onePick(t, got, method, trace.SpanKindServer)
	wantChain(t, call, send, served)
	for _, s := range []sdktrace.ReadOnlySpan{call, served} {
		wantAttrs(t, s, "rpc.system.name", "grpc", "rpc.method", method, "rpc.response.status_code", "OK")
	}
	wantAttrs(t, send, "messaging.system", "nats", "messaging.destination.name", "mesh.g._.a.grpc.%2Fgrpc%2Etesting%2ETestService%2FUnaryCall", "rpc.response.status_code", "OK")
	if !strings.Contains(resp.GetUsername(), served.SpanContext().SpanID().String()) {
		t.Errorf("the server saw traceparent %q, not its served span %s", resp.GetUsername(), served.SpanContext().SpanID())
	}
}
