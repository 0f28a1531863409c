package securitytest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/census"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// TestInstanceSubjects: what the calls addressed to one instance
// (wire.InstancePrefix) and the census of a service's instances
// (internal/census, decision 181) let one service's key do, in both
// account modes over TCP, with the shop's mesh file:
//
//   - subscribe: only a service's own instance subjects (orders may not
//     read inventory's, web none of orders');
//   - publish: an addressed call only where the key's plain calls may
//     go, as itself (web may not address a call as gateway, gateway may
//     not address a GET to orders, orders may not call clock at all);
//     a census only of a service it may call, as itself;
//   - a census request is answered only in the caller's pair inbox with
//     the service: one whose reply subject is anything else (the
//     deputy replies of TestDeputyPurge, another caller's pair inbox, a
//     call subject) gets nothing published, and runs no call;
//   - and it works: web's census of orders names the agent, and a call
//     web addresses to that ID is served.
func TestInstanceSubjects(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		var served atomic.Int64
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1) }))
		t.Cleanup(up.Close)
		a := startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL})
		id := a.ID()

		t.Run("subscribe refused", func(t *testing.T) {
			for _, tc := range []struct{ user, subject string }{
				{"web", wire.InstancePrefix + ".orders.>"},
				{"web", wire.InstanceSubject("orders", id)},
				{"web", wire.InstancePrefix + ".>"},
				{"orders", wire.InstancePrefix + ".inventory.>"},
				{"orders", wire.InstancePrefix + ".*.>"},
				{"gateway", wire.InstancePrefix + ".orders.*.gateway.>"},
			} {
				c := m.connect(t, tc.user)
				if _, err := c.SubscribeSync(tc.subject); err != nil {
					t.Fatal(err)
				}
				c.waitViolation(t, tc.subject)
			}
		})

		t.Run("publish refused", func(t *testing.T) {
			addressed := func(service, caller, method string) string {
				return wire.Subject{Service: service, Instance: id, Caller: caller, Proto: wire.ProtoHTTP, Op: method}.String()
			}
			for _, tc := range []struct{ user, subject string }{
				{"web", addressed("orders", "gateway", "POST")},    // as another caller
				{"gateway", addressed("orders", "gateway", "GET")}, // gateway may only POST to orders
				{"orders", addressed("clock", "orders", "GET")},    // orders may not call clock
				{"web", census.Subject("orders", "gateway")},
				{"orders", census.Subject("clock", "orders")},
				{"web", census.Subject("orders", "*")},
			} {
				c := m.connect(t, tc.user)
				if err := c.PublishMsg(&nats.Msg{Subject: tc.subject, Reply: wire.PairInbox(tc.user, "orders") + ".x",
					Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/x"}}}); err != nil {
					t.Fatal(err)
				}
				c.waitViolation(t, tc.subject)
			}
			if n := served.Load(); n != 0 {
				t.Fatalf("orders served %d refused calls", n)
			}
		})

		t.Run("census deputy", func(t *testing.T) {
			gateway := m.connect(t, "gateway")
			spied, err := gateway.SubscribeSync(wire.PairInbox("gateway", "orders") + ".>")
			if err != nil {
				t.Fatal(err)
			}
			gateway.noViolations(t)
			web := m.connect(t, "web")
			replies := append([]string{wire.PairInbox("gateway", "orders") + ".x",
				wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}.String(),
				wire.Subject{Service: "orders", Instance: id, Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}.String()},
				deputyReplies...)
			for _, reply := range replies {
				if err := web.PublishMsg(&nats.Msg{Subject: census.Subject("orders", "web"), Reply: reply}); err != nil {
					t.Fatal(err)
				}
			}
			// A genuine census, sent after them, is answered: the agent
			// has read every request before it.
			inbox := wire.PairInbox("web", "orders") + ".census"
			sub, err := web.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			if err := web.PublishRequest(census.Subject("orders", "web"), inbox, nil); err != nil {
				t.Fatal(err)
			}
			var ans census.Answer
			if err := json.Unmarshal(next(t, sub).Data, &ans); err != nil {
				t.Fatal(err)
			}
			if ans.ID != id || !ans.Addressable {
				t.Fatalf("census answer %+v, want the agent %s, addressable", ans, id)
			}
			if m, err := spied.NextMsg(100 * time.Millisecond); err == nil {
				t.Fatalf("the census answered into gateway's inbox: %s %q", m.Subject, m.Data)
			}
			if n := served.Load(); n != 0 {
				t.Fatalf("a census request ran %d calls", n)
			}
		})

		t.Run("addressed call", func(t *testing.T) {
			web := m.connect(t, "web")
			inbox := wire.PairInbox("web", "orders") + ".addressed"
			sub, err := web.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			if err := web.PublishMsg(&nats.Msg{Subject: wire.Subject{Service: "orders", Instance: id, Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}.String(),
				Reply: inbox, Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/x"}}}); err != nil {
				t.Fatal(err)
			}
			if got := next(t, sub).Header.Get(wire.HeaderStatus); got != "200" {
				t.Fatalf("an addressed call: status %q, want 200", got)
			}
			web.noViolations(t)
		})
	})
}

// TestSilentCallElsewhereAcrossAccounts: a call no instance took is sent
// again to a live instance by census and instance subject under the
// generated configuration, within an account (orders) and across
// accounts (pay, which billing exports to web's account), in both account
// modes: three of four instances of each service are silent (members of
// its queue group that hold what they get), and every GET, with a 1 s
// deadline (three sends of 300 ms), is answered by the live one. Drawn
// from the queue group at each send, about two in five would fail.
func TestSilentCallElsewhereAcrossAccounts(t *testing.T) {
	f := parseFile(t, streamMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		held := make(chan *nats.Msg, 1024)
		for _, svc := range []string{"orders", "pay"} {
			nc, err := agent.Connect(context.Background(), svc, m.connectConfig(svc))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			agenttest.StartConn(t, nc, agent.Config{Service: svc, Policies: live.Static(f), Logger: quiet},
				agenttest.Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, svc) })))
			for range 3 {
				c := m.connect(t, svc)
				if _, err := c.ChanQueueSubscribe(wire.Prefix+"."+svc+"._.>", svc, held); err != nil {
					t.Fatal(err)
				}
				c.noViolations(t)
			}
		}
		nc, err := agent.Connect(context.Background(), "web", m.connectConfig("web"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		web := agenttest.StartConn(t, nc, agent.Config{Service: "web", Policies: live.Static(f), Logger: quiet})
		client := &http.Client{Transport: web.Transport(), Timeout: 10 * time.Second}
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i := range 24 {
			svc := []string{"orders", "pay"}[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, "http://"+svc+"/x", nil)
				req.Header.Set(wire.HeaderTimeout, "1s")
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					t.Errorf("%s: %v", svc, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != svc {
					failed.Add(1)
					t.Errorf("%s: %s %s %q", svc, resp.Status, resp.Header.Get(wire.HeaderError), body)
				}
			}()
		}
		wg.Wait()
		if len(held) == 0 {
			t.Error("no call went to a silent instance: the test shows nothing")
		}
		t.Logf("%d of 24 failed; %d sends went to silent instances", failed.Load(), len(held))
	})
}
