package meshstream

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
)

// TestStartBoundIsOneDecision: a call to confirm whose start frame comes
// as its bound passes is either started or failed not started, never
// both: the keep-alive's tick that finds it not started and fails it
// must not let a start frame in between, or AwaitStart may run the call
// (its start is closed) while its caller is told it did not start.
func TestStartBoundIsOneDecision(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "orders")
	var both int
	for i := 0; i < 3000 && both == 0; i++ {
		c := newConn(nc, Config{Window: 64 << 10, Idle: time.Minute})
		c.start = make(chan struct{})
		c.startWithin = time.Millisecond
		c.startBy = time.Now().Add(-time.Millisecond)
		c.keeper = time.AfterFunc(time.Hour, func() {}) // the tick re-arms it
		go1 := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); <-go1; c.tick() }()
		go func() { defer wg.Done(); <-go1; c.onMsg(frame(wire.FrameStart, 1, nil, ""), nil) }()
		close(go1)
		wg.Wait()
		c.mu.Lock()
		started, err := c.started, c.err
		c.mu.Unlock()
		c.fail(&wire.Error{Kind: wire.KindInternal, Message: "test over"}, false) // stops the keeper
		if started && err != nil && strings.Contains(err.Error(), "not started") {
			both++
		}
	}
	if both > 0 {
		t.Fatal("a call was both started and failed not started")
	}
}

// TestAwaitStartBound: a call to confirm whose start frame never comes
// ends at its bound (twice the caller's wait, wire.HeaderConfirm), not
// started: AwaitStart fails with the timeout, the caller is told by a
// cancel frame, and a start frame sent after does not start it.
func TestAwaitStartBound(t *testing.T) {
	onc, x, wc, reply, got := rawCallee(t)
	const take = wire.MinTakeWithin
	req := &nats.Msg{Subject: "mesh.orders._.web.http.POST", Reply: reply, Header: nats.Header{
		wire.HeaderStream: {"65536"}, wire.HeaderIdle: {"5s"}, wire.HeaderConfirm: {take.String()},
	}}
	s, err := Serve(onc, req, "orders", "web", func(_, peer string, fn func(*nats.Msg, error)) (*replymux.Inbox, error) { return x.Listen(peer, fn) }, Config{})
	if err != nil {
		t.Fatal(err)
	}
	begun := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.AwaitStart() }()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("AwaitStart did not end: a call never confirmed waits for ever")
	}
	if took := time.Since(begun); err == nil || wire.FromError(err).Kind != wire.KindTimeout || took < 2*take {
		t.Fatalf("AwaitStart = %v after %v, want the timeout, not before %v", err, took, 2*take)
	}
	var accept *nats.Msg
	for accept == nil || wire.FrameOf(accept.Header) != wire.FrameAccept {
		select {
		case accept = <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("no accept")
		}
	}
	// A start that comes late starts nothing.
	if err := wc.PublishMsg(&nats.Msg{Subject: accept.Header.Get(wire.HeaderStreamInbox), Header: nats.Header{
		wire.HeaderFrame: {wire.FrameStart}, wire.HeaderSeq: {"1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := wc.Flush(); err != nil {
		t.Fatal(err)
	}
	var cancelled bool
	for !cancelled {
		select {
		case m := <-got:
			cancelled = wire.FrameOf(m.Header) == wire.FrameCancel
		case <-time.After(5 * time.Second):
			t.Fatal("the caller was not told")
		}
	}
	time.Sleep(50 * time.Millisecond)
	if s.stream().isStarted() {
		t.Fatal("a start frame after the bound started the call")
	}
}

// rawCallee is a callee's side for Serve on a broker of its own: the
// service's connection onc and its reply mux x, and a raw caller's
// connection wc, whose reply subject gets every frame the callee sends.
func rawCallee(t *testing.T) (onc *nats.Conn, x *replymux.Mux, wc *nats.Conn, reply string, got chan *nats.Msg) {
	t.Helper()
	b := meshtest.BareBroker(t)
	onc = meshtest.ServiceConn(t, b, "orders")
	x, err := replymux.New(context.Background(), onc, "orders")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	wc = meshtest.ServiceConn(t, b, "web")
	reply = "_INBOX_mesh.web.orders.fake.1-y"
	got = make(chan *nats.Msg, 8)
	sub, err := wc.ChanSubscribe(reply, got)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := wc.Flush(); err != nil {
		t.Fatal(err)
	}
	return onc, x, wc, reply, got
}
