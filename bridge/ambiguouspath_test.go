package bridge

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// rawGateway runs a gateway routing / to orders, which a NATS responder
// stands in for, answering 200 and counting the calls published to it,
// and returns a func that sends one request byte for byte (METHOD
// TARGET, Host: host) and returns its status and Mesh-Error.
func rawGateway(t *testing.T) (send func(method, target, host string) (int, string), published *atomic.Int64) {
	t.Helper()
	b := meshtest.Broker(t)
	published = new(atomic.Int64)
	watch := meshtest.Conn(t, b)
	if _, err := watch.Subscribe("mesh.orders.>", func(m *nats.Msg) {
		published.Add(1)
		m.RespondMsg(&nats.Msg{Header: nats.Header{wire.HeaderStatus: {"200"}}})
	}); err != nil {
		t.Fatal(err)
	}
	watch.Flush()
	g, err := NewGateway(GatewayConfig{Conn: meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("edge"))), Name: "edge",
		Routes: []Route{{PathPrefix: "/", Service: "orders"}}, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(t.Context()) })
	addr := strings.TrimPrefix(startGateway(t, g), "http://")
	return func(method, target, host string) (int, string) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, target, host)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s %s (Host %.20q): %v", method, target, host, err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(wire.HeaderError)
	}, published
}

// TestGatewayRefusesAmbiguousPath (issue 19): the gateway answers 400
// bad-request, publishing nothing, to a path whose dot segments are
// spelled with escaped slashes, backslashes, escaped dots or double
// escapes, sent byte for byte; a plain path is sent on.
func TestGatewayRefusesAmbiguousPath(t *testing.T) {
	send, published := rawGateway(t)
	get := func(target string) (int, string) { return send("GET", target, "shop.example") }
	for _, p := range []string{`/admin%2F..%2Fstock`, `/admin%2f..%2fstock`, `/admin%5C..%5Cstock`, `/admin\..\stock`, `/admin/%2e%2e/stock`, `/admin%252F..%252Fstock`} {
		if code, kind := get(p); code != http.StatusBadRequest || kind != string(wire.KindBadRequest) {
			t.Errorf("gateway %s: %d %q, want 400 %s", p, code, kind, wire.KindBadRequest)
		}
	}
	if n := published.Load(); n != 0 {
		t.Errorf("the gateway published %d calls with ambiguous paths", n)
	}
	if code, kind := get("/stock"); code != http.StatusOK || published.Load() != 1 {
		t.Errorf("gateway /stock: %d %q, published %d; want 200, sent on", code, kind, published.Load())
	}
}

// TestGatewayRefusesWhatNoServerShouldReceive (issue 19, "the gateway
// forwards TRACE, and Hosts such as *, orders.*, x:1:2 or 5,000
// characters"): through the gateway, sent byte for byte, each is answered
// 400, publishing nothing; a plain GET is sent on.
func TestGatewayRefusesWhatNoServerShouldReceive(t *testing.T) {
	send, published := rawGateway(t)
	for _, tc := range []struct{ method, host string }{
		{"TRACE", "shop.example"},
		{"GET", "*"},
		{"GET", "orders.*"},
		{"GET", "x:1:2"},
		{"GET", strings.Repeat("a", 5000)},
	} {
		if code, _ := send(tc.method, "/stock", tc.host); code != http.StatusBadRequest {
			t.Errorf("%s with Host %.20q: %d, want 400", tc.method, tc.host, code)
		}
	}
	if n := published.Load(); n != 0 {
		t.Errorf("%d of them were published", n)
	}
	if code, _ := send("GET", "/stock", "shop.example"); code != http.StatusOK || published.Load() != 1 {
		t.Errorf("a plain GET: %d, %d published, want 200 and 1", code, published.Load())
	}
}
