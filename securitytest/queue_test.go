package securitytest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// TestSpyQueueGroup: issue 16's third attack. On the code before the
// reply model, a service's key could subscribe its call subjects in any
// queue group "S.*": a group orders.spy received a copy of every call to
// orders (and its answer was the one the client got) while the real
// instances ran the call too. Now a service may serve its subjects only in
// exactly its own groups: S for mesh.S._.>, S.<v> for each subset v the
// mesh file declares, and nothing else: the broker refuses every other
// subscription (orders of the shop declares no subsets, inventory v1 and
// v2). A subscription in the exact group on a narrower subject joins the
// group (nats-server groups queue subscriptions by name): it takes a share
// of the calls, as any instance of orders may, and never a copy.
func TestSpyQueueGroup(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		t.Run("refused", func(t *testing.T) {
			for _, tc := range []struct{ user, subject, queue string }{
				{"orders", "mesh.orders._.>", "orders.spy"},
				{"orders", "mesh.orders._.>", "orders.*"},
				{"orders", "mesh.orders._.>", ""},
				{"orders", "mesh.orders._.web.>", "orders.spy"},
				{"orders", "mesh.orders.*.>", "orders"},
				{"orders", "mesh.orders.>", "orders"},
				{"orders", "mesh.>", "orders"},
				{"orders", "mesh.orders.v1.>", "orders.v1"}, // orders declares no subsets
				{"orders", "mesh.orders.v1.>", "orders"},
				{"orders", "mesh.inventory._.>", "inventory"},
				{"orders", "mesh.inventory.v1.>", "inventory.v1"},
				{"inventory", "mesh.inventory.v3.>", "inventory.v3"}, // undeclared
				{"inventory", "mesh.inventory.v1.>", "inventory.v1.spy"},
				{"inventory", "mesh.inventory.v1.>", "inventory"},
				{"inventory", "mesh.inventory.v1.>", ""},
				{"inventory", "mesh.inventory._.>", "inventory.v1"},
				{"inventory", "mesh.inventory.*.>", "inventory.*"},
			} {
				c := m.connect(t, tc.user)
				if _, err := c.QueueSubscribeSync(tc.subject, tc.queue); err != nil {
					t.Fatal(err)
				}
				c.waitViolation(t, tc.subject)
			}
		})

		t.Run("no copy", func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			t.Cleanup(up.Close)
			startAgent(t, m, agent.Config{Service: "orders", Upstream: up.URL})
			spy := m.connect(t, "orders")
			var spied atomic.Int64
			for _, subject := range []string{"mesh.orders._.>", "mesh.orders._.web.>", "mesh.orders._.web.http.GET"} {
				if _, err := spy.QueueSubscribe(subject, "orders", func(*nats.Msg) { spied.Add(1) }); err != nil {
					t.Fatal(err)
				}
			}
			spy.noViolations(t)
			// The agent's answers (served, or refused by its rate limit:
			// either way the agent took the call), by reply subject.
			web := m.connect(t, "web")
			var mu sync.Mutex
			answered := map[string]int{}
			if _, err := web.Subscribe(wire.PairInbox("web", "orders")+".>", func(msg *nats.Msg) {
				mu.Lock()
				answered[msg.Subject]++
				mu.Unlock()
			}); err != nil {
				t.Fatal(err)
			}
			const calls = 40
			for i := range calls {
				m := &nats.Msg{Subject: wire.Subject{Service: "orders", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}.String(),
					Reply:  wire.PairInbox("web", "orders") + ".call." + strconv.Itoa(i),
					Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/x"}}}
				if err := web.PublishMsg(m); err != nil {
					t.Fatal(err)
				}
			}
			web.noViolations(t)
			taken := func() (agent, spy int) {
				mu.Lock()
				defer mu.Unlock()
				for _, n := range answered {
					agent += n
				}
				return agent, int(spied.Load())
			}
			meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
				if a, s := taken(); a+s < calls {
					return fmt.Errorf("the agent took %d calls, the spy %d, of %d", a, s, calls)
				}
				return nil
			})
			// Proving no call ran twice needs a wait: bounded, once every
			// call has been taken once.
			time.Sleep(200 * time.Millisecond)
			if a, s := taken(); a+s != calls || len(answered) != a {
				t.Fatalf("the agent took %d calls (%d reply subjects), the spy %d, of %d: some ran twice", a, len(answered), s, calls)
			}
			a, s := taken()
			t.Logf("the group's shares: the agent %d, the spy %d", a, s)
		})
	})
}

// startAgent starts an agent of cfg.Service on the mesh with its generated
// key and the shop's mesh file (live.Static), and waits until it is ready.
func startAgent(t *testing.T, m *mesh, cfg agent.Config) *agent.Agent {
	t.Helper()
	nc, err := agent.Connect(context.Background(), cfg.Service, m.connectConfig(cfg.Service))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if cfg.Policies == nil {
		cfg.Policies = live.Static(shopFile(t))
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	return agenttest.StartConn(t, nc, cfg)
}
