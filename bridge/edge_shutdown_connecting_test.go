package bridge

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
)

// A Shutdown that comes while Start still waits for the broker cancels
// that wait: Start returns ErrShutdown and leaves no connection open (it
// used to connect afterwards and return nil with a live gateway nobody
// could shut down any more).
func TestEdgeShutdownWhileStartConnects(t *testing.T) {
	addr := freePort(t)
	e, err := NewEdge(EdgeConfig{
		Gateway: GatewayConfig{Routes: []Route{{PathPrefix: "/", Subject: "svc.x"}}, Logger: discardLogger()},
		Connect: ConnectConfig{URL: "nats://" + addr, Timeout: 10 * time.Second, Logger: discardLogger()},
		Listen:  "127.0.0.1:0",
		Policy:  "off",
	})
	if err != nil {
		t.Fatal(err)
	}
	// Until the broker is up, a listener at its address sees Start's
	// first try to connect: then Start is waiting, and Shutdown comes.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- e.Start(context.Background()) }()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	l.Close()
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	meshtest.Broker(t, func(c *broker.Config) { c.Listen = addr })
	err = <-started
	if !errors.Is(err, ErrShutdown) {
		t.Errorf("Start after Shutdown: %v, want ErrShutdown", err)
	}
	if err == nil || (e.Conn() != nil && !e.Conn().IsClosed()) {
		t.Errorf("Start after Shutdown: %v; connection open: %v", err, e.Conn() != nil && !e.Conn().IsClosed())
		e.Conn().Close()
	}
}
