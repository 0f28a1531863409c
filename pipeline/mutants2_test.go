package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// Tests of the inbound dispatch and the outbound pipeline that kill the
// mutants of inbound.go and outbound.go no other test noticed
// (docs/testing.md): each checks what a caller or an operator sees.

// ok200 is a whole 200 answer to c.
func ok200(c *Call) *Reply {
	return &Reply{Proto: c.Proto, Status: 200, Header: nats.Header{wire.HeaderStatus: {"200"}}}
}

// seenCall is what a handler saw of one call.
type seenCall struct {
	path     string
	deadline time.Time
	has      bool // a deadline at all
}

// recordCalls is a handler that answers 200 and sends what it saw.
func recordCalls(seen chan<- seenCall) HandlerFunc {
	return func(ctx context.Context, c *Call) (*Reply, error) {
		d, ok := ctx.Deadline()
		seen <- seenCall{path: c.Path, deadline: d, has: ok}
		return ok200(c), nil
	}
}

// httpCallTo is an HTTP call from web to url's service, encoded as
// package meshhttp encodes one.
func httpCallTo(t *testing.T, method, url string) *Call {
	t.Helper()
	r, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := httpwire.EncodeRequest(r, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return &Call{Service: r.Host, Caller: "web", Proto: wire.ProtoHTTP, Op: method, Path: r.URL.Path, Header: m.Header, Body: Body{Bytes: m.Data}}
}

// TestInboundCallFromTheMessage: the handler's Call has the HTTP path the
// message carries, whether the call came whole from a raw NATS client or
// with the stream protocol from an outbound pipeline; a gRPC call has no
// HTTP path, whatever its header says. Its deadline is the message's
// Mesh-Timeout, else the dispatch's Timeout (a raw client's request
// without one); and, the caller's start-by time ignored (ClockSkew < 0),
// the caller's deadline, not the dispatch's Timeout.
func TestInboundCallFromTheMessage(t *testing.T) {
	b := meshtest.BareBroker(t)
	seen := make(chan seenCall, 1)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Timeout: time.Hour, ClockSkew: -1, Handler: recordCalls(seen),
	})
	raw := rawConn(t, b, "web", "orders")
	request := func(subject string, h nats.Header) seenCall {
		t.Helper()
		m, err := raw.RequestMsg(&nats.Msg{Subject: subject, Header: h}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := wire.ReplyError(m.Header); e != nil {
			t.Fatalf("%s: %v", subject, e)
		}
		return <-seen
	}

	// A raw client's HTTP call, whole, without Mesh-Timeout.
	got := request("mesh.orders._.web.http.GET", nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/pay"}})
	if got.path != "/pay" {
		t.Errorf("raw HTTP call: path %q, want /pay", got.path)
	}
	if left := time.Until(got.deadline); !got.has || left < 50*time.Minute {
		t.Errorf("raw call without Mesh-Timeout: deadline in %v, want the dispatch's Timeout (1h)", left)
	}
	// With Mesh-Timeout: that.
	got = request("mesh.orders._.web.http.GET", nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/"}, wire.HeaderTimeout: {"20s"}})
	if left := time.Until(got.deadline); !got.has || left > 20*time.Second || left < 10*time.Second {
		t.Errorf("raw call with Mesh-Timeout 20s: deadline in %v", left)
	}
	// A raw gRPC call that says Mesh-Path: no path.
	got = request("mesh.orders._.web.grpc."+wire.EscapeToken("/pkg.Orders/Get"), nats.Header{wire.HeaderPath: {"/forged"}})
	if got.path != "" {
		t.Errorf("raw gRPC call: path %q, want none", got.path)
	}

	// Through an outbound pipeline (the stream protocol), with a
	// deadline of the caller's own.
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := o.Send(ctx, httpCallTo(t, "GET", "http://orders/pay/now?x=1")); err != nil {
		t.Fatal(err)
	}
	got = <-seen
	if got.path != "/pay/now" {
		t.Errorf("HTTP call through the pipeline: path %q, want /pay/now", got.path)
	}
	if left := time.Until(got.deadline); !got.has || left > 20*time.Second || left < 10*time.Second {
		t.Errorf("a call with the caller's 20 s deadline: the handler's deadline in %v (has %v), want the caller's", left, got.has)
	}
	grpcCall := &Call{Service: "orders", Caller: "web", Proto: wire.ProtoGRPC, Op: "/pkg.Orders/Get",
		Header: nats.Header{wire.HeaderPath: {"/forged"}}}
	if _, err := o.Send(ctx, grpcCall); err != nil {
		t.Fatal(err)
	}
	if got = <-seen; got.path != "" {
		t.Errorf("gRPC call through the pipeline: path %q, want none", got.path)
	}
}

// TestStreamedReplyToARawClient: a raw NATS client's request (one
// message, no stream protocol) whose handler answers with a stream gets
// the stream read whole in one reply, its trailer in the header; one
// larger than the broker's max_payload is the service's failure,
// upstream-unavailable, not a broken or missing reply.
func TestStreamedReplyToARawClient(t *testing.T) {
	b := meshtest.BareBroker(t)
	big := strings.Repeat("x", 64<<10)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			if c.Op == http.MethodPost {
				parts := make([]string, 40) // 2.5 MiB, past the default 1 MiB
				for i := range parts {
					parts[i] = big
				}
				return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, newPieces(nil, parts...)), nil
			}
			return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}},
				newPieces(nats.Header{wire.HeaderTrailerPrefix + "Digest": {"abc"}}, "hello, ", "streamed ", "world")), nil
		}),
	})
	raw := rawConn(t, b, "web", "orders")
	m, err := raw.RequestMsg(&nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/"}}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := wire.ReplyError(m.Header); e != nil || string(m.Data) != "hello, streamed world" || m.Header.Get(wire.HeaderTrailerPrefix+"Digest") != "abc" {
		t.Errorf("streamed answer to a raw client: %v %q %v, want the whole body and its trailer", e, m.Data, m.Header)
	}
	m, err = raw.RequestMsg(&nats.Msg{Subject: "mesh.orders._.web.http.POST", Header: nats.Header{wire.HeaderMethod: {"POST"}, wire.HeaderPath: {"/"}}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := wire.ReplyError(m.Header); e == nil || e.Kind != wire.KindUpstream || !strings.Contains(e.Message, "max_payload") {
		t.Errorf("a streamed answer past max_payload to a raw client: %v, want upstream-unavailable naming max_payload", e)
	}
}

// logRecords is an slog.Handler that keeps every record, at every level.
type logRecords struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

func (l *logRecords) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.recs...)
}

// TestHealthyCallsLogNothing: calls that succeed, a whole answer and a
// streamed one, each through the stream protocol, and a raw client's,
// leave no line in the dispatch's log, at any level: an operator reads
// its warnings as failures.
func TestHealthyCallsLogNothing(t *testing.T) {
	b := meshtest.BareBroker(t)
	logs := &logRecords{}
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Logger: slog.New(logs),
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			if c.Op == http.MethodPost {
				return NewStreamReply(c.Proto, nats.Header{wire.HeaderStatus: {"200"}}, newPieces(nil, "a ", "stream")), nil
			}
			return ok200(c), nil
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	if reply, err := o.Send(context.Background(), httpCall(t, "orders", http.MethodGet)); err != nil || reply.Status != 200 {
		t.Fatalf("GET: %v %v", reply, err)
	}
	reply, err := o.Send(context.Background(), httpCall(t, "orders", http.MethodPost))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	if body := readAll(t, reply.Body.Stream); body != "a stream" {
		t.Errorf("streamed answer %q", body)
	}
	raw := rawConn(t, b, "web", "orders")
	if _, err := raw.RequestMsg(&nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/"}}}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// The streamed answer's end reaches the dispatch after the caller's.
	time.Sleep(200 * time.Millisecond)
	if recs := logs.all(); len(recs) > 0 {
		t.Errorf("healthy calls logged:\n%s", strings.Join(recs, "\n"))
	}
}

// TestHeadDeadlineIsTheAnswer: a streamed upload with no deadline of
// its caller's is bounded by the default deadline from the end of its
// body (its head); when that passes, the caller is answered timeout,
// whatever error the handler returns on its cancelled context.
func TestHeadDeadlineIsTheAnswer(t *testing.T) {
	b := meshtest.BareBroker(t)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			readAll(t, c.Body.Stream)
			<-ctx.Done()
			return nil, errors.New("the local service gave up")
		}),
	})
	o, err := NewOutbound(meshtest.ServiceConn(t, b, "web"), OutboundConfig{Timeout: 300 * time.Millisecond, StreamIdle: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	done := make(chan error, 1)
	go func() {
		_, err := o.Send(context.Background(), streamCall(t, newPieces(nil, "an ", "upload")))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, wire.ErrTimeout) {
			t.Errorf("the head's deadline passed: got %v, want timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer 10 s after a 300 ms head deadline")
	}
}

// TestConfigBounds: the stream idle timeout (inbound and outbound) and
// the take bound are accepted at each end of their range and refused
// just outside it, with an error.
func TestConfigBounds(t *testing.T) {
	b := meshtest.BareBroker(t)
	nc := meshtest.ServiceConn(t, b, "web")
	handler := HandlerFunc(func(context.Context, *Call) (*Reply, error) { return nil, errors.New("unused") })
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{
		{wire.MinStreamIdle, true}, {wire.MaxStreamIdle, true},
		{wire.MinStreamIdle - 1, false}, {wire.MaxStreamIdle + 1, false},
	} {
		_, err := NewInbound(nc, InboundConfig{Handler: handler, StreamIdle: tc.d})
		if (err == nil) != tc.ok {
			t.Errorf("NewInbound with StreamIdle %v: %v, want ok %v", tc.d, err, tc.ok)
		}
		o, err := NewOutbound(nc, OutboundConfig{StreamIdle: tc.d})
		if (err == nil) != tc.ok {
			t.Errorf("NewOutbound with StreamIdle %v: %v, want ok %v", tc.d, err, tc.ok)
		}
		if o != nil {
			o.Close()
		}
	}
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{
		{wire.MinTakeWithin, true}, {wire.MaxTakeWithin, true},
		{wire.MinTakeWithin - 1, false}, {wire.MaxTakeWithin + 1, false},
	} {
		o, err := NewOutbound(nc, OutboundConfig{TakeWithin: tc.d})
		if (err == nil) != tc.ok {
			t.Errorf("NewOutbound with TakeWithin %v: %v, want ok %v", tc.d, err, tc.ok)
		}
		if o != nil {
			o.Close()
		}
	}
}

// TestCallWaitsTheDefaultReconnectGrace: a call made while its
// connection to the broker is down, with the default reconnect grace
// (2 s), waits for the connection and is served when it comes back
// within the grace, instead of failing at once.
func TestCallWaitsTheDefaultReconnectGrace(t *testing.T) {
	b := meshtest.BareBroker(t)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) { return ok200(c), nil }),
	})
	link := newSlowLink(t, b, 0, true, 0)
	web := link.web(t)
	o := outbound(t, web)
	link.cut(300 * time.Millisecond)
	meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if web.IsConnected() {
			return errors.New("still connected")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if reply, err := o.Send(ctx, httpCall(t, "orders", http.MethodGet)); err != nil || reply.Status != 200 {
		t.Fatalf("a call made while the connection was down for 300 ms: %v %v, want 200 (reconnect grace 2 s)", reply, err)
	}
}

// TestDefaultClockSkewTolerated: by default the dispatch tolerates a
// caller's clock a quarter of a second behind its own (DefaultClockSkew):
// a call whose start-by time passed 100 ms ago by this host's clock still
// runs; one 2 s past does not.
func TestDefaultClockSkewTolerated(t *testing.T) {
	b := meshtest.BareBroker(t)
	seen := make(chan seenCall, 1)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{Handler: recordCalls(seen)})
	raw := rawConn(t, b, "web", "orders")
	call := func(startBy time.Time) *wire.Error {
		t.Helper()
		h := nats.Header{wire.HeaderMethod: {"POST"}, wire.HeaderPath: {"/"}, wire.HeaderTimeout: {"1h"},
			wire.HeaderStartBy: {strconv.FormatInt(startBy.UnixMilli(), 10)}}
		m, err := raw.RequestMsg(&nats.Msg{Subject: "mesh.orders._.web.http.POST", Header: h}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return wire.ReplyError(m.Header)
	}
	if e := call(time.Now().Add(-100 * time.Millisecond)); e != nil {
		t.Errorf("a call 100 ms past its caller's deadline by this host's clock: %v, want it run (skew tolerated: %v)", e, DefaultClockSkew)
	} else {
		<-seen
	}
	if e := call(time.Now().Add(-2 * time.Second)); e == nil || e.Kind != wire.KindTimeout {
		t.Errorf("a call 2 s past its caller's deadline: %v, want timeout, not run", e)
	}
}

// TestServedCallsTeachTheLimit: the adaptive limit learns from the calls
// the service answers: after a window of them (ten calls, 100 ms) it is
// no longer its 1,024 bound but what the load it saw calls for (four
// times the calls in flight, at least the burst of 64), as the
// natsmesh_inbound_limit metric shows; whether the calls come whole from
// a raw NATS client or with the stream protocol from an agent.
func TestServedCallsTeachTheLimit(t *testing.T) {
	b := meshtest.BareBroker(t)
	for _, how := range []string{"raw", "pipeline"} {
		t.Run(how, func(t *testing.T) {
			service := "orders-" + how
			in := serve(t, meshtest.ServiceConn(t, b, service), service, InboundConfig{
				Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
					time.Sleep(5 * time.Millisecond)
					return ok200(c), nil
				}),
			})
			if got := in.Limit(); got != DefaultMaxConcurrent {
				t.Fatalf("limit before any call: %d, want %d", got, DefaultMaxConcurrent)
			}
			var call func() error
			if how == "raw" {
				raw := rawConn(t, b, "web", service)
				call = func() error {
					_, err := raw.RequestMsg(&nats.Msg{Subject: "mesh." + service + "._.web.http.GET",
						Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/"}}}, 10*time.Second)
					return err
				}
			} else {
				o := outbound(t, meshtest.ServiceConn(t, b, "web"))
				call = func() error {
					_, err := o.Send(context.Background(), httpCall(t, service, http.MethodGet))
					return err
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			calls := 0
			for in.Limit() == DefaultMaxConcurrent && time.Now().Before(deadline) {
				if err := call(); err != nil {
					t.Fatal(err)
				}
				calls++
			}
			if got := in.Limit(); got >= DefaultMaxConcurrent {
				t.Errorf("after %d calls served one at a time, the limit is still %d: the served calls taught it nothing", calls, got)
			}
		})
	}
}

// TestWholeReplyPastMaxPayload: a raw client's call whose handler answers
// whole with more than the broker's max_payload gets one answer,
// upstream-unavailable naming max_payload, instead of none; the log
// tells the reply that failed, and not the error reply that did not.
func TestWholeReplyPastMaxPayload(t *testing.T) {
	b := meshtest.BareBroker(t)
	svc := meshtest.ServiceConn(t, b, "orders")
	logs := &logRecords{}
	serve(t, svc, "orders", InboundConfig{
		Logger: slog.New(logs),
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			r := ok200(c)
			r.Body = Body{Bytes: make([]byte, svc.MaxPayload()+1)}
			return r, nil
		}),
	})
	raw := rawConn(t, b, "web", "orders")
	m, err := raw.RequestMsg(&nats.Msg{Subject: "mesh.orders._.web.http.GET", Header: nats.Header{wire.HeaderMethod: {"GET"}, wire.HeaderPath: {"/"}}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := wire.ReplyError(m.Header); e == nil || e.Kind != wire.KindUpstream || !strings.Contains(e.Message, "max_payload") {
		t.Errorf("a whole answer past max_payload: %v, want upstream-unavailable naming max_payload", e)
	}
	recs := logs.all()
	if len(recs) != 1 || !strings.Contains(recs[0], "sending reply") {
		t.Errorf("logged:\n%s\nwant one line: sending reply", strings.Join(recs, "\n"))
	}
}

// TestMaxTimeoutBoundsTheCallersDeadline: OutboundConfig.MaxTimeout
// bounds the deadline a caller sets: the service sees at most that, not
// the caller's hour; a deadline under it is the caller's.
func TestMaxTimeoutBoundsTheCallersDeadline(t *testing.T) {
	b := meshtest.BareBroker(t)
	seen := make(chan seenCall, 1)
	serve(t, meshtest.ServiceConn(t, b, "orders"), "orders", InboundConfig{Handler: recordCalls(seen)})
	o, err := NewOutbound(meshtest.ServiceConn(t, b, "web"), OutboundConfig{MaxTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, tc := range []struct {
		caller   time.Duration
		min, max time.Duration
	}{{time.Hour, 10 * time.Second, 21 * time.Second}, {15 * time.Second, 5 * time.Second, 16 * time.Second}} {
		ctx, cancel := context.WithTimeout(context.Background(), tc.caller)
		_, err := o.Send(ctx, httpCall(t, "orders", http.MethodGet))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		got := <-seen
		if left := time.Until(got.deadline); !got.has || left < tc.min || left > tc.max {
			t.Errorf("caller's deadline %v under MaxTimeout 20s: the service's deadline in %v", tc.caller, left)
		}
	}
}

// TestNATSSubjectStreamedBody: a call to a plain NATS subject whose body
// streams is sent as one message, the body whole: a NATS-native
// responder answers it.
func TestNATSSubjectStreamedBody(t *testing.T) {
	b := meshtest.BareBroker(t)
	svc := meshtest.Conn(t, b)
	sub, err := svc.Subscribe("legacy.echo", func(m *nats.Msg) {
		m.Respond(append([]byte("echo: "), m.Data...))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	reply, err := o.Send(context.Background(), &Call{Subject: "legacy.echo", Caller: "web", Body: Body{Stream: newPieces(nil, "one ", "body")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(reply.Body.Bytes); got != "echo: one body" {
		t.Errorf("NATS-native answer %q, want %q", got, "echo: one body")
	}
}

// TestPublishRefusedAnswersThatCall: a call whose publish the broker
// refuses (outside the caller's NATS permissions) is answered forbidden
// at once, not at its deadline; a call in flight on another subject at
// that moment is not touched, and gets its answer.
func TestPublishRefusedAnswersThatCall(t *testing.T) {
	sec := meshtest.UserConfig(t, false, map[string]string{
		"web":    `publish: ["legacy.ok"], subscribe: ["_INBOX_mesh.web.>"]`,
		"legacy": "",
	})
	b := sec.Broker(t)
	svc := sec.Conn(t, b, "legacy")
	release := make(chan struct{})
	sub, err := svc.Subscribe("legacy.ok", func(m *nats.Msg) {
		<-release
		m.Respond([]byte("ok"))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	o := outbound(t, sec.Conn(t, b, "web", nats.CustomInboxPrefix(wire.InboxPrefix("web"))))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	slow := make(chan error, 1)
	go func() {
		reply, err := o.Send(ctx, &Call{Subject: "legacy.ok", Caller: "web"})
		if err == nil && string(reply.Body.Bytes) != "ok" {
			err = fmt.Errorf("answer %q", reply.Body.Bytes)
		}
		slow <- err
	}()
	start := time.Now()
	_, err = o.Send(ctx, &Call{Subject: "legacy.denied", Caller: "web"})
	if !errors.Is(err, wire.ErrForbidden) || time.Since(start) > 10*time.Second {
		t.Errorf("a publish the broker refuses: %v after %v, want forbidden at once", err, time.Since(start).Round(time.Millisecond))
	}
	close(release)
	if err := <-slow; err != nil {
		t.Errorf("the call in flight on another subject: %v, want its answer", err)
	}
}

// TestReconnectGraceOncePerOutage (issue 21, item 5): the reconnect grace
// runs from the loss of the connection, not from each call: a call made
// once it has passed fails at once, saying for how long the broker has
// been gone, instead of waiting the grace again.
func TestReconnectGraceOncePerOutage(t *testing.T) {
	b := meshtest.BareBroker(t)
	link := newSlowLink(t, b, 0, true, 0)
	web := link.web(t)
	o, err := NewOutbound(web, OutboundConfig{ReconnectGrace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	link.cut(time.Minute)
	meshtest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if web.IsConnected() {
			return errors.New("still connected")
		}
		return nil
	})
	for i := range 2 {
		_, err := o.Send(context.Background(), httpCall(t, "orders", http.MethodGet))
		if !errors.Is(err, wire.ErrBrokerUnavailable) {
			t.Fatalf("call %d during the outage: %v, want broker-unavailable", i+1, err)
		}
		if i == 1 && !strings.Contains(err.Error(), "reconnect grace") {
			t.Errorf("a call after the grace waited it again: %v", err)
		}
	}
}
