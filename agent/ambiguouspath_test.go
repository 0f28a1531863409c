package agent

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// ambiguousPaths are paths whose meaning depends on how a server decodes
// them (issue 19).
var ambiguousPaths = []string{`/admin%2F..%2Fstock`, `/admin%2f..%2fstock`, `/admin%5C..%5Cstock`, `/admin\..\stock`, `/admin/%2e%2e/stock`, `/admin%252F..%252Fstock`}

// rawHTTP sends the request line "GET target HTTP/1.1" with host to addr,
// byte for byte, and returns the status and Mesh-Error of the answer.
func rawHTTP(t *testing.T, addr, target, host string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(wire.HeaderError)
}

// TestAmbiguousPathRefusedEverywhere (issue 19): the agent's proxy, a bind
// port, its Transport and its inbound dispatch (a raw NATS client) refuse
// a path whose dot segments are spelled with escaped slashes, backslashes,
// escaped dots or double escapes, 400 bad-request; the service sees none.
func TestAmbiguousPathRefusedEverywhere(t *testing.T) {
	b := meshtest.Broker(t)
	var served atomic.Int64
	startAgent(t, b, Config{Service: "orders"}, func(a *Agent) {
		if err := a.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			t.Logf("served %q", r.RequestURI)
		})); err != nil {
			t.Fatal(err)
		}
	})
	web := startAgent(t, b, Config{Service: "web"})
	proxy := listen(t, web.ServeHTTPProxy)
	bind := listen(t, func(l net.Listener) error { return web.ServeBind(l, "orders") })
	raw := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.PairInbox("web", "orders")))
	want := func(where, p string, code int, kind string) {
		t.Helper()
		if code != http.StatusBadRequest || kind != string(wire.KindBadRequest) {
			t.Errorf("%s %s: %d %q, want 400 %s", where, p, code, kind, wire.KindBadRequest)
		}
	}
	for _, p := range ambiguousPaths {
		code, kind := rawHTTP(t, proxy, "http://orders"+p, "orders")
		want("proxy", p, code, kind)
		code, kind = rawHTTP(t, bind, p, "orders")
		want("bind", p, code, kind)

		u, err := url.Parse("http://orders" + p)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Transport: web.Transport(), Timeout: 10 * time.Second}).Do(&http.Request{Method: "GET", URL: u, Header: http.Header{}, Host: "orders"})
		if err != nil {
			t.Errorf("Transport %s: %v", p, err)
		} else {
			resp.Body.Close()
			want("Transport", p, resp.StatusCode, resp.Header.Get(wire.HeaderError))
		}

		reply, err := raw.RequestMsg(&nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {p}}}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := reply.Header.Get(wire.HeaderError); got != string(wire.KindBadRequest) {
			t.Errorf("inbound %s: Mesh-Error %q, want %s", p, got, wire.KindBadRequest)
		}
	}
	if n := served.Load(); n != 0 {
		t.Errorf("the service saw %d calls with ambiguous paths", n)
	}
	if code, kind := rawHTTP(t, proxy, "http://orders/admin/../stock", "orders"); code != http.StatusOK {
		t.Errorf("proxy, a plain dot segment: %d %q, want 200", code, kind)
	}
}
