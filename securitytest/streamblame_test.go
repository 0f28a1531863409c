package securitytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// blameMesh: orders ejects an instance of its own whose calls fail (half
// of at least 5 in 10s), at most half of its instances out.
const blameMesh = `version: 1
services:
  web: {}
  inventory: {}
  orders:
    allow:
      - caller: web
      - caller: inventory
    inbound:
      passive_health:
        failure_ratio: 50%
        window: 10s
        min_requests: 5
        cool_off: 30s
        max_ejected: 50%
`

// TestStreamCallerFaultBlamesService: Was a defect at cc44fa4, fixed since. A
// streamed request body that breaks its own framing is counted as the
// service's failure. A caller declares Content-Length (the stream's
// first message carries it, docs/wire.md "HTTP streams") and sends fewer
// bytes, then a clean end frame: the callee's agent hands the upstream a
// sized body that ends short, Go's transport fails the request
// ("ContentLength=1000 with Body length 5"), and the agent answers
// upstream-unavailable, the kind that says its local service broke,
// which passive health counts against the instance (so do the gRPC
// upstream's internal for a body that ends within a message, and, racing
// with the handler's context, a caller's cancel whose Mesh-Error it
// chose). So web's key alone makes healthy instances of orders eject
// themselves: up to max_ejected of them (50% by default), again after
// each cool_off, every other caller losing them meanwhile; and the
// service's metrics show failures it never had. A body that does not
// match what its caller declared, or that its caller broke or cancelled,
// is the caller's: bad-request (or what the cancel said), never
// upstream-unavailable or internal; the agent should count the body's
// bytes against its Content-Length itself, and tell a failure of the
// request's stream from the upstream's before classifying the transport's
// error.
func TestStreamCallerFaultBlamesService(t *testing.T) {
	f := parseFile(t, blameMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		var served atomic.Int64
		var agents []*agent.Agent
		for range 2 {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				io.Copy(io.Discard, r.Body)
			}))
			t.Cleanup(up.Close)
			agents = append(agents, startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL, Policies: live.Static(f)}))
		}
		web := m.connect(t, "web")
		kinds := map[string]int{}
		for range 30 {
			s := callStream(t, web, "orders", "POST", "/upload", nats.Header{
				wire.HeaderStreamBody: {"more"}, "Content-Length": {"1000"}})
			if a := s.first(5 * time.Second); wire.FrameOf(a.Header) != wire.FrameAccept {
				t.Fatalf("orders answered %v, want an accept", a.Header)
			}
			s.send(wire.FrameData, nil, []byte("short"))
			s.send(wire.FrameEnd, nil, nil)
		answer:
			for {
				select {
				case msg := <-s.in:
					if k := wire.FrameOf(msg.Header); k == wire.FramePing || k == wire.FrameCredit {
						continue
					}
					kinds[msg.Header.Get(wire.HeaderError)]++
					break answer
				case <-time.After(5 * time.Second):
					t.Fatal("no answer")
				}
			}
		}
		// Passive health decides at once (its breaker opens on the call
		// that trips it); the count among siblings takes a moment.
		time.Sleep(500 * time.Millisecond)
		t.Logf("the answers' Mesh-Error kinds: %v; upstreams served %d", kinds, served.Load())
		if n := kinds[string(wire.KindUpstream)]; n > 0 {
			t.Errorf("%d of web's own broken uploads answered upstream-unavailable (the service's failure), want bad-request", n)
		}
		for i, a := range agents {
			if !a.Serving() {
				t.Errorf("healthy instance %d of orders ejected itself on web's broken uploads", i)
			}
		}
	})
}
