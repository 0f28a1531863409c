package securitytest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/accounts"
	siblings "github.com/natsmesh/natsmesh/internal/passive"
	"github.com/natsmesh/natsmesh/wire"
)

// deputyReplies are the reply subjects issue 16's probe had responders
// answer: the bucket purged (as web, through the demo's clock, it emptied
// the policy store), the mesh file rewritten, a consumer and a stream
// created, $SYS asked, a call made as web with a method web's caller may
// not use, and a reply put in web's inbox as inventory.
var deputyReplies = []string{
	purge,
	kvMesh,
	consumerAPI,
	"$JS.API.STREAM.CREATE.PWN",
	"$SYS.REQ.SERVER.PING.CONNZ",
	wire.Subject{Service: "inventory", Caller: "web", Proto: wire.ProtoHTTP, Op: "DELETE"}.String(),
	wire.PairInbox("web", "inventory") + ".x",
	"_INBOX.x",
	// No "_R_." reply: nats-server refuses any client's publish with one
	// ("Permissions Violation for Publish with Reply of").
}

// TestDeputyPurge: issue 16's second attack, against the running shop. A
// responder that answers "whatever reply subject it was sent" is a
// deputy: on the code before the reply model, web called the shop's
// NATS-native clock with reply $JS.API.STREAM.PURGE.KV_natsmesh-policies
// and the clock's answer (published under its response grant) emptied
// the policy bucket; the agents' sibling-status responder wrote its
// status JSON into the bucket and into web's inbox the same way. Now:
//
//   - the clock (nats.go/micro, which answers any reply subject) is
//     refused by the broker: a permissions violation on the clock's own
//     connection for each, and a genuine call still gets the time;
//   - the micro clock's discovery, asked by the bridge (the only
//     service-account user that may send $SRV.PING), likewise;
//   - the inventory agents' sibling-status responder, asked with inventory's
//     key (the only one that may publish $SRV.STATUS.inventory), answers
//     none of them: it publishes nothing (no violation on its connections,
//     nothing in web's inbox), and answers a genuine count;
//   - the inventory agents' inbound dispatch, called by orders, answers
//     none of them either.
//
// After all that the bucket holds what the admin wrote, with no consumer
// and no other stream.
func TestDeputyPurge(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		s := m.startShop(t)
		clock := s.of("clock")
		if len(clock) != 1 {
			t.Fatalf("the shop opened %d connections as clock, want 1", len(clock))
		}
		// web's inbox for inventory's replies: whatever a deputy puts
		// there would land here.
		web := m.connect(t, "web")
		webInbox, err := web.SubscribeSync(wire.PairInbox("web", "inventory") + ".>")
		if err != nil {
			t.Fatal(err)
		}
		web.noViolations(t)

		t.Run("NATS-native clock", func(t *testing.T) {
			for _, reply := range deputyReplies {
				subject := wire.Subject{Service: "clock", Caller: "web", Proto: wire.ProtoHTTP, Op: "POST"}.String()
				if err := web.PublishRequest(subject, reply, []byte("UTC")); err != nil {
					t.Fatal(err)
				}
				clock[0].waitViolation(t, reply)
			}
			if m := call(t, web, "clock", "POST", "/time", []byte("UTC")); len(m.Data) == 0 || m.Header.Get("Nats-Service-Error") != "" {
				t.Fatalf("a genuine call to the clock: %q %v", m.Data, m.Header)
			}
			web.noViolations(t)
		})

		t.Run("sibling-status responder", func(t *testing.T) {
			inventory := m.connect(t, "inventory")
			for _, reply := range deputyReplies {
				if err := inventory.PublishRequest(siblings.StatusSubject("inventory"), reply, []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
			}
			// A genuine count after them: both instances answer it, and
			// each answers the requests of one connection in order.
			sub, err := inventory.SubscribeSync(siblings.StatusInbox("inventory") + "count")
			if err != nil {
				t.Fatal(err)
			}
			if err := inventory.PublishRequest(siblings.StatusSubject("inventory"), sub.Subject, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				var st siblings.Status
				if err := json.Unmarshal(next(t, sub).Data, &st); err != nil || st.ID == "" || !st.Inbound {
					t.Fatalf("a genuine count's answer: %+v %v", st, err)
				}
			}
			inventory.noViolations(t)
			agents := s.of("inventory")
			if len(agents) != 2 {
				t.Fatalf("the shop opened %d connections as inventory, want 2", len(agents))
			}
			for _, a := range agents {
				a.noViolations(t) // they published nothing
			}
		})

		t.Run("agent's inbound dispatch", func(t *testing.T) {
			orders := m.connect(t, "orders")
			subject := wire.Subject{Service: "inventory", Caller: "orders", Proto: wire.ProtoHTTP, Op: "GET"}.String()
			for _, reply := range deputyReplies {
				if err := orders.PublishRequest(subject, reply, nil); err != nil {
					t.Fatal(err)
				}
			}
			if m := call(t, orders, "inventory", "GET", "/stock/apple", nil); m.Header.Get(wire.HeaderStatus) != "200" {
				t.Fatalf("a genuine call to inventory: %q %v", m.Data, m.Header)
			}
			orders.noViolations(t)
			for _, a := range s.of("inventory") {
				a.noViolations(t)
			}
		})

		// Proving a message did not arrive needs a wait: bounded, after
		// the genuine answers that were sent after the forged requests.
		if msg, err := webInbox.NextMsg(200 * time.Millisecond); err == nil {
			t.Errorf("web's inbox got %q on %q", msg.Data, msg.Subject)
		}

		// Discovery, last: the bridge's $SRV.PING reaches every agent and
		// the clock's micro discovery, which answers any reply subject.
		// The broker refuses each of the clock's answers. An agent's
		// discovery answers none in "$" (JetStream, KV, $SYS), nor a call
		// subject, nor a mesh inbox but a discovery pair inbox
		// (_INBOX_mesh.<name>.SRV.…; discovery.Answerable), and the
		// broker refuses it _INBOX.x: so not its own pair inbox of a
		// caller either (_INBOX_mesh.web.inventory.x), where it may
		// publish.
		bridge := m.connect(t, accounts.Bridge)
		for _, reply := range deputyReplies {
			if err := bridge.PublishRequest("$SRV.PING", reply, nil); err != nil {
				t.Fatal(err)
			}
			clock[0].waitViolation(t, reply)
		}
		bridge.noViolations(t)
		// Proving nothing arrived needs a wait, bounded (the broker
		// answered each of the clock's refusals above, after the
		// agents' own handling of the same pings).
		if msg, err := webInbox.NextMsg(200 * time.Millisecond); err == nil {
			t.Errorf("web's inbox got a discovery answer %q on %q", msg.Data, msg.Subject)
		}
		for _, a := range s.of("inventory") {
			for _, reply := range deputyReplies[:6] { // the "$" and call subjects
				if a.violations(reply) > 0 {
					t.Errorf("an inventory agent's discovery tried to answer on %s", reply)
				}
			}
		}
		s.st.intact(t, s.rev)
	})
}
