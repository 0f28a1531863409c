package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/natsmesh/natsmesh/internal/census"
	"github.com/natsmesh/natsmesh/internal/meshtest"
	"github.com/natsmesh/natsmesh/wire"
	"github.com/natsmesh/natsmesh/wire/httpwire"
)

// serve subscribes an inbound pipeline for service with h, until the test
// ends.
func serve(t *testing.T, nc *nats.Conn, service string, cfg InboundConfig) *Inbound {
	t.Helper()
	cfg.Service = service
	in, err := NewInbound(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	subjects, queues := wire.ServiceSubjects(service, "")
	for i := range subjects {
		sub, err := nc.QueueSubscribe(subjects[i], queues[i], in.ServeMsg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
	}
	// As an agent does (internal/queuehold, agent/discovery.go): its
	// instance subject, and its callers' census.
	id := nuid.Next()
	inst, err := nc.QueueSubscribe(wire.InstanceSubject(service, id), service, in.ServeMsg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Unsubscribe() })
	counted := &census.Responder{Service: service, Answer: func() census.Answer { return census.Answer{ID: id, Addressable: true} }}
	if _, err := nc.Subscribe(census.Subject(service, "*"), counted.Serve); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return in
}

// httpCall is an HTTP call from web to service with no body, encoded as
// package meshhttp encodes one (which this package cannot import).
func httpCall(t *testing.T, service, method string) *Call {
	t.Helper()
	r, err := http.NewRequest(method, "http://"+service+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := httpwire.EncodeRequest(r, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return &Call{Service: service, Caller: "web", Proto: wire.ProtoHTTP, Op: method, Path: "/", Header: m.Header, Body: Body{Bytes: m.Data}}
}

func outbound(t *testing.T, nc *nats.Conn, mw ...OutboundMiddleware) *Outbound {
	t.Helper()
	o, err := NewOutbound(nc, OutboundConfig{Middleware: mw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := o.Close(); err != nil {
			t.Error(err)
		}
	})
	return o
}

// TestOverloadedReachesMiddlewareAsError: a remote instance's overloaded
// answer is a reply on the wire, but middleware sees it as the typed mesh
// error, so a retry policy can classify it.
func TestOverloadedReachesMiddlewareAsError(t *testing.T) {
	b := meshtest.BareBroker(t)
	svc := meshtest.ServiceConn(t, b, "orders")
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	serve(t, svc, "orders", InboundConfig{
		MaxConcurrent: 1,
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return httpReply(200, nil, nil, nil, wire.Limits{})
		}),
	})
	seen := make(chan error, 2)
	record := func(next Sender) Sender {
		return SendFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			reply, err := next.Send(ctx, c)
			seen <- err
			return reply, err
		})
	}
	web := meshtest.ServiceConn(t, b, "web")
	o := outbound(t, web, record)
	first := make(chan error, 1)
	go func() { // holds the one slot until the test ends
		_, err := o.Send(context.Background(), httpCall(t, "orders", "GET"))
		first <- err
	}()
	defer func() {
		close(release)
		<-first
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := o.Send(ctx, httpCall(t, "orders", "GET"))
	var me *wire.Error
	if got := <-seen; !errors.Is(got, wire.ErrOverloaded) || !errors.As(err, &me) || me.RetryAfter != time.Second {
		t.Fatalf("middleware saw %v, caller got %v: want the typed overloaded error with Retry-After", got, err)
	}
}

// TestConcurrentAttemptsShareNoHeaders: the end of the pipeline never
// writes to the call it is given, so a middleware may send one call twice
// at once (a hedge) and each attempt carries its own Mesh-Timeout. The race
// detector fails this test if the attempts shared a header map.
func TestConcurrentAttemptsShareNoHeaders(t *testing.T) {
	b := meshtest.BareBroker(t)
	svc := meshtest.ServiceConn(t, b, "orders")
	serve(t, svc, "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			return httpReply(200, http.Header{"X-Timeout": {c.Header.Get(wire.HeaderTimeout)}}, nil, nil, wire.Limits{})
		}),
	})
	twice := func(next Sender) Sender {
		return SendFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			var wg sync.WaitGroup
			replies := make([]*Reply, 2)
			errs := make([]error, 2)
			for i := range 2 {
				actx, cancel := context.WithTimeout(ctx, time.Duration(i+2)*time.Second)
				wg.Go(func() {
					defer cancel()
					replies[i], errs[i] = next.Send(actx, c)
				})
			}
			wg.Wait()
			if errs[0] != nil {
				return nil, errs[0]
			}
			if replies[0].Header.Get("X-Timeout") == replies[1].Header.Get("X-Timeout") {
				t.Errorf("both attempts carried Mesh-Timeout %q", replies[0].Header.Get("X-Timeout"))
			}
			return replies[1], errs[1]
		})
	}
	o := outbound(t, meshtest.ServiceConn(t, b, "web"), twice)
	c := httpCall(t, "orders", "GET")
	before := len(c.Header)
	if _, err := o.Send(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(c.Header) != before || c.Header.Get(wire.HeaderTimeout) != "" {
		t.Fatalf("the caller's call was changed: %v", c.Header)
	}
}

// TestRawGRPCTimeoutIsTheDeadline: a raw NATS client that sends only
// gRPC's grpc-timeout header gets that deadline on the served call, not
// none (the inbound dispatch used to skip its default when it saw the
// header, and nothing read it).
func TestRawGRPCTimeoutIsTheDeadline(t *testing.T) {
	b := meshtest.BareBroker(t)
	svc := meshtest.ServiceConn(t, b, "orders")
	serve(t, svc, "orders", InboundConfig{
		Timeout: time.Hour, // the default must not be what applies
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			d, ok := ctx.Deadline()
			left := "none"
			if ok {
				left = strconv.FormatInt(int64(time.Until(d)/time.Millisecond), 10)
			}
			return httpReply(200, http.Header{"X-Left-Ms": {left}}, nil, nil, wire.Limits{})
		}),
	})
	raw := rawConn(t, b, "raw", "orders")
	tests := []struct {
		name   string
		header nats.Header
		lo, hi int64 // milliseconds left, as the handler saw them
	}{
		{"grpc-timeout 1S", nats.Header{"grpc-timeout": {"1S"}}, 500, 1000},
		{"grpc-timeout 300m", nats.Header{"grpc-timeout": {"300m"}}, 100, 300},
		{"Mesh-Timeout wins", nats.Header{wire.HeaderTimeout: {"2s"}, "grpc-timeout": {"1S"}}, 1500, 2000},
		{"neither: the default", nats.Header{}, 3500 * 1000, 3600 * 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.header[wire.HeaderMethod] = []string{"GET"}
			reply, err := raw.RequestMsg(&nats.Msg{Subject: "mesh.orders._.raw.http.GET", Header: tt.header}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			left, err := strconv.ParseInt(reply.Header.Get("X-Left-Ms"), 10, 64)
			if err != nil || left < tt.lo || left > tt.hi {
				t.Fatalf("handler saw %q ms left, want %d to %d", reply.Header.Get("X-Left-Ms"), tt.lo, tt.hi)
			}
		})
	}
	t.Run("bad grpc-timeout", func(t *testing.T) {
		reply, err := raw.RequestMsg(&nats.Msg{Subject: "mesh.orders._.raw.http.GET", Header: nats.Header{
			wire.HeaderMethod: {"GET"}, "grpc-timeout": {"soon"}}}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := wire.ReplyError(reply.Header); !errors.Is(e, wire.ErrBadRequest) {
			t.Fatalf("got %v, want bad-request", reply.Header)
		}
	})
}

// TestOneReplyEach: every message with a reply subject gets exactly one
// answer, whatever the handler does.
func TestOneReplyEach(t *testing.T) {
	b := meshtest.BareBroker(t)
	svc := meshtest.ServiceConn(t, b, "orders")
	serve(t, svc, "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			switch c.HeaderValue("X-Do") {
			case "panic":
				panic("boom")
			case "nil":
				return nil, nil
			case "error":
				return nil, errors.New("plain error")
			}
			return httpReply(204, nil, nil, nil, wire.Limits{})
		}),
	})
	raw := rawConn(t, b, "raw", "orders")
	for do, want := range map[string]string{"panic": "internal", "nil": "internal", "error": "internal", "ok": ""} {
		t.Run(do, func(t *testing.T) {
			inbox := raw.NewRespInbox()
			sub, err := raw.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			m := &nats.Msg{Subject: "mesh.orders._.raw.http.GET", Reply: inbox, Header: nats.Header{wire.HeaderMethod: {"GET"}, "X-Do": {do}}}
			if err := raw.PublishMsg(m); err != nil {
				t.Fatal(err)
			}
			reply, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := reply.Header.Get(wire.HeaderError); got != want {
				t.Fatalf("Mesh-Error %q, want %q", got, want)
			}
			// The dispatch publishes its one reply before the handler's
			// goroutine ends; a flush of the service's connection after
			// that orders any second reply before this wait.
			if err := svc.Flush(); err != nil {
				t.Fatal(err)
			}
			if extra, err := sub.NextMsg(100 * time.Millisecond); err == nil {
				t.Fatalf("a second reply: %v", extra.Header)
			}
		})
	}
}

// workers counts the goroutines of the inbound dispatch, busy or idle.
func workers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "pipeline.(*Inbound).work(")
}

// TestInboundWorkers: calls one after another are served by one worker
// (whose stack has grown already) rather than a new goroutine each; a
// worker that has waited workerIdle for a call exits, and Close ends the
// idle ones at once.
func TestInboundWorkers(t *testing.T) {
	b := meshtest.BareBroker(t)
	svc := meshtest.ServiceConn(t, b, "orders")
	var mu sync.Mutex
	stacks := map[string]bool{}
	in := serve(t, svc, "orders", InboundConfig{
		Handler: HandlerFunc(func(ctx context.Context, c *Call) (*Reply, error) {
			// The goroutine's ID is the first line of its own stack.
			buf := make([]byte, 64)
			id, _, _ := strings.Cut(string(buf[:runtime.Stack(buf, false)]), " [")
			mu.Lock()
			stacks[id] = true
			mu.Unlock()
			return httpReply(200, nil, nil, nil, wire.Limits{})
		}),
	})
	o := outbound(t, meshtest.ServiceConn(t, b, "web"))
	call := func() {
		t.Helper()
		if _, err := o.Send(context.Background(), httpCall(t, "orders", "GET")); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		call()
	}
	// One, but a worker descheduled between its reply and its wait for
	// the next call (a loaded machine) lets a new one start meanwhile.
	if len(stacks) > 5 {
		t.Errorf("20 calls one after another ran on %d goroutines, want 1", len(stacks))
	}
	meshtest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := workers(); n != 0 {
			return fmt.Errorf("%d workers still waiting after %v idle", n, workerIdle)
		}
		return nil
	})
	call() // a new worker, which Close ends
	if n := workers(); n != 1 {
		t.Errorf("%d workers after a call, want 1", n)
	}
	in.Close(context.Background())
	meshtest.CheckFor(t, time.Second, 10*time.Millisecond, func() error {
		if n := workers(); n != 0 {
			return fmt.Errorf("%d workers left after Close", n)
		}
		return nil
	})
}
