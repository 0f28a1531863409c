package accounts

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/wire"
)

// testSpec is a small shop: web calls orders (GET and POST only), orders
// calls payments and the invoices service of the billing account, the
// bridge calls orders and catalog, and catalog admits anyone (no allow
// list, Default Allow). lonely, in the other account, is exported to no one.
func testSpec() Spec {
	return Spec{
		Accounts: []Account{
			{Name: "billing", Exports: []Export{{Service: "invoices", To: []string{DefaultAccount}}}},
			{Name: "other"},
		},
		Services: []Service{
			{Name: "web", Allow: []Rule{{Caller: Bridge}}},
			{Name: "orders", Subsets: []string{"v1", "v2"}, Allow: []Rule{
				{Caller: "web", Methods: []string{"GET", "POST"}, Paths: []string{"/orders"}},
				{Caller: Bridge},
			}},
			{Name: "payments", Allow: []Rule{{Caller: "orders", Methods: []string{"pay.Payments/Charge"}}}},
			{Name: "catalog"},
			{Name: "invoices", Account: "billing", Allow: []Rule{{Caller: "orders"}}},
			{Name: "lonely", Account: "other"},
		},
	}
}

// server is one way of running a generated configuration.
type serverKind struct {
	name string
	run  func(t *testing.T, conf string) string // returns the client URL
}

var serverKinds = []serverKind{
	{"nats-server", runStock},
	{"broker", runBroker},
}

// runStock runs conf in a stock nats-server, as `nats-server -c` would,
// on 127.0.0.1 with a random port.
func runStock(t *testing.T, conf string) string {
	t.Helper()
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("ProcessConfigFile: %v", err)
	}
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.NoLog, opts.NoSigs = true, true
	opts.StoreDir = t.TempDir()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return s.ClientURL()
}

// runBroker runs conf in the mesh's embedded broker.
func runBroker(t *testing.T, conf string) string {
	t.Helper()
	b, err := broker.New(broker.Config{ConfigFile: conf, Listen: "127.0.0.1:-1", HTTP: broker.HTTPOff, StoreDir: t.TempDir(), LameDuckDuration: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return b.ClientURL()
}

// client is a connection of one mesh user with the errors the server sent
// it asynchronously (permission violations).
type client struct {
	*nats.Conn
	mu   sync.Mutex
	errs []error
}

func (c *client) errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

// waitViolation waits until the server has reported a permissions
// violation that mentions subject.
func (c *client) waitViolation(t *testing.T, subject string) {
	t.Helper()
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, err := range c.errors() {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				return nil
			}
		}
		return errors.New("no permissions violation for " + subject + " yet; have " + strings.Join(errStrings(c.errors()), "; "))
	})
}

func (c *client) noViolations(t *testing.T) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if errs := c.errors(); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
}

func errStrings(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// connectAs connects to url with the NKey seed of user in dir and the
// user's mesh inbox prefix.
func connectAs(t *testing.T, url, dir, user string, opts ...nats.Option) *client {
	t.Helper()
	nk, err := nats.NkeyOptionFromSeed(SeedFile(dir, user))
	if err != nil {
		t.Fatal(err)
	}
	return connect(t, url, user, append([]nats.Option{nk}, opts...)...)
}

func connect(t *testing.T, url, user string, opts ...nats.Option) *client {
	t.Helper()
	c := &client{}
	all := []nats.Option{
		nats.CustomInboxPrefix(wire.InboxPrefix(user)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
		}),
		nats.NoReconnect(),
	}
	nc, err := nats.Connect(url, append(all, opts...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c
}

func checkFor(t testing.TB, wait, sleep time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", wait, err)
		}
		time.Sleep(sleep)
	}
}

func call(service, subset, caller string, proto wire.Proto, op string) string {
	return wire.Subject{Service: service, Subset: subset, Caller: caller, Proto: proto, Op: op}.String()
}

// requestVia publishes a request to subject with reply subject reply, which
// c must be allowed to subscribe to, and returns the first message there.
// Mesh callers name the callee in the reply (wire.PairInbox), which
// nats.go's Request cannot do.
func requestVia(t *testing.T, c *client, subject, reply string, data []byte) (*nats.Msg, error) {
	t.Helper()
	sub, err := c.SubscribeSync(reply)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := c.PublishRequest(subject, reply, data); err != nil {
		t.Fatal(err)
	}
	return sub.NextMsg(5 * time.Second)
}

// callVia calls subject (a mesh call of caller to callee) as a mesh agent
// does: with a reply subject in caller's pair inbox for callee.
func callVia(t *testing.T, c *client, caller, callee, subject string, data []byte) (*nats.Msg, error) {
	t.Helper()
	return requestVia(t, c, subject, wire.PairInbox(caller, callee)+"."+nats.NewInbox()[len("_INBOX."):], data)
}

// firstMsg returns the next message of sub. Use it after the sender has
// published something forbidden and then a sentinel on the same
// connection: the broker keeps one connection's messages in order, so the
// sentinel arriving first proves the forbidden message was dropped.
func firstMsg(t *testing.T, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("%s: %v", sub.Subject, err)
	}
	return m
}
