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

// A serving instance whose instance subject the broker refused asks for
// it again every RetryAfter while it holds its queue groups (an agent
// that serves calls Join no more), and takes it once the broker admits
// it; one out of its queue groups does not (it asks at its next Join).
func TestRefusedInstanceSubjectRetriedWhileServing(t *testing.T) {
	for _, leave := range []bool{false, true} {
		t.Run(fmt.Sprintf("left %v", leave), func(t *testing.T) {
			subjects, queues := wire.ServiceSubjects("orders", "")
			sec := meshtest.UserConfig(t, false, map[string]string{
				"orders": fmt.Sprintf(`publish: [">"], subscribe: ["%s %s", "_INBOX.>"]`, subjects[0], queues[0]),
				"web":    "",
			})
			b := sec.Broker(t, func(c *broker.Config) { c.LameDuckDuration = -1 })
			nc := sec.Conn(t, b, "orders", nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
				nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
			var logs meshtest.Buffer
			h := New(Config{
				Conn: nc, Service: "orders", Instance: "ID1",
				Handler:    func(m *nats.Msg) { m.Respond([]byte("ok")) },
				RetryAfter: 50 * time.Millisecond,
				Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
			})
			h.WatchRefusals()
			defer h.Close()
			if err := h.Join(); err != nil || h.Addressable() {
				t.Fatalf("Join = %v, Addressable %v; want refused", err, h.Addressable())
			}
			if leave {
				h.Leave()
			}
			src, err := os.ReadFile(sec.Conf)
			if err != nil {
				t.Fatal(err)
			}
			admitted := strings.Replace(string(src), `"_INBOX.>"`, `"_INBOX.>", "mesh-inst.orders.> orders"`, 1)
			conf := filepath.Join(t.TempDir(), "nats.conf")
			if err := os.WriteFile(conf, []byte(admitted), 0o600); err != nil {
				t.Fatal(err)
			}
			addr := strings.TrimPrefix(b.ClientURL(), "nats://")
			if err := b.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			b = meshtest.Broker(t, func(c *broker.Config) {
				c.ConfigFile, c.Listen, c.NoJetStream, c.LameDuckDuration = conf, addr, true, -1
			})
			meshtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				if !nc.IsConnected() {
					return errors.New("not reconnected")
				}
				return nil
			})
			defer func() {
				h.Leave()
				h.Wait(10 * time.Second)
			}()
			if leave {
				time.Sleep(200 * time.Millisecond) // four retries' time
				web := sec.Conn(t, b, "web")
				addressed := wire.Subject{Service: "orders", Instance: "ID1", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}.String()
				if _, err := web.Request(addressed, nil, 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
					t.Fatalf("an instance out of its queue groups took an addressed call: %v", err)
				}
				return
			}
			meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if !h.Addressable() {
					return errors.New("the serving instance did not take its instance subject once the broker admits it")
				}
				return nil
			})
			if !strings.Contains(logs.String(), "admits this instance's instance subject now") {
				t.Errorf("the recovery was not said:\n%s", logs.String())
			}
		})
	}
}
