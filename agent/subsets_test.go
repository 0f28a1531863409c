package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// TestSubsetAddressing: issue 9 item 3. The v2 subset of orders is
// addressable as v2.orders through the proxy (absolute form), the Host
// header, a bind port, the in-process Transport and, for gRPC, ClientConn
// and the gRPC proxy's :authority; a subset nobody serves is named in the
// no-responders message.
func TestSubsetAddressing(t *testing.T) {
	b := meshtest.Broker(t)
	v1, v2 := echoServer(t, "v1"), echoServer(t, "v2")
	startAgent(t, b, Config{Service: "orders", Subset: "v1", Upstream: v1.URL})
	startAgent(t, b, Config{Service: "orders", Subset: "v2", Upstream: v2.URL})
	g1, _ := grpcUpstream(t, "grpc-v2")
	startAgent(t, b, Config{Service: "stock", Subset: "v2", Upstream: g1})
	// Through the proxy, SUBSET.SERVICE names a subset of a service the
	// mesh file declares (wire.ReadHost; without one, v2.orders.mesh).
	f, err := policies.Parse("mesh.yaml", []byte("version: 1\nservices:\n  web: {}\n  orders: { subsets: [v1, v2] }\n  stock: { subsets: [v2] }\n"))
	if err != nil {
		t.Fatal(err)
	}
	web := startAgent(t, b, Config{Service: "web", Policies: live.Static(f)})
	proxy := listen(t, web.ServeHTTPProxy)
	grpcProxy := listen(t, web.ServeGRPCProxy)
	bind := listen(t, func(l net.Listener) error { return web.ServeBind(l, "v2.orders") })
	bindMissing := listen(t, func(l net.Listener) error { return web.ServeBind(l, "v3.orders") })

	get := func(c *http.Client, url, host string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	transport := &http.Client{Transport: web.Transport()}
	entries := []struct {
		name string
		do   func(subset string) *http.Response
	}{
		{"proxy", func(s string) *http.Response { return get(proxyClient(proxy), "http://"+s+".orders/x", "") }},
		{"host header", func(s string) *http.Response { return get(http.DefaultClient, "http://"+proxy+"/x", s+".orders") }},
		{"host header with domain and port", func(s string) *http.Response {
			return get(http.DefaultClient, "http://"+proxy+"/x", s+".orders.mesh:80")
		}},
		{"bind", func(s string) *http.Response {
			if s == "v2" {
				return get(http.DefaultClient, "http://"+bind+"/x", "")
			}
			return get(http.DefaultClient, "http://"+bindMissing+"/x", "")
		}},
		{"transport", func(s string) *http.Response { return get(transport, "http://"+s+".orders/x", "") }},
	}
	for _, e := range entries {
		t.Run(e.name, func(t *testing.T) {
			for range 5 {
				if got := decodeEcho(t, e.do("v2")); got.Instance != "v2" || got.Host != "orders" && !strings.HasPrefix(got.Host, "v2.orders") {
					t.Fatalf("v2.orders reached %+v", got)
				}
			}
			resp := e.do("v3")
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 503 || resp.Header.Get(wire.HeaderError) != string(wire.KindNoResponders) ||
				!strings.Contains(string(body), "no instance of orders@v3 is serving") {
				t.Errorf("v3.orders: got %d %q, want 503 no-responders naming orders@v3", resp.StatusCode, body)
			}
		})
	}

	grpcEntries := []struct {
		name string
		conn func(dest string) grpc.ClientConnInterface
	}{
		{"ClientConn", func(dest string) grpc.ClientConnInterface {
			cc, err := web.ClientConn(dest)
			if err != nil {
				t.Fatal(err)
			}
			return cc
		}},
		{"gRPC proxy", func(dest string) grpc.ClientConnInterface {
			cc, err := grpc.NewClient(grpcProxy, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(dest))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cc.Close() })
			return cc
		}},
	}
	for _, e := range grpcEntries {
		t.Run(e.name, func(t *testing.T) {
			resp, err := testpb.NewTestServiceClient(e.conn("v2.stock")).UnaryCall(context.Background(), &testpb.SimpleRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(resp.GetUsername(), "web|") {
				t.Errorf("v2.stock answered %q", resp.GetUsername())
			}
			_, err = testpb.NewTestServiceClient(e.conn("v3.stock")).UnaryCall(context.Background(), &testpb.SimpleRequest{})
			if s := status.Convert(err); s.Code() != codes.Unavailable || !strings.Contains(s.Message(), "no instance of stock@v3 is serving") {
				t.Errorf("v3.stock: got %v, want Unavailable naming stock@v3", err)
			}
		})
	}
	t.Run("bind config", func(t *testing.T) {
		s, err := NewSidecar(SidecarConfig{Agent: Config{Service: "web"}, Binds: []Bind{{Dest: "v2.orders", Addr: "127.0.0.1:0"}}})
		if err != nil {
			t.Fatalf("--bind v2.orders=...: %v", err)
		}
		s.Shutdown(context.Background())
	})
}
