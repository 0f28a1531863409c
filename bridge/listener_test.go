package bridge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/pipeline"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// recordingGateway is a gateway to "web" whose calls end in a stub that
// records each call and answers 200.
func recordingGateway(t *testing.T, cfg GatewayConfig) (base string, calls chan *pipeline.Call) {
	t.Helper()
	calls = make(chan *pipeline.Call, 16)
	cfg.Conn = gatewayConn(t, runServer(t))
	cfg.Routes = []Route{{PathPrefix: "/", Service: "web"}}
	cfg.Logger = discardLogger()
	cfg.Middleware = stub(func(_ context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
		calls <- c
		return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}), nil
	})
	g, err := NewGateway(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(startGateway(t, g), "http://"), calls
}

// exchange writes raw to addr and reads the first response.
func exchange(t *testing.T, addr, raw string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp
}

// TestGatewayHeaderLimitOneAnswer: issue 9 item 8. Headers over the limit get
// 431 headers-too-large at any size.
func TestGatewayHeaderLimitOneAnswer(t *testing.T) {
	addr, _ := recordingGateway(t, GatewayConfig{})
	for _, size := range []int{66 << 10, 100 << 10, 1 << 20} {
		t.Run(fmt.Sprintf("%dKiB", size>>10), func(t *testing.T) {
			resp := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "+strings.Repeat("a", size)+"\r\n\r\n")
			if resp.StatusCode != 431 || resp.Header.Get(wire.HeaderError) != string(wire.KindHeadersTooLarge) {
				t.Errorf("got %s %v, want 431 headers-too-large", resp.Status, resp.Header)
			}
		})
	}
}

// TestGatewayStalledBody: issue 9 item 15, at the edge.
func TestGatewayStalledBody(t *testing.T) {
	addr, calls := recordingGateway(t, GatewayConfig{ReadTimeout: 300 * time.Millisecond})
	resp := exchange(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get(wire.HeaderError) != string(wire.KindRequestTimeout) {
		t.Errorf("got %s %v, want 408 request-timeout", resp.Status, resp.Header)
	}
	if len(calls) != 0 {
		t.Error("a partial body was sent on")
	}
}

// TestGatewayCarriesUpgrade: issue 9 item 18, issue 18. A WebSocket
// upgrade is never sent on as a plain request: it is sent as an upgrade
// (Mesh-Upgrade, its body the client's bytes once switched); a service
// that answers it otherwise (here 200) answers as for any request.
// (TestWebSocketThroughAgents in package agent carries a WebSocket
// through the gateway; TestH2C* in this package, h2c upgrades.)
func TestGatewayCarriesUpgrade(t *testing.T) {
	addr, calls := recordingGateway(t, GatewayConfig{})
	resp := exchange(t, addr, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("got %s %v, want the service's 200", resp.Status, resp.Header)
	}
	c := <-calls
	if c.Header.Get(httpwire.HeaderUpgrade) != "websocket" || !c.Body.Streamed() {
		t.Errorf("sent %v (streamed %v), want an upgrade", c.Header, c.Body.Streamed())
	}
}

// TestGatewayForwardedHeadersDoNotCount: issue 9 item 18. A client at exactly
// the header-count limit is served: the gateway's X-Forwarded-* are its
// own. One more is refused.
func TestGatewayForwardedHeadersDoNotCount(t *testing.T) {
	addr, calls := recordingGateway(t, GatewayConfig{})
	request := func(n int) *http.Response {
		var b strings.Builder
		b.WriteString("GET / HTTP/1.1\r\nConnection: close\r\n")
		b.WriteString("Host: x\r\n") // not in r.Header: the request's Host
		for i := range n {
			fmt.Fprintf(&b, "X-H%d: v\r\n", i)
		}
		b.WriteString("\r\n")
		return exchange(t, addr, b.String())
	}
	// Connection is hop-by-hop and never counts.
	if resp := request(wire.DefaultMaxHeaders); resp.StatusCode != 200 {
		t.Errorf("%d headers: got %s %s, want 200", wire.DefaultMaxHeaders, resp.Status, resp.Header.Get(wire.HeaderError))
	} else if c := <-calls; c.HeaderValue("X-Forwarded-For") == "" {
		t.Error("no X-Forwarded-For")
	}
	if resp := request(wire.DefaultMaxHeaders + 1); resp.StatusCode != 431 {
		t.Errorf("%d headers: got %s, want 431", wire.DefaultMaxHeaders+1, resp.Status)
	}
}

// TestGatewayEmptyHost: issue 9 item 18. HTTP/1.0 without Host reaches the
// service with the service's name as Host, not the upstream's address.
func TestGatewayEmptyHost(t *testing.T) {
	addr, calls := recordingGateway(t, GatewayConfig{})
	if resp := exchange(t, addr, "GET /x HTTP/1.0\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("got %s", resp.Status)
	}
	c := <-calls
	if h := c.Header.Get(wire.HeaderHost); h != "web" {
		t.Errorf("Mesh-Host %q, want the service's name web", h)
	}
	if c.HeaderValue("X-Forwarded-Host") != "" {
		t.Errorf("X-Forwarded-Host %q for a request without Host", c.HeaderValue("X-Forwarded-Host"))
	}
}

// TestGatewayCallerDeadline: issue 9 item 10, at the edge: Mesh-Timeout
// shortens the gateway's own timeout, never lengthens it, and is not sent on
// as a header of the service's.
func TestGatewayCallerDeadline(t *testing.T) {
	left := make(chan time.Duration, 2)
	g, err := NewGateway(GatewayConfig{
		Conn:    gatewayConn(t, runServer(t)),
		Routes:  []Route{{PathPrefix: "/", Service: "web"}},
		Logger:  discardLogger(),
		Timeout: time.Second,
		Middleware: stub(func(ctx context.Context, c *pipeline.Call) (*pipeline.Reply, error) {
			d, _ := ctx.Deadline()
			left <- time.Until(d)
			if c.HeaderValue("Mesh-Hdr-Mesh-Timeout") != "" {
				t.Error("the client's Mesh-Timeout was sent on as a service header")
			}
			return pipeline.ReplyFromMsg(wire.ProtoHTTP, &nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}}), nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	base := startGateway(t, g)
	for _, tt := range []struct {
		header string
		max    time.Duration
	}{{"100ms", 100 * time.Millisecond}, {"1h", time.Second}} {
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.Header.Set("Mesh-Timeout", tt.header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if l := <-left; l > tt.max {
			t.Errorf("Mesh-Timeout %s: call had %v left, want at most %v", tt.header, l, tt.max)
		}
	}
}
