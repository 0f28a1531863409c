package securitytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/agent"
	"github.com/natsmesh/natsmesh/internal/admission"
	"github.com/natsmesh/natsmesh/internal/agenttest"
	"github.com/natsmesh/natsmesh/internal/census"
	"github.com/natsmesh/natsmesh/internal/discovery"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// The attacks of this file aim at the instance subjects and the census
// of decision 181 (wire.InstancePrefix, internal/census) with one
// service's key at a time, over TCP, in both account modes: what the
// first tests (instance_test.go) do not try.

// recorder is an HTTP upstream that notes every request it serves
// ("METHOD path caller", the caller as the agent told it), and holds the
// requests to /block until release is closed.
type recorder struct {
	mu      sync.Mutex
	seen    []string
	entered chan struct{}
	release chan struct{}
}

func newRecorder(t *testing.T) (*recorder, string) {
	r := &recorder{entered: make(chan struct{}, 16), release: make(chan struct{})}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	t.Cleanup(r.unblock)
	return r, srv.URL
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.seen = append(r.seen, req.Method+" "+req.URL.Path+" "+req.Header.Get(agent.HeaderCaller))
	r.mu.Unlock()
	if req.URL.Path == "/block" {
		r.entered <- struct{}{}
		<-r.release
	}
}

func (r *recorder) unblock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// addressed is the subject of c's HTTP call with method to instance id of
// service.
func addressed(service, id, caller, method string) string {
	return wire.Subject{Service: service, Instance: id, Caller: caller, Proto: wire.ProtoHTTP, Op: method}.String()
}

// callAt sends c's HTTP call (method, path, and hdr's headers besides) to
// instance id of service, with a reply subject in the pair inbox of c's
// user and service, and returns the answer (the broker's no-responders
// status included).
func callAt(t testing.TB, c *client, service, id, method, path string, hdr nats.Header) *nats.Msg {
	t.Helper()
	return send(t, c, addressed(service, id, c.user, method), service, method, path, hdr)
}

// send publishes c's HTTP call on subject (as c's user, to service) with
// a reply subject in their pair inbox and returns the answer.
func send(t testing.TB, c *client, subject, service, method, path string, hdr nats.Header) *nats.Msg {
	t.Helper()
	reply := wire.PairInbox(c.user, service) + "." + nuid.Next()
	sub, err := c.SubscribeSync(reply)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	h := nats.Header{wire.HeaderMethod: {method}, wire.HeaderPath: {path}}
	for k, v := range hdr {
		h[k] = v
	}
	if err := c.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Header: h}); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if errors.Is(err, nats.ErrNoResponders) {
		// nats.go reads the broker's status into an error.
		return &nats.Msg{Subject: reply, Header: nats.Header{"Status": {"503"}}}
	}
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	return m
}

// noResponders reports whether m is the broker's no-responders status.
func noResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") == "503"
}

// takeCensus asks service's census as c's user and returns the answers
// that came within wait, or sooner once want came.
func takeCensus(t testing.TB, c *client, service string, want int, wait time.Duration) []census.Answer {
	t.Helper()
	inbox := wire.PairInbox(c.user, service) + ".census." + nuid.Next()
	sub, err := c.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := c.PublishRequest(census.Subject(service, c.user), inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out []census.Answer
	end := time.Now().Add(wait)
	for len(out) < want {
		m, err := sub.NextMsg(time.Until(end))
		if err != nil {
			break
		}
		var a census.Answer
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Fatalf("a census answer %q: %v", m.Data, err)
		}
		out = append(out, a)
	}
	return out
}

// addressable reports whether the census of service that c takes finds
// instance id addressable.
func addressable(t testing.TB, c *client, service, id string) bool {
	for _, a := range takeCensus(t, c, service, 1, time.Second) {
		if a.ID == id {
			return a.Addressable
		}
	}
	return false
}

// TestInstanceAuthz: the receiving agent authorizes a call addressed to
// its instance as it does a queue call: the caller is the subject's (the
// broker binds it to the key), and the allow list's method and path
// rules hold. In the shop, gateway may only POST /orders to orders and
// GET /stock of inventory, orders only GET /stock of inventory (v1 and
// v2 instances here); each key tries what its rules forbid through the
// instance subject, which the broker lets it publish (the method token
// is one it may use): another path, the path with "..", a method header
// that is not the subject's, the path header twice, and a Mesh-Caller
// header naming another caller. No upstream sees any of them; the
// allowed calls are served, with the subject's caller.
//
// An addressed call to a v2 instance (a split or route that says v1
// notwithstanding) grants a caller nothing new: the subset is the
// caller's choice already (mesh.<svc>.*.<caller> lets it publish
// mesh.inventory.v2…), and nothing on the callee's side depends on it.
func TestInstanceAuthz(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		orders, ordersURL := newRecorder(t)
		inv, invURL := newRecorder(t)
		ordersID := startAgent(t, m, agent.Config{Service: "orders", Upstream: ordersURL}).ID()
		v1 := startAgent(t, m, agent.Config{Service: "inventory", Subset: "v1", Upstream: invURL}).ID()
		v2 := startAgent(t, m, agent.Config{Service: "inventory", Subset: "v2", Upstream: invURL}).ID()

		gateway := m.connect(t, "gateway")
		ordersKey := m.connect(t, "orders")
		for _, tc := range []struct {
			name         string
			c            *client
			service, id  string
			method, path string
			hdr          nats.Header
			want         wire.Kind
		}{
			{"gateway other path", gateway, "orders", ordersID, "POST", "/admin", nil, wire.KindForbidden},
			{"gateway dot-dot", gateway, "orders", ordersID, "POST", "/orders/../admin", nil, wire.KindForbidden},
			{"gateway method header", gateway, "orders", ordersID, "POST", "/orders", nats.Header{wire.HeaderMethod: {"DELETE"}}, wire.KindBadRequest},
			{"gateway path twice", gateway, "orders", ordersID, "POST", "/orders", nats.Header{wire.HeaderPath: {"/orders", "/admin"}}, wire.KindBadRequest},
			{"orders other path v1", ordersKey, "inventory", v1, "GET", "/admin", nil, wire.KindForbidden},
			{"orders other path v2", ordersKey, "inventory", v2, "GET", "/admin", nil, wire.KindForbidden},
			{"orders dot-dot v2", ordersKey, "inventory", v2, "GET", "/stock/../admin", nil, wire.KindForbidden},
		} {
			t.Run(tc.name, func(t *testing.T) {
				msg := callAt(t, tc.c, tc.service, tc.id, tc.method, tc.path, tc.hdr)
				if got := wire.Kind(msg.Header.Get(wire.HeaderError)); got != tc.want {
					t.Fatalf("answer %v %q, want Mesh-Error %s", msg.Header, msg.Data, tc.want)
				}
			})
		}
		if got := append(orders.requests(), inv.requests()...); len(got) != 0 {
			t.Fatalf("the upstreams served forbidden calls: %q", got)
		}
		// What the rules allow is served, the caller the subject's, not
		// the header's.
		for _, tc := range []struct {
			c           *client
			service, id string
			method      string
			path        string
		}{
			{gateway, "orders", ordersID, "POST", "/orders"},
			{ordersKey, "inventory", v2, "GET", "/stock"},
		} {
			msg := callAt(t, tc.c, tc.service, tc.id, tc.method, tc.path, nats.Header{wire.HeaderCaller: {"web"}})
			if msg.Header.Get(wire.HeaderStatus) != "200" {
				t.Fatalf("an allowed addressed call: %v %q", msg.Header, msg.Data)
			}
		}
		if got, want := orders.requests(), []string{"POST /orders gateway"}; !slices.Equal(got, want) {
			t.Errorf("orders' upstream saw %q, want %q", got, want)
		}
		if got, want := inv.requests(), []string{"GET /stock orders"}; !slices.Equal(got, want) {
			t.Errorf("inventory's upstream saw %q, want %q", got, want)
		}
		gateway.noViolations(t)
		ordersKey.noViolations(t)
	})
}

// limitsMesh: web calls rated, whose instances allow each caller 1 call a
// minute with a burst of 2 more, and slow (an instance bounded to one
// call at a time by its agent's MaxConcurrent).
const limitsMesh = `version: 1
allow: all
services:
  web: {}
  slow: {}
  rated:
    inbound:
      rate_limit: { per_caller: 1, per: 1m, burst: 2 }
`

// TestInstanceLimits: an addressed call takes its place under the same
// rate limit and concurrency bound as a queue call: alternating queue
// and addressed calls, web gets the rate limit's three calls in all, not
// three of each; and with slow's one slot held by a queue call, an
// addressed call is answered overloaded.
func TestInstanceLimits(t *testing.T) {
	f := parseFile(t, limitsMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		rated, ratedURL := newRecorder(t)
		ratedID := startAgent(t, m, agent.Config{Service: "rated", Upstream: ratedURL, Policies: live.Static(f)}).ID()
		slow, slowURL := newRecorder(t)
		slowID := startAgent(t, m, agent.Config{Service: "slow", Upstream: slowURL, MaxConcurrent: 1, Policies: live.Static(f)}).ID()
		web := m.connect(t, "web")

		t.Run("rate limit", func(t *testing.T) {
			served, limited := 0, 0
			for i := range 8 {
				var msg *nats.Msg
				if i%2 == 0 {
					msg = call(t, web, "rated", "GET", "/x", nil)
				} else {
					msg = callAt(t, web, "rated", ratedID, "GET", "/x", nil)
				}
				switch {
				case msg.Header.Get(wire.HeaderStatus) == "200":
					served++
				case wire.Kind(msg.Header.Get(wire.HeaderError)) == wire.KindRateLimited:
					limited++
				default:
					t.Fatalf("call %d: %v %q", i, msg.Header, msg.Data)
				}
			}
			if served > 3 || len(rated.requests()) != served {
				t.Fatalf("%d of 8 calls served (the upstream saw %d), %d rate-limited: want at most 3 served", served, len(rated.requests()), limited)
			}
		})

		t.Run("concurrency", func(t *testing.T) {
			reply := wire.PairInbox("web", "slow") + ".held"
			held, err := web.SubscribeSync(reply)
			if err != nil {
				t.Fatal(err)
			}
			if err := web.PublishMsg(&nats.Msg{Subject: wire.Subject{Service: "slow", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}.String(),
				Reply: reply, Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/block"}}}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-slow.entered:
			case <-time.After(5 * time.Second):
				t.Fatal("the queue call never reached the upstream")
			}
			msg := callAt(t, web, "slow", slowID, "GET", "/x", nil)
			if got := wire.Kind(msg.Header.Get(wire.HeaderError)); got != wire.KindOverloaded {
				t.Fatalf("an addressed call past the bound: %v %q, want overloaded", msg.Header, msg.Data)
			}
			slow.unblock()
			if got := next(t, held).Header.Get(wire.HeaderStatus); got != "200" {
				t.Fatalf("the held call: status %q", got)
			}
			if got, want := slow.requests(), []string{"GET /block web"}; !slices.Equal(got, want) {
				t.Fatalf("slow's upstream saw %q, want %q", got, want)
			}
		})
		web.noViolations(t)
	})
}

// TestInstanceLeftGroups: an instance out of its queue groups takes no
// addressed call either, and the census says it is not addressable:
// withdrawn by a failing health check (back once it passes), and while
// it drains at shutdown (a call it holds still finishing).
func TestInstanceLeftGroups(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		web := m.connect(t, "web")

		t.Run("unhealthy", func(t *testing.T) {
			up, url := newRecorder(t)
			var sick atomic.Bool
			a := startAgent(t, m, agent.Config{Service: "orders", Upstream: url, Health: agent.HealthConfig{
				Interval: 20 * time.Millisecond, FailThreshold: 1, PassThreshold: 1,
				Check: func(context.Context) error {
					if sick.Load() {
						return errors.New("sick")
					}
					return nil
				},
			}})
			id := a.ID()
			if !addressable(t, web, "orders", id) {
				t.Fatal("a healthy instance is not addressable")
			}
			sick.Store(true)
			waitFor(t, func() bool { return !addressable(t, web, "orders", id) }, "the census says the withdrawn instance is not addressable")
			if msg := callAt(t, web, "orders", id, "GET", "/x", nil); !noResponders(msg) {
				t.Fatalf("an addressed call to a withdrawn instance: %v %q, want no responders", msg.Header, msg.Data)
			}
			if got := up.requests(); len(got) != 0 {
				t.Fatalf("the withdrawn instance served %q", got)
			}
			sick.Store(false)
			waitFor(t, func() bool { return addressable(t, web, "orders", id) }, "the instance addressable again")
			if msg := callAt(t, web, "orders", id, "GET", "/x", nil); msg.Header.Get(wire.HeaderStatus) != "200" {
				t.Fatalf("an addressed call once healthy again: %v %q", msg.Header, msg.Data)
			}
		})

		t.Run("draining", func(t *testing.T) {
			up, url := newRecorder(t)
			a := startAgent(t, m, agent.Config{Service: "orders", Upstream: url})
			id := a.ID()
			reply := wire.PairInbox("web", "orders") + ".held"
			held, err := web.SubscribeSync(reply)
			if err != nil {
				t.Fatal(err)
			}
			if err := web.PublishMsg(&nats.Msg{Subject: addressed("orders", id, "web", "GET"), Reply: reply,
				Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/block"}}}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-up.entered:
			case <-time.After(5 * time.Second):
				t.Fatal("the held call never reached the upstream")
			}
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				done <- a.Shutdown(ctx)
			}()
			waitFor(t, func() bool { return !addressable(t, web, "orders", id) }, "the draining instance not addressable")
			msg := callAt(t, web, "orders", id, "GET", "/late", nil)
			if !noResponders(msg) && wire.Kind(msg.Header.Get(wire.HeaderError)) != wire.KindOverloaded {
				t.Fatalf("an addressed call to a draining instance: %v %q", msg.Header, msg.Data)
			}
			up.unblock()
			if got := next(t, held).Header.Get(wire.HeaderStatus); got != "200" {
				t.Fatalf("the held call: status %q", got)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got, want := up.requests(), []string{"GET /block web"}; !slices.Equal(got, want) {
				t.Fatalf("the draining instance's upstream saw %q, want %q", got, want)
			}
		})
		web.noViolations(t)
	})
}

// TestInstanceNoCopy: docs/security.md ("Serving"): "S itself cannot take
// a plain (non-queue) copy of its own traffic" — the property
// TestSpyQueueGroup pins for the queue subjects, whose copy let a holder
// of orders' key read every call to orders and answer it first while the
// real instance ran it too. The instance subjects are subscribed with no
// queue group (mesh-inst.<self>.> in the generated permissions), so a
// holder of orders' key that subscribes mesh-inst.orders.> (or another
// instance's mesh-inst.orders.<id>.>) gets a copy of every call
// addressed to any instance of orders: the calls sent again after a
// silence, which it may also make happen (it may join orders' queue
// group and hold what it gets).
//
// Fails on 6c9daeb (decision 181): a defect, or the guarantee of
// docs/security.md changed without saying so. A fix that keeps the
// property: each instance subscribes mesh-inst.<self>.<id>.> in queue
// group <self> (nats-server groups queue subscriptions by name across
// subjects), and the permission is "mesh-inst.<self>.> <self>", so a
// spy in that group takes a share of an instance's addressed calls (as
// of its queue calls), never a copy.
func TestInstanceNoCopy(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		up, url := newRecorder(t)
		id := startAgent(t, m, agent.Config{Service: "orders", Upstream: url}).ID()
		spy := m.connect(t, "orders")
		var copies atomic.Int64
		for _, subject := range []string{wire.InstancePrefix + ".orders.>", wire.InstanceSubject("orders", id)} {
			if _, err := spy.Subscribe(subject, func(*nats.Msg) { copies.Add(1) }); err != nil {
				t.Fatal(err)
			}
		}
		if err := spy.Flush(); err != nil {
			t.Fatal(err)
		}
		web := m.connect(t, "web")
		const calls = 5
		for range calls {
			if msg := callAt(t, web, "orders", id, "GET", "/x", nil); msg.Header.Get(wire.HeaderStatus) != "200" {
				t.Fatalf("an addressed call: %v %q", msg.Header, msg.Data)
			}
		}
		if err := spy.Flush(); err != nil {
			t.Fatal(err)
		}
		if n := copies.Load(); n > 0 {
			t.Errorf("orders' key took %d plain copies of the %d calls addressed to instance %s (which served %d): "+
				"the broker allowed its subscriptions (%d violations)", n, calls, id, len(up.requests()), len(spy.errors()))
		}
	})
}

// TestInstanceDeputy: an agent sends a call addressed to its instance no
// answer anywhere but the pair inbox of the subject's caller and its
// service (admission.ReplyAllowed on the instance tree): web's addressed
// calls to orders with the deputy replies of TestDeputyPurge, gateway's
// pair inbox with orders, web's with inventory, each whole and streamed,
// run nothing and put nothing in those inboxes. And no agent's discovery
// answers a $SRV.PING into an instance subject (discovery.Answerable),
// though orders' and web's keys may publish there (orders' GET, web's
// any call, to inventory): a subscriber in inventory's instance tree
// gets nothing.
func TestInstanceDeputy(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		up, url := newRecorder(t)
		id := startAgent(t, m, agent.Config{Service: "orders", Upstream: url}).ID()
		startAgent(t, m, agent.Config{Service: "web"})

		gateway := m.connect(t, "gateway")
		gwInbox, err := gateway.SubscribeSync(wire.PairInbox("gateway", "orders") + ".>")
		if err != nil {
			t.Fatal(err)
		}
		web := m.connect(t, "web")
		webInbox, err := web.SubscribeSync(wire.PairInbox("web", "inventory") + ".>")
		if err != nil {
			t.Fatal(err)
		}
		inventory := m.connect(t, "inventory")
		// A queue subscription: the generated permissions allow it, and
		// would with a queue group on the instance subjects too.
		invInst, err := inventory.QueueSubscribeSync(wire.InstancePrefix+".inventory.>", "inventory")
		if err != nil {
			t.Fatal(err)
		}
		gateway.noViolations(t)
		web.noViolations(t)
		inventory.noViolations(t)

		replies := append([]string{wire.PairInbox("gateway", "orders") + ".x", wire.PairInbox("web", "inventory") + ".x",
			wire.PairInbox("web", "orders"), wire.PairInbox("web", "orders") + ".*", addressed("inventory", "x", "orders", "GET")},
			deputyReplies...)
		for _, streamed := range []bool{false, true} {
			for _, reply := range replies {
				h := nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/x"}}
				if streamed {
					h.Set(wire.HeaderStream, "65536")
				}
				if err := web.PublishMsg(&nats.Msg{Subject: addressed("orders", id, "web", "GET"), Reply: reply, Header: h}); err != nil {
					t.Fatal(err)
				}
			}
		}
		// The agent refuses each as it reads it, before the genuine call
		// after them.
		if msg := callAt(t, web, "orders", id, "GET", "/genuine", nil); msg.Header.Get(wire.HeaderStatus) != "200" {
			t.Fatalf("a genuine addressed call: %v %q", msg.Header, msg.Data)
		}
		if got, want := up.requests(), []string{"GET /genuine web"}; !slices.Equal(got, want) {
			t.Errorf("orders' upstream saw %q, want %q", got, want)
		}

		bridge := m.connect(t, accounts.Bridge)
		for _, reply := range []string{addressed("inventory", "x", "orders", "GET"), addressed("inventory", "x", "web", "DELETE"),
			addressed("orders", id, "web", "GET"), wire.InstancePrefix + ".inventory.x.web.http.GET"} {
			if err := bridge.PublishRequest("$SRV.PING", reply, nil); err != nil {
				t.Fatal(err)
			}
		}
		// A genuine ping after them: both agents answer it, having read
		// the forged ones first.
		pings, err := bridge.SubscribeSync(wire.PairInbox(accounts.Bridge, wire.PeerSRV) + ".ping")
		if err != nil {
			t.Fatal(err)
		}
		if err := bridge.PublishRequest("$SRV.PING", pings.Subject, nil); err != nil {
			t.Fatal(err)
		}
		next(t, pings)
		next(t, pings)
		bridge.noViolations(t)

		for _, s := range []*nats.Subscription{gwInbox, webInbox, invInst} {
			if msg, err := s.NextMsg(200 * time.Millisecond); err == nil {
				t.Errorf("a deputy published on %s: %v %q", msg.Subject, msg.Header, msg.Data)
			}
		}
		if got := up.requests(); len(got) != 1 {
			t.Errorf("orders' upstream saw %q", got)
		}
	})
}

// TestInstanceWildcardToken: a wildcard where the instance ID goes
// reaches no instance: web's permission mesh-inst.orders.*.web.> matches
// a published "mesh-inst.orders.*.web.http.GET" (nats-server, not
// pedantic, takes it), but the broker delivers it to no literal instance
// subscription, so it is not a broadcast to every instance of orders;
// nor is the census's caller token a wildcard (instance_test.go).
func TestInstanceWildcardToken(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		up, url := newRecorder(t)
		startAgent(t, m, agent.Config{Service: "orders", Upstream: url})
		startAgent(t, m, agent.Config{Service: "orders", Upstream: url})
		web := m.connect(t, "web")
		for _, subject := range []string{
			wire.InstancePrefix + ".orders.*.web.http.GET",
			wire.InstancePrefix + ".orders.*.*.http.GET",
			wire.InstancePrefix + ".orders.>",
		} {
			reply := wire.PairInbox("web", "orders") + "." + nuid.Next()
			sub, err := web.SubscribeSync(reply)
			if err != nil {
				t.Fatal(err)
			}
			if err := web.PublishMsg(&nats.Msg{Subject: subject, Reply: reply,
				Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/x"}}}); err != nil {
				t.Fatal(err)
			}
			if err := web.Flush(); err != nil {
				t.Fatal(err)
			}
			if msg, err := sub.NextMsg(time.Second); err == nil && !noResponders(msg) {
				t.Errorf("%s was answered: %v %q", subject, msg.Header, msg.Data)
			}
		}
		if got := up.requests(); len(got) != 0 {
			t.Fatalf("a wildcard instance token reached an instance: %q", got)
		}
	})
}

// TestInstanceCensusFlood: a census costs one answer per instance and
// request, no more, and a flood of census requests (20,000 from web's
// key, whose answers go to its own inbox) neither disconnects an agent
// nor stops it serving. Each instance answers every census request of a
// service it serves, outside any rate limit: a caller of a service can
// make all its instances answer at once (pinned as a residual: a
// flood's cost to the broker and agents is of the order of a flood of
// refused calls, only not spread over the queue group).
func TestInstanceCensusFlood(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		_, url := newRecorder(t)
		a1 := startAgent(t, m, agent.Config{Service: "orders", Upstream: url})
		a2 := startAgent(t, m, agent.Config{Service: "orders", Upstream: url})
		web := m.connect(t, "web")
		for i := range 20000 {
			if err := web.PublishRequest(census.Subject("orders", "web"), wire.PairInbox("web", "orders")+".flood."+strconv.Itoa(i), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := web.Flush(); err != nil {
			t.Fatal(err)
		}
		inbox := wire.PairInbox("web", "orders") + ".counted"
		sub, err := web.SubscribeSync(inbox + ".>")
		if err != nil {
			t.Fatal(err)
		}
		const asked = 50
		for i := range asked {
			if err := web.PublishRequest(census.Subject("orders", "web"), inbox+"."+strconv.Itoa(i), nil); err != nil {
				t.Fatal(err)
			}
		}
		perID := map[string]int{}
		for range 2 * asked {
			msg, err := sub.NextMsg(30 * time.Second)
			if err != nil {
				t.Fatalf("census answers after the flood: %v (got %v)", err, perID)
			}
			var ans census.Answer
			if err := json.Unmarshal(msg.Data, &ans); err != nil {
				t.Fatal(err)
			}
			perID[ans.ID]++
		}
		if msg, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			t.Fatalf("an answer more than one per instance and request: %q", msg.Data)
		}
		if perID[a1.ID()] != asked || perID[a2.ID()] != asked {
			t.Fatalf("answers by instance %v, want %d of each of %s and %s", perID, asked, a1.ID(), a2.ID())
		}
		for _, id := range []string{a1.ID(), a2.ID()} {
			if msg := callAt(t, web, "orders", id, "GET", "/x", nil); msg.Header.Get(wire.HeaderStatus) != "200" {
				t.Fatalf("a call after the flood: %v %q", msg.Header, msg.Data)
			}
		}
		web.noViolations(t)
	})
}

// TestInstanceForeignKeys: what the keys of other services (and the
// bridge) can do with the instance tree and the census of a service that
// is not theirs, with the shop's mesh file: none reads another service's
// instance subjects or census requests, addresses a call or asks a
// census as another caller, or forges a census answer into a caller's
// inbox for another service (only the service itself may publish there:
// a census answer names only the service's own instances, and a call
// sent to one reaches only that service's key).
func TestInstanceForeignKeys(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		const id = "AAAAAAAAAAAAAAAAAAAAAA"
		t.Run("subscribe", func(t *testing.T) {
			for _, tc := range []struct{ user, subject string }{
				{"web", census.Subject("orders", "*")},
				{"web", census.Subject("orders", "gateway")},
				{"gateway", census.Subject("orders", "web")},
				{"inventory", "$SRV.STATUS.*.web"},
				{accounts.Bridge, wire.InstancePrefix + ".web.>"},
				{accounts.Bridge, census.Subject("web", "*")},
				{"clock", wire.InstancePrefix + ".web.>"},
				{"web", wire.InstancePrefix + ".*.*.web.>"},
			} {
				c := m.connect(t, tc.user)
				if _, err := c.SubscribeSync(tc.subject); err != nil {
					t.Fatal(err)
				}
				c.waitViolation(t, tc.subject)
			}
		})
		t.Run("publish", func(t *testing.T) {
			forged, _ := json.Marshal(census.Answer{ID: id, Addressable: true})
			for _, tc := range []struct {
				user, subject string
				data          []byte
			}{
				// A census answer into web's inbox for orders, as another
				// service.
				{"inventory", wire.PairInbox("web", "orders") + ".census", forged},
				{"web", wire.PairInbox("gateway", "orders") + ".census", forged},
				{"gateway", wire.PairInbox("web", "inventory") + ".census", forged},
				// Addressed calls and census as another caller or
				// beyond the rules.
				{accounts.Bridge, addressed("web", id, "gateway", "GET"), nil},
				{accounts.Bridge, addressed("orders", id, "bridge", "POST"), nil},
				{accounts.Bridge, census.Subject("orders", "bridge"), nil},
				{accounts.Bridge, census.Subject("web", "gateway"), nil},
				{"gateway", addressed("inventory", id, "gateway", "DELETE"), nil},
				{"gateway", addressed("clock", id, "gateway", "GET"), nil},
				{"orders", addressed("inventory", id, "orders", "POST"), nil},
				{"orders", addressed("orders", id, "orders", "GET"), nil},
				{"inventory", addressed("orders", id, "inventory", "GET"), nil},
				{"inventory", census.Subject("orders", "inventory"), nil},
				{"clock", census.Subject("orders", "clock"), nil},
				{"clock", addressed("orders", id, "clock", "GET"), nil},
			} {
				c := m.connect(t, tc.user)
				if err := c.PublishMsg(&nats.Msg{Subject: tc.subject, Data: tc.data, Reply: wire.PairInbox(tc.user, "orders") + ".x"}); err != nil {
					t.Fatal(err)
				}
				c.waitViolation(t, tc.subject)
			}
		})
	})
}

// TestInstanceCrossAccount: the instance tree and the census across
// accounts (streamMesh: pay in billing, exported to web only; orders
// and the bystander inventory in web's account), in both modes. The
// exports carry web's addressed calls to pay and its census, answered in
// web's pair inbox with pay; no other key of web's account reaches pay's
// instances or census, pay's key reads no instance subject of the mesh
// account, and pay's census responder answers only in the pair inbox of
// web and pay (not web's with orders, not inventory's).
func TestInstanceCrossAccount(t *testing.T) {
	f := parseFile(t, streamMesh)
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, f)
		pay, payURL := newRecorder(t)
		payID := startAgent(t, m, agent.Config{Service: "pay", Upstream: payURL, Policies: live.Static(f)}).ID()
		_, ordersURL := newRecorder(t)
		ordersID := startAgent(t, m, agent.Config{Service: "orders", Upstream: ordersURL, Policies: live.Static(f)}).ID()

		t.Run("refused", func(t *testing.T) {
			for _, tc := range []struct{ user, subject string }{
				{"inventory", addressed("pay", payID, "inventory", "GET")},
				{"inventory", addressed("pay", payID, "web", "GET")},
				{"inventory", census.Subject("pay", "inventory")},
				{"inventory", census.Subject("pay", "web")},
				{"inventory", wire.PairInbox("web", "pay") + ".census"},
				{"orders", addressed("pay", payID, "orders", "GET")},
				{"orders", census.Subject("pay", "orders")},
				{"pay", addressed("orders", ordersID, "pay", "GET")},
				{"pay", census.Subject("orders", "pay")},
			} {
				c := m.connect(t, tc.user)
				if err := c.Publish(tc.subject, nil); err != nil {
					t.Fatal(err)
				}
				c.waitViolation(t, tc.subject)
			}
			for _, tc := range []struct{ user, subject string }{
				{"inventory", wire.InstancePrefix + ".pay.>"},
				{"inventory", census.Subject("pay", "web")},
				{"inventory", wire.PairInbox("web", "pay") + ".>"},
				{"pay", wire.InstancePrefix + ".orders.>"},
				{"pay", wire.InstancePrefix + ".>"},
				{"pay", census.Subject("orders", "web")},
			} {
				c := m.connect(t, tc.user)
				if _, err := c.SubscribeSync(tc.subject); err != nil {
					t.Fatal(err)
				}
				c.waitViolation(t, tc.subject)
			}
		})

		t.Run("census deputy", func(t *testing.T) {
			web := m.connect(t, "web")
			spied, err := web.SubscribeSync(wire.PairInbox("web", "orders") + ".>")
			if err != nil {
				t.Fatal(err)
			}
			inventory := m.connect(t, "inventory")
			invSpied, err := inventory.SubscribeSync(wire.PairInbox("inventory", "pay") + ".>")
			if err != nil {
				t.Fatal(err)
			}
			inventory.noViolations(t)
			for _, reply := range []string{wire.PairInbox("web", "orders") + ".x", wire.PairInbox("inventory", "pay") + ".x",
				wire.PairInbox("web", "pay"), addressed("pay", payID, "web", "GET")} {
				if err := web.PublishRequest(census.Subject("pay", "web"), reply, nil); err != nil {
					t.Fatal(err)
				}
			}
			// And addressed calls with those replies: none runs.
			for _, reply := range []string{wire.PairInbox("web", "orders") + ".x", wire.PairInbox("inventory", "pay") + ".x"} {
				if err := web.PublishMsg(&nats.Msg{Subject: addressed("pay", payID, "web", "GET"), Reply: reply,
					Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/x"}}}); err != nil {
					t.Fatal(err)
				}
			}
			ans := takeCensus(t, web, "pay", 1, 5*time.Second)
			if len(ans) != 1 || ans[0].ID != payID || !ans[0].Addressable {
				t.Fatalf("web's census of pay: %+v, want pay's instance %s, addressable", ans, payID)
			}
			if msg := callAt(t, web, "pay", payID, "GET", "/genuine", nil); msg.Header.Get(wire.HeaderStatus) != "200" {
				t.Fatalf("web's addressed call to pay: %v %q", msg.Header, msg.Data)
			}
			for _, s := range []*nats.Subscription{spied, invSpied} {
				if msg, err := s.NextMsg(200 * time.Millisecond); err == nil {
					t.Errorf("pay answered into %s: %q", msg.Subject, msg.Data)
				}
			}
			if got, want := pay.requests(), []string{"GET /genuine web"}; !slices.Equal(got, want) {
				t.Errorf("pay's upstream saw %q, want %q", got, want)
			}
			web.noViolations(t)
		})
	})
}

// TestInstanceOverlap: the subjects a generated user may both publish
// and subscribe now include its own instance calls to itself and its own
// census of itself (when it may call itself), which TestSelfGrant tries
// since it tries every accounts.Overlap; and none in either new tree
// names another service (a self-delivered message there would be a
// call to, or census of, another service as the user).
func TestInstanceOverlap(t *testing.T) {
	for _, src := range []string{"shop", streamMesh, pairMesh} {
		f := shopFile(t)
		if src != "shop" {
			f = parseFile(t, src)
		}
		spec := f.AccountsSpec()
		users, err := spec.Users()
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if u.Perms == nil || u.Account == accounts.StoreAccount {
				continue
			}
			for _, o := range accounts.Overlap(u.Perms) {
				var svc string
				switch {
				case strings.HasPrefix(o, wire.InstancePrefix+"."):
					svc = strings.Split(o, ".")[1]
					if toks := strings.Split(o, "."); len(toks) < 4 || toks[3] != u.Name {
						t.Errorf("%s may publish and subscribe %s: a caller not itself", u.Name, o)
					}
				case strings.HasPrefix(o, "$SRV.STATUS.") && strings.Count(o, ".") == 3:
					toks := strings.Split(o, ".")
					svc = toks[2]
					if toks[3] != u.Name {
						t.Errorf("%s may publish and subscribe %s: a census as another caller", u.Name, o)
					}
				default:
					continue
				}
				if svc != u.Name {
					t.Errorf("%s may publish and subscribe %s, of service %s", u.Name, o, svc)
				}
			}
		}
		if src == "shop" {
			for _, u := range users {
				if u.Name != "web" {
					continue
				}
				o := accounts.Overlap(u.Perms)
				for _, want := range []string{wire.InstancePrefix + ".web.*.web.>", census.Subject("web", "web")} {
					if !slices.Contains(o, want) {
						t.Errorf("web's overlaps %q lack %s: TestSelfGrant does not try it", o, want)
					}
				}
			}
		}
	}
}

// TestInstanceReplyChecks: the two reply checks the instance tree reaches
// read it as they read the queue tree: admission.ReplyAllowed admits
// for an addressed call only the pair inbox of its caller and service,
// and discovery.Answerable never answers into it.
func TestInstanceReplyChecks(t *testing.T) {
	const id = "AAAAAAAAAAAAAAAAAAAAAA"
	subj := addressed("orders", id, "web", "GET")
	for _, tc := range []struct {
		subject, reply string
		want           bool
	}{
		{subj, wire.PairInbox("web", "orders") + ".x", true},
		{subj, wire.PairInbox("gateway", "orders") + ".x", false},
		{subj, wire.PairInbox("web", "inventory") + ".x", false},
		{subj, wire.PairInbox("orders", "web") + ".x", false},
		{subj, wire.PairInbox("web", "orders"), false},
		{subj, wire.PairInbox("web", "orders") + ".*", false},
		{subj, addressed("inventory", id, "web", "GET"), false},
		{addressed("orders", id, "Web", "GET"), wire.PairInbox("Web", "orders") + ".x", false},
		{"mesh-inst.orders", wire.PairInbox("web", "orders") + ".x", false},
		{"mesh-instx.orders." + id + ".web.http.GET", wire.PairInbox("web", "orders") + ".x", false},
		{wire.InstancePrefix + ".orders." + id + ".web", wire.PairInbox("web", "orders") + ".x", false},
	} {
		if got := admission.ReplyAllowed(tc.subject, tc.reply); got != tc.want {
			t.Errorf("ReplyAllowed(%q, %q) = %v, want %v", tc.subject, tc.reply, got, tc.want)
		}
	}
	for _, reply := range []string{subj, wire.InstancePrefix + ".x", addressed("inventory", "x", "orders", "GET")} {
		if discovery.Answerable(reply) {
			t.Errorf("discovery answers into %q", reply)
		}
	}
	if !discovery.Answerable(wire.PairInbox(accounts.Bridge, wire.PeerSRV) + ".x") {
		t.Error("discovery answers not even its own pair inbox")
	}
}

// TestInstanceForgedCensusLoop: what a holder of a callee's key can make
// a caller's agent do with census answers. orders' key (no genuine
// instance of orders runs) joins orders' queue group and holds every call
// it gets, silent, and answers each census with many addressable
// instance IDs that no one subscribes. web's agent makes one GET to
// orders with a 2 s deadline. Silence to the queue group costs a resend
// per take wait (300 ms): about 7 sends. But an addressed send that meets
// no responders is sent again at once, to the next ID the census offers
// (meshstream.Take.send: "gone"), so each forged ID is one more publish
// of the call by web's agent, with no wait between them, and a census
// stands 500 ms, so a new one brings as many again: one call, thousands
// of publishes, each carrying the call's body.
//
// The forger is the callee, which may lie about itself (docs/security.md);
// what it should not get is a caller's agent spinning: the test fails
// when web's connection publishes more than 100 messages for the call.
// Fails on 6c9daeb (decision 181).
func TestInstanceForgedCensusLoop(t *testing.T) {
	const forged = 1000
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		rogue := m.connect(t, "orders")
		var queued atomic.Int64
		if _, err := rogue.QueueSubscribe(wire.Prefix+".orders._.>", "orders", func(*nats.Msg) { queued.Add(1) }); err != nil {
			t.Fatal(err)
		}
		var asked atomic.Int64
		if _, err := rogue.Subscribe(census.Subject("orders", "*"), func(req *nats.Msg) {
			asked.Add(1)
			for i := range forged {
				b, _ := json.Marshal(census.Answer{ID: fmt.Sprintf("Forged%016d", i), Addressable: true})
				rogue.Publish(req.Reply, b)
			}
		}); err != nil {
			t.Fatal(err)
		}
		rogue.noViolations(t)

		webConn := m.connect(t, "web")
		web := agenttest.StartConn(t, webConn.Conn, agent.Config{Service: "web", Policies: live.Static(shopFile(t)), Logger: quiet})
		before := m.published(t, "securitytest:web")
		req, _ := http.NewRequest(http.MethodGet, "http://orders/x", nil)
		req.Header.Set(wire.HeaderTimeout, "2s")
		client := &http.Client{Transport: web.Transport(), Timeout: 10 * time.Second}
		start := time.Now()
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		sent := m.published(t, "securitytest:web") - before
		t.Logf("the call ended after %v (%v); web's connection published %d messages; %d went to the queue group, %d census taken",
			time.Since(start).Round(time.Millisecond), errOrStatus(resp, err), sent, queued.Load(), asked.Load())
		if sent > 100 {
			t.Errorf("one call made web's agent publish %d messages: forged census answers (orders' key) keep it resending without a wait", sent)
		}
		rogue.noViolations(t)
	})
}

func errOrStatus(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status + " " + resp.Header.Get(wire.HeaderError)
}

// published is how many messages the connection named name (one only)
// has published to the broker.
func (m *mesh) published(t testing.TB, name string) uint64 {
	t.Helper()
	cz, err := m.b.Server().Connz(&server.ConnzOptions{Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	found := 0
	for _, c := range cz.Conns {
		if c.Name == name {
			n, found = uint64(c.InMsgs), found+1
		}
	}
	if found != 1 {
		t.Fatalf("%d connections named %s", found, name)
	}
	return n
}

// TestInstanceForgedCensusIDs: a census answer's ID goes into a subject
// only as a valid instance ID ([A-Za-z0-9], 1 to 64): orders' key answers
// web's census with IDs that are wildcards, hold a dot, are empty or too
// long, and holds the calls of orders' queue group, silent; web's agent
// sends its call again only to the queue group, never into the instance
// tree with such a token (a subscriber of mesh-inst.orders.> sees
// nothing).
func TestInstanceForgedCensusIDs(t *testing.T) {
	eachMode(t, func(t *testing.T, md mode) {
		m := newMesh(t, md, shopFile(t))
		rogue := m.connect(t, "orders")
		var queued atomic.Int64
		if _, err := rogue.QueueSubscribe(wire.Prefix+".orders._.>", "orders", func(*nats.Msg) { queued.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if _, err := rogue.Subscribe(census.Subject("orders", "*"), func(req *nats.Msg) {
			for _, id := range []string{"*", ">", "a.b", "", " ", "a*", strings.Repeat("A", 65), "_", "web.http"} {
				b, _ := json.Marshal(census.Answer{ID: id, Addressable: true})
				rogue.Publish(req.Reply, b)
			}
			rogue.Publish(req.Reply, []byte(`{"id":["x"],"addressable":true}`))
		}); err != nil {
			t.Fatal(err)
		}
		inst, err := rogue.QueueSubscribeSync(wire.InstancePrefix+".orders.>", "orders")
		if err != nil {
			t.Fatal(err)
		}
		rogue.noViolations(t)
		webConn := m.connect(t, "web")
		web := agenttest.StartConn(t, webConn.Conn, agent.Config{Service: "web", Policies: live.Static(shopFile(t)), Logger: quiet})
		req, _ := http.NewRequest(http.MethodGet, "http://orders/x", nil)
		req.Header.Set(wire.HeaderTimeout, "1s")
		resp, err := (&http.Client{Transport: web.Transport(), Timeout: 10 * time.Second}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if msg, err := inst.NextMsg(100 * time.Millisecond); err == nil {
			t.Fatalf("web's agent sent a call to %s", msg.Subject)
		}
		if queued.Load() < 2 {
			t.Fatalf("the call went %d times to the queue group: the test shows nothing", queued.Load())
		}
		webConn.noViolations(t)
	})
}
