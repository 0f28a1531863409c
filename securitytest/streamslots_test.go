package securitytest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// The victim of the slot attacks: orders, with 4 calls in flight at
// most, and its own idle timeout and default deadline of 1s.
const (
	slots      = 4
	victimIdle = time.Second
)

// startUploads starts orders with an upstream that reads each upload to
// its end (as any upload handler does), and the slot limits above.
func startUploads(t *testing.T, m *mesh, f string) {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(up.Close)
	startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL, Policies: live.Static(parseFile(t, f)),
		MaxConcurrent: slots, StreamIdle: victimIdle, Timeout: victimIdle})
}

// overloaded reports whether msg is orders' refusal at its limit.
func overloaded(msg *nats.Msg) bool {
	return msg.Header.Get(wire.HeaderError) == string(wire.KindOverloaded)
}

// TestStreamSlotsBounded: what a caller's key can make a service's agent
// hold by opening streams it never feeds (a request with Mesh-Stream-Body:
// more and nothing else): its slots, no more. Each silent stream holds
// one of the agent's MaxConcurrent calls in flight; the next one is
// refused at once (overloaded), before anything runs; and, with no
// Mesh-Idle of its own (see TestStreamSilentSlots), each is cancelled
// (timeout, the caller told) once the agent's StreamIdle has passed with
// nothing from the caller, its slot and goroutines given back. Measured
// with -race: 4 to 5 goroutines per held stream (the dispatch's worker,
// the keep-alive, the upstream call's transport and server), all
// returned; cancelled 1s after the last frame.
func TestStreamSlotsBounded(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, parseFile(t, attackMesh))
		startUploads(t, m, attackMesh)
		web := m.connect(t, "web")
		inventory := m.connect(t, "inventory")
		if msg := call(t, inventory, "orders", "GET", "/x", nil); msg.Header.Get(wire.HeaderStatus) != "200" {
			t.Fatalf("a genuine call: %v", msg.Header)
		}
		base := runtime.NumGoroutine()

		var held []*rawStream
		for range slots {
			s := callStream(t, web, "orders", "POST", "/upload", nats.Header{
				wire.HeaderStreamBody: {"more"}, wire.HeaderStreamDeadline: {"head"}})
			if a := s.first(5 * time.Second); wire.FrameOf(a.Header) != wire.FrameAccept {
				t.Fatalf("stream refused: %v", a.Header)
			}
			held = append(held, s)
		}
		t.Logf("goroutines: %d before, %d with %d silent streams", base, runtime.NumGoroutine(), slots)
		extra := callStream(t, web, "orders", "POST", "/upload", nats.Header{wire.HeaderStreamBody: {"more"}})
		if msg := extra.first(5 * time.Second); !overloaded(msg) || wire.FrameOf(msg.Header) != "" {
			t.Fatalf("a stream past the limit: %v, want overloaded at once", msg.Header)
		}
		start := time.Now()
		for i, s := range held {
		frames:
			for {
				select {
				case msg := <-s.in:
					if wire.FrameOf(msg.Header) == wire.FramePing {
						continue // orders keeps the stream alive its side
					}
					if wire.FrameOf(msg.Header) != wire.FrameCancel || msg.Header.Get(wire.HeaderError) != string(wire.KindConnectionLost) {
						t.Errorf("silent stream %d ended with %v, want a connection-lost cancel (a silent peer)", i, msg.Header)
					}
					break frames
				case <-time.After(10 * victimIdle):
					t.Fatalf("silent stream %d still held after %v", i, time.Since(start))
				}
			}
		}
		t.Logf("silent streams cancelled after %v (StreamIdle %v)", time.Since(start), victimIdle)
		meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if msg := call(t, inventory, "orders", "GET", "/x", nil); msg.Header.Get(wire.HeaderStatus) != "200" {
				return fmt.Errorf("inventory's call: %v", msg.Header)
			}
			return nil
		})
		meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if n := runtime.NumGoroutine(); n > base+2 {
				return fmt.Errorf("%d goroutines, %d before the attack", n, base)
			}
			return nil
		})
	})
}

// TestStreamSilentSlots: Was a defect at cc44fa4, fixed since. A stream's idle
// timeout and deadline on the callee are the caller's to choose: the
// callee takes Mesh-Idle as it comes (up to 10 minutes, whatever its own
// StreamIdle), and a Mesh-Stream-Deadline of "head" starts the deadline
// only at the end of a request body that never ends ("none" drops it).
// So one message per slot (a request with Mesh-Stream-Body: more,
// Mesh-Idle: 10m and nothing else) holds each of the service's calls in
// flight for 10 minutes, past the StreamIdle (1s) and Timeout (1s) its
// operator set: with web's key, MaxConcurrent messages every 10 minutes
// take orders away from every other caller (inventory here gets
// overloaded), and an instance cannot drain in a rolling restart (its
// Shutdown waits for them). With pings a caller may keep a live stream as
// long as it likes, as an upload may; a silent one should end within the
// callee's own StreamIdle: take the smaller of the caller's idle and the
// callee's (and tell the caller, in the accept or head, which one the
// callee keeps, so that it pings often enough), and bound the wait for a
// streamed body's bytes as the listeners bound a client's (BodyTimeout).
func TestStreamSilentSlots(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, parseFile(t, attackMesh))
		startUploads(t, m, attackMesh)
		web := m.connect(t, "web")
		var held []*rawStream
		t.Cleanup(func() {
			for _, s := range held {
				s.send(wire.FrameCancel, nil, nil) // let them go
			}
			web.Flush()
		})
		for range slots {
			s := callStream(t, web, "orders", "POST", "/upload", nats.Header{
				wire.HeaderStreamBody: {"more"}, wire.HeaderIdle: {"10m"}, wire.HeaderStreamDeadline: {"head"}})
			if a := s.first(5 * time.Second); wire.FrameOf(a.Header) != wire.FrameAccept {
				t.Fatalf("stream refused: %v", a.Header)
			}
			held = append(held, s)
		}
		// Three times the victim's idle timeout and deadline, with
		// nothing from web.
		time.Sleep(3 * victimIdle)
		inventory := m.connect(t, "inventory")
		if msg := call(t, inventory, "orders", "GET", "/x", nil); msg.Header.Get(wire.HeaderStatus) != "200" {
			t.Errorf("%v after web's %d silent streams (orders' StreamIdle and Timeout: %v): inventory's call got %v",
				3*victimIdle, slots, victimIdle, msg.Header)
		}
		for i, s := range held {
			if g, c := s.credits(); c != nil {
				t.Logf("stream %d was cancelled: %v (credit %d)", i, c.Header, g)
			}
		}
	})
}
