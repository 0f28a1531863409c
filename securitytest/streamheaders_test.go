package securitytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// TestStreamTrailerBounds: Was a defect at cc44fa4, fixed since. The receiving
// agent bounds what a raw NATS caller's call may carry to its service
// (docs/wire.md, "Limits": 100 header values, 64 KiB, headers and
// trailers counted together, else headers-too-large and the service sees
// nothing), for a call whole; the trailer of a streamed request body, in
// its end frame, passes unbounded (httpwire.ReadTrailer checks nothing):
// web's key gets 300 trailer fields (up to the end frame's max_payload)
// to orders' upstream. Go's own servers refuse a trailer over 4 KiB, so
// the reach depends on the upstream; the mesh's bound does not hold. The
// end frame's trailer should be checked with the request's header, as
// checkDecodedHeaderLimits does for a whole call.
func TestStreamTrailerBounds(t *testing.T) {
	f := parseFile(t, attackMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		got := make(chan int, 1)
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			n := 0
			for _, vs := range r.Trailer {
				n += len(vs)
			}
			got <- n
		}))
		t.Cleanup(up.Close)
		startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL, Policies: live.Static(f)})
		web := m.connect(t, "web")
		s := callStream(t, web, "orders", "POST", "/upload", nats.Header{wire.HeaderStreamBody: {"more"}})
		s.first(5 * time.Second)
		s.send(wire.FrameData, nil, []byte("x"))
		trailer := nats.Header{}
		for i := range 300 {
			trailer[wire.HeaderTrailerPrefix+"T"+strconv.Itoa(i)] = []string{"v"}
		}
		s.send(wire.FrameEnd, trailer, nil)
		select {
		case n := <-got:
			if n > 100 {
				t.Errorf("orders' upstream got %d trailer values from web's raw call, over the mesh's bound of 100", n)
			}
		case <-time.After(3 * time.Second):
			// Refused before the service saw its end: the bound held.
		}
	})
}

// TestStreamUpgradeH2C: Was a defect at cc44fa4, fixed since, low. "An upgrade to
// h2c is none the mesh carries" (httpwire.Upgrade; docs/wire.md,
// "Upgrades": h2c ends at the listener), and the mesh "never carries the
// Upgrade header on" (internal/h2c). A raw caller's Mesh-Upgrade: h2c
// does reach the upstream, though: the decoder (setUpgrade) turns any
// Mesh-Upgrade into Upgrade and Connection: Upgrade, so orders' upstream
// is asked to switch to HTTP/2 on the agent's connection. No RFC 7540
// server switches without HTTP2-Settings in Connection, which the mesh
// never sends, and a 101 to a call that is no upgrade (the agent's
// httpwire.Upgrade says h2c is none) is refused (upstream-unavailable):
// so no more than a header the mesh says it never sends. The decoder
// should refuse Mesh-Upgrade: h2c (bad-request), as the encoder never
// sends it.
func TestStreamUpgradeH2C(t *testing.T) {
	f := parseFile(t, attackMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		got := make(chan http.Header, 1)
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Clone()
		}))
		t.Cleanup(up.Close)
		startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL, Policies: live.Static(f)})
		web := m.connect(t, "web")
		s := callStream(t, web, "orders", "GET", "/", nats.Header{wire.HeaderStreamBody: {"more"}, "Mesh-Upgrade": {"h2c"},
			"Http2-Settings": {"AAMAAABkAARAAAAAAAIAAAAA"}})
		t.Cleanup(func() { s.send(wire.FrameCancel, nil, nil); web.Flush() })
		// The first frame is the accept (the body streams); the refusal
		// follows as a cancel frame.
		last := s.first(5 * time.Second)
		for wire.FrameOf(last.Header) == wire.FrameAccept || wire.FrameOf(last.Header) == wire.FramePing {
			last = s.first(5 * time.Second)
		}
		select {
		case h := <-got:
			if h.Get("Upgrade") != "" {
				t.Errorf("orders' upstream was asked to upgrade: Upgrade %q, Connection %q", h.Get("Upgrade"), h.Get("Connection"))
			}
		case <-time.After(time.Second):
			if last.Header.Get(wire.HeaderError) != string(wire.KindBadRequest) {
				t.Errorf("an h2c upgrade: %v, want bad-request", last.Header)
			}
		}
	})
}
