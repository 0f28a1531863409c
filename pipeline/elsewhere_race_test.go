package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/census"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestAddressedResendLeavesTheTrackedMessageAlone (review of decision
// 181): the outbound pipeline tracks each call's request message
// (outconn.Conn.Track), and on every publish the broker refuses, the
// connection's error handler reads the Subject of each message in
// flight (on nats.go's callback goroutine) to fail the refused one. A
// silent call's resend to an instance must therefore not write that
// message's Subject: it must send a copy ("a message sent is never
// mutated afterwards"). Under -race, with refusals coming while silent
// calls are sent again to an instance, a write of the tracked message is
// a data race.
func TestAddressedResendLeavesTheTrackedMessageAlone(t *testing.T) {
	sec := meshtest.UserConfig(t, false, map[string]string{
		"web":    `publish: { deny: ["forbidden.>"] }`,
		"orders": "",
	})
	b := sec.Broker(t)
	orders := sec.Conn(t, b, "orders")
	// Every instance is silent: one in the queue group, and one a census
	// finds live and addressable.
	if _, err := orders.QueueSubscribe(wire.Prefix+".orders._.>", "orders", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	r := &census.Responder{Service: "orders", Logger: slog.New(slog.DiscardHandler),
		Answer: func() census.Answer { return census.Answer{ID: "A", Addressable: true} }}
	if _, err := orders.Subscribe(census.Subject("orders", "*"), r.Serve); err != nil {
		t.Fatal(err)
	}
	if _, err := orders.Subscribe(wire.InstanceSubject("orders", "A"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := orders.Flush(); err != nil {
		t.Fatal(err)
	}
	web := sec.Conn(t, b, "web", nats.CustomInboxPrefix(wire.InboxPrefix("web")),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	o := outbound(t, web)

	// Refusals, all along.
	stop := make(chan struct{})
	var spam sync.WaitGroup
	spam.Add(1)
	go func() {
		defer spam.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			web.Publish("forbidden.x", nil)
			time.Sleep(50 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			o.Send(ctx, httpCall(t, "orders", "GET"))
		}()
	}
	wg.Wait()
	close(stop)
	spam.Wait()
}
