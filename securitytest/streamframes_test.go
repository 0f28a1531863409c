package securitytest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// uncounted are frames a stream's receiver queues for its reader without
// counting them against the credit it granted (conn.onMsg counts only a
// data, end or head frame's data): each carries ~900 KiB.
var uncounted = []struct {
	name  string
	frame func(s *rawStream)
}{
	// A data frame with no data and a large header: the header is free.
	{"empty data frames with a large header", func(s *rawStream) { s.send(wire.FrameData, pad(900<<10), nil) }},
	// An accept frame carries data the receiver never counts (the reader
	// fails on it, but only once it reads that far).
	{"accept frames with data", func(s *rawStream) { s.send(wire.FrameAccept, nil, make([]byte, 900<<10)) }},
}

// floodFrames is how many uncounted frames each attack sends: ~56 MiB,
// against a window of 1 MiB.
const floodFrames = 64

// maxHeld is what the victim may still hold after the flood, over what
// it held before: its window, and room for the measure's noise.
const maxHeld = 16 << 20

// TestStreamUncountedFrames: Was a defect at cc44fa4, fixed since. Flow control
// bounds only the bytes of data frames; a stream's receiver
// (internal/meshstream conn.onMsg) queues every other frame for its reader
// without counting it: a data frame's header, an empty data frame, an
// accept (whatever its data), a head frame's header. While the reader is
// blocked (its local service or HTTP client reads slower than NATS
// delivers, as any real one does), the queue grows without a bound. With
// one service's key:
//
//   - as a caller (web), into the callee's agent (orders): the upload's
//     upstream stops reading, web sends ~56 MiB of uncounted frames, and
//     orders' agent holds all of it (measured: ~2x what was sent, since
//     nats.go keeps the raw message and its parsed header);
//   - as a callee (orders, in its own queue group), into every caller's
//     agent (web; the edge gateway the same): a client that reads its
//     download slowly, and orders sends the same.
//
// Either kills the victim agent (OOM), and with it every call of the
// victim service, to and from anyone. The victim should hold at most its
// window unread per stream: count every queued frame's whole size (header
// and data) against the credit, or refuse, when it arrives, a frame that
// is no data or end in a body (accept, head, reply after the first), with
// a bound on frames without data, and cancel the stream (bad-request).
func TestStreamUncountedFrames(t *testing.T) {
	f := parseFile(t, attackMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)

		t.Run("caller into the callee's agent", func(t *testing.T) {
			// orders' upstream takes an upload and reads none of it (so
			// net/http cannot see the agent give up: it waits for done).
			done := make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-done
			}))
			t.Cleanup(up.Close)
			t.Cleanup(func() { close(done) })
			startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL, Policies: live.Static(f)})
			web := m.connect(t, "web")
			for _, u := range uncounted {
				t.Run(u.name, func(t *testing.T) {
					s := callStream(t, web, "orders", "POST", "/upload", nats.Header{wire.HeaderStreamBody: {"more"}})
					a := s.first(5 * time.Second)
					if wire.FrameOf(a.Header) != wire.FrameAccept {
						t.Fatalf("orders answered %v, want an accept", a.Header)
					}
					credit, _ := wire.Credit(a.Header.Get(wire.HeaderCredit))
					// Real data, within the credit, until the upstream's
					// socket is full and the agent stops granting more.
					s.fillUntilStalled(credit, 500*time.Millisecond)
					held := flood(t, s, web, u.frame)
					s.send(wire.FrameCancel, nil, nil) // let it go
					web.Flush()
					if held > maxHeld {
						t.Errorf("orders' agent holds %d MiB more after %d MiB of uncounted frames from web (its window: 1 MiB)",
							held>>20, floodFrames*900>>10)
					}
				})
			}
		})

		t.Run("callee into the caller's agent", func(t *testing.T) {
			wa := startAgent(t, m, agent.Config{Service: "web", Policies: live.Static(f)})
			orders := m.connect(t, "orders")
			calls := make(chan *nats.Msg, 4)
			if _, err := orders.QueueSubscribe("mesh.orders._.>", "orders", func(msg *nats.Msg) { calls <- msg }); err != nil {
				t.Fatal(err)
			}
			orders.noViolations(t)
			client := &http.Client{Transport: wa.Transport()}
			for _, u := range uncounted {
				t.Run(u.name, func(t *testing.T) {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					got := make(chan *http.Response, 1)
					go func() {
						req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://orders/events", nil)
						resp, err := client.Do(req)
						if err != nil {
							close(got)
							return
						}
						got <- resp // a client that reads none of it
					}()
					var call *nats.Msg
					select {
					case call = <-calls:
					case <-time.After(5 * time.Second):
						t.Fatal("web's call did not come")
					}
					inbox := wire.PairInbox("orders", "web") + "." + token() + ".1-" + token()
					s := &rawStream{t: t, c: orders, out: call.Reply}
					s.send(wire.FrameHead, nats.Header{wire.HeaderStatus: {"200"}, wire.HeaderStreamInbox: {inbox}}, nil)
					resp := <-got
					if resp == nil {
						t.Fatal("no answer to web's client")
					}
					defer resp.Body.Close()
					for range wire.DefaultStreamWindow / (64 << 10) { // the window, full
						s.send(wire.FrameData, nil, make([]byte, 64<<10))
					}
					held := flood(t, s, orders, u.frame)
					if held > maxHeld {
						t.Errorf("web's agent holds %d MiB more after %d MiB of uncounted frames from orders (its window: 1 MiB)",
							held>>20, floodFrames*900>>10)
					}
				})
			}
		})
	})
}

// flood sends floodFrames frames over s and returns how much more the
// process holds once the victim has taken them.
func flood(t *testing.T, s *rawStream, c *client, frame func(*rawStream)) int64 {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the victim has taken what came before
	before := heap()
	for range floodFrames {
		frame(s)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	// The broker has them; the victim's dispatch takes them at once.
	time.Sleep(time.Second)
	held := int64(heap()) - int64(before)
	t.Logf("held after the flood: %+d MiB", held>>20)
	return held
}
