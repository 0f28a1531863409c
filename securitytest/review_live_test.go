package securitytest

import (
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

// TestReviewLiveConfirmKeys (review of 6127310, issue 21's Mesh-Confirm):
// what a service's key can do with a call made to confirm. With
// inventory's key, even knowing the exact callee inbox of web's call
// waiting for its start (at orders, under _INBOX_mesh.orders.web), a
// start frame is refused by the broker, and the call never runs: it is
// cancelled, not started, once its start is due. With web's own key, a
// call made to confirm with the longest Mesh-Confirm (10s) and Mesh-Idle
// (10m), silent, holds its slot no longer than orders' own StreamIdle
// (1s), not the 20 s the confirmation alone would allow.
func TestReviewLiveConfirmKeys(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		f := parseFile(t, attackMesh)
		m := newMesh(t, md, f)
		var ran atomic.Int32
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran.Add(1) }))
		t.Cleanup(up.Close)
		startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL, Policies: live.Static(f),
			MaxConcurrent: slots, StreamIdle: victimIdle, Timeout: victimIdle})
		web := m.connect(t, "web")
		inventory := m.connect(t, "inventory")
		confirm := nats.Header{wire.HeaderConfirm: {"300ms"}, wire.HeaderTimeout: {"5s"}}

		// inventory starts web's call: refused, and it never runs.
		s := callStream(t, web, "orders", "POST", "/pay", confirm)
		if a := s.first(5 * time.Second); wire.FrameOf(a.Header) != wire.FrameAccept {
			t.Fatalf("a call to confirm: %v, want an accept at once", a.Header)
		}
		if err := inventory.PublishMsg(&nats.Msg{Subject: s.out, Header: nats.Header{
			wire.HeaderFrame: {wire.FrameStart}, wire.HeaderSeq: {"1"}}}); err != nil {
			t.Fatal(err)
		}
		inventory.waitViolation(t, s.out)
		if c := s.firstBut(wire.FramePing, 5*time.Second); wire.FrameOf(c.Header) != wire.FrameCancel {
			t.Fatalf("web's call, started by inventory: %v, want a cancel (not started)", c.Header)
		}
		if n := ran.Load(); n != 0 {
			t.Fatalf("web's call ran %d times on inventory's start", n)
		}

		// web's own silent call, the longest confirmation and idle.
		start := time.Now()
		s = callStream(t, web, "orders", "POST", "/pay", nats.Header{wire.HeaderConfirm: {"10s"}, wire.HeaderIdle: {"10m"}, wire.HeaderTimeout: {"1m"}})
		if a := s.first(5 * time.Second); wire.FrameOf(a.Header) != wire.FrameAccept {
			t.Fatalf("a call to confirm: %v, want an accept at once", a.Header)
		}
		if c := s.firstBut(wire.FramePing, 30*time.Second); wire.FrameOf(c.Header) != wire.FrameCancel {
			t.Fatalf("web's silent call: %v, want a cancel", c.Header)
		}
		if held := time.Since(start); held > 4*victimIdle {
			t.Errorf("a silent call to confirm held its slot %v, orders' StreamIdle %v", held.Round(time.Millisecond), victimIdle)
		}

	})
}

// firstBut is the peer's next frame that is not of kind.
func (s *rawStream) firstBut(kind string, wait time.Duration) *nats.Msg {
	s.t.Helper()
	for {
		if m := s.first(wait); wire.FrameOf(m.Header) != kind {
			return m
		}
	}
}
