package securitytest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// pairMesh lets web call orders and inventory.
const pairMesh = `version: 1
services:
  web: {}
  orders:
    allow:
      - caller: web
  inventory:
    allow:
      - caller: web
`

// TestPairInbox: a callee cannot complete, or read, a call its caller made
// to another service. web's agent calls inventory (whose upstream holds
// the call) and then orders, which the attacker serves with orders' key:
// it learns web's reply mux (_INBOX_mesh.web.orders.<mux>.<n>-<nonce>)
// and tries to answer web's call to inventory under every subject it can
// derive from that one, by publishing there (refused by the broker: only
// inventory may publish under _INBOX_mesh.web.inventory) and by having
// JetStream's direct get put the mesh file there (delivered into web's
// reply mux, which completes a call only with a message on that call's
// whole reply subject, nonce included: dropped). It cannot subscribe
// web's inbox either. The call to inventory gets inventory's answer.
//
// On the code before the reply model, orders' self-grant through
// $SRV.STATUS.orders let it publish on any subject, and web's replies
// came to nats.go's response inbox under one subscription, so it could
// complete web's call to inventory (issue 16: "forged a reply into web's
// inbox").
func TestPairInbox(t *testing.T) {
	f := parseFile(t, pairMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		st := m.store(t)
		st.apply(t, f)
		release := make(chan struct{})
		var held atomic.Int64
		inv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			held.Add(1)
			<-release
			io.WriteString(w, "genuine")
		}))
		t.Cleanup(inv.Close)
		t.Cleanup(func() {
			select {
			case <-release:
			default:
				close(release)
			}
		})
		startAgent(t, m, agent.Config{Service: "inventory", Upstream: inv.URL, Policies: live.Static(f)})
		web := startAgent(t, m, agent.Config{Service: "web", Policies: live.Static(f)})
		client := &http.Client{Transport: web.Transport(), Timeout: 10 * time.Second}

		// What lands in web's inbox for inventory, as web's own key sees
		// it: the deputy's answers do, and web's mux must drop them.
		observer := m.connect(t, "web")
		var landed atomic.Int64
		if _, err := observer.Subscribe(wire.PairInbox("web", "inventory")+".>", func(msg *nats.Msg) {
			if msg.Header.Get("Nats-Stream") != "" || msg.Header.Get("Status") != "" {
				landed.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
		observer.noViolations(t)

		attacker := m.connect(t, "orders")
		deputy := m.connect(t, "orders")
		if _, err := attacker.SubscribeSync(wire.InboxPrefix("web") + ".>"); err != nil {
			t.Fatal(err)
		}
		attacker.waitViolation(t, wire.InboxPrefix("web")+".>")
		tried := make(chan int, 1)
		if _, err := attacker.QueueSubscribe("mesh.orders._.>", "orders", func(msg *nats.Msg) {
			// _INBOX_mesh.web.orders.<mux>.<n>-<nonce>
			toks := strings.Split(msg.Reply, ".")
			if len(toks) != 5 {
				t.Errorf("web's reply subject %q", msg.Reply)
				return
			}
			mux := toks[3]
			n, nonce, _ := strings.Cut(toks[4], "-")
			var subjects []string
			for _, tok := range []string{n, nonce} {
				for _, k := range []string{"1", "2", "3", "4", "5", "6"} {
					subjects = append(subjects,
						wire.PairInbox("web", "inventory")+"."+mux+"."+k+"-"+tok,
						wire.PairInbox("web", "inventory")+"."+mux+"."+k)
				}
			}
			for _, s := range subjects {
				attacker.Publish(s, []byte("forged"))
				deputy.PublishRequest(directGet("mesh"), s, nil)
				deputy.PublishRequest(directGet("no-such-key"), s, nil)
			}
			tried <- len(subjects)
			m := &nats.Msg{Subject: msg.Reply, Header: nats.Header{wire.HeaderStatus: {"200"}}, Data: []byte("orders")}
			attacker.PublishMsg(m) // its own caller's reply: allowed
		}); err != nil {
			t.Fatal(err)
		}

		type result struct {
			body string
			err  error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := client.Get("http://inventory/stock")
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			done <- result{body: resp.Status + " " + string(b)}
		}()
		waitFor(t, func() bool { return held.Load() > 0 }, "inventory's upstream holds web's call")

		resp, err := client.Get("http://orders/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "orders" {
			t.Fatalf("web -> orders: %s %q", resp.Status, b)
		}
		n := <-tried
		waitFor(t, func() bool { return attacker.violationsUnder(wire.PairInbox("web", "inventory")+".") >= n },
			"the broker refuses each of orders' publishes in web's inbox for inventory")
		deputy.noViolations(t)
		waitFor(t, func() bool { return landed.Load() == int64(2*n) }, "JetStream's answers land in web's inbox for inventory")
		// Proving the forged answers did not complete the call needs a
		// wait: bounded, after the deputy's answers were sent (its
		// connection flushed), before the genuine answer is released.
		select {
		case r := <-done:
			t.Fatalf("web's call to inventory completed before inventory answered: %+v", r)
		case <-time.After(200 * time.Millisecond):
		}
		close(release)
		select {
		case r := <-done:
			if r.err != nil || r.body != "200 OK genuine" {
				t.Fatalf("web's call to inventory: %+v, want inventory's answer", r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("web's call to inventory did not complete")
		}
	})
}

// TestDirectGetOnCalls: JetStream's direct get, asked by orders with a
// call subject as its reply subject, drops the stored mesh file (or a 404)
// in inventory's queue group as a call "from" web or anyone: a message
// without a reply subject, which inventory's agent refuses before anything
// runs (its upstream never sees it). The same holds for every NATS-native
// service of the mesh that, like the demo's clock, ignores a message
// without a reply (docs/security.md). This pins a residual the reply
// model accepts (the direct get answers where its requester says, in the
// requester's account), not an attack of issue 16.
func TestDirectGetOnCalls(t *testing.T) {
	f := parseFile(t, pairMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		st := m.store(t)
		st.apply(t, f)
		var served atomic.Int64
		up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served.Add(1) }))
		t.Cleanup(up.Close)
		startAgent(t, m, agent.Config{Service: "inventory", Upstream: up.URL, Policies: live.Static(f)})
		delivered := func() uint64 { return m.delivered(t, "natsmesh:inventory") }
		before := delivered()
		sent := 0
		orders := m.connect(t, "orders")
		for _, caller := range []string{"web", "orders", "bridge"} {
			for _, op := range []string{"GET", "DELETE"} {
				subject := wire.Subject{Service: "inventory", Caller: caller, Proto: wire.ProtoHTTP, Op: op}.String()
				for _, key := range []string{"mesh", "no-such-key"} {
					if err := orders.PublishRequest(directGet(key), subject, nil); err != nil {
						t.Fatal(err)
					}
					if err := orders.PublishRequest(directGet(key), subject, []byte(`{"no_hdr":true}`)); err != nil {
						t.Fatal(err)
					}
					sent += 2
				}
			}
		}
		orders.noViolations(t)
		// They reach inventory's agent (the broker delivered them).
		waitFor(t, func() bool { return delivered()-before >= uint64(sent) }, "the direct gets' answers delivered to inventory's agent")
		web := m.connect(t, "web")
		if msg := call(t, web, "inventory", "GET", "/x", nil); msg.Header.Get(wire.HeaderStatus) != "200" {
			t.Fatalf("a genuine call: %v %q", msg.Header, msg.Data)
		}
		// Proving nothing else ran needs a wait: bounded, after the
		// genuine call (JetStream's answers come on another connection,
		// not ordered with it).
		time.Sleep(200 * time.Millisecond)
		if n := served.Load(); n != 1 {
			t.Fatalf("inventory's upstream served %d calls, want the genuine one", n)
		}
	})
}
