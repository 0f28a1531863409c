package queuehold

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// The instance subject is held with the queue groups: a call addressed to
// the instance is served while it serves, and none once it left.
func TestInstanceSubjectHeldWithQueues(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	client := meshtest.Conn(t, b)
	h := New(Config{
		Conn: nc, Service: "orders", Subset: "v2", Instance: "ID1",
		Handler: func(m *nats.Msg) { m.Respond([]byte("ok")) },
	})
	defer h.Close()
	addressed := wire.Subject{Service: "orders", Instance: "ID1", Caller: "web", Proto: wire.ProtoHTTP, Op: "GET"}.String()
	if h.Addressable() {
		t.Fatal("addressable before Join")
	}
	if err := h.Join(); err != nil || !h.Addressable() {
		t.Fatalf("Join = %v, Addressable %v", err, h.Addressable())
	}
	if _, err := client.Request(addressed, nil, 5*time.Second); err != nil {
		t.Fatalf("an addressed call: %v", err)
	}
	h.Leave()
	if h.Addressable() {
		t.Fatal("addressable after Leave")
	}
	if _, err := client.Request(addressed, nil, 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("after Leave: %v, want no responders", err)
	}
	if err := h.Join(); err != nil || !h.Addressable() {
		t.Fatalf("Join again = %v, Addressable %v", err, h.Addressable())
	}
	if _, err := client.Request(addressed, nil, 5*time.Second); err != nil {
		t.Fatalf("an addressed call after joining again: %v", err)
	}
	h.Leave()
	h.Wait(10 * time.Second)
}

// A broker that refuses the instance subject (accounts generated before
// it) costs only that: the instance keeps its queue groups, is not
// addressable, and says so once, at Warn.
func TestInstanceSubjectRefusedKeepsQueues(t *testing.T) {
	subjects, queues := wire.ServiceSubjects("orders", "")
	sec := meshtest.UserConfig(t, false, map[string]string{
		"orders": fmt.Sprintf(`publish: [">"], subscribe: ["%s %s", "_INBOX.>"]`, subjects[0], queues[0]),
	})
	b := sec.Broker(t)
	nc := sec.Conn(t, b, "orders")
	var logs meshtest.Buffer
	h := New(Config{
		Conn: nc, Service: "orders", Instance: "ID1",
		Handler: func(m *nats.Msg) { m.Respond(nil) },
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	})
	h.WatchRefusals()
	defer h.Close()
	if err := h.Join(); err != nil || !h.Serving() || h.Addressable() {
		t.Fatalf("Join = %v, Serving %v, Addressable %v; want serving, not addressable", err, h.Serving(), h.Addressable())
	}
	h.Leave()
	if err := h.Join(); err != nil || !h.Serving() || h.Addressable() {
		t.Fatalf("Join again = %v, Serving %v, Addressable %v", err, h.Serving(), h.Addressable())
	}
	if n := strings.Count(logs.String(), "refuses this instance's instance subject"); n != 1 {
		t.Errorf("want the refusal said once, got %d:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the queue groups were taken for refused:\n%s", logs.String())
	}
	h.Leave()
	h.Wait(10 * time.Second)
}
