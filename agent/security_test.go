package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/policies/live"
	"github.com/natsmesh/natsmesh/wire"
)

// authMesh is a mesh with generated accounts, run on a broker over TCP.
type authMesh struct {
	t    *testing.T
	b    *broker.Broker
	dir  string
	file *policies.File
}

// newAuthMesh parses src, generates its accounts and runs a broker on them
// (opts may change its configuration further).
func newAuthMesh(t *testing.T, src string, opts ...func(*broker.Config)) *authMesh {
	t.Helper()
	f, err := policies.Parse("mesh.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := accounts.Generate(f.AccountsSpec(), dir); err != nil {
		t.Fatal(err)
	}
	b := meshtest.Broker(t, append([]func(*broker.Config){func(c *broker.Config) { c.ConfigFile = accounts.ConfigFile(dir) }}, opts...)...)
	return &authMesh{t: t, b: b, dir: dir, file: f}
}

// conn connects as service with its own NKey, over TCP.
func (m *authMesh) conn(service string, opts ...nats.Option) *nats.Conn {
	m.t.Helper()
	nc, err := Connect(context.Background(), service, ConnectConfig{
		URL: m.b.ClientURL(), NKey: accounts.SeedFile(m.dir, service), Timeout: 5 * time.Second, Logger: quiet, Options: opts,
	})
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(nc.Close)
	return nc
}

// agent starts service's agent with its own identity. With enforce, the
// agent applies the mesh file too; without, only the broker decides (the
// built-in policy, opted into).
func (m *authMesh) agent(service string, enforce bool, h http.Handler) *Agent {
	m.t.Helper()
	cfg := Config{Service: service, BuiltinPolicy: !enforce, Logger: quiet}
	if enforce {
		cfg.Policies = live.Static(m.file)
	}
	a, err := New(m.conn(service), cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	if h != nil {
		if err := a.Handle(h); err != nil {
			m.t.Fatal(err)
		}
	}
	if err := a.Start(context.Background()); err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	if err := a.Ready(10 * time.Second); err != nil {
		m.t.Fatal(err)
	}
	return a
}

// get calls url through a's Transport and returns the status and the
// Mesh-Error header.
func get(t *testing.T, a *Agent, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := a.Transport().RoundTrip(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(wire.HeaderError)
}

const allowMesh = `version: 1
services:
  web: {}
  orders:
    allow:
      - caller: web
        methods: [GET]
        paths: [/public]
  pay:
    allow:
      - caller: orders
`

// counter is an HTTP service that counts the calls it sees.
type counter struct{ n atomic.Int64 }

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	caller, _ := CallerFrom(r.Context())
	fmt.Fprintf(w, "%s %s from %s", r.Method, r.URL.Path, caller)
}

// TestAllowListsOverTCP: with generated accounts, a call the allow lists
// forbid is answered 403 forbidden by the caller's agent, whether the agent
// knows the mesh file (it decides at once) or not (the broker refuses the
// publish and the agent answers from the connection's async error); the
// same call sent raw is refused by the broker and never reaches the
// callee; and path rules are enforced by the callee's agent on the
// canonical path.
func TestAllowListsOverTCP(t *testing.T) {
	m := newAuthMesh(t, allowMesh)
	var orders, pay counter
	m.agent("orders", true, &orders)
	m.agent("pay", true, &pay)
	web := m.agent("web", true, nil)

	if status, _ := get(t, web, "GET", "http://orders/public/x"); status != 200 {
		t.Fatalf("allowed call: %d", status)
	}
	for _, tc := range []struct{ method, url string }{
		{"GET", "http://orders/admin"},   // path rule
		{"POST", "http://orders/public"}, // method rule
		{"GET", "http://pay/"},           // not in pay's allow list
		{"GET", "http://nobody/"},        // no such service: allowed by the file, refused by the broker
	} {
		status, kind := get(t, web, tc.method, tc.url)
		if status != http.StatusForbidden || kind != string(wire.KindForbidden) {
			t.Errorf("%s %s: %d %q, want 403 forbidden", tc.method, tc.url, status, kind)
		}
	}

	// An agent that does not know the mesh file: the broker refuses, and
	// the async permissions violation answers the call at once.
	m.t.Run("broker only", func(t *testing.T) {
		nc := m.conn("web")
		send := newBareAgent(t, nc, "web")
		status, kind := get(t, send, "GET", "http://pay/")
		if status != http.StatusForbidden || kind != string(wire.KindForbidden) {
			t.Errorf("web -> pay: %d %q, want 403 forbidden", status, kind)
		}
	})

	// Raw, with web's key: the broker refuses the publish; pay never sees it.
	// Its requests reply in the pair inbox of web and orders, the one
	// orders' agent answers.
	violations := make(chan error, 8)
	raw := m.conn("web", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }),
		nats.CustomInboxPrefix(wire.PairInbox("web", "orders")))
	before := pay.n.Load()
	msg := &nats.Msg{Subject: "mesh.pay._.web.http.GET", Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/"}}}
	if _, err := raw.RequestMsg(msg, 200*time.Millisecond); err == nil {
		t.Fatal("raw web -> pay answered")
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("got %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation for raw web -> pay")
	}
	// As web with another caller token: refused the same way.
	if err := raw.PublishMsg(&nats.Msg{Subject: "mesh.pay._.orders.http.GET", Reply: raw.NewRespInbox()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-violations:
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation for web calling as orders")
	}
	// Path rules: the broker admits GET to orders; orders' agent refuses
	// every spelling of /admin.
	for _, p := range []string{"/admin", "//admin", "/%2Fadmin", "/./admin", "/public/../admin", "/admin%00"} {
		msg := &nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {p}}}
		reply, err := raw.RequestMsg(msg, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if got := reply.Header.Get(wire.HeaderError); got != string(wire.KindForbidden) {
			t.Errorf("raw GET %s: Mesh-Error %q, want forbidden", p, got)
		}
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	if pay.n.Load() != before {
		t.Error("pay saw a call the broker should have refused")
	}
	if orders.n.Load() != 1 {
		t.Errorf("orders saw %d calls, want the one allowed", orders.n.Load())
	}
}

// newBareAgent starts an outbound-only agent on nc with no mesh file: the
// built-in policy, opted into.
func newBareAgent(t *testing.T, nc *nats.Conn, service string) *Agent {
	t.Helper()
	a, err := New(nc, Config{Service: service, BuiltinPolicy: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Shutdown(context.Background()) })
	return a
}

const withExport = `version: 1
accounts:
  billing:
    exports:
      - service: invoices
        to: [mesh]
services:
  orders: {}
  invoices:
    account: billing
    allow:
      - caller: orders
`

const withoutExport = `version: 1
accounts:
  billing: {}
services:
  orders: {}
  invoices:
    account: billing
`

// TestCrossAccountOverTCP: through real agents with their own keys, a call
// to another account works with an export (the accounts exchange streams,
// and the reply subject crosses unchanged, in the pair inbox of caller and
// callee) and fails forbidden without one, whether the caller's agent
// knows the file or not.
func TestCrossAccountOverTCP(t *testing.T) {
	t.Run("export", func(t *testing.T) {
		m := newAuthMesh(t, withExport)
		m.agent("invoices", true, &counter{})
		orders := m.agent("orders", true, nil)
		if status, _ := get(t, orders, "GET", "http://invoices/x"); status != 200 {
			t.Fatalf("orders -> invoices with an export: %d", status)
		}
	})
	t.Run("no export", func(t *testing.T) {
		m := newAuthMesh(t, withoutExport)
		var invoices counter
		m.agent("invoices", true, &invoices)
		for _, enforce := range []bool{true, false} {
			orders := m.agent("orders", enforce, nil)
			status, kind := get(t, orders, "GET", "http://invoices/x")
			if status != http.StatusForbidden || kind != string(wire.KindForbidden) {
				t.Errorf("agent enforces %v: orders -> invoices without an export: %d %q, want 403 forbidden", enforce, status, kind)
			}
		}
		if invoices.n.Load() != 0 {
			t.Error("invoices saw a call from another account without an export")
		}
	})
}

// TestWarnWithoutAuthentication: an agent says at start when it runs
// without an identity, and is quiet with one.
func TestWarnWithoutAuthentication(t *testing.T) {
	start := func(nc *nats.Conn, service string) string {
		var logs meshtest.Buffer
		a, err := New(nc, Config{Service: service, BuiltinPolicy: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Shutdown(context.Background()) })
		return logs.String()
	}
	open := meshtest.Broker(t) // anonymous clients allowed (with a system user)
	nc := meshtest.Conn(t, open, nats.CustomInboxPrefix(wire.InboxPrefix("web")))
	if got := start(nc, "web"); !strings.Contains(got, "without authentication") || !strings.Contains(got, "any caller") {
		t.Errorf("no warning without authentication:\n%s", got)
	}
	m := newAuthMesh(t, allowMesh)
	if got := start(m.conn("web"), "web"); strings.Contains(got, "without authentication") {
		t.Errorf("warned with an NKey identity:\n%s", got)
	}
}
