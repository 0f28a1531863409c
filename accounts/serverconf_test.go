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
			m, err := callVia(t, web, "web", "orders", subj, nil)
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
		if err := web.PublishRequest(spoof, wire.PairInbox("web", "orders")+".spoof", nil); err != nil {
			t.Fatal(err)
		}
		web.waitViolation(t, spoof)
		// A call sent after the spoof on the same connection arrives, so
		// the spoof was dropped, not delayed.
		if _, err := callVia(t, web, "web", "orders", call("orders", "", "web", wire.ProtoHTTP, "GET"), nil); err != nil {
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
		// orders may call payments with the one gRPC method only.
		ok := call("payments", "", "orders", wire.ProtoGRPC, "/pay.Payments/Charge")
		if _, err := callVia(t, orders, "orders", "payments", ok, nil); err != nil {
			t.Fatal(err)
		}
		bad := call("payments", "", "orders", wire.ProtoGRPC, "/pay.Payments/Refund")
		orders.Publish(bad, nil)
		orders.waitViolation(t, bad)
		if nOrders.Load() != 0 || nPayments.Load() != 1 {
			t.Fatalf("orders got %d, payments %d calls; want 0 and 1", nOrders.Load(), nPayments.Load())
		}
	})

	t.Run("default allow admits every service and the bridge", func(t *testing.T) {
		catalog := as(t, "catalog")
		serve(t, catalog, "catalog", "")
		for _, caller := range []string{"web", "orders", "payments", Bridge} {
			c := as(t, caller)
			if _, err := callVia(t, c, caller, "catalog", call("catalog", "", caller, wire.ProtoHTTP, "GET"), nil); err != nil {
				t.Fatalf("%s -> catalog: %v", caller, err)
			}
		}
	})

	t.Run("subscriptions are confined to the own service", func(t *testing.T) {
		for _, tc := range []struct {
			user, subject, queue string
		}{
			{"web", "_INBOX_mesh.orders.>", ""},            // another's replies
			{"web", "_INBOX_mesh.>", ""},                   // everyone's replies
			{"web", "mesh.orders._.>", ""},                 // another's calls
			{"web", "mesh.orders._.>", "orders"},           // another's queue group
			{"web", "mesh.>", ""},                          // all calls
			{"web", "$SRV.PING.orders", ""},                // another's discovery
			{"web", "$SYS.>", ""},                          // the system account's
			{"web", "$JS.API.>", ""},                       // JetStream's requests
			{"web", "_INBOX.>", ""},                        // the admin's JetStream answers
			{"orders", "mesh.orders._.>", ""},              // a plain subscription would copy every call
			{"orders", "mesh.orders._.>", "thief"},         // a queue group of its own
			{"orders", "mesh.orders._.>", "orders.spy"},    // a subset group for the any-subset subject
			{"orders", "mesh.orders.v1.>", "orders"},       // the subset in the wrong group
			{"orders", "mesh.orders.v3.>", "orders.v3"},    // an undeclared subset
			{"catalog", "mesh.catalog.v9.>", "catalog.v9"}, // no subsets declared: none
			{"catalog", "mesh.catalog.*.>", "catalog.*"},   // the same, by wildcard
		} {
			c := as(t, tc.user)
			var err error
			if tc.queue == "" {
				_, err = c.SubscribeSync(tc.subject)
			} else {
				_, err = c.QueueSubscribeSync(tc.subject, tc.queue)
			}
			if err != nil {
				t.Fatal(err)
			}
			c.waitViolation(t, tc.subject)
		}
	})

	t.Run("cross-account call through stream exports", func(t *testing.T) {
		invoices := as(t, "invoices")
		got := make(chan *nats.Msg, 1)
		subjects, queues := wire.ServiceSubjects("invoices", "")
		if _, err := invoices.QueueSubscribe(subjects[0], queues[0], func(m *nats.Msg) {
			got <- m
			m.Respond([]byte("invoice"))
		}); err != nil {
			t.Fatal(err)
		}
		// The callee instance's stream inbox: orders sends credits there.
		chunks, err := invoices.SubscribeSync(wire.PairInbox("invoices", "orders") + ".>")
		if err != nil {
			t.Fatal(err)
		}
		invoices.noViolations(t)
		orders := as(t, "orders")
		reply := wire.PairInbox("orders", "invoices") + ".x1"
		subj := call("invoices", "", "orders", wire.ProtoHTTP, "POST")
		m, err := requestVia(t, orders, subj, reply, []byte("bill"))
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) != "invoice" {
			t.Fatalf("reply %q", m.Data)
		}
		// The call crossed with its subject and reply subject unchanged,
		// in the callee's queue group.
		if in := <-got; in.Subject != subj || in.Reply != reply || string(in.Data) != "bill" {
			t.Fatalf("invoices got %q reply %q data %q; want %q reply %q", in.Subject, in.Reply, in.Data, subj, reply)
		}
		if err := orders.Publish(wire.PairInbox("invoices", "orders")+".s1", []byte("credit")); err != nil {
			t.Fatal(err)
		}
		if c := firstMsg(t, chunks); string(c.Data) != "credit" {
			t.Fatalf("stream message %q", c.Data)
		}
		// invoices may not reply as anyone else, nor to the "_R_" form of
		// the service imports of before.
		for _, subj := range []string{wire.PairInbox("orders", "payments") + ".x", "_R_.abc.def"} {
			invoices.Publish(subj, nil)
			invoices.waitViolation(t, subj)
		}
		orders.noViolations(t)
	})

	t.Run("replies only into the caller's pair inbox", func(t *testing.T) {
		orders := as(t, "orders")
		subjects, queues := wire.ServiceSubjects("orders", "")
		replies := make(chan string, 4)
		if _, err := orders.QueueSubscribe(subjects[0], queues[0], func(m *nats.Msg) {
			// A NATS-native responder answers whatever reply subject it is
			// sent: the broker lets it only into the caller's pair.
			m.Respond([]byte("ok"))
			replies <- m.Reply
		}); err != nil {
			t.Fatal(err)
		}
		orders.noViolations(t)
		web := as(t, "web")
		m, err := callVia(t, web, "web", "orders", call("orders", "", "web", wire.ProtoHTTP, "GET"), nil)
		if err != nil || string(m.Data) != "ok" {
			t.Fatalf("call: %v %v", m, err)
		}
		<-replies
		// A caller choosing the reply subject lends the callee nothing.
		for _, reply := range []string{
			"$JS.API.STREAM.CREATE.PWN",
			"$KV." + PoliciesBucket + ".mesh",
			call("payments", "", "orders", wire.ProtoGRPC, "/pay.Payments/Refund"),
			wire.PairInbox("web", "payments") + ".x", // another callee's reply
			wire.InboxPrefix("web") + ".plain",
		} {
			if err := web.PublishRequest(call("orders", "", "web", wire.ProtoHTTP, "GET"), reply, nil); err != nil {
				t.Fatal(err)
			}
			if got := <-replies; got != reply {
				t.Fatalf("orders got reply %q, want %q", got, reply)
			}
			orders.waitViolation(t, reply)
		}

		// orders, a callee of web, cannot answer web's calls to others, nor
		// the admin's inbox but for discovery answers, nor "_R_" replies.
		forged := wire.PairInbox("web", "payments") + ".call"
		got, err := web.SubscribeSync(wire.InboxPrefix("web") + ".>")
		if err != nil {
			t.Fatal(err)
		}
		web.noViolations(t)
		for _, subj := range []string{forged, wire.InboxPrefix(DefaultAdmin) + ".stats", "_R_.abc.def", "_INBOX.abc"} {
			if err := orders.Publish(subj, []byte("forged")); err != nil {
				t.Fatal(err)
			}
			orders.waitViolation(t, subj)
		}
		sentinel := wire.PairInbox("web", "orders") + ".sentinel"
		if err := orders.Publish(sentinel, []byte("genuine")); err != nil {
			t.Fatal(err)
		}
		if m := firstMsg(t, got); m.Subject != sentinel {
			t.Fatalf("web received %q on %q before the sentinel", m.Data, m.Subject)
		}

		// Passive health: siblings answer an instance's status request in
		// its own pair inbox.
		sibling := as(t, "orders")
		if _, err := sibling.Subscribe("$SRV.STATUS.orders", func(m *nats.Msg) { m.Respond([]byte("{}")) }); err != nil {
			t.Fatal(err)
		}
		sibling.noViolations(t)
		if _, err := requestVia(t, orders, "$SRV.STATUS.orders", wire.PairInbox("orders", "orders")+".status", nil); err != nil {
			t.Fatalf("status request: %v", err)
		}
		sibling.noViolations(t)
	})

	t.Run("policy store and discovery", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin := as(t, DefaultAdmin)
		akv := createBucket(ctx, t, admin)
		if _, err := akv.Put(ctx, "mesh", []byte("v1")); err != nil {
			t.Fatal(err)
		}
		// Every service account imports the store: the mesh account's
		// users and invoices, in billing.
		for _, user := range []string{"orders", Bridge, "invoices"} {
			c := as(t, user)
			live, err := c.SubscribeSync("$KV." + PoliciesBucket + ".>")
			if err != nil {
				t.Fatal(err)
			}
			c.noViolations(t)
			if v := directGetValue(t, c, user, "mesh"); v != "v1" {
				t.Fatalf("%s: direct get %q, want v1", user, v)
			}
			if _, err := akv.Put(ctx, "mesh", []byte("v2-"+user)); err != nil {
				t.Fatal(err)
			}
			if m := firstMsg(t, live); m.Subject != "$KV."+PoliciesBucket+".mesh" || string(m.Data) != "v2-"+user {
				t.Fatalf("%s: live update %q on %q", user, m.Data, m.Subject)
			}
			if v := directGetValue(t, c, user, "mesh"); v != "v2-"+user {
				t.Fatalf("%s: direct get after the update %q", user, v)
			}
			// Read-only, and no other JetStream API.
			for _, subj := range []string{
				"$KV." + PoliciesBucket + ".mesh",
				"$JS.API.STREAM.INFO.KV_" + PoliciesBucket,
				"$JS.API.CONSUMER.CREATE.KV_" + PoliciesBucket,
				"$JS.API.DIRECT.GET.KV_" + PoliciesBucket, // by sequence: not exported
				"$JS.API.INFO",
			} {
				if err := c.PublishRequest(subj, wire.PairInbox(user, wire.PeerJS)+".x", []byte("evil")); err != nil {
					t.Fatal(err)
				}
				c.waitViolation(t, subj)
			}
			if _, err := akv.Put(ctx, "mesh", []byte("v1")); err != nil {
				t.Fatal(err)
			}
		}
		if e, err := akv.Get(ctx, "mesh"); err != nil || string(e.Value()) != "v1" {
			t.Fatalf("bucket after the services' writes: %v %v", e, err)
		}

		// Discovery: the admin's requests reach every service account;
		// the bridge's (broadcasts only), its own account.
		for _, tc := range []struct{ asker, user, subject string }{
			{DefaultAdmin, "orders", "$SRV.PING.orders"},
			{DefaultAdmin, "invoices", "$SRV.INFO.invoices"},
			{DefaultAdmin, Bridge, "$SRV.STATS.bridge"},
			{Bridge, "orders", "$SRV.PING"},
		} {
			c := as(t, tc.user)
			if _, err := c.Subscribe(tc.subject, func(m *nats.Msg) { m.Respond([]byte(tc.user)) }); err != nil {
				t.Fatal(err)
			}
			c.noViolations(t)
			asker := admin
			if tc.asker != DefaultAdmin {
				asker = as(t, tc.asker)
			}
			m, err := requestVia(t, asker, tc.subject, wire.PairInbox(tc.asker, wire.PeerSRV)+".ping", nil)
			if err != nil || string(m.Data) != tc.user {
				t.Fatalf("%s asks %s: %v %v (%v)", tc.asker, tc.subject, m, err, asker.errors())
			}
			c.noViolations(t)
		}
	})
}

// createBucket creates the policies bucket as admin (a user of the store
// account).
func createBucket(ctx context.Context, t *testing.T, admin *client) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(admin.Conn)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: PoliciesBucket})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// directGetValue reads key of the policies bucket as user does: a direct
// get by subject through the store's service export.
func directGetValue(t *testing.T, c *client, user, key string) string {
	t.Helper()
	m, err := requestVia(t, c, directGetSubject(key), wire.PairInbox(user, wire.PeerJS)+".get", nil)
	if err != nil {
		t.Fatalf("%s: direct get %s: %v", user, key, err)
	}
	if st := m.Header.Get("Status"); st != "" {
		t.Fatalf("%s: direct get %s: status %s %s", user, key, st, m.Header.Get("Description"))
	}
	return string(m.Data)
}

func directGetSubject(key string) string {
	return "$JS.API.DIRECT.GET.KV_" + PoliciesBucket + ".$KV." + PoliciesBucket + "." + key
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
