package bridge_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/bridge"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/h2c"
	"github.com/natsmesh/natsmesh/internal/h2ctest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// ordersEdge runs "orders" (a real HTTP server, which answers with the
// protocol, Host and path it got, and any Upgrade header, behind its
// agent) and an edge with the route /orders=orders+strip, and returns the
// edge and its gateway's address.
func ordersEdge(t *testing.T) (*bridge.Edge, string) {
	t.Helper()
	b := meshtest.Broker(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "orders %s %s%s", r.Host, r.URL.Path, r.Header.Get("Upgrade"))
	}))
	t.Cleanup(up.Close)
	agenttest.Start(t, b, agent.Config{Service: "orders", Upstream: up.URL})
	quiet := slog.New(slog.DiscardHandler)
	e, err := bridge.NewEdge(bridge.EdgeConfig{
		Gateway: bridge.GatewayConfig{Name: "edge", Routes: []bridge.Route{{PathPrefix: "/orders", Service: "orders", StripPrefix: true}}, Logger: quiet},
		Connect: bridge.ConnectConfig{URL: b.ClientURL(), Logger: quiet},
		Listen:  "127.0.0.1:0", Admin: "off", Policy: "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return e, e.Addr().String()
}

// TestGatewayHTTP2: HTTP/2 clients without TLS get their answers from the
// edge gateway, with prior knowledge and by Upgrade: h2c (two requests on
// the switched connection), where they got a reset connection and 501
// before; the service gets a plain request without the Upgrade header,
// with the Host the client sent (the gateway keeps it, as for HTTP/1.1).
func TestGatewayHTTP2(t *testing.T) {
	_, addr := ordersEdge(t)
	t.Run("prior knowledge", func(t *testing.T) {
		resp, err := h2ctest.Client(t).Get("http://" + addr + "/orders/hello")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "orders " + addr + " /hello"; resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != want {
			t.Errorf("got %s %s %q, want HTTP/2.0 200 %q", resp.Proto, resp.Status, body, want)
		}
	})
	t.Run("upgrade", func(t *testing.T) {
		c := h2ctest.Upgrade(t, addr, "shop.example", "/orders/first")
		second := c.Get("/orders/second")
		for id, want := range map[uint32]string{1: "orders shop.example /first", second: "orders shop.example /second"} {
			if a := c.Await(id); a.Status != 200 || a.Body != want {
				t.Errorf("stream %d: %d %q, want 200 %q", id, a.Status, a.Body, want)
			}
		}
	})
	for _, flag := range []string{"--http2-prior-knowledge", "--http2"} {
		t.Run("curl "+flag, func(t *testing.T) {
			out := h2ctest.Curl(t, "--write-out", " HTTP/%{http_version}", flag, "http://"+addr+"/orders/hello")
			if want := "orders " + addr + " /hello HTTP/2"; out != want {
				t.Errorf("curl %s: %q, want %q", flag, out, want)
			}
		})
	}
}

// TestEdgeShutdownEndsUpgradedConnections: the edge's Shutdown sends an
// upgraded connection GOAWAY and returns once it has closed, as it does
// for its HTTP/1.1 and prior-knowledge connections; http.Server alone
// forgets a connection once it is hijacked.
func TestEdgeShutdownEndsUpgradedConnections(t *testing.T) {
	e, addr := ordersEdge(t)
	c := h2ctest.Upgrade(t, addr, "shop.example", "/orders/hello")
	if a := c.Await(1); a.Status != 200 || !strings.HasPrefix(a.Body, "orders") {
		t.Fatalf("stream 1: %d %q", a.Status, a.Body)
	}
	done := make(chan error, 1)
	go func() { done <- e.Shutdown(context.Background()) }()
	c.AwaitGoAway()
	c.AwaitClose()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown still waits after the upgraded connection closed")
	}
}

// TestGatewayHeaderBomb: the gateway, the mesh's one listener for
// outside clients, refuses a header block that HPACK references decode to
// megabytes (431, or the connection closed) without holding it, and says
// its per-connection bounds in its SETTINGS (issue 19).
func TestGatewayHeaderBomb(t *testing.T) {
	_, addr := ordersEdge(t)
	c := h2ctest.Dial(t, addr, "edge")
	s := c.AwaitSettings()
	if n := s[http2.SettingMaxConcurrentStreams]; n != h2c.MaxConcurrentStreams {
		t.Errorf("max concurrent streams %d, want %d", n, h2c.MaxConcurrentStreams)
	}
	maxList := wire.Limits{}.HeaderListSize()
	if n, ok := s[http2.SettingMaxHeaderListSize]; !ok || n > maxList {
		t.Errorf("max header list size %d (sent: %v), want at most %d", n, ok, maxList)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	a := c.AwaitEnd(c.Send(h2ctest.Bomb("edge", "/orders/x", "x-bomb", 4000, 3000, false), true))
	runtime.ReadMemStats(&after)
	if !c.Closed && a.Status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("12 MB of decoded headers answered %d, want 431 or the connection closed", a.Status)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("the gateway allocated %d MB refusing 7 KB of headers", n>>20)
	}
}
