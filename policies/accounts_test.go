package policies_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies"
	"github.com/natsmesh/natsmesh/wire"
)

func TestAccountsSpecShop(t *testing.T) {
	f, err := policies.ParseFile("../examples/shop/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.AccountsSpec()
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	var names []string
	var inventory accounts.Service
	for _, s := range spec.Services {
		names = append(names, s.Name)
		if s.Name == "inventory" {
			inventory = s
		}
	}
	if want := []string{"clock", "gateway", "inventory", "orders", "web"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("services %v, want %v (sorted)", names, want)
	}
	want := accounts.Service{Name: "inventory", Subsets: []string{"v1", "v2"}, Allow: []accounts.Rule{
		{Caller: "orders", Methods: []string{"GET"}, Paths: []string{"/stock"}},
		{Caller: "gateway", Methods: []string{"GET"}, Paths: []string{"/stock"}},
		{Caller: "web"},
	}}
	if !reflect.DeepEqual(inventory, want) {
		t.Fatalf("inventory:\n got %+v\nwant %+v", inventory, want)
	}
	if err := accounts.Generate(spec, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestAccountsSpecDefaults(t *testing.T) {
	f, err := policies.Parse("mesh.yaml", []byte(`version: 1
allow: deny
services:
  a:
    allow: []
  b:
    allow:
      - caller: a
        methods: [pay.Payments/Charge, GET, GET]
`))
	if err != nil {
		t.Fatal(err)
	}
	spec := f.AccountsSpec()
	if spec.Default != accounts.Deny {
		t.Errorf("default %v, want Deny", spec.Default)
	}
	if a := spec.Services[0]; a.Allow == nil || len(a.Allow) != 0 {
		t.Errorf("a: allow %#v, want empty and non-nil (nobody)", a.Allow)
	}
	if m := spec.Services[1].Allow[0].Methods; !reflect.DeepEqual(m, []string{"GET", "pay.Payments/Charge"}) {
		t.Errorf("methods %v, want sorted and deduplicated", m)
	}
	if spec := (*policies.File)(nil).AccountsSpec(); !reflect.DeepEqual(spec, accounts.Spec{}) {
		t.Errorf("nil file: %+v", spec)
	}
}

// crossAccountMesh has two accounts: billing exports invoices to the mesh
// account, and keeps audit to itself.
const crossAccountMesh = `version: 1
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
  audit:
    account: billing
`

// TestAccountsSpecCrossAccount generates the two-account mesh and checks
// over TCP that orders reaches the exported invoices and cannot publish to
// audit.
func TestAccountsSpecCrossAccount(t *testing.T) {
	f, err := policies.Parse("mesh.yaml", []byte(crossAccountMesh))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := accounts.Generate(f.AccountsSpec(), dir); err != nil {
		t.Fatal(err)
	}
	b := meshtest.Broker(t, func(c *broker.Config) { c.ConfigFile = accounts.ConfigFile(dir) })
	as := func(user string, opts ...nats.Option) *nats.Conn {
		nk, err := nats.NkeyOptionFromSeed(accounts.SeedFile(dir, user))
		if err != nil {
			t.Fatal(err)
		}
		return meshtest.Conn(t, b, append([]nats.Option{nk, nats.CustomInboxPrefix(wire.InboxPrefix(user))}, opts...)...)
	}
	invoices := as("invoices")
	if _, err := invoices.QueueSubscribe("mesh.invoices._.>", "invoices", func(m *nats.Msg) { m.Respond([]byte("invoice")) }); err != nil {
		t.Fatal(err)
	}
	audit := as("audit")
	if _, err := audit.QueueSubscribe("mesh.audit._.>", "audit", func(m *nats.Msg) { m.Respond([]byte("audit")) }); err != nil {
		t.Fatal(err)
	}
	invoices.Flush()
	audit.Flush()

	violations := make(chan error, 4)
	orders := as("orders", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	// A raw client's call: the reply subject in the pair inbox of caller
	// and callee (docs/wire.md), the only one the callee may answer in.
	call := func(service string, timeout time.Duration) (*nats.Msg, error) {
		reply := wire.PairInbox("orders", service) + ".1"
		sub, err := orders.SubscribeSync(reply)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := orders.PublishRequest("mesh."+service+"._.orders.http.GET", reply, nil); err != nil {
			return nil, err
		}
		return sub.NextMsg(timeout)
	}
	reply, err := call("invoices", 5*time.Second)
	if err != nil || string(reply.Data) != "invoice" {
		t.Fatalf("orders -> invoices (exported): %v %v", reply, err)
	}
	if _, err := call("audit", 200*time.Millisecond); err == nil {
		t.Fatal("orders -> audit (not exported) answered")
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("got %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation for orders -> audit")
	}
}
