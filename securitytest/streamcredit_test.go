package securitytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// cancelOf waits for the peer's cancel frame on s, passing over pings,
// credits and data, and returns its Mesh-Error.
func cancelOf(t *testing.T, s *rawStream, wait time.Duration) string {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case msg := <-s.in:
			if wire.FrameOf(msg.Header) == wire.FrameCancel || wire.FrameOf(msg.Header) == "" {
				return msg.Header.Get(wire.HeaderError)
			}
		case <-deadline:
			t.Fatalf("no cancel within %v", wait)
			return ""
		}
	}
}

// TestStreamCreditEnforced: flow control holds against a caller's key
// (web) that breaks it, whatever it sends, in both directions of a
// stream with orders' agent:
//
//   - data past the credit the agent granted is a protocol error: the
//     agent cancels (bad-request), having queued nothing past its window;
//   - a credit that would let the agent send more than 64 MiB at once
//     (wire.MaxStreamWindow), in the request or in a credit frame, is
//     bad-request;
//   - a reader that grants a credit and then stops reading (and keeps
//     pinging, so its stream stays alive) gets that credit and no more:
//     orders' upstream writes on until its own socket is full and then
//     waits; the agent cancels (timeout) once no credit has come for the
//     stream's idle timeout. Measured with -race: with 4 MiB granted,
//     the reader got exactly 4 MiB, the upstream wrote ~8 MiB (the rest
//     in the sockets' buffers), the heap grew by ~0.5 MiB, and the
//     stream was cancelled 1.04s after its 1s idle timeout began.
func TestStreamCreditEnforced(t *testing.T) {
	f := parseFile(t, attackMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		done := make(chan struct{})
		var written atomic.Int64
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/download" {
				<-done // an upload's upstream that reads nothing
				return
			}
			chunk := make([]byte, 32<<10)
			for range (256 << 20) / len(chunk) {
				n, err := w.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					return
				}
			}
		}))
		t.Cleanup(up.Close)
		t.Cleanup(func() { close(done) })
		startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL, Policies: live.Static(f)})
		web := m.connect(t, "web")

		t.Run("data past the credit", func(t *testing.T) {
			s := callStream(t, web, "orders", "POST", "/upload", nats.Header{wire.HeaderStreamBody: {"more"}})
			credit, _ := wire.Credit(s.first(5 * time.Second).Header.Get(wire.HeaderCredit))
			// Within the credit until the agent's reader (the upstream's
			// socket) is full, then past what it has granted.
			for left := s.fillUntilStalled(credit, 500*time.Millisecond) + 1; left > 0; {
				n := min(left, 64<<10)
				s.send(wire.FrameData, nil, make([]byte, n))
				left -= n
			}
			if got := cancelOf(t, s, 5*time.Second); got != string(wire.KindBadRequest) {
				t.Errorf("data past the credit: cancel %q, want bad-request", got)
			}
		})

		t.Run("a window over the bound", func(t *testing.T) {
			s := callStream(t, web, "orders", "GET", "/download", nats.Header{wire.HeaderStream: {strconv.Itoa(wire.MaxStreamWindow + 1)}})
			if msg := s.first(5 * time.Second); msg.Header.Get(wire.HeaderError) != string(wire.KindBadRequest) {
				t.Errorf("Mesh-Stream over %d: %v, want bad-request", wire.MaxStreamWindow, msg.Header)
			}
			s = callStream(t, web, "orders", "GET", "/download", nats.Header{wire.HeaderStream: {"65536"}})
			if head := s.first(5 * time.Second); wire.FrameOf(head.Header) != wire.FrameHead {
				t.Fatalf("a download: %v, want a head", head.Header)
			}
			// Each within the bound; together past it.
			for range 2 {
				s.send(wire.FrameCredit, nats.Header{wire.HeaderCredit: {strconv.Itoa(wire.MaxStreamWindow)}}, nil)
			}
			if got := cancelOf(t, s, 5*time.Second); got != string(wire.KindBadRequest) {
				t.Errorf("credit past %d: cancel %q, want bad-request", wire.MaxStreamWindow, got)
			}
		})

		t.Run("a reader that stops", func(t *testing.T) {
			const granted = 4 << 20
			written.Store(0)
			before := heap()
			s := callStream(t, web, "orders", "GET", "/download", nats.Header{
				wire.HeaderStream: {strconv.Itoa(granted)}, wire.HeaderIdle: {"1s"}})
			head := s.first(5 * time.Second)
			if wire.FrameOf(head.Header) != wire.FrameHead {
				t.Fatalf("a download: %v, want a head", head.Header)
			}
			got := int64(len(head.Data))
			stop, pinged := make(chan struct{}), make(chan struct{})
			defer func() { close(stop); <-pinged }() // no ping outlives the test
			go func() { // pings: the stream is alive, its reader is not
				defer close(pinged)
				for {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
						if err := s.publish(wire.FramePing, nil, nil); err != nil {
							t.Errorf("ping: %v", err)
							return
						}
					}
				}
			}()
			start := time.Now()
		frames:
			for {
				select {
				case msg := <-s.in:
					switch wire.FrameOf(msg.Header) {
					case wire.FrameData:
						got += int64(len(msg.Data))
					case wire.FrameCancel:
						if e := msg.Header.Get(wire.HeaderError); e != string(wire.KindTimeout) {
							t.Errorf("cancel %q, want timeout", e)
						}
						break frames
					}
				case <-time.After(10 * time.Second):
					t.Fatal("orders' agent did not give up on a reader that stopped")
				}
			}
			held := int64(heap()) - int64(before)
			t.Logf("granted %d KiB: got %d KiB, the upstream wrote %d KiB, cancelled after %v; heap %+d KiB",
				granted>>10, got>>10, written.Load()>>10, time.Since(start).Round(time.Millisecond), held>>10)
			if got > granted {
				t.Errorf("orders' agent sent %d bytes against a credit of %d", got, granted)
			}
			if w := written.Load(); w > granted+32<<20 {
				t.Errorf("orders' upstream wrote %d MiB against a credit of %d MiB", w>>20, granted>>20)
			}
			if held > 16<<20 {
				t.Errorf("the process holds %d MiB more", held>>20)
			}
		})
	})
}

// TestStreamPingFlood: pings are free (no credit counts them) and so
// cost the receiver nothing it keeps: inventory's key floods 200,000
// pings into its own stream at orders' agent (a stream inbox every
// stream of orders shares one subscription with) while web downloads
// 6.4 MiB from orders through both agents. web's download arrives whole,
// inventory's stream stays open (pings are valid frames), and orders'
// agent holds nothing more for them.
func TestStreamPingFlood(t *testing.T) {
	f := parseFile(t, attackMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		const chunks, size = 100, 64 << 10
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/sink" {
				io.Copy(io.Discard, r.Body)
				return
			}
			chunk := make([]byte, size)
			for range chunks {
				w.Write(chunk)
				w.(http.Flusher).Flush()
				time.Sleep(5 * time.Millisecond)
			}
		}))
		t.Cleanup(up.Close)
		startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL, Policies: live.Static(f)})
		wa := startAgent(t, m, agent.Config{Service: "web", Policies: live.Static(f)})
		inventory := m.connect(t, "inventory")
		s := callStream(t, inventory, "orders", "POST", "/sink", nats.Header{wire.HeaderStreamBody: {"more"}})
		s.first(5 * time.Second)
		before := heap()

		type result struct {
			n   int64
			err error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := (&http.Client{Transport: wa.Transport(), Timeout: 60 * time.Second}).Get("http://orders/download")
			if err != nil {
				done <- result{err: err}
				return
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- result{n, err}
		}()
		for range 200_000 {
			s.send(wire.FramePing, nil, nil)
		}
		if err := inventory.Flush(); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || r.n != chunks*size {
			t.Errorf("web's download during the flood: %d bytes of %d, %v", r.n, chunks*size, r.err)
		}
		if _, c := s.credits(); c != nil {
			t.Errorf("inventory's stream was cancelled by its pings: %v", c.Header)
		}
		held := int64(heap()) - int64(before)
		t.Logf("after 200,000 pings: %+d KiB held", held>>10)
		if held > 4<<20 {
			t.Errorf("orders' agent holds %d MiB more after a flood of pings", held>>20)
		}
		s.send(wire.FrameCancel, nil, nil)
		inventory.Flush()
	})
}
