package agent

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestAgentLifecycle: the agent's method set is the gateway's and the
// host's: Start(ctx) (refused once ctx is over), Readiness with a reason,
// Ready(timeout) waiting for it, Shutdown idempotent, and Start and Ready
// after it ErrClosed.
func TestAgentLifecycle(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix("orders")))
	a, err := New(nc, Config{Service: "orders", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Handle(http.NotFoundHandler()); err != nil {
		t.Fatal(err)
	}
	if err := a.Readiness(); err == nil || err.Error() != "not started" {
		t.Fatalf("Readiness before Start: %v", err)
	}
	if err := a.Ready(50 * time.Millisecond); err == nil {
		t.Fatal("ready before Start")
	}
	over, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Start(over); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled context: %v", err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if err := a.Ready(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown: %v, want ErrClosed", err)
	}
	if err := a.Ready(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ready after Shutdown: %v, want ErrClosed", err)
	}
}
