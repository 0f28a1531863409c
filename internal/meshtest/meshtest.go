package meshtest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/wire"
)

// Broker starts a broker on 127.0.0.1 with a random client port, no
// monitoring listener, no logging and JetStream stored in t.TempDir(). Each
// opt may change the config before the broker starts. The broker shuts down
// in t.Cleanup. Any failure ends the test.
func Broker(t testing.TB, opts ...func(*broker.Config)) *broker.Broker {
	t.Helper()
	cfg := broker.Config{
		Listen:   "127.0.0.1:-1",
		HTTP:     broker.HTTPOff,
		StoreDir: t.TempDir(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	b, err := broker.New(cfg)
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
	return b
}

// BareBroker starts a Broker for one test without JetStream and without
// a lame-duck wait on shutdown.
func BareBroker(t testing.TB) *broker.Broker {
	t.Helper()
	return Broker(t, func(c *broker.Config) {
		c.NoJetStream = true
		c.LameDuckDuration = -1
	})
}

// ServiceConn connects to b as service (replies under its inbox prefix),
// with a 5s timeout.
func ServiceConn(t testing.TB, b *broker.Broker, service string) *nats.Conn {
	t.Helper()
	return Conn(t, b, nats.CustomInboxPrefix(wire.InboxPrefix(service)), nats.Timeout(5*time.Second))
}

// Conn connects to b over TCP and closes the connection in t.Cleanup.
// Prefer it to an in-process connection where authentication or network
// behaviour matters.
func Conn(t testing.TB, b *broker.Broker, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(b.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("meshtest: connect %s: %v", b.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// BusyAddr returns the address of a listener on 127.0.0.1 that accepts
// nothing, closed in t.Cleanup: a port in use.
func BusyAddr(t testing.TB) string {
	t.Helper()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	return busy.Addr().String()
}

// CheckFor calls f every sleep until it returns nil, and fails the test
// with f's last error if that has not happened within wait.
func CheckFor(t testing.TB, wait, sleep time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("meshtest: condition not met after %s: %v", wait, err)
		}
		time.Sleep(sleep)
	}
}

// ViaNATS publishes m on a fresh subject and returns it as a subscriber on
// nc receives it, so a test sees exactly what survives the wire.
func ViaNATS(t testing.TB, nc *nats.Conn, m *nats.Msg) *nats.Msg {
	t.Helper()
	m.Subject = "roundtrip." + nats.NewInbox()
	sub, err := nc.SubscribeSync(m.Subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishMsg(m); err != nil {
		t.Fatalf("meshtest: publish: %v", err)
	}
	got, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
