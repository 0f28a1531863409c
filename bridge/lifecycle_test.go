package bridge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestGatewayLifecycle: NewGateway subscribes to nothing; Start makes the
// gateway discoverable and ready; Shutdown is idempotent, and Start and
// Ready after it return ErrClosed.
func TestGatewayLifecycle(t *testing.T) {
	s := runServer(t)
	nc := gatewayConn(t, s)
	g, err := NewGateway(GatewayConfig{Conn: nc, Routes: []Route{{PathPrefix: "/", Service: "orders"}}, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	client := connect(t, s)
	ping := func() error {
		_, err := client.Request("$SRV.PING.bridge", nil, 2*time.Second)
		return err
	}
	if err := ping(); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("PING before Start: %v, want no responders", err)
	}
	if err := g.Readiness(); err == nil || err.Error() != "not started" {
		t.Fatalf("Readiness before Start: %v", err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if err := g.Ready(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	for range 2 {
		if err := g.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Readiness(); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("Readiness after Shutdown: %v", err)
	}
	nc.Flush() // the broker has the unsubscriptions
	if err := ping(); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("PING after Shutdown: %v, want no responders", err)
	}
	if err := g.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown: %v, want ErrClosed", err)
	}
	if err := g.Ready(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ready after Shutdown: %v, want ErrClosed", err)
	}
}
