package agent

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/policies/live"
)

// TestInstanceSubjectTakenAfterTheBrokerAdmitsIt (second review of
// decision 181): an instance whose broker refuses its instance subject
// (accounts generated before instance subjects) says "run natsmesh
// accounts generate again (then restart or reload the broker with it)".
// An operator who does so must see the serving instance become
// addressable, as a refused queue subscription is asked for again every
// refusalRetry. Join asks for the instance subject again (98d4733), but
// the agent calls Join only while it is out of its queue groups: a
// healthy instance keeps them across the broker's restart (nats.go
// subscribes them again), so its instance subject is never asked for
// again until it leaves them (unhealthy, ejected) or restarts, and its
// callers' silent calls go to the queue group, never to it.
func TestInstanceSubjectTakenAfterTheBrokerAdmitsIt(t *testing.T) {
	retry := refusalRetry
	t.Cleanup(func() { refusalRetry = retry })
	refusalRetry = 200 * time.Millisecond
	m := newAuthMesh(t, noSubsetsMesh, func(c *broker.Config) { c.LameDuckDuration = -1 })
	conf := accounts.ConfigFile(m.dir)
	admitted, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// The accounts as generated before instance subjects.
	old := strings.ReplaceAll(string(admitted), `"mesh-inst.orders.> orders"`, `"mesh.orders._.> orders"`)
	if old == string(admitted) {
		t.Fatalf("no instance subject in the generated configuration:\n%s", admitted)
	}
	restart := func(src string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := strings.TrimPrefix(m.b.ClientURL(), "nats://")
		if err := m.b.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		m.b = meshtest.Broker(t, func(c *broker.Config) {
			c.ConfigFile, c.Listen, c.LameDuckDuration = conf, addr, -1
		})
	}
	restart(old)
	a, err := New(m.conn("orders"), Config{Service: "orders", Policies: live.Static(m.file), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Handle(&counter{}); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Shut down before the broker below (cleanups run last first).
	t.Cleanup(func() { a.Shutdown(context.Background()) })
	if err := a.Ready(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if a.in.hold.Addressable() {
		t.Fatal("addressable on a broker that refuses its instance subject: the test shows nothing")
	}

	restart(string(admitted))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	meshtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !a.nc.IsConnected() || !a.Serving() {
			return errors.New("not reconnected and serving")
		}
		return nil
	})
	meshtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if !a.in.hold.Addressable() {
			return errors.New("the serving instance is not addressable, 5 s after its broker restarted with accounts that admit its instance subject")
		}
		return nil
	})
}
