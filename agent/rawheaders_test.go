package agent

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestInboundRawHeaderLimits (issue 19): a call that arrives from a raw
// NATS client, replying in its pair inbox, is held to the listeners'
// header limits: a 900 KB header or 1,000 headers get 431
// headers-too-large, and the service sees neither; a call within the
// limits is served.
func TestInboundRawHeaderLimits(t *testing.T) {
	b := meshtest.Broker(t)
	var served atomic.Int64
	startAgent(t, b, Config{Service: "orders"}, func(a *Agent) {
		if err := a.Handle(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { served.Add(1) })); err != nil {
			t.Fatal(err)
		}
	})
	raw := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.PairInbox("web", "orders")))
	call := func(h nats.Header) *nats.Msg {
		t.Helper()
		h.Set(wire.HeaderMethod, "GET")
		h.Set(wire.HeaderPath, "/x")
		reply, err := raw.RequestMsg(&nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: h}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	big := nats.Header{"X-Big": {strings.Repeat("a", 900<<10)}}
	many := nats.Header{}
	for i := range 1000 {
		many.Set("X-H"+strconv.Itoa(i), "v")
	}
	for name, h := range map[string]nats.Header{"a 900 KB header": big, "1,000 headers": many} {
		reply := call(h)
		if got := reply.Header.Get(wire.HeaderError); got != string(wire.KindHeadersTooLarge) {
			t.Errorf("%s: Mesh-Error %q (status %q), want %s", name, got, reply.Header.Get(wire.HeaderStatus), wire.KindHeadersTooLarge)
		}
	}
	if n := served.Load(); n != 0 {
		t.Errorf("the service saw %d calls over the header limits", n)
	}
	ok := nats.Header{}
	for i := range wire.DefaultMaxHeaders {
		ok.Set("X-H"+strconv.Itoa(i), "v")
	}
	if reply := call(ok); reply.Header.Get(wire.HeaderError) != "" || served.Load() != 1 {
		t.Errorf("a call at the limits: Mesh-Error %q, served %d", reply.Header.Get(wire.HeaderError), served.Load())
	}
}
