package pipeline

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/broker"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
)

// slowLink is a TCP proxy to a broker on 127.0.0.1 whose one direction
// carries at most rate bytes a second: a caller's thin link (an edge
// site, a mobile uplink, a long-haul line shared with other traffic).
// up throttles what the client sends, !up what it receives; a delay
// instead delays both directions by that much.
type slowLink struct {
	ln   net.Listener
	to   string
	rate int // bytes per second
	up   bool

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	// down refuses new connections: the link is cut (see cut).
	down atomic.Bool
	// delay, when set, is each direction's latency (rate then unused).
	delay time.Duration
}

// cut closes the link's connections and refuses new ones for d.
func (l *slowLink) cut(d time.Duration) {
	l.down.Store(true)
	l.mu.Lock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
	l.mu.Unlock()
	time.AfterFunc(d, func() { l.down.Store(false) })
}

func newSlowLink(t *testing.T, b *broker.Broker, rate int, up bool, delay time.Duration) *slowLink {
	t.Helper()
	u, err := url.Parse(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &slowLink{ln: ln, to: u.Host, rate: rate, up: up, delay: delay}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(l.close)
	return l
}

func (l *slowLink) url() string { return "nats://" + l.ln.Addr().String() }

func (l *slowLink) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if l.down.Load() {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", l.to)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, c, s)
		l.mu.Unlock()
		l.wg.Add(2)
		if l.up {
			go l.copy(s, c, true)
			go l.copy(c, s, false)
		} else {
			go l.copy(s, c, false)
			go l.copy(c, s, true)
		}
	}
}

// copy copies from src to dst, at most l.rate bytes a second when slow.
func (l *slowLink) copy(dst, src net.Conn, slow bool) {
	defer l.wg.Done()
	defer dst.Close()
	defer src.Close()
	if l.delay > 0 {
		l.late(dst, src)
		return
	}
	if !slow || l.rate == 0 {
		io.Copy(dst, src)
		return
	}
	buf := make([]byte, 8<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			time.Sleep(time.Duration(n) * time.Second / time.Duration(l.rate))
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// late copies from src to dst, each piece l.delay after it was read.
func (l *slowLink) late(dst, src net.Conn) {
	type piece struct {
		at time.Time
		b  []byte
	}
	pieces := make(chan piece, 1024)
	go func() {
		for p := range pieces {
			time.Sleep(time.Until(p.at))
			if _, err := dst.Write(p.b); err != nil {
				src.Close()
			}
		}
	}()
	defer close(pieces)
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			pieces <- piece{time.Now().Add(l.delay), buf[:n]}
		}
		if err != nil {
			return
		}
	}
}

func (l *slowLink) close() {
	l.ln.Close()
	l.mu.Lock()
	for _, c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// web connects to the broker through l as web, reconnecting every 100 ms
// as an agent does (natsconn), closed at the test's end.
func (l *slowLink) web(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(l.url(), nats.CustomInboxPrefix(wire.InboxPrefix("web")), nats.Timeout(5*time.Second),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// countRuns answers 200 with body, counting the calls it runs in ran.
func countRuns(ran *atomic.Int32, body []byte) HandlerFunc {
	return func(ctx context.Context, c *Call) (*Reply, error) {
		ran.Add(1)
		return &Reply{Proto: c.Proto, Status: 200, Header: nats.Header{wire.HeaderStatus: {"200"}}, Body: Body{Bytes: body}}, nil
	}
}

// serveThrough serves orders on svc with 3 slots, each request message
// handed to deliver first, which passes it on to the inbound dispatch
// when it likes (an agent that froze, a link cut as a call arrives).
func serveThrough(t *testing.T, svc *nats.Conn, ran *atomic.Int32, deliver func(m *nats.Msg, serve func(*nats.Msg))) {
	t.Helper()
	in, err := NewInbound(svc, InboundConfig{Service: "orders", MaxConcurrent: 3, Handler: countRuns(ran, nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	subjects, queues := wire.ServiceSubjects("orders", "")
	for i := range subjects {
		if _, err := svc.QueueSubscribe(subjects[i], queues[i], func(m *nats.Msg) { deliver(m, in.ServeMsg) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// postOnce sends one POST to orders with a 5 s deadline and fails the
// test unless it is answered 200 and ran at most once; copies is logged.
func postOnce(t *testing.T, o *Outbound, ran, copies *atomic.Int32, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := o.Send(ctx, httpCall(t, "orders", "POST"))
	t.Logf("%d copies of the call reached orders", copies.Load())
	if err != nil || r.Status != 200 {
		t.Errorf("a POST %s: %v, want 200", what, err)
	}
	if n := ran.Load(); n > 1 {
		t.Errorf("ran %d times, want at most once", n)
	}
}

// frozenInstance subscribes an instance of service to its queue group
// that holds what it gets, as a frozen process's socket does.
func frozenInstance(t *testing.T, b *broker.Broker, service string) chan *nats.Msg {
	t.Helper()
	frozen := meshtest.ServiceConn(t, b, service)
	held := make(chan *nats.Msg, 1000)
	subjects, queues := wire.ServiceSubjects(service, "")
	for i := range subjects {
		if _, err := frozen.ChanQueueSubscribe(subjects[i], queues[i], held); err != nil {
			t.Fatal(err)
		}
	}
	if err := frozen.Flush(); err != nil {
		t.Fatal(err)
	}
	return held
}

// TestReviewLiveLargeRequestOnSlowLink: a call that may not run twice
// whose request crosses whole (a gRPC unary request up to max_payload, a
// POST from a pipeline's own caller) from a caller whose uplink is thin:
// 600 KB at 1 MB/s reaches the broker after 0.6 s, so its callee's accept
// cannot come within the take bound (300 ms) however live the callee is.
// The caller sends it again, each copy queued behind the last on the same
// link. At 6127310 (a fixed bound) it never started and failed at its 5 s
// deadline; since b8aced6 (the bound learns from late signs) it starts
// after some 2.5 s, the thin link having carried four copies of 600 KB.
// Before 6127310 (a 2 s bound, no resend) it took 0.7 s and one copy.
// The take bound measures the request's transfer, not the callee's
// liveness: it should run from when the broker has the request.
func TestReviewLiveLargeRequestOnSlowLink(t *testing.T) {
	b := meshtest.BareBroker(t)
	var ran, copies atomic.Int32
	serveThrough(t, meshtest.ServiceConn(t, b, "orders"), &ran, func(m *nats.Msg, serve func(*nats.Msg)) {
		copies.Add(1)
		serve(m)
	})
	link := newSlowLink(t, b, 1<<20, true, 0)
	o := outbound(t, link.web(t))

	c := httpCall(t, "orders", "POST")
	c.Body = Body{Bytes: make([]byte, 600<<10)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	r, err := o.Send(ctx, c)
	t.Logf("answered after %v, %d copies of 600 KB sent", time.Since(start).Round(time.Millisecond), copies.Load())
	if err != nil || r.Status != 200 {
		t.Errorf("a 600 KB POST on a 1 MB/s uplink, its callee live: %v after %v, want 200", err, time.Since(start).Round(time.Millisecond))
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("ran %d times, want 1", n)
	}
	if n := copies.Load(); n > 2 {
		t.Errorf("%d copies of a live call crossed the thin link", n)
	}
}

// TestReviewLiveLargeAnswerOnSlowLink: an idempotent call (a GET; a gRPC
// route the mesh file marks idempotent) answered at once and whole (up
// to max_payload: a gRPC unary answer, a pipeline handler's), to a
// caller whose downlink is thin: 600 KB at 1 MB/s takes 0.6 s, and a
// quick answer is no accept first, so nothing of the callee reaches the
// caller within the take bound. The caller sends the call again; each
// copy runs, and its answer queues behind the others' on the same link.
// At 6127310 the call failed at its 5 s deadline after 17 runs; since
// b8aced6 it is answered after some 2.6 s and 4 runs. Before 6127310 it
// took 0.7 s, run once.
func TestReviewLiveLargeAnswerOnSlowLink(t *testing.T) {
	b := meshtest.BareBroker(t)
	var ran atomic.Int32
	big := make([]byte, 600<<10)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: countRuns(&ran, big)})
	link := newSlowLink(t, b, 1<<20, false, 0)
	o := outbound(t, link.web(t))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	r, err := o.Send(ctx, httpCall(t, "orders", "GET"))
	if err != nil || r.Status != 200 {
		t.Errorf("a GET answered with 600 KB on a 1 MB/s downlink: %v after %v, want 200", err, time.Since(start).Round(time.Millisecond))
	}
	if n := ran.Load(); n > 2 {
		t.Errorf("ran %d times, want once (twice at most: a GET may run twice)", n)
	}
}

// TestReviewLiveResendsWhileDisconnected: a caller whose own connection
// to the broker is lost while its call waits for a sign of life (the
// callee's accept went out just after the loss) goes on sending the call
// again every take bound into nats.go's reconnect buffer, as if another
// instance could hear it: on reconnect the broker gets every copy at
// once. The callee's agent accepts each and holds a slot for each until
// its start is due (twice the bound), so the copy the caller still
// listens to finds it at its limit: the call fails overloaded, after a
// 1.5 s blip of the caller, on a service that is idle. Here the callee
// has 3 slots and the caller one call in flight; with the default 1024
// it takes some 200 to 250 calls in flight across such a blip (a bridge, a busy
// agent). An idempotent call runs once per copy. Silence while the
// caller's own connection is down says nothing of the instance: the
// caller should wait for its connection before it sends the call again.
func TestReviewLiveResendsWhileDisconnected(t *testing.T) {
	b := meshtest.BareBroker(t)
	var ran, copies atomic.Int32
	link := newSlowLink(t, b, 0, true, 0)
	serveThrough(t, meshtest.ServiceConn(t, b, "orders"), &ran, func(m *nats.Msg, serve func(*nats.Msg)) {
		// The caller's link is cut as its first copy arrives, before
		// the accept leaves.
		if copies.Add(1) == 1 {
			link.cut(1500 * time.Millisecond)
			time.Sleep(50 * time.Millisecond)
		}
		serve(m)
	})
	postOnce(t, outbound(t, link.web(t)), &ran, &copies, "across a 1.5 s loss of the caller's connection")
	if n := copies.Load(); n > 3 {
		t.Errorf("%d copies of one call reached the callee: sent again while the caller could not hear any answer", n)
	}
}

// TestReviewLiveFarCallee: a callee 400 ms of round trip away from its
// caller (a service reached through a gateway in another region, a
// satellite or congested line: 200 ms each way here, on the caller's
// link), live and quick. Neither its answer (a GET) nor its accept (a
// POST) can come within the floor of the take bound (300 ms). At 6127310
// (a fixed bound) the caller gave up on every copy just before its
// answer came, and no call ever succeeded (the GET ran 15 times, the
// POST never). Holds since b8aced6: the bound learns from the late
// signs, and both succeed; the first GET still runs about three times
// (a GET may).
func TestReviewLiveFarCallee(t *testing.T) {
	b := meshtest.BareBroker(t)
	var ran atomic.Int32
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: countRuns(&ran, nil)})
	link := newSlowLink(t, b, 0, true, 200*time.Millisecond)
	o := outbound(t, link.web(t))

	for _, method := range []string{"GET", "POST"} {
		ran.Store(0)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		r, err := o.Send(ctx, httpCall(t, "orders", method))
		cancel()
		if err != nil || r.Status != 200 {
			t.Errorf("%s, a live callee 400 ms of round trip away: %v after %v, want 200", method, err, time.Since(start).Round(time.Millisecond))
		}
		t.Logf("%s: answered after %v, run %d times", method, time.Since(start).Round(time.Millisecond), ran.Load())
		if n := ran.Load(); method == "POST" && n != 1 {
			t.Errorf("%s ran %d times, want once", method, n)
		}
	}
}

// TestReviewLiveFrozenLoneInstance: a service's only instance is frozen
// for 1.5 s (a long GC pause, a VM stalled by its host) while a POST to
// it waits. Its caller sends the call again every take bound, and every
// copy goes to the frozen instance, the only member of the queue group:
// when it wakes it finds five copies in its socket, all but the last
// given up by their caller, and accepts them in order, each holding a
// slot until its start is due (twice the bound); the copy its caller
// still listens to finds the instance at its limit and is refused
// overloaded. Here the instance has 3 slots and one call is in flight;
// with the default 1024 it takes some 250 calls in flight across such a
// pause. Before 6127310 the one copy was served when the instance woke,
// within the 2 s bound. Fixes to weigh: the caller keeps listening to
// every copy it sent and starts the first that accepts (see
// TestReviewLiveFarCallee); the copies of a call carry one
// id and a callee drops an unstarted copy when a later one of the same
// call arrives (its caller never starts an earlier copy once it has sent
// a later one); or a call waiting for its start holds no slot (an inbox
// and a timer, bounded apart).
func TestReviewLiveFrozenLoneInstance(t *testing.T) {
	t.Skip("known, not fixed (docs/wire.md, \"Liveness\"): copies of a call sent while its lone instance was frozen each hold a slot while they wait for a start that never comes, and with fewer slots than copies the live one is refused overloaded; the default 1,024 slots take some 250 calls in flight across such a pause")
	b := meshtest.BareBroker(t)
	var ran, copies atomic.Int32
	// Frozen from the first copy on for 1.5 s: what arrives meanwhile
	// waits in order, as in the socket of a stopped process (messages
	// come one at a time, on the subscription's goroutine).
	var frozenUntil time.Time
	serveThrough(t, meshtest.ServiceConn(t, b, "orders"), &ran, func(m *nats.Msg, serve func(*nats.Msg)) {
		if copies.Add(1) == 1 {
			frozenUntil = time.Now().Add(1500 * time.Millisecond)
		}
		time.Sleep(time.Until(frozenUntil))
		serve(m)
	})
	postOnce(t, outbound(t, meshtest.ServiceConn(t, b, "web")), &ran, &copies, "to a lone instance frozen 1.5 s")
}

// TestReviewLiveTakeBoundPerService: the take bound b8aced6 made adaptive
// is one estimate for all of a caller's calls (one meshstream.Take per
// outbound pipeline), whatever service they go to. web calls far, a
// service whose instance is 700 ms of round trip away (another region),
// and orders, near, one of whose two instances is frozen. far's signs,
// all late, teach the bound over a second; while web keeps calling far,
// each of its calls to orders that draws the frozen instance waits that
// long before it is sent again, not the 300 ms issue 21 bought for
// orders (the first part of the test, without far's calls, shows it),
// and with a deadline of a few seconds fails when it draws the frozen
// instance again a few times. The estimate is a property of the path to
// a service's instances: one per service.
func TestReviewLiveTakeBoundPerService(t *testing.T) {
	b := meshtest.BareBroker(t)
	var ran atomic.Int32
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{Handler: countRuns(&ran, nil)})
	held := frozenInstance(t, b, "orders")
	link := newSlowLink(t, b, 0, true, 350*time.Millisecond)
	farConn, err := nats.Connect(link.url(), nats.CustomInboxPrefix(wire.InboxPrefix("far")), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(farConn.Close)
	serve(t, farConn, "far", InboundConfig{Handler: countRuns(&ran, nil)})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))

	// orders, one POST at a time until 6 have drawn the frozen instance
	// once (or one took over a second): the longest of those, and the
	// calls that failed.
	orders := func() (slowest time.Duration, failed int) {
		begun, calls := time.Now(), 0
		defer func() { t.Logf("%d calls in %v", calls, time.Since(begun).Round(time.Millisecond)) }()
		for drew := 0; drew < 6; calls++ {
			before := len(held)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			start := time.Now()
			r, err := o.Send(ctx, httpCall(t, "orders", "POST"))
			took := time.Since(start)
			cancel()
			if err != nil || r.Status != 200 {
				failed++
				t.Logf("orders: %v after %v", err, took.Round(time.Millisecond))
			}
			if len(held)-before == 1 {
				drew++
				slowest = max(slowest, took)
			}
			if slowest > time.Second {
				break // shown
			}
		}
		return slowest, failed
	}
	slowest, failed := orders()
	t.Logf("orders alone: a call that drew the frozen instance once answered within %v; %d failed", slowest.Round(time.Millisecond), failed)
	if slowest > time.Second || failed > 0 {
		t.Fatalf("orders alone: the frozen instance cost a call up to %v, %d calls failed: the test shows nothing", slowest, failed)
	}

	// web calls far meanwhile, one call after another.
	stop := meshtest.Repeat(0, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		o.Send(ctx, httpCall(t, "far", "POST"))
		cancel()
		return true
	})
	time.Sleep(3 * time.Second) // far's first signs
	slowest, failed = orders()
	stop()
	t.Logf("orders while web calls far: a call that drew the frozen instance once answered within %v; %d failed", slowest.Round(time.Millisecond), failed)
	if slowest > time.Second || failed > 0 {
		t.Errorf("orders while web calls far: the frozen instance cost a call up to %v (300 ms without far's calls); %d calls failed", slowest.Round(time.Millisecond), failed)
	}
}
