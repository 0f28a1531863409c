package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/h2ctest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// callerService is a generated gRPC service that answers who called it
// (in process, or from the metadata its agent adds), with the payload it
// got.
type callerService struct {
	testpb.UnimplementedTestServiceServer
	name string
}

func (s callerService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if code := req.GetResponseStatus().GetCode(); code != 0 {
		return nil, status.Error(codes.Code(code), req.GetResponseStatus().GetMessage())
	}
	caller, ok := agent.CallerFrom(ctx)
	if md, _ := metadata.FromIncomingContext(ctx); !ok && len(md.Get("mesh-caller")) > 0 {
		caller = md.Get("mesh-caller")[0] // a service behind its agent
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload(), Username: s.name + " called by " + caller}, nil
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// h2Mesh is a mesh for the HTTP/2 tests: "orders", whose agent serves a
// real HTTP server (it answers with the Host, path and Upgrade header it
// got) and an in-process gRPC service; "greeter", a real gRPC server on
// the network behind its agent (h2c upstream); and the sidecar of "web",
// with its HTTP proxy and a bind port to each.
type h2Mesh struct {
	proxy, orders, greeter string // listener addresses of web's sidecar
}

func newH2Mesh(t *testing.T, opts ...func(*agent.SidecarConfig)) h2Mesh {
	t.Helper()
	b := meshtest.Broker(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "orders %s %s%s", r.Host, r.URL.Path, r.Header.Get("Upgrade"))
	}))
	t.Cleanup(up.Close)
	agenttest.Start(t, b, agent.Config{Service: "orders", Upstream: up.URL}, func(a *agent.Agent) error {
		testpb.RegisterTestServiceServer(a.GRPCServer(), callerService{name: "orders"})
		return nil
	})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, callerService{name: "greeter"})
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	agenttest.Start(t, b, agent.Config{Service: "greeter", Upstream: "h2c://" + l.Addr().String()})

	cfg := agent.SidecarConfig{
		Agent:   agent.Config{Service: "web", Logger: quietLog()},
		Connect: agent.ConnectConfig{URL: b.ClientURL(), Timeout: 5 * time.Second, Logger: quietLog()},
		HTTP:    "127.0.0.1:0", GRPC: "off", Admin: "off", Policy: "off",
		Binds: []agent.Bind{{Dest: "orders", Addr: "127.0.0.1:0"}, {Dest: "greeter", Addr: "127.0.0.1:0"}},
	}
	for _, o := range opts {
		o(&cfg)
	}
	s := agenttest.StartSidecar(t, cfg)
	if err := s.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return h2Mesh{proxy: s.Addr("HTTP proxy").String(), orders: s.Addr("bind orders").String(), greeter: s.Addr("bind greeter").String()}
}

// TestHTTP2ThroughProxyAndBind: HTTP/2 clients without TLS get their
// answers from the HTTP proxy (addressing the service by Host, which is
// HTTP/2's :authority) and from a bind port, with prior knowledge and by
// Upgrade: h2c, where they got a reset connection and 501 before; the
// service gets a plain request, no Upgrade header, under its own name.
func TestHTTP2ThroughProxyAndBind(t *testing.T) {
	m := newH2Mesh(t)
	for _, l := range []struct{ name, addr, host string }{
		{"proxy", m.proxy, "orders"},
		{"bind", m.orders, m.orders},
	} {
		t.Run(l.name+"/prior knowledge", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+l.addr+"/hello", nil)
			req.Host = l.host
			resp, err := h2ctest.Client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != "orders orders /hello" {
				t.Errorf("got %s %s %q, want HTTP/2.0 200 %q", resp.Proto, resp.Status, body, "orders orders /hello")
			}
		})
		t.Run(l.name+"/upgrade", func(t *testing.T) {
			c := h2ctest.Upgrade(t, l.addr, l.host, "/first")
			second := c.Get("/second")
			for id, want := range map[uint32]string{1: "orders orders /first", second: "orders orders /second"} {
				if a := c.Await(id); a.Status != 200 || a.Body != want {
					t.Errorf("stream %d: %d %q %v, want 200 %q", id, a.Status, a.Body, a.Header, want)
				}
			}
		})
	}
}

// TestUpgradeWithBodyServedOverHTTP1: an h2c upgrade with a body is not
// switched (the body would have to be read whole first) but served over
// HTTP/1.1, as RFC 9110 section 7.8 allows: the service gets the request,
// without the Upgrade header, and the client its answer.
func TestUpgradeWithBodyServedOverHTTP1(t *testing.T) {
	m := newH2Mesh(t)
	for _, l := range []struct{ name, addr string }{{"proxy", m.proxy}, {"bind", m.orders}} {
		t.Run(l.name, func(t *testing.T) {
			c, err := net.Dial("tcp", l.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "POST /form HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"+
				"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 2\r\n\r\nhi")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.ProtoMajor != 1 || resp.StatusCode != 200 || string(body) != "orders orders /form" {
				t.Errorf("got %s %s %q, want HTTP/1.1 200 %q", resp.Proto, resp.Status, body, "orders orders /form")
			}
		})
	}
}

// TestHTTP2StalledBody: over HTTP/2 as over HTTP/1.1, a request body not
// sent within the agent's BodyTimeout is answered 408 request-timeout.
func TestHTTP2StalledBody(t *testing.T) {
	m := newH2Mesh(t, func(c *agent.SidecarConfig) { c.Agent.BodyTimeout = 200 * time.Millisecond })
	body, stall := io.Pipe() // nothing written: the body stays open and empty
	defer stall.Close()
	resp, err := h2ctest.Client(t).Post("http://"+m.orders+"/upload", "text/plain", body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get(wire.HeaderError) != string(wire.KindRequestTimeout) {
		t.Errorf("got %s %s %v, want HTTP/2.0 408 request-timeout", resp.Proto, resp.Status, resp.Header)
	}
}

// TestHTTP2MeshErrors: a mesh error reaches an HTTP/2 client as it
// reaches an HTTP/1.1 one: its status and Mesh-Error header.
func TestHTTP2MeshErrors(t *testing.T) {
	m := newH2Mesh(t)
	req, _ := http.NewRequest(http.MethodGet, "http://"+m.proxy+"/", nil)
	req.Host = "nobody"
	resp, err := h2ctest.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(wire.HeaderError) != string(wire.KindNoResponders) {
		t.Errorf("got %s %s %v, want HTTP/2.0 503 no-responders", resp.Proto, resp.Status, resp.Header)
	}
}

// TestGRPCThroughBindPort: a grpc-go client dials a bind port, with no
// authority to set, and calls the bound service (unary): an in-process
// one, and a real gRPC server behind its agent; on the same port, HTTP/1.1
// and HTTP/2 clients are served as before. The HTTP proxy's port takes
// gRPC clients too, routed by their authority.
func TestGRPCThroughBindPort(t *testing.T) {
	m := newH2Mesh(t)
	call := func(t *testing.T, addr string, req *testpb.SimpleRequest, opts ...grpc.DialOption) (*testpb.SimpleResponse, error) {
		t.Helper()
		cc, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return testpb.NewTestServiceClient(cc).UnaryCall(ctx, req)
	}
	ping := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}}
	for _, tt := range []struct {
		name, addr string
		opts       []grpc.DialOption
		want       string
	}{
		{"bind, in-process service", m.orders, nil, "orders called by web"},
		{"bind, h2c upstream", m.greeter, nil, "greeter called by web"},
		{"proxy, by authority", m.proxy, []grpc.DialOption{grpc.WithAuthority("greeter")}, "greeter called by web"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := call(t, tt.addr, ping, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetUsername() != tt.want || string(resp.GetPayload().GetBody()) != "ping" {
				t.Errorf("got %q %q, want %q ping", resp.GetUsername(), resp.GetPayload().GetBody(), tt.want)
			}
		})
	}
	t.Run("bind, the service's error status", func(t *testing.T) {
		_, err := call(t, m.greeter, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "out of stock"}})
		if s := status.Convert(err); s.Code() != codes.FailedPrecondition || s.Message() != "out of stock" {
			t.Errorf("got %v, want FailedPrecondition out of stock", err)
		}
	})
	t.Run("proxy, no instance", func(t *testing.T) {
		_, err := call(t, m.proxy, ping, grpc.WithAuthority("nobody"))
		if s := status.Convert(err); s.Code() != codes.Unavailable {
			t.Errorf("got %v, want Unavailable", err)
		}
	})
	t.Run("HTTP/1.1 on the gRPC clients' bind port", func(t *testing.T) {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("http://" + m.orders + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 1 || resp.StatusCode != 200 || string(body) != "orders orders /hello" {
			t.Errorf("got %s %s %q", resp.Proto, resp.Status, body)
		}
	})
}

// TestCurlHTTP2: curl --http2-prior-knowledge and curl --http2 (Upgrade:
// h2c) get their answers over HTTP/2 from the proxy and a bind port, as
// the README says. Skipped where curl is not installed.
func TestCurlHTTP2(t *testing.T) {
	m := newH2Mesh(t)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"prior knowledge, proxy", []string{"--http2-prior-knowledge", "-H", "Host: orders", "http://" + m.proxy + "/hello"}},
		{"prior knowledge, bind", []string{"--http2-prior-knowledge", "http://" + m.orders + "/hello"}},
		{"upgrade, proxy", []string{"--http2", "-x", "http://" + m.proxy, "http://orders/hello"}},
		{"upgrade, bind", []string{"--http2", "http://" + m.orders + "/hello"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := h2ctest.Curl(t, append([]string{"--write-out", " HTTP/%{http_version}"}, tt.args...)...)
			if want := "orders orders /hello HTTP/2"; out != want {
				t.Errorf("curl %s: %q, want %q", strings.Join(tt.args, " "), out, want)
			}
		})
	}
}
