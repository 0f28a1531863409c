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

// TestGatewayRefusesWhatNoServerShouldReceive (issue 19, "the gateway
// forwards TRACE, and Hosts such as *, orders.*, x:1:2 or 5,000
// characters"): through the gateway, sent byte for byte, each is answered
// 400, publishing nothing; a plain GET is sent on.
func TestGatewayRefusesWhatNoServerShouldReceive(t *testing.T) {
	b := meshtest.Broker(t)
	var published atomic.Int64
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
	send := func(method, host string) int {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "%s /stock HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, host)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s Host %.20q: %v", method, host, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct{ method, host string }{
		{"TRACE", "shop.example"},
		{"GET", "*"},
		{"GET", "orders.*"},
		{"GET", "x:1:2"},
		{"GET", strings.Repeat("a", 5000)},
	} {
		if code := send(tc.method, tc.host); code != http.StatusBadRequest {
			t.Errorf("%s with Host %.20q: %d, want 400", tc.method, tc.host, code)
		}
	}
	if n := published.Load(); n != 0 {
		t.Errorf("%d of them were published", n)
	}
	if code := send("GET", "shop.example"); code != http.StatusOK || published.Load() != 1 {
		t.Errorf("a plain GET: %d, %d published, want 200 and 1", code, published.Load())
	}
}
