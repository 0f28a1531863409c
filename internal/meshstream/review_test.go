package meshstream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/internal/replymux"
	"github.com/natsmesh/natsmesh/wire"
)

// Review tests (issue 18): each fails on the code it demonstrates a
// defect of.

// held is what c holds for its reader: the bytes of the frames queued,
// header and data.
func held(c *conn) (frames int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.queue {
		bytes += int64(len(m.Data))
		for k, vs := range m.Header {
			for _, v := range vs {
				bytes += int64(len(k) + len(v) + 4)
			}
		}
	}
	return len(c.queue), bytes
}

// TestReviewEmptyFramesBypassCredit: the credit bounds only the data of
// data frames. A peer that sends data frames with no data (or any data
// frame with a large header) has every one of them queued for a reader
// that does not read: the receiver holds far more than the window it
// granted, without bound.
func TestReviewEmptyFramesBypassCredit(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "orders")
	const n = 2000
	pad := strings.Repeat("p", 2000)
	fakeCallee(t, nc, func(req *nats.Msg, inbox string) []*nats.Msg {
		out := []*nats.Msg{frame(wire.FrameHead, 1, nats.Header{wire.HeaderStatus: {"200"}, wire.HeaderStreamInbox: {inbox}}, "")}
		for i := 0; i < n; i++ {
			out = append(out, frame(wire.FrameData, 2+i, nats.Header{"X-Pad": {pad}}, ""))
		}
		return out
	})
	wc := meshtest.ServiceConn(t, b, "web")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const window = 64 << 10
	a, err := Call(ctx, caller(t, wc), wc, Request{
		Msg:    &nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{}},
		Caller: "web", Service: "orders",
	}, Config{Window: window, Idle: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Body.Close()
	c := a.Body.c
	deadline := time.Now().Add(3 * time.Second)
	for {
		c.mu.Lock()
		seq, over := c.recvSeq, c.over
		c.mu.Unlock()
		if seq >= n+1 || over || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	frames, bytes := held(c)
	if bytes > 2*window {
		t.Errorf("a reader that granted a %d-byte window holds %d frames, %d bytes, for its reader (empty data frames are not charged to the credit)", window, frames, bytes)
	}
}

// TestReviewOnEndAfterFailure: Server.OnEnd says it is called "before the
// call's stream exists", but for a call whose body streams, Serve makes
// the stream (and accepts) before anyone can register: the inbound
// dispatch calls OnEnd after Serve. A caller's cancel that arrives in
// between ends the stream with no one told: the handler's context is
// never cancelled (and OnEnd's write of conn.onEnd races with release's
// read of it).
func TestReviewOnEndAfterFailure(t *testing.T) {
	onc, x, wc, reply, got := rawCallee(t)
	req := &nats.Msg{Subject: "mesh.orders._.web.http.POST", Reply: reply, Header: nats.Header{
		wire.HeaderStream: {"65536"}, wire.HeaderIdle: {"5s"}, wire.HeaderStreamBody: {"more"},
	}}
	s, err := Serve(onc, req, "orders", "web", func(_, peer string, fn func(*nats.Msg, error)) (*replymux.Inbox, error) { return x.Listen(peer, fn) }, Config{})
	if err != nil {
		t.Fatal(err)
	}
	var accept *nats.Msg
	select {
	case accept = <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("no accept")
	}
	// The caller cancels at once.
	wc.PublishMsg(&nats.Msg{Subject: accept.Header.Get(wire.HeaderStreamInbox), Header: nats.Header{
		wire.HeaderFrame: {wire.FrameCancel}, wire.HeaderSeq: {"1"},
		wire.HeaderError: {string(wire.KindTimeout)}, wire.HeaderErrorMessage: {"client went away"},
	}})
	wc.Flush()
	waitUntil(t, func() bool { return s.Err() != nil })

	// The dispatch registers its handler context's cancel now.
	ended := make(chan error, 1)
	s.OnEnd(func(err error) { ended <- err })
	select {
	case <-ended:
	case <-time.After(time.Second):
		t.Error("OnEnd registered after the stream failed is never called: the handler's context would outlive its cancelled call")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 3s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReviewCreditAfterEnd: a reader that reads the frames queued before
// its stream failed still grants credit for them: frames sent after the
// stream is over, to a peer that is gone (its inbox closed).
func TestReviewCreditAfterEnd(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "orders")
	piece := strings.Repeat("d", 32<<10)
	got := fakeCallee(t, nc, func(req *nats.Msg, inbox string) []*nats.Msg {
		out := []*nats.Msg{frame(wire.FrameHead, 1, nats.Header{wire.HeaderStatus: {"200"}, wire.HeaderStreamInbox: {inbox}}, "")}
		for i := 0; i < 8; i++ {
			out = append(out, frame(wire.FrameData, 2+i, nil, piece))
		}
		// The callee gives up: a cancel with its reason.
		return append(out, frame(wire.FrameCancel, 10, nats.Header{wire.HeaderError: {string(wire.KindUpstream)}, wire.HeaderErrorMessage: {"gone"}}, ""))
	})
	wc := meshtest.ServiceConn(t, b, "web")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := Call(ctx, caller(t, wc), wc, Request{
		Msg:    &nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{}},
		Caller: "web", Service: "orders",
	}, Config{Window: 64 << 10, Idle: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Body.Close()
	waitUntil(t, func() bool { return a.Body.c.failed() != nil })
	readAll(a.Body)
	wc.Flush()
	time.Sleep(100 * time.Millisecond)
	for len(got) > 0 {
		m := <-got
		if wire.FrameOf(m.Header) == wire.FrameCredit {
			t.Errorf("credit frame %s (%s bytes) sent after the peer cancelled the stream", m.Header.Get(wire.HeaderSeq), m.Header.Get(wire.HeaderCredit))
		}
	}
}
