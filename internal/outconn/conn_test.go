package outconn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestCloseRace: a call that found its reply mux just before Close closed
// it is refused by the closed mux before anything is sent:
// broker-unavailable (retry-safe), not connection-lost. (It was package
// pipeline's TestOutboundCloseRace, which reached into its sender.)
func TestCloseRace(t *testing.T) {
	b := meshtest.BareBroker(t)
	srv := meshtest.ServiceConn(t, b, "orders")
	seen := make(chan string, 1)
	sub, err := srv.Subscribe("svc.orders", func(m *nats.Msg) {
		seen <- m.Reply
		if err := m.Respond([]byte("ok")); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := srv.Flush(); err != nil {
		t.Fatal(err)
	}
	c := New(meshtest.ServiceConn(t, b, "web"), time.Second)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	x, err := c.Mux(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Request(ctx, &nats.Msg{Subject: "svc.orders"}, "orders"); err != nil {
		t.Fatal(err)
	}
	<-seen
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// As a call that found the mux before Close swapped the muxes out.
	_, err = x.Request(ctx, &nats.Msg{Subject: "svc.orders"}, "orders")
	if err == nil {
		t.Fatal("a call on the closed mux was answered")
	}
	if err := SendError(ctx, err, "web", "orders"); !errors.Is(err, wire.ErrBrokerUnavailable) {
		t.Errorf("a call refused by the closed mux: %v, want broker-unavailable", err)
	}
	// A call after Close finds no mux.
	if _, err := c.Mux(ctx, "web"); !errors.Is(err, wire.ErrBrokerUnavailable) {
		t.Errorf("a call after Close: %v, want broker-unavailable", err)
	}
	if err := srv.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-seen:
		t.Errorf("the refused call was sent (reply %s)", r)
	default:
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
