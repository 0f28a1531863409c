package meshstream

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
)

// fakeCallee answers the first request on mesh.orders.> with the frames
// frames returns (given the request, and a subject the test's callee
// reads the caller's frames on), and hands the caller's frames to got.
func fakeCallee(t *testing.T, nc *nats.Conn, frames func(req *nats.Msg, inbox string) []*nats.Msg) <-chan *nats.Msg {
	t.Helper()
	got := make(chan *nats.Msg, 64)
	inbox := "_INBOX_mesh.orders.web.fake.1-x"
	in, err := nc.ChanSubscribe(inbox, got)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := nc.Subscribe("mesh.orders.>", func(req *nats.Msg) {
		for _, f := range frames(req, inbox) {
			f.Subject = req.Reply
			nc.PublishMsg(f)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe(); in.Unsubscribe() })
	nc.Flush()
	return got
}

func frame(kind string, seq int, h nats.Header, data string) *nats.Msg {
	if h == nil {
		h = nats.Header{}
	}
	h.Set(wire.HeaderFrame, kind)
	h.Set(wire.HeaderSeq, strconv.Itoa(seq))
	return &nats.Msg{Header: h, Data: []byte(data)}
}

func caller(t *testing.T, nc *nats.Conn) *replymux.Mux {
	t.Helper()
	x, err := replymux.New(context.Background(), nc, "web")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func call(t *testing.T, x *replymux.Mux, nc *nats.Conn, body Source) (*Answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Call(ctx, x, nc, Request{
		Msg:    &nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{}},
		Caller: "web", Service: "orders", Body: body,
	}, Config{Idle: time.Second})
}

func readAll(b *Body) error {
	for {
		_, err := b.Next(context.Background())
		if err != nil {
			return err
		}
	}
}

// TestCalleeInboxOutsideThePair: a callee that names an inbox outside
// the pair inbox of the service and the caller (here a call subject) is
// refused, and the caller publishes nothing there.
func TestCalleeInboxOutsideThePair(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "orders")
	for _, bad := range []string{"mesh.pay._.web.http.POST", "_INBOX_mesh.web.orders.x.1", "_INBOX_mesh.orders.other.x.1", "_INBOX_mesh.orders.web.*.>", "_INBOX_mesh.orders.web.a.b.c"} {
		fakeCallee(t, nc, func(req *nats.Msg, _ string) []*nats.Msg {
			return []*nats.Msg{frame(wire.FrameHead, 1, nats.Header{wire.HeaderStatus: {"200"}, wire.HeaderStreamInbox: {bad}}, "")}
		})
		seen := make(chan *nats.Msg, 8)
		sub, _ := nc.ChanSubscribe(">", seen)
		wc := meshtest.ServiceConn(t, b, "web")
		_, err := call(t, caller(t, wc), wc, nil)
		if !errors.Is(err, wire.ErrBadRequest) {
			t.Errorf("inbox %q: %v, want bad-request", bad, err)
		}
		wc.Flush()
		nc.Flush()
		sub.Unsubscribe()
		for len(seen) > 0 {
			if m := <-seen; m.Subject == bad {
				t.Errorf("the caller published to %q", bad)
			}
		}
	}
}

// TestDataPastCredit: data past the credit granted is a protocol error:
// the stream fails, and the peer is told with a cancel frame.
func TestDataPastCredit(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "orders")
	big := string(make([]byte, 100<<10))
	got := fakeCallee(t, nc, func(req *nats.Msg, inbox string) []*nats.Msg {
		out := []*nats.Msg{frame(wire.FrameHead, 1, nats.Header{wire.HeaderStatus: {"200"}, wire.HeaderStreamInbox: {inbox}}, "")}
		for i := 0; i < 20; i++ { // 2 MB against a 1 MiB window
			out = append(out, frame(wire.FrameData, 2+i, nil, big))
		}
		return out
	})
	wc := meshtest.ServiceConn(t, b, "web")
	a, err := call(t, caller(t, wc), wc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Body.Close()
	time.Sleep(200 * time.Millisecond) // every frame has arrived unread
	if err := readAll(a.Body); !errors.Is(err, wire.ErrBadRequest) {
		t.Errorf("reading past the credit: %v, want bad-request", err)
	}
	expectCancel(t, got)
}

// TestSequenceGap: a missing frame ends the stream as a lost message.
func TestSequenceGap(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "orders")
	got := fakeCallee(t, nc, func(req *nats.Msg, inbox string) []*nats.Msg {
		return []*nats.Msg{
			frame(wire.FrameHead, 1, nats.Header{wire.HeaderStatus: {"200"}, wire.HeaderStreamInbox: {inbox}}, ""),
			frame(wire.FrameData, 2, nil, "a"),
			frame(wire.FrameData, 4, nil, "c"),
			frame(wire.FrameEnd, 5, nil, ""),
		}
	})
	wc := meshtest.ServiceConn(t, b, "web")
	a, err := call(t, caller(t, wc), wc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Body.Close()
	if err := readAll(a.Body); !errors.Is(err, wire.ErrConnectionLost) {
		t.Errorf("a gap: %v, want connection-lost", err)
	}
	expectCancel(t, got)
}

// TestPeerSilent: a callee that goes silent (no frames, no pings) ends the
// stream within the idle timeout, as a lost connection.
func TestPeerSilent(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "orders")
	fakeCallee(t, nc, func(req *nats.Msg, inbox string) []*nats.Msg {
		return []*nats.Msg{frame(wire.FrameHead, 1, nats.Header{wire.HeaderStatus: {"200"}, wire.HeaderStreamInbox: {inbox}}, "")}
	})
	wc := meshtest.ServiceConn(t, b, "web")
	a, err := call(t, caller(t, wc), wc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Body.Close()
	start := time.Now()
	if err := readAll(a.Body); !errors.Is(err, wire.ErrConnectionLost) {
		t.Errorf("a silent peer: %v, want connection-lost", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("ended after %v with a 1s idle timeout", d)
	}
}

// TestCallerPings: a caller that reads nothing new still sends pings, so
// a callee's quiet stream stays open.
func TestCallerPings(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "orders")
	got := fakeCallee(t, nc, func(req *nats.Msg, inbox string) []*nats.Msg {
		return []*nats.Msg{frame(wire.FrameHead, 1, nats.Header{wire.HeaderStatus: {"200"}, wire.HeaderStreamInbox: {inbox}}, "")}
	})
	wc := meshtest.ServiceConn(t, b, "web")
	a, err := call(t, caller(t, wc), wc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Body.Close()
	select {
	case m := <-got:
		if wire.FrameOf(m.Header) != wire.FramePing || wire.FrameSeq(m.Header) != 1 {
			t.Errorf("first frame from the caller: %v", m.Header)
		}
	case <-time.After(2 * time.Second):
		t.Error("no ping within the idle timeout")
	}
}

func expectCancel(t *testing.T, got <-chan *nats.Msg) {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case m := <-got:
			if wire.FrameOf(m.Header) == wire.FrameCancel {
				if wire.ReplyError(m.Header) == nil {
					t.Errorf("a cancel without its reason: %v", m.Header)
				}
				return
			}
		case <-deadline:
			t.Error("the peer was not told (no cancel frame)")
			return
		}
	}
}
