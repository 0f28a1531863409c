package securitytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// digestUpstream answers each request with the SHA-256 of its body, read
// as it comes.
func digestUpstream(t *testing.T) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		io.Copy(h, r.Body)
		io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
	}))
	t.Cleanup(up.Close)
	return up.URL
}

// TestStreamInboxesSealed: a stream's frames stay in their pair. With
// inventory's key (a caller of orders itself, so it knows orders' stream
// inbox mux and its counter from its own stream), during web's upload to
// orders through both agents:
//
//   - every publish into orders' stream inboxes for web
//     (_INBOX_mesh.orders.web.<mux>.<n>[-<nonce>], the counters next to
//     its own) is refused by the broker, and so is every subscription that
//     would read a stream's frames: orders' inboxes, web's, any pair's by
//     wildcard;
//   - JetStream's direct get, asked by inventory with those subjects as
//     its reply, does land there (in the service account, as
//     docs/security.md says), but on no subject a stream listens on: the
//     attacker guesses web's stream inbox but for its last token's
//     64-bit random nonce (checked: orders' key sees web's frames), so it
//     is dropped;
//
// and web's upload arrives whole (its digest), answered by orders.
func TestStreamInboxesSealed(t *testing.T) {
	f := parseFile(t, attackMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		st := m.store(t)
		st.apply(t, f)
		startAgent(t, m, agent.Config{Service: "orders", Upstream: digestUpstream(t), Policies: live.Static(f)})
		wa := startAgent(t, m, agent.Config{Service: "web", Policies: live.Static(f)})
		attacker := m.connect(t, "inventory")
		deputy := m.connect(t, "inventory")
		// What lands in orders' stream inboxes for web, as orders' own
		// key sees it.
		observer := m.connect(t, "orders")
		var landed atomic.Int64
		webInbox := make(chan string, 1)
		if _, err := observer.Subscribe(wire.PairInbox("orders", "web")+".>", func(msg *nats.Msg) {
			if msg.Header.Get("Nats-Stream") != "" || msg.Header.Get("Status") != "" {
				landed.Add(1)
			}
			if wire.FrameOf(msg.Header) != "" {
				select {
				case webInbox <- msg.Subject: // web's frames: its stream inbox
				default:
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		observer.noViolations(t)

		for _, s := range []string{
			wire.InboxPrefix("orders") + ".>", wire.PairInbox("orders", "web") + ".>", wire.InboxPrefix("web") + ".>",
			"_INBOX_mesh.*.web.>", "_INBOX_mesh.*.*.>", "_INBOX_mesh.>", ">",
		} {
			if _, err := attacker.SubscribeSync(s); err != nil {
				t.Fatal(err)
			}
			attacker.waitViolation(t, s)
		}

		// inventory's own stream to orders: _INBOX_mesh.orders.inventory.<mux>.<n>-<nonce>.
		own := callStream(t, attacker, "orders", "POST", "/", nats.Header{wire.HeaderStreamBody: {"more"}})
		toks := strings.Split(own.first(5*time.Second).Header.Get(wire.HeaderStreamInbox), ".")
		if len(toks) != 5 {
			t.Fatalf("orders' stream inbox %v", toks)
		}
		mux := toks[3]
		n, _ := strconv.ParseUint(strings.SplitN(toks[4], "-", 2)[0], 36, 64)

		// web's upload, half sent: its stream inbox at orders is open.
		pr, pw := io.Pipe()
		body := bytes.Repeat([]byte("web's upload "), 300_000) // ~3.9 MB
		want := sha256.Sum256(body)
		type result struct {
			status int
			body   string
			err    error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := (&http.Client{Transport: wa.Transport(), Timeout: 30 * time.Second}).Post("http://orders/upload", "application/octet-stream", pr)
			if err != nil {
				done <- result{err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- result{status: resp.StatusCode, body: string(b)}
		}()
		if _, err := pw.Write(body[:len(body)/2]); err != nil {
			t.Fatal(err)
		}
		var real string
		select {
		case real = <-webInbox:
		case <-time.After(5 * time.Second):
			t.Fatal("web's upload sent no frame")
		}

		var guesses []string
		for k := n + 1; k <= n+4; k++ {
			c := strconv.FormatUint(k, 36)
			guesses = append(guesses,
				wire.PairInbox("orders", "web")+"."+mux+"."+c,
				wire.PairInbox("orders", "web")+"."+mux+"."+c+"-"+strings.SplitN(toks[4], "-", 2)[1])
		}
		for _, g := range guesses {
			attacker.PublishMsg(&nats.Msg{Subject: g, Header: nats.Header{wire.HeaderFrame: {wire.FrameCancel}, wire.HeaderSeq: {"1"}}})
			deputy.PublishRequest(directGet("mesh"), g, nil)
			deputy.PublishRequest(directGet("no-such-key"), g, nil)
		}
		// The guesses miss web's stream inbox by its nonce alone.
		guessed := false
		for _, g := range guesses {
			guessed = guessed || strings.HasPrefix(real, g+"-")
		}
		if !guessed {
			t.Fatalf("web's stream inbox %s is none of the attacker's guesses but for its nonce: %v", real, guesses)
		}
		waitFor(t, func() bool { return attacker.violationsUnder(wire.PairInbox("orders", "web")+".") >= len(guesses) },
			"the broker refuses each of inventory's publishes into orders' stream inboxes for web")
		deputy.noViolations(t)
		waitFor(t, func() bool { return landed.Load() == int64(2*len(guesses)) }, "JetStream's answers land in orders' inboxes for web")

		if _, err := pw.Write(body[len(body)/2:]); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		select {
		case r := <-done:
			if r.err != nil || r.status != http.StatusOK || r.body != hex.EncodeToString(want[:]) {
				t.Fatalf("web's upload: %+v, want 200 and its digest", r)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("web's upload did not complete")
		}
		own.send(wire.FrameCancel, nil, nil)
		attacker.Flush()
	})
}

// TestStreamCalleeInboxDeputy: a callee (orders' key, serving its own
// queue group) cannot make its caller's agent publish anywhere but in
// the pair inbox of the two, whatever inbox its accept or head frame
// names: not into inventory's stream inboxes for web or inventory's call
// subjects (web's key may publish both, so the broker would let them
// through), nor web's own inbox, nor a wildcard. web's agent refuses the
// stream (bad-request) and publishes nothing there; a stream inbox in
// the pair (more tokens than the mesh makes) is its to take.
func TestStreamCalleeInboxDeputy(t *testing.T) {
	f := parseFile(t, attackMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		wa := startAgent(t, m, agent.Config{Service: "web", Policies: live.Static(f)})
		client := &http.Client{Transport: wa.Transport(), Timeout: 10 * time.Second}
		// inventory's key sees what lands in its inboxes and on its
		// call subjects (in its own queue group: no agent of inventory
		// runs).
		observer := m.connect(t, "inventory")
		var landed atomic.Int64
		count := func(*nats.Msg) { landed.Add(1) }
		if _, err := observer.Subscribe(wire.InboxPrefix("inventory")+".>", count); err != nil {
			t.Fatal(err)
		}
		if _, err := observer.QueueSubscribe("mesh.inventory._.>", "inventory", count); err != nil {
			t.Fatal(err)
		}
		observer.noViolations(t)
		orders := m.connect(t, "orders")
		calls := make(chan *nats.Msg, 4)
		if _, err := orders.QueueSubscribe("mesh.orders._.>", "orders", func(msg *nats.Msg) { calls <- msg }); err != nil {
			t.Fatal(err)
		}
		orders.noViolations(t)

		for _, bad := range []string{
			wire.PairInbox("inventory", "web") + ".x.1-y",
			wire.Subject{Service: "inventory", Caller: "web", Proto: wire.ProtoHTTP, Op: "DELETE"}.String(),
			wire.PairInbox("web", "orders") + ".x.1-y",
			wire.PairInbox("orders", "web") + ".*",
			wire.PairInbox("orders", "web") + ".>",
			wire.PairInbox("orders", "web"),
		} {
			for _, kind := range []string{wire.FrameAccept, wire.FrameHead} {
				t.Run(kind+" "+bad, func(t *testing.T) {
					code := make(chan string, 1)
					go func() {
						var resp *http.Response
						var err error
						if kind == wire.FrameAccept {
							// An upload of unknown length: its body streams.
							resp, err = client.Post("http://orders/upload", "text/plain", io.MultiReader(strings.NewReader("web's body")))
						} else {
							resp, err = client.Get("http://orders/events")
						}
						if err != nil {
							code <- err.Error()
							return
						}
						resp.Body.Close()
						code <- resp.Status + " " + resp.Header.Get(wire.HeaderError)
					}()
					var call *nats.Msg
					select {
					case call = <-calls:
					case <-time.After(5 * time.Second):
						t.Fatal("web's call did not come")
					}
					h := nats.Header{wire.HeaderStreamInbox: {bad}}
					if kind == wire.FrameAccept {
						h.Set(wire.HeaderCredit, "1048576")
					} else {
						h.Set(wire.HeaderStatus, "200")
					}
					s := &rawStream{t: t, c: orders, out: call.Reply}
					s.send(kind, h, nil)
					select {
					case got := <-code:
						if !strings.Contains(got, string(wire.KindBadRequest)) {
							t.Errorf("web's client got %q, want bad-request", got)
						}
					case <-time.After(5 * time.Second):
						t.Fatal("web's call did not end")
					}
				})
			}
		}
		// Proving nothing was published needs a wait: bounded, after
		// every call has ended.
		time.Sleep(200 * time.Millisecond)
		if n := landed.Load(); n > 0 {
			t.Errorf("web's agent published %d messages into inventory's inboxes or calls", n)
		}
	})
}

// TestStreamReplyDeputy: a caller (web's key) cannot make a callee's
// agent (orders) open a stream, or publish anything, outside the pair
// inbox of the two: a stream request whose reply subject is web's inbox
// for inventory, inventory's inbox for web, a call subject, or the bare
// pair is refused before anything runs (orders' upstream never sees it)
// and nothing lands there.
func TestStreamReplyDeputy(t *testing.T) {
	f := parseFile(t, attackMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		var served atomic.Int64
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			io.Copy(io.Discard, r.Body)
		}))
		t.Cleanup(up.Close)
		startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL, Policies: live.Static(f)})
		var landed atomic.Int64
		count := func(*nats.Msg) { landed.Add(1) }
		webObserver := m.connect(t, "web")
		for _, s := range []string{wire.PairInbox("web", "inventory") + ".>", wire.PairInbox("web", "orders")} {
			if _, err := webObserver.Subscribe(s, count); err != nil {
				t.Fatal(err)
			}
		}
		webObserver.noViolations(t)
		invObserver := m.connect(t, "inventory")
		if _, err := invObserver.Subscribe(wire.InboxPrefix("inventory")+".>", count); err != nil {
			t.Fatal(err)
		}
		if _, err := invObserver.QueueSubscribe("mesh.inventory._.>", "inventory", count); err != nil {
			t.Fatal(err)
		}
		invObserver.noViolations(t)

		web := m.connect(t, "web")
		subject := wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "POST"}.String()
		for _, reply := range []string{
			wire.PairInbox("web", "inventory") + ".x.1-y",
			wire.PairInbox("inventory", "web") + ".x.1-y",
			wire.Subject{Service: "inventory", Caller: "web", Proto: wire.ProtoHTTP, Op: "DELETE"}.String(),
			wire.PairInbox("web", "orders"),
			"_INBOX.x",
		} {
			for _, body := range []string{"more", ""} {
				h := nats.Header{wire.HeaderMethod: {"POST"}, wire.HeaderPath: {"/"}, wire.HeaderStream: {"1048576"}, wire.HeaderIdle: {"10m"}}
				if body != "" {
					h[wire.HeaderStreamBody] = []string{body}
				}
				if err := web.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Header: h}); err != nil {
					t.Fatal(err)
				}
			}
		}
		// A genuine stream after them is served (an agent answers one
		// connection's calls in order of arrival, each on its worker).
		s := callStream(t, web, "orders", "POST", "/", nats.Header{wire.HeaderStreamBody: {"more"}})
		if a := s.first(5 * time.Second); wire.FrameOf(a.Header) != wire.FrameAccept {
			t.Fatalf("a genuine stream: %v", a.Header)
		}
		s.send(wire.FrameEnd, nil, nil)
		waitFor(t, func() bool { return served.Load() > 0 }, "the genuine stream served")
		web.noViolations(t)
		// Proving nothing else ran or landed needs a wait: bounded,
		// after the genuine stream (sent after the others) was served.
		time.Sleep(200 * time.Millisecond)
		if n := served.Load(); n != 1 {
			t.Errorf("orders' upstream served %d calls, want the genuine one", n)
		}
		if n := landed.Load(); n > 0 {
			t.Errorf("orders' agent published %d messages outside the pair", n)
		}
	})
}
