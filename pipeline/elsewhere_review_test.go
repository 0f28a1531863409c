package pipeline

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/census"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestAddressedSilenceWhileTheCallerIsDownSuspectsNoOne (review of
// decision 181): "Silence while nc is down says nothing of the instance"
// (Take.send). A call no queue instance took (the one instance in the
// queue group is frozen) is sent to L, the live instance a census found;
// the caller's own link is cut as L gets it, for 1.5 s, so L's answer is
// lost. That silence is the caller's, not L's: once reconnected the call
// must be sent to L again. Take.send marks L suspected for 10 s instead,
// so every later send goes to the queue group, to the frozen instance,
// and the call fails at its deadline with a live instance idle.
func TestAddressedSilenceWhileTheCallerIsDownSuspectsNoOne(t *testing.T) {
	b := meshtest.BareBroker(t)
	frozenInstance(t, b, "orders")
	link := newSlowLink(t, b, 0, true, 0)

	var ran, copies atomic.Int32
	svc := meshtest.ServiceConn(t, b, "orders")
	in, err := NewInbound(svc, InboundConfig{Service: "orders", Handler: countRuns(&ran, nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	if _, err := svc.Subscribe(wire.InstanceSubject("orders", "L"), func(m *nats.Msg) {
		if copies.Add(1) == 1 {
			link.cut(1500 * time.Millisecond)
			time.Sleep(50 * time.Millisecond)
		}
		in.ServeMsg(m)
	}); err != nil {
		t.Fatal(err)
	}
	r := &census.Responder{Service: "orders", Logger: slog.New(slog.DiscardHandler),
		Answer: func() census.Answer { return census.Answer{ID: "L", Addressable: true} }}
	if _, err := svc.Subscribe(census.Subject("orders", "*"), r.Serve); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}

	o := outbound(t, link.web(t))
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	start := time.Now()
	reply, err := o.Send(ctx, httpCall(t, "orders", "GET"))
	t.Logf("%d copies reached L, which ran %d", copies.Load(), ran.Load())
	if err != nil || reply.Status != 200 {
		t.Fatalf("a GET across a 1.5 s loss of the caller's link, with L live: %v after %v, want 200 from L", err, time.Since(start).Round(time.Millisecond))
	}
}
