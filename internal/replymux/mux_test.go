package replymux

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newMux returns the Mux of owner on nc, closed in t.Cleanup.
func newMux(t testing.TB, nc *nats.Conn, owner string) *Mux {
	t.Helper()
	x, err := New(context.Background(), nc, owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := x.Close(); err != nil {
			t.Error(err)
		}
	})
	return x
}

// respond answers every message on subject with f's message (none when f
// returns nil), publishing on nc.
func respond(t testing.TB, nc *nats.Conn, subject string, f func(m *nats.Msg) []*nats.Msg) {
	t.Helper()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		for _, out := range f(m) {
			if err := nc.PublishMsg(out); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func echo(m *nats.Msg) []*nats.Msg {
	return []*nats.Msg{{Subject: m.Reply, Header: nats.Header{"Reply-To": {m.Reply}}, Data: m.Data}}
}

func TestRequest(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b)
	respond(t, nc, "svc.echo", echo)
	x := newMux(t, nc, "web")
	if got, want := x.Subject(), "_INBOX_mesh.web.*."+x.ID()+".*"; got != want {
		t.Errorf("Subject() = %q, want %q", got, want)
	}
	if len(x.ID()) != idLen {
		t.Errorf("ID() = %q, want %d characters", x.ID(), idLen)
	}
	seen := map[string]bool{}
	for i := range 3 {
		m := &nats.Msg{Subject: "svc.echo", Header: nats.Header{"K": {"v"}}, Data: []byte(fmt.Sprint(i))}
		reply, err := x.Request(context.Background(), m, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if m.Reply != "" {
			t.Errorf("Request changed the message's reply to %q", m.Reply)
		}
		if string(reply.Data) != fmt.Sprint(i) {
			t.Errorf("reply %q, want %q", reply.Data, fmt.Sprint(i))
		}
		to := reply.Header.Get("Reply-To")
		if want := wire.PairInbox("web", "orders") + "." + x.ID() + "."; !strings.HasPrefix(to, want) {
			t.Errorf("reply subject %q, want under %q", to, want)
		}
		if seen[to] {
			t.Errorf("reply subject %q used twice", to)
		}
		seen[to] = true
	}
	if n := x.pending(); n != 0 {
		t.Errorf("%d receivers left registered", n)
	}
}

func TestNewValidates(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b)
	for _, owner := range []string{"", "Web", "a.b", "*", "web>"} {
		if x, err := New(context.Background(), nc, owner); err == nil {
			x.Close()
			t.Errorf("New(%q) succeeded", owner)
		}
	}
	if _, err := New(context.Background(), nil, "web"); err == nil {
		t.Error("New(nil) succeeded")
	}
	x := newMux(t, nc, "web")
	for _, peer := range []string{"", "a.b", "*", ">", "a b"} {
		if _, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.echo"}, peer); !errors.Is(err, ErrBadPeer) {
			t.Errorf("Request to peer %q: %v, want ErrBadPeer", peer, err)
		}
	}
	if _, err := x.Request(context.Background(), nil, "orders"); !errors.Is(err, nats.ErrInvalidMsg) {
		t.Errorf("Request(nil msg): %v", err)
	}
	var noCtx context.Context // nil: the point of the check
	if _, err := x.Request(noCtx, &nats.Msg{Subject: "svc.echo"}, "orders"); !errors.Is(err, nats.ErrInvalidContext) {
		t.Errorf("Request(nil ctx): %v", err)
	}
	y := newMux(t, nc, "web")
	if x.ID() == y.ID() {
		t.Errorf("two Muxes share the id %q", x.ID())
	}
}

func TestConcurrent(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b)
	srv := meshtest.Conn(t, b)
	respond(t, srv, "svc.>", echo)
	x := newMux(t, nc, "web")
	peers := []string{"orders", "payments", "NATS"}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 100 {
				peer := peers[(g+i)%len(peers)]
				body := fmt.Sprintf("%d-%d", g, i)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				reply, err := x.Request(ctx, &nats.Msg{Subject: "svc." + peer, Data: []byte(body)}, peer)
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				if string(reply.Data) != body {
					t.Errorf("call %s got %q", body, reply.Data)
				}
				if to := reply.Header.Get("Reply-To"); !strings.HasPrefix(to, wire.PairInbox("web", peer)+".") {
					t.Errorf("call to %s had reply subject %q", peer, to)
				}
			}
		})
	}
	wg.Wait()
	if n := x.pending(); n != 0 {
		t.Errorf("%d receivers left registered", n)
	}
}

// TestWrongPeerIgnored: a message in the owner's pair inbox of another
// peer, with the same Mux id and counter, never completes a call.
func TestWrongPeerIgnored(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b)
	srv := meshtest.Conn(t, b)
	forge := func(reply string) string {
		// _INBOX_mesh.web.orders.<id>.<n> -> _INBOX_mesh.web.payments.<id>.<n>
		return strings.Replace(reply, ".orders.", ".payments.", 1)
	}
	respond(t, srv, "svc.forged-first", func(m *nats.Msg) []*nats.Msg {
		return []*nats.Msg{{Subject: forge(m.Reply), Data: []byte("forged")}, {Subject: m.Reply, Data: []byte("real")}}
	})
	respond(t, srv, "svc.forged-only", func(m *nats.Msg) []*nats.Msg {
		return []*nats.Msg{
			{Subject: forge(m.Reply), Data: []byte("forged")},
			{Subject: m.Reply + ".x", Data: []byte("longer")},
			{Subject: strings.Replace(m.Reply, "_INBOX_mesh.web.", "_INBOX_mesh.api.", 1), Data: []byte("other owner")},
		}
	})
	x := newMux(t, nc, "web")
	reply, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.forged-first"}, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if string(reply.Data) != "real" {
		t.Errorf("got %q, want the real reply", reply.Data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if reply, err := x.Request(ctx, &nats.Msg{Subject: "svc.forged-only"}, "orders"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, %v; want the deadline (the forged replies ignored)", reply, err)
	}
}

func TestNoResponders(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b)
	x := newMux(t, nc, "web")
	_, err := x.Request(context.Background(), &nats.Msg{Subject: "nobody.here"}, "orders")
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("got %v, want nats.ErrNoResponders", err)
	}
	if k := wire.FromError(err).Kind; k != wire.KindNoResponders {
		t.Errorf("wire kind %s", k)
	}
	// nats.go agrees.
	if _, err := nc.RequestMsgWithContext(context.Background(), &nats.Msg{Subject: "nobody.here"}); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("nats.go: %v", err)
	}
	// An empty reply with another status, or with data, is a reply.
	srv := meshtest.Conn(t, b)
	respond(t, srv, "svc.empty", func(m *nats.Msg) []*nats.Msg {
		return []*nats.Msg{{Subject: m.Reply, Header: nats.Header{"Status": {"503"}}, Data: []byte("busy")}}
	})
	if reply, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.empty"}, "orders"); err != nil || string(reply.Data) != "busy" {
		t.Errorf("a 503 with data: %v, %v", reply, err)
	}
}

func TestContext(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b)
	srv := meshtest.Conn(t, b)
	got := make(chan *nats.Msg, 10)
	respond(t, srv, "svc.silent", func(m *nats.Msg) []*nats.Msg { got <- m; return nil })
	x := newMux(t, nc, "web")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := x.Request(ctx, &nats.Msg{Subject: "svc.silent"}, "orders"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	} else if k := wire.FromError(err).Kind; k != wire.KindTimeout {
		t.Errorf("deadline: wire kind %s", k)
	}
	<-got

	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := x.Request(ctx, &nats.Msg{Subject: "svc.silent"}, "orders")
		errc <- err
	}()
	<-got // sent
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}

	// A context already done sends nothing.
	if _, err := x.Request(ctx, &nats.Msg{Subject: "svc.silent"}, "orders"); !errors.Is(err, context.Canceled) {
		t.Errorf("done context: %v", err)
	}
	if err := srv.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		t.Errorf("a request with a done context was sent: %v", m)
	case <-time.After(50 * time.Millisecond):
	}
	if n := x.pending(); n != 0 {
		t.Errorf("%d receivers left registered", n)
	}

	// A reply after the call gave up is dropped.
	late := make(chan string, 1)
	respond(t, srv, "svc.late", func(m *nats.Msg) []*nats.Msg { late <- m.Reply; return nil })
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := x.Request(ctx, &nats.Msg{Subject: "svc.late"}, "orders"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("late: %v", err)
	}
	if err := srv.Publish(<-late, []byte("too late")); err != nil {
		t.Fatal(err)
	}
	respond(t, srv, "svc.echo", echo)
	if reply, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.echo", Data: []byte("next")}, "orders"); err != nil || string(reply.Data) != "next" {
		t.Errorf("the call after a late reply: %v, %v", reply, err)
	}
}

func TestClose(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b)
	srv := meshtest.Conn(t, b)
	got := make(chan *nats.Msg, 10)
	respond(t, srv, "svc.silent", func(m *nats.Msg) []*nats.Msg { got <- m; return nil })
	x, err := New(context.Background(), nc, "web")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.silent"}, "orders")
		errc <- err
	}()
	m := <-got
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	err = <-errc
	if !errors.Is(err, ErrClosed) || !errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, ErrNotSent) {
		t.Errorf("call in flight at Close: %v, want ErrClosed, sent", err)
	}
	if k := wire.FromError(err).Kind; k != wire.KindConnectionLost {
		t.Errorf("wire kind %s", k)
	}
	// Refused before it is sent: ErrNotSent says so.
	if _, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.silent"}, "orders"); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrNotSent) {
		t.Errorf("call after Close: %v, want ErrClosed and ErrNotSent", err)
	}
	if err := x.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Unsubscribed: the broker has no interest left in the Mux's subject.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Request(m.Reply, nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("a message to the closed Mux's inbox: %v, want no responders", err)
	}
}

// TestRefused: New tells a subscription the broker refuses (the user may
// not subscribe its inbox) before any call is sent, each time; Fail ends
// the calls in flight and the later ones with its error, the later ones
// not sent.
func TestRefused(t *testing.T) {
	sec := meshtest.UserConfig(t, false, map[string]string{"web": `publish: ["svc.>"], subscribe: ["svc.>"]`, "srv": ""})
	b := sec.Broker(t, func(c *broker.Config) { c.LameDuckDuration = -1 })
	nc := sec.Conn(t, b, "web", nats.CustomInboxPrefix(wire.InboxPrefix("web")))
	for i := range 2 {
		x, err := New(context.Background(), nc, "web")
		if !errors.Is(err, ErrRefused) || !errors.Is(err, nats.ErrPermissionViolation) {
			if x != nil {
				x.Close()
			}
			t.Fatalf("New #%d without the right to subscribe its inbox: %v, want ErrRefused", i+1, err)
		}
	}

	srv := sec.Conn(t, b, "srv")
	got := make(chan *nats.Msg, 1)
	respond(t, srv, "svc.silent", func(m *nats.Msg) []*nats.Msg { got <- m; return nil })
	x := newMux(t, srv, "web")
	violation := fmt.Errorf("%w: Permissions Violation for Subscription to %q", nats.ErrPermissionViolation, x.Subject())
	if !x.Refuses(violation) {
		t.Errorf("Refuses(%v) = false", violation)
	}
	if other := fmt.Errorf("%w: Permissions Violation for Subscription to %q", nats.ErrPermissionViolation, "_INBOX_mesh.web.>"); x.Refuses(other) {
		t.Errorf("Refuses(%v) = true", other)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.silent"}, "orders")
		errc <- err
	}()
	<-got
	refused := errors.New("refused")
	if err := x.Fail(refused); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, refused) || errors.Is(err, ErrNotSent) {
		t.Errorf("call in flight at Fail: %v, want Fail's error, sent", err)
	}
	if _, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.silent"}, "orders"); !errors.Is(err, refused) || !errors.Is(err, ErrNotSent) {
		t.Errorf("call after Fail: %v, want Fail's error, not sent", err)
	}
}

func TestConnectionClosed(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	srv := meshtest.Conn(t, b)
	got := make(chan *nats.Msg, 10)
	respond(t, srv, "svc.silent", func(m *nats.Msg) []*nats.Msg { got <- m; return nil })
	x := newMux(t, nc, "web")
	errc := make(chan error, 2)
	go func() {
		_, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.silent"}, "orders")
		errc <- err
	}()
	go func() {
		_, err := nc.RequestMsgWithContext(context.Background(), &nats.Msg{Subject: "svc.silent"})
		errc <- err
	}()
	<-got
	<-got
	nc.Close()
	for range 2 {
		if err := <-errc; !errors.Is(err, nats.ErrConnectionClosed) {
			t.Errorf("call in flight at the connection's close: %v", err)
		}
	}
	if _, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.silent"}, "orders"); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("call after the connection's close: %v", err)
	}
}

// TestReconnect: nats.go subscribes the Mux again after a reconnect, and
// a call in flight across the reconnect still gets a reply published
// after it.
func TestReconnect(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b, nats.ReconnectWait(10*time.Millisecond), nats.MaxReconnects(-1))
	srv := meshtest.Conn(t, b)
	respond(t, srv, "svc.echo", echo)
	held := make(chan string, 1)
	respond(t, srv, "svc.held", func(m *nats.Msg) []*nats.Msg { held <- m.Reply; return nil })
	x := newMux(t, nc, "web")
	if _, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.echo"}, "orders"); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		reply, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.held"}, "orders")
		if err == nil && string(reply.Data) != "after" {
			err = fmt.Errorf("reply %q", reply.Data)
		}
		errc <- err
	}()
	reply := <-held

	reconnected := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(reconnected)
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect")
	}
	if err := nc.Flush(); err != nil { // the subscription is back
		t.Fatal(err)
	}
	if err := srv.Publish(reply, []byte("after")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("call across the reconnect: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call across the reconnect got no reply")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := x.Request(ctx, &nats.Msg{Subject: "svc.echo"}, "orders"); err != nil {
		t.Errorf("call after the reconnect: %v", err)
	}
}

// TestAllocs bounds what the Mux itself allocates for a call, apart from
// the connection (publishing, the reply message): the reply subject, and
// nothing else once its receivers are pooled.
func TestAllocs(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b)
	x := newMux(t, nc, "web")
	reply := &nats.Msg{Data: []byte("x")}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		subject, r, err := x.start("orders")
		if err != nil {
			t.Fatal(err)
		}
		reply.Subject = subject
		x.dispatch(reply)
		if _, _, err := x.wait(ctx, subject, r, 0, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("%v allocations a call, want at most 1 (the reply subject)", allocs)
	}
}

// pending is the number of receivers registered.
func (x *Mux) pending() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.waiting)
}

// TestReplySubjectNotGuessable: a peer that saw one reply subject of the
// Mux (so its id and counter) cannot complete the next call, made to
// another peer, by deriving its subject: each carries a random nonce. (A
// service's key can have JetStream deliver a message to any subject of
// its account, so a derivable subject would be a forged reply.)
func TestReplySubjectNotGuessable(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.Conn(t, b)
	srv := meshtest.Conn(t, b)
	seen := make(chan string, 1)
	respond(t, srv, "svc.orders", func(m *nats.Msg) []*nats.Msg {
		seen <- m.Reply
		return []*nats.Msg{{Subject: m.Reply, Data: []byte("ok")}}
	})
	// payments never answers: only a forgery could complete the call.
	sub, err := srv.Subscribe("svc.payments", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	x := newMux(t, nc, "web")
	if _, err := x.Request(context.Background(), &nats.Msg{Subject: "svc.orders"}, "orders"); err != nil {
		t.Fatal(err)
	}
	first := <-seen
	// _INBOX_mesh.web.orders.<id>.<n>-<nonce>
	head, last, _ := strings.Cut(strings.TrimPrefix(first, "_INBOX_mesh.web.orders."), ".")
	n36, nonce, ok := strings.Cut(last, "-")
	if !ok || head != x.ID() {
		t.Fatalf("reply subject %q: want _INBOX_mesh.web.orders.<id>.<n>-<nonce>", first)
	}
	n, err := strconv.ParseUint(n36, 36, 64)
	if err != nil {
		t.Fatal(err)
	}
	next := strconv.FormatUint(n+1, 36)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := x.Request(ctx, &nats.Msg{Subject: "svc.payments"}, "payments")
		done <- err
	}()
	// Forge every derivable subject until the call ends.
	for _, guess := range []string{next, next + "-" + nonce, next + "-0", n36 + "-" + nonce} {
		forged := "_INBOX_mesh.web.payments." + x.ID() + "." + guess
		go func() {
			for ctx.Err() == nil {
				srv.Publish(forged, []byte("forged"))
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the call to payments ended with %v, want its deadline (a forged reply completed it)", err)
	}
}

// TestCallWithin: a call with no reply within its bound ends with
// ErrSilent, unregistered (a late reply is dropped); one whose reply
// comes in time gets it, and the receiver's timer does not fire later
// into another call.
func TestCallWithin(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "web")
	x := newMux(t, nc, "web")
	start := time.Now()
	_, _, err := x.CallWithin(context.Background(), &nats.Msg{Subject: "nobody.listens.but.echo"}, "orders", 100*time.Millisecond)
	if !errors.Is(err, ErrSilent) && !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("a call no one answers: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ended after %v with a 100ms bound", d)
	}
	// A slow answerer: silent within 100 ms, answered within a second.
	srv := meshtest.ServiceConn(t, b, "orders")
	sub, err := srv.Subscribe("slow", func(m *nats.Msg) {
		time.Sleep(300 * time.Millisecond)
		srv.Publish(m.Reply, []byte("late"))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	srv.Flush()
	if _, _, err := x.CallWithin(context.Background(), &nats.Msg{Subject: "slow"}, "orders", 100*time.Millisecond); !errors.Is(err, ErrSilent) {
		t.Errorf("a reply after the bound: %v, want ErrSilent", err)
	}
	for i := 0; i < 5; i++ {
		m, _, err := x.CallWithin(context.Background(), &nats.Msg{Subject: "slow"}, "orders", time.Second)
		if err != nil || string(m.Data) != "late" {
			t.Fatalf("a reply within the bound: %v %v", m, err)
		}
	}
	if n := x.pending(); n != 0 {
		t.Errorf("%d receivers left registered", n)
	}
}
