package accounts

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsmesh/natsmesh/wire"
)

// serve answers calls to service the way an agent does: in the service's
// queue groups, replying "ok". It counts the calls it got.
func serve(t *testing.T, c *client, service, subset string) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	subjects, queues := wire.ServiceSubjects(service, subset)
	for i := range subjects {
		_, err := c.QueueSubscribe(subjects[i], queues[i], func(m *nats.Msg) {
			n.Add(1)
			m.Respond([]byte("ok " + m.Subject))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c.noViolations(t)
	return &n
}

func generated(t *testing.T, spec Spec, opts ...Option) string {
	t.Helper()
	dir := t.TempDir()
	if err := Generate(spec, dir, opts...); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestServerConfig(t *testing.T) {
	dir := generated(t, testSpec())
	for _, k := range serverKinds {
		t.Run(k.name, func(t *testing.T) {
			url := k.run(t, ConfigFile(dir))
			testPermissions(t, url, func(t *testing.T, user string) *client { return connectAs(t, url, dir, user) })
		})
	}
}

// testPermissions runs the permission tests against a server running the
// configuration of testSpec; as(t, user) connects as that user.
func testPermissions(t *testing.T, url string, as func(t *testing.T, user string) *client) {
	t.Run("anonymous refused", func(t *testing.T) {
		nc, err := nats.Connect(url, nats.NoReconnect())
		if err == nil {
			nc.Close()
			t.Fatal("anonymous connection accepted")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("err = %v, want an authorization violation", err)
		}
	})

	t.Run("allowed call", func(t *testing.T) {
		orders := as(t, "orders")
		n := serve(t, orders, "orders", "v1")
		web := as(t, "web")
		for _, subj := range []string{
			call("orders", "", "web", wire.ProtoHTTP, "GET"),
			call("orders", "v1", "web", wire.ProtoHTTP, "POST"),
		} {
			m, err := web.Request(subj, nil, 5*time.Second)
			if err != nil {
				t.Fatalf("%s: %v", subj, err)
			}
			if string(m.Data) != "ok "+subj {
				t.Fatalf("%s: reply %q", subj, m.Data)
			}
		}
		if n.Load() != 2 {
			t.Fatalf("orders got %d calls, want 2", n.Load())
		}
		web.noViolations(t)
		orders.noViolations(t)
	})

	t.Run("caller token is enforced", func(t *testing.T) {
		orders := as(t, "orders")
		n := serve(t, orders, "orders", "")
		web := as(t, "web")
		spoof := call("orders", "", "bridge", wire.ProtoHTTP, "GET")
		if err := web.PublishRequest(spoof, web.NewInbox(), nil); err != nil {
			t.Fatal(err)
		}
		web.waitViolation(t, spoof)
		// A call sent after the spoof on the same connection arrives, so
		// the spoof was dropped, not delayed.
		if _, err := web.Request(call("orders", "", "web", wire.ProtoHTTP, "GET"), nil, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 1 {
			t.Fatalf("orders got %d calls, want only the genuine one", n.Load())
		}
	})

	t.Run("calls outside the allow list are refused", func(t *testing.T) {
		orders, payments := as(t, "orders"), as(t, "payments")
		nOrders, nPayments := serve(t, orders, "orders", ""), serve(t, payments, "payments", "")
		web := as(t, "web")
		for _, subj := range []string{
			call("orders", "", "web", wire.ProtoHTTP, "DELETE"),          // method not allowed
			call("orders", "", "web", wire.ProtoGRPC, "/pay.Orders/Get"), // no gRPC for web
			call("payments", "", "web", wire.ProtoHTTP, "GET"),           // payments admits orders only
			call("invoices", "", "web", wire.ProtoHTTP, "GET"),           // other account, orders only
			call("lonely", "", "web", wire.ProtoHTTP, "GET"),             // not exported
		} {
			if err := web.Publish(subj, nil); err != nil {
				t.Fatal(err)
			}
			web.waitViolation(t, subj)
		}
		ordersConn := orders
		// orders may call payments with the one gRPC method only.
		ok := call("payments", "", "orders", wire.ProtoGRPC, "/pay.Payments/Charge")
		if _, err := ordersConn.Request(ok, nil, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		bad := call("payments", "", "orders", wire.ProtoGRPC, "/pay.Payments/Refund")
		ordersConn.Publish(bad, nil)
		ordersConn.waitViolation(t, bad)
		if nOrders.Load() != 0 || nPayments.Load() != 1 {
			t.Fatalf("orders got %d, payments %d calls; want 0 and 1", nOrders.Load(), nPayments.Load())
		}
	})

	t.Run("default allow admits every service and the bridge", func(t *testing.T) {
		catalog := as(t, "catalog")
		serve(t, catalog, "catalog", "")
		for _, caller := range []string{"web", "orders", "payments", Bridge} {
			c := as(t, caller)
			if _, err := c.Request(call("catalog", "", caller, wire.ProtoHTTP, "GET"), nil, 5*time.Second); err != nil {
				t.Fatalf("%s -> catalog: %v", caller, err)
			}
		}
	})

	t.Run("subscriptions are confined to the own service", func(t *testing.T) {
		web := as(t, "web")
		for _, s := range []struct{ subject, queue string }{
			{"_INBOX_mesh.orders.>", ""},  // another's replies
			{"_INBOX_mesh.>", ""},         // everyone's replies
			{"mesh.orders._.>", ""},       // another's calls
			{"mesh.orders._.>", "orders"}, // another's queue group
			{"mesh.>", ""},                // all calls
			{"$SRV.PING.orders", ""},      // another's discovery
		} {
			var err error
			if s.queue == "" {
				_, err = web.SubscribeSync(s.subject)
			} else {
				_, err = web.QueueSubscribeSync(s.subject, s.queue)
			}
			if err != nil {
				t.Fatal(err)
			}
			web.waitViolation(t, s.subject)
		}
		orders := as(t, "orders")
		for _, s := range []struct{ subject, queue string }{
			{"mesh.orders._.>", ""},           // a plain subscription would copy every call
			{"mesh.orders._.>", "thief"},      // a queue group of its own
			{"mesh.orders.v1.>", "orders"},    // the subset in the wrong group
			{"mesh.orders.v3.>", "orders.v3"}, // an undeclared subset
		} {
			var err error
			if s.queue == "" {
				_, err = orders.SubscribeSync(s.subject)
			} else {
				_, err = orders.QueueSubscribeSync(s.subject, s.queue)
			}
			if err != nil {
				t.Fatal(err)
			}
			orders.waitViolation(t, s.subject)
		}
	})

	t.Run("cross-account call through the export", func(t *testing.T) {
		invoices := as(t, "invoices")
		var reply atomic.Value
		subjects, queues := wire.ServiceSubjects("invoices", "")
		if _, err := invoices.QueueSubscribe(subjects[0], queues[0], func(m *nats.Msg) {
			reply.Store(m.Reply)
			m.Respond([]byte("invoice"))
		}); err != nil {
			t.Fatal(err)
		}
		invoices.noViolations(t)
		orders := as(t, "orders")
		m, err := orders.Request(call("invoices", "", "orders", wire.ProtoHTTP, "POST"), []byte("bill"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) != "invoice" {
			t.Fatalf("reply %q", m.Data)
		}
		t.Logf("a cross-account call arrives with reply %q", reply.Load())
		if r, _ := reply.Load().(string); len(r) < 4 || r[:4] != "_R_." {
			t.Fatalf("reply subject %q, want _R_.…", r)
		}
		invoices.noViolations(t)
		orders.noViolations(t)
		// lonely is in an account nobody imports from: even a caller
		// with permission (lonely's own account has no other users)
		// finds no responder from the mesh account.
	})

	t.Run("replies only to requests received, once", func(t *testing.T) {
		orders := as(t, "orders")
		twice := make(chan string, 1)
		subjects, queues := wire.ServiceSubjects("orders", "")
		if _, err := orders.QueueSubscribe(subjects[0], queues[0], func(m *nats.Msg) {
			m.Respond([]byte("ok"))
			m.Respond([]byte("forged second answer")) // refused: max 1
			twice <- m.Reply
		}); err != nil {
			t.Fatal(err)
		}
		orders.noViolations(t)
		web := as(t, "web")
		// A normal call gets its reply.
		m, err := web.Request(call("orders", "", "web", wire.ProtoHTTP, "GET"), nil, 5*time.Second)
		if err != nil || string(m.Data) != "ok" {
			t.Fatalf("call: %v %v", m, err)
		}
		orders.waitViolation(t, <-twice)

		// orders, a callee of web, cannot answer web's other calls (its
		// inbox tokens are guessable), nor the admin's discovery.
		forged := wire.InboxPrefix("web") + ".payments-call"
		got, err := web.SubscribeSync(forged)
		if err != nil {
			t.Fatal(err)
		}
		web.noViolations(t)
		for _, subj := range []string{forged, wire.InboxPrefix(DefaultAdmin) + ".stats", "_R_.abc.def"} {
			if err := orders.Publish(subj, []byte("forged")); err != nil {
				t.Fatal(err)
			}
			orders.waitViolation(t, subj)
		}
		if err := web.Flush(); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := got.Pending(); n != 0 {
			t.Fatalf("web received %d forged replies", n)
		}

		// Passive health: siblings answer an instance's status request.
		sibling := as(t, "orders")
		if _, err := sibling.Subscribe("$SRV.STATUS.orders", func(m *nats.Msg) { m.Respond([]byte("{}")) }); err != nil {
			t.Fatal(err)
		}
		sibling.noViolations(t)
		if _, err := orders.Request("$SRV.STATUS.orders", nil, 5*time.Second); err != nil {
			t.Fatalf("status request: %v", err)
		}
		sibling.noViolations(t)
	})

	t.Run("policies watch and discovery", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin := as(t, DefaultAdmin)
		ajs, err := jetstream.New(admin.Conn)
		if err != nil {
			t.Fatal(err)
		}
		akv, err := ajs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: PoliciesBucket})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := akv.Put(ctx, "orders", []byte("v1")); err != nil {
			t.Fatal(err)
		}
		for _, user := range []string{"orders", Bridge} {
			if _, err := akv.Put(ctx, "orders", []byte("v1")); err != nil {
				t.Fatal(err)
			}
			c := as(t, user)
			js, err := jetstream.New(c.Conn)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := js.KeyValue(ctx, PoliciesBucket)
			if err != nil {
				t.Fatalf("%s: open bucket: %v", user, err)
			}
			e, err := kv.Get(ctx, "orders")
			if err != nil || string(e.Value()) != "v1" {
				t.Fatalf("%s: get: %v %v", user, e, err)
			}
			w, err := kv.WatchAll(ctx)
			if err != nil {
				t.Fatalf("%s: watch: %v", user, err)
			}
			if e := <-w.Updates(); e == nil || string(e.Value()) != "v1" {
				t.Fatalf("%s: first update %v", user, e)
			}
			if e := <-w.Updates(); e != nil {
				t.Fatalf("%s: want the end of initial values, got %v", user, e)
			}
			if _, err := akv.Put(ctx, "orders", []byte("v2-"+user)); err != nil {
				t.Fatal(err)
			}
			if e := <-w.Updates(); e == nil || string(e.Value()) != "v2-"+user {
				t.Fatalf("%s: update %v", user, e)
			}
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err = kv.Put(pctx, "orders", []byte("evil"))
			pcancel()
			if err == nil {
				t.Fatalf("%s may write policies", user)
			}
			if err := w.Stop(); err != nil {
				t.Fatalf("%s: stop: %v (%v)", user, err, c.errors())
			}
			// Only the write may have been refused.
			for _, err := range c.errors() {
				if !errors.Is(err, nats.ErrPermissionViolation) || !contains(err.Error(), "$KV."+PoliciesBucket) {
					t.Fatalf("%s: %v", user, err)
				}
			}
		}

		// Discovery: orders and the bridge answer $SRV pings from the
		// admin, as responses (nats.go's default inbox too).
		for _, user := range []string{"orders", Bridge} {
			c := as(t, user)
			if _, err := c.Subscribe("$SRV.PING."+user, func(m *nats.Msg) { m.Respond([]byte("{}")) }); err != nil {
				t.Fatal(err)
			}
			c.noViolations(t)
			if _, err := admin.Request("$SRV.PING."+user, nil, 5*time.Second); err != nil {
				t.Fatalf("ping %s: %v", user, err)
			}
			reply := "_INBOX.default-prefix"
			sub, err := admin.SubscribeSync(reply)
			if err != nil {
				t.Fatal(err)
			}
			if err := admin.PublishRequest("$SRV.PING."+user, reply, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := sub.NextMsg(5 * time.Second); err != nil {
				t.Fatalf("ping %s with reply %s: %v", user, reply, err)
			}
			c.noViolations(t)
		}
	})
}

func contains(s, sub string) bool { return len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0) }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestWrongKeyRefused(t *testing.T) {
	dir := generated(t, testSpec())
	other := generated(t, testSpec()) // same users, other keys
	for _, k := range serverKinds {
		t.Run(k.name, func(t *testing.T) {
			url := k.run(t, ConfigFile(dir))
			nk, err := nats.NkeyOptionFromSeed(SeedFile(other, "orders"))
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(url, nk, nats.NoReconnect())
			if err == nil {
				nc.Close()
				t.Fatal("unknown key accepted")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("err = %v, want an authorization violation", err)
			}
		})
	}
}

func TestSeedsKeptAndRotated(t *testing.T) {
	dir := generated(t, testSpec())
	read := func(user string) string {
		t.Helper()
		fi, err := os.Stat(SeedFile(dir, user))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want 0600", fi.Name(), fi.Mode().Perm())
		}
		b, err := os.ReadFile(SeedFile(dir, user))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	users := []string{"web", "orders", Bridge, DefaultAdmin, SysUser}
	before := map[string]string{}
	for _, u := range users {
		before[u] = read(u)
	}
	if err := Generate(testSpec(), dir); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if read(u) != before[u] {
			t.Fatalf("%s: key changed on rerun", u)
		}
	}
	if err := Generate(testSpec(), dir, WithRotate("orders")); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if changed := read(u) != before[u]; changed != (u == "orders") {
			t.Fatalf("%s: changed=%v after rotating orders", u, changed)
		}
	}
	if err := Generate(testSpec(), dir, WithRotate("nosuch")); !errors.Is(err, ErrSpec) {
		t.Fatalf("rotate unknown user: err = %v, want ErrSpec", err)
	}
}
