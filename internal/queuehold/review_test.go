package queuehold

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// The refusal of the instance subject says to run natsmesh accounts
// generate again, "then restart or reload the broker with it". After a
// restart that admits it, the instance must take its instance subject
// when it next joins its queue groups (as a refused queue subscription
// is asked again), not only after the agent restarts.
func TestInstanceSubjectTakenAfterTheBrokerAdmitsIt(t *testing.T) {
	subjects, queues := wire.ServiceSubjects("orders", "")
	sec := meshtest.UserConfig(t, false, map[string]string{
		"orders": fmt.Sprintf(`publish: [">"], subscribe: ["%s %s", "_INBOX.>"]`, subjects[0], queues[0]),
	})
	b := sec.Broker(t)
	nc := sec.Conn(t, b, "orders", nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
		nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	h := New(Config{
		Conn: nc, Service: "orders", Instance: "ID1",
		Handler: func(m *nats.Msg) { m.Respond([]byte("ok")) },
		Logger:  slog.New(slog.DiscardHandler),
	})
	h.WatchRefusals()
	defer h.Close()
	if err := h.Join(); err != nil || h.Addressable() {
		t.Fatalf("Join = %v, Addressable %v; want refused", err, h.Addressable())
	}
	src, err := os.ReadFile(sec.Conf)
	if err != nil {
		t.Fatal(err)
	}
	admitted := strings.Replace(string(src), `"_INBOX.>"`, `"_INBOX.>", "mesh-inst.orders.>"`, 1)
	if admitted == string(src) {
		t.Fatal("configuration not changed")
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(admitted), 0o600); err != nil {
		t.Fatal(err)
	}
	// The broker restarted with accounts that admit instance subjects.
	addr := strings.TrimPrefix(b.ClientURL(), "nats://")
	if err := b.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	meshtest.Broker(t, func(c *broker.Config) {
		c.ConfigFile, c.Listen, c.NoJetStream, c.LameDuckDuration = conf, addr, true, -1
	})
	meshtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !nc.IsConnected() {
			return errors.New("not reconnected")
		}
		return nil
	})
	h.Leave()
	if err := h.Join(); err != nil || !h.Addressable() {
		t.Fatalf("Join after the broker admits the instance subject = %v, Addressable %v; want addressable", err, h.Addressable())
	}
	h.Leave()
	h.Wait(10 * time.Second)
}
