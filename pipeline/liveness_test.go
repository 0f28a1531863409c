package pipeline

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// TestFrozenInstanceCostsTakeWithin (issue 21, items 1 and 3): of two
// instances of a service, one takes its share of calls and never
// answers (a frozen process: its socket keeps receiving). Every call,
// POST and GET, is answered by the live one within its deadline: a call
// that went to the frozen one is sent again once it heard nothing for
// the take bound. When the frozen one wakes and serves what it holds,
// none of the POSTs runs there: it was confirmed to no one.
func TestFrozenInstanceCostsTakeWithin(t *testing.T) {
	b := meshtest.BareBroker(t)
	var mu sync.Mutex
	ran := map[string]int{}
	handler := func(where string) HandlerFunc {
		return func(ctx context.Context, c *Call) (*Reply, error) {
			mu.Lock()
			ran[where+" "+c.Op+" "+c.HeaderValue("X-Id")]++
			mu.Unlock()
			return &Reply{Proto: c.Proto, Status: 200, Header: nats.Header{wire.HeaderStatus: {"200"}}}, nil
		}
	}
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{Handler: handler("live")})
	// The frozen instance: a member of the queue group that holds what
	// it gets.
	held := frozenInstance(t, b, "orders")
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))

	const calls = 40
	var failed atomic.Int32
	var wg sync.WaitGroup
	for i := range calls {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := httpCall(t, "orders", method)
				c.Header["X-Id"] = []string{strconv.Itoa(i)}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				r, err := o.Send(ctx, c)
				if err != nil || r.Status != 200 {
					failed.Add(1)
					t.Errorf("%s %d: %v", method, i, err)
				}
			}()
		}
	}
	wg.Wait()
	if len(held) == 0 {
		t.Fatal("the frozen instance got none of the calls: the test shows nothing")
	}
	t.Logf("%d calls, %d held by the frozen instance, %d failed", 2*calls, len(held), failed.Load())

	// It wakes: an inbound dispatch of its own serves what it held.
	woke := meshtest.ServiceConn(t, b, "orders")
	in, err := NewInbound(woke, InboundConfig{Service: "orders", Handler: handler("woke")})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	for n := len(held); n > 0; n-- {
		in.ServeMsg(<-held)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Close(ctx); err != nil { // waits for the calls it took
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range calls {
		id := strconv.Itoa(i)
		if n := ran["live POST "+id]; n != 1 {
			t.Errorf("POST %s ran %d times at the live instance, want 1", id, n)
		}
		if n := ran["woke POST "+id]; n != 0 {
			t.Errorf("POST %s ran at the frozen instance when it woke: it was confirmed to no one", id)
		}
	}
}

// TestConfirmedCallStartsOnlyOnStart: a call made with Mesh-Confirm is
// accepted at once and runs only once its caller's start frame comes;
// a cancel instead, or no start at all, and it never runs; a start past
// its caller's deadline, and it does not either. Without the stream
// protocol it is refused. Raw frames, as docs/wire.md describes them.
func TestConfirmedCallStartsOnlyOnStart(t *testing.T) {
	b := meshtest.BareBroker(t)
	var ran atomic.Int32
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		ClockSkew: 50 * time.Millisecond,
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			ran.Add(1)
			return &Reply{Proto: c.Proto, Status: 200, Header: nats.Header{wire.HeaderStatus: {"200"}}}, nil
		}),
	})
	nc := rawConn(t, b, "web", "orders")
	// open sends a call to confirm and returns its reply subject's
	// messages and the callee's inbox from its accept.
	open := func(startBy time.Time) (chan *nats.Msg, string) {
		t.Helper()
		reply := nc.NewRespInbox()
		msgs := make(chan *nats.Msg, 16)
		sub, err := nc.ChanSubscribe(reply, msgs)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
		h := nats.Header{wire.HeaderMethod: {http.MethodPost}, wire.HeaderPath: {"/pay"}, wire.HeaderTimeout: {"5s"},
			wire.HeaderStartBy: {strconv.FormatInt(startBy.UnixMilli(), 10)},
			wire.HeaderStream:  {"65536"}, wire.HeaderConfirm: {"300ms"}}
		if err := nc.PublishMsg(&nats.Msg{Subject: "mesh.orders._.web.http.POST", Reply: reply, Header: h}); err != nil {
			t.Fatal(err)
		}
		m := recv(t, msgs)
		if wire.FrameOf(m.Header) != wire.FrameAccept {
			t.Fatalf("first message %v, want an accept at once", m.Header)
		}
		return msgs, m.Header.Get(wire.HeaderStreamInbox)
	}
	frame := func(inbox, kind string) {
		t.Helper()
		if err := nc.PublishMsg(&nats.Msg{Subject: inbox, Header: nats.Header{wire.HeaderFrame: {kind}, wire.HeaderSeq: {"1"}}}); err != nil {
			t.Fatal(err)
		}
	}

	// Started: it runs and answers.
	msgs, inbox := open(time.Now().Add(5 * time.Second))
	time.Sleep(100 * time.Millisecond)
	if n := ran.Load(); n != 0 {
		t.Fatalf("ran %d before its start", n)
	}
	frame(inbox, wire.FrameStart)
	if m := recv(t, msgs); wire.FrameOf(m.Header) != wire.FrameReply || m.Header.Get(wire.HeaderStatus) != "200" {
		t.Fatalf("after start: %v, want the reply", m.Header)
	}
	if n := ran.Load(); n != 1 {
		t.Fatalf("ran %d times, want 1", n)
	}

	// Cancelled instead: never runs.
	_, inbox = open(time.Now().Add(5 * time.Second))
	frame(inbox, wire.FrameCancel)
	// No start: not run, and told.
	msgs, _ = open(time.Now().Add(5 * time.Second))
	if m := recv(t, msgs); wire.FrameOf(m.Header) != wire.FrameCancel || wire.ReplyError(m.Header) == nil {
		t.Fatalf("no start: %v, want a cancel carrying why", m.Header)
	}
	// A start after the caller's deadline: not run.
	msgs, inbox = open(time.Now().Add(100 * time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	frame(inbox, wire.FrameStart)
	if m := recv(t, msgs); wire.FrameOf(m.Header) != wire.FrameCancel {
		t.Fatalf("a start past the deadline: %v, want a cancel", m.Header)
	}
	if n := ran.Load(); n != 1 {
		t.Fatalf("ran %d times, want only the started call's", n)
	}

	// Mesh-Confirm without the stream protocol: refused.
	m, err := nc.RequestMsg(&nats.Msg{Subject: "mesh.orders._.web.http.POST", Header: nats.Header{
		wire.HeaderMethod: {http.MethodPost}, wire.HeaderPath: {"/pay"}, wire.HeaderConfirm: {"300ms"}}}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := wire.ReplyError(m.Header); !errors.Is(e, wire.ErrBadRequest) {
		t.Fatalf("Mesh-Confirm without Mesh-Stream: %v, want bad-request", m.Header)
	}
	if n := ran.Load(); n != 1 {
		t.Fatalf("ran %d times, want 1", n)
	}
}

func recv(t *testing.T, ch chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message in 5 s")
		return nil
	}
}

// TestSlowInstanceTeachesTheWait: the only instance of a service is alive
// but slow (a loaded host): its accept comes 450 ms after each call, past
// the take bound's floor (300 ms). Its first accepts come late, after
// their calls were sent again: they teach the caller's wait (as TCP's
// retransmission timeout learns), and the instance is told to drop the
// calls it accepted late (a cancel). So every call is answered, each runs
// once, and after the first call none is sent twice.
func TestSlowInstanceTeachesTheWait(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "orders")
	var requests, cancels atomic.Int32
	var mu sync.Mutex
	started := map[string]int{}
	subjects, queues := wire.ServiceSubjects("orders", "")
	for i := range subjects {
		_, err := nc.QueueSubscribe(subjects[i], queues[i], func(m *nats.Msg) {
			requests.Add(1)
			id := m.Header.Get("X-Id")
			inbox := wire.PairInbox("orders", "web") + ".slow." + nats.NewInbox()[len("_INBOX."):]
			sub, err := nc.Subscribe(inbox, func(f *nats.Msg) {
				switch wire.FrameOf(f.Header) {
				case wire.FrameStart:
					mu.Lock()
					started[id]++
					mu.Unlock()
					nc.PublishMsg(&nats.Msg{Subject: m.Reply, Header: nats.Header{
						wire.HeaderFrame: {wire.FrameReply}, wire.HeaderSeq: {"2"}, wire.HeaderStatus: {"200"}}})
				case wire.FrameCancel:
					cancels.Add(1)
				}
			})
			if err != nil {
				t.Error(err)
				return
			}
			time.AfterFunc(10*time.Second, func() { sub.Unsubscribe() })
			time.AfterFunc(450*time.Millisecond, func() {
				nc.PublishMsg(&nats.Msg{Subject: m.Reply, Header: nats.Header{
					wire.HeaderFrame: {wire.FrameAccept}, wire.HeaderSeq: {"1"},
					wire.HeaderStreamInbox: {inbox}, wire.HeaderCredit: {"65536"}}})
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	const calls = 8
	for i := range calls {
		c := httpCall(t, "orders", http.MethodPost)
		c.Header["X-Id"] = []string{strconv.Itoa(i)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		before := requests.Load()
		r, err := o.Send(ctx, c)
		cancel()
		if err != nil || r.Status != 200 {
			t.Fatalf("call %d: %v", i, err)
		}
		if sent := requests.Load() - before; i > 0 && sent != 1 {
			t.Errorf("call %d was sent %d times: the wait did not learn the instance's pace", i, sent)
		}
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for i := range calls {
		if n := started[strconv.Itoa(i)]; n != 1 {
			t.Errorf("call %d started %d times, want 1", i, n)
		}
	}
	if cancels.Load() == 0 {
		t.Error("no late accept was cancelled")
	}
	t.Logf("%d calls, %d requests, %d late accepts cancelled", calls, requests.Load(), cancels.Load())
}
