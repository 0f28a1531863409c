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

// TestGatewayRefusesAmbiguousPath (issue 19): the gateway answers 400
// bad-request, publishing nothing, to a path whose dot segments are
// spelled with escaped slashes, backslashes, escaped dots or double
// escapes, sent byte for byte; a plain path is sent on.
func TestGatewayRefusesAmbiguousPath(t *testing.T) {
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
	get := func(target string) (int, string) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(wire.HeaderError)
	}
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
