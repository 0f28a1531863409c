package queuehold

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Join subscribes both queue groups (a request reaches the handler at
// once, the flush having told the broker), Out and Close keep it from
// joining, and Leave drains: once it returns no request is routed here.
func TestJoinLeave(t *testing.T) {
	b := meshtest.Broker(t)
	nc := meshtest.Conn(t, b)
	client := meshtest.Conn(t, b)
	var out atomic.Bool
	var serving []bool
	h := New(Config{
		Conn: nc, Service: "orders", Subset: "v2",
		Handler:   func(m *nats.Msg) { m.Respond([]byte("ok")) },
		Out:       out.Load,
		OnServing: func(on bool) { serving = append(serving, on) },
	})
	out.Store(true)
	if err := h.Join(); err != nil || h.Serving() {
		t.Fatalf("held out: Join = %v, Serving %v; want nothing joined", err, h.Serving())
	}
	out.Store(false)
	if err := h.Join(); err != nil || !h.Serving() {
		t.Fatalf("Join = %v, Serving %v", err, h.Serving())
	}
	subjects, _ := wire.ServiceSubjects("orders", "v2")
	for _, s := range subjects {
		subj := strings.Replace(s, ">", "web.http.GET", 1)
		if _, err := client.Request(subj, nil, 5*time.Second); err != nil {
			t.Fatalf("request on %s: %v", subj, err)
		}
	}
	h.Leave()
	if h.Serving() {
		t.Fatal("serving after Leave")
	}
	if _, err := client.Request("mesh.orders.v2.web.http.GET", nil, 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("after Leave: %v, want no responders", err)
	}
	h.Close()
	if err := h.Join(); err != nil || h.Serving() {
		t.Fatalf("closed: Join = %v, Serving %v; want nothing joined", err, h.Serving())
	}
	h.Wait(10 * time.Second)
	if fmt.Sprint(serving) != "[true false]" {
		t.Errorf("OnServing told %v, want [true false]", serving)
	}
}

// A subset the broker refuses: Join leaves the service's queue group too,
// returns ErrRefused with the reason (once at Error, counted), refuses at
// once while the refusal holds, and calls Retry after RetryAfter.
func TestRefusedRetried(t *testing.T) {
	subjects, queues := wire.ServiceSubjects("orders", "v2")
	sec := meshtest.UserConfig(t, false, map[string]string{
		"orders": fmt.Sprintf(`publish: [">"], subscribe: ["%s %s", "_INBOX.>"]`, subjects[0], queues[0]),
	})
	b := sec.Broker(t)
	nc := sec.Conn(t, b, "orders")
	var logs meshtest.Buffer
	retried := make(chan struct{}, 1)
	h := New(Config{
		Conn: nc, Service: "orders", Subset: "v2",
		Handler:    func(m *nats.Msg) { m.Respond(nil) },
		RetryAfter: 100 * time.Millisecond,
		Retry:      func() { retried <- struct{}{} },
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	})
	defer h.Close()
	if err := h.Join(); !errors.Is(err, ErrRefused) {
		t.Fatalf("Join = %v, want ErrRefused", err)
	}
	if h.Serving() || h.Refusals() != 1 {
		t.Fatalf("Serving %v, Refusals %d; want out, 1", h.Serving(), h.Refusals())
	}
	if r := h.Refusal(); r == nil || !strings.Contains(r.Error(), "declares no subset v2 of orders") {
		t.Fatalf("Refusal = %v", r)
	}
	if err := h.Join(); !errors.Is(err, ErrRefused) || h.Refusals() != 1 {
		t.Fatalf("Join while refused = %v (refusals %d), want ErrRefused without asking", err, h.Refusals())
	}
	select {
	case <-retried:
	case <-time.After(10 * time.Second):
		t.Fatal("no Retry after RetryAfter")
	}
	if h.Refusal() != nil {
		t.Error("refusal still set at Retry")
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("want the refusal said once at Error, got %d:\n%s", n, logs.String())
	}
	h.Wait(10 * time.Second)
}
